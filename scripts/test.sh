#!/usr/bin/env bash
# The test command: sets up, builds, fetches the real assets, runs the reference checks and the
# whole test suite (unit tests, and integration tests on the real files).
set -euo pipefail
cd "$(dirname "$0")/.."
export STABILIZE_DATA="${STABILIZE_DATA:-$PWD/data}"

scripts/setup.sh
# PyTorch 2.9.0 from PyPI (a 3 GB download): its libtorch is the `tch` backend's, and it is the
# reference of the MobileNetV2 check and of `stabilize bench`. The whole workspace is built and
# tested once with `--features stabilize/tch`, so the tests run on flex (the default backend) and
# tch both. STABILIZE_TCH=0 skips all of it (flex only, no PyTorch).
features=()
if [ "${STABILIZE_TCH:-1}" = 1 ]; then
  scripts/setup-torch.sh
  # shellcheck source=/dev/null
  source scripts/torch-env.sh
  features=(--features stabilize/tch)
fi
cargo build --workspace --locked "${features[@]}"
target/debug/stabilize fetch all
.venv-check/bin/python scripts/jpeg_vs_pillow.py --stabilize target/debug/stabilize --photos "$STABILIZE_DATA/photos"
if [ "${STABILIZE_TCH:-1}" = 1 ]; then
  .venv-torch/bin/python scripts/mobilenet_vs_pytorch.py --stabilize target/debug/stabilize --data "$STABILIZE_DATA"
fi
STABILIZE_REQUIRE_DATA=1 STABILIZE_REQUIRE_CHROMIUM=1 STABILIZE_REQUIRE_TCH="${STABILIZE_TCH:-1}" \
  cargo test --workspace --locked "${features[@]}"
# Fuzz smoke run: each cargo-fuzz target (libFuzzer; stable toolchain with RUSTC_BOOTSTRAP for the
# sanitizer flags) replays its committed corpus, then fuzzes for 20 s. New inputs go to a
# scratch dir, not the checkout.
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
work=$(mktemp -d)
for t in idx image spec torch_pickle; do
  mkdir -p "$work/$t"
  (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$t" "$work/$t" "corpus/$t" -- \
    -max_total_time="${STABILIZE_FUZZ_SECONDS:-20}" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 2>&1 | tail -n 30)
done
rm -rf "$work"
