#!/usr/bin/env bash
# Installs what building and checking stabilize needs on a fresh Debian/Ubuntu machine:
#   - cmake and nasm, to build libjpeg-turbo (the JPEG codec) from source with SIMD;
#   - Debian's apt-get and dpkg-deb, used by `stabilize fetch` (present on Debian);
#   - chromium, to render the HTML report headless in the tests;
#   - libheif-dev, to decode HEIC/HEIF and AVIF photos (Debian's libheif 1.15 with libde265, dav1d, aom);
#   - a Python venv (.venv-check) with Pillow and numpy for the reference checks (not needed at run time).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for tool in cmake nasm; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
# Headless Chromium renders the HTML report in the report test.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# libheif (with libde265 and dav1d/aom) decodes HEIC/HEIF and AVIF photos (core feature `heif`).
dpkg -s libheif-dev >/dev/null 2>&1 || need+=(libheif-dev)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${need[@]}"
fi
# `apt-get download` needs package lists; fetch them once if there are none.
if [ -z "$(ls -A /var/lib/apt/lists/ 2>/dev/null | grep -v -e lock -e partial)" ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
fi

if [ ! -x .venv-check/bin/python ]; then
  python3 -m venv .venv-check
fi
.venv-check/bin/pip install -q --disable-pip-version-check -r scripts/requirements-check.txt
