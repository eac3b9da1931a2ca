#!/usr/bin/env bash
# The test command: sets up, builds, fetches the real assets, runs the reference checks and the
# whole test suite (unit tests, and integration tests on the real files).
set -euo pipefail
cd "$(dirname "$0")/.."
export STABILIZE_DATA="${STABILIZE_DATA:-$PWD/data}"

scripts/setup.sh
cargo build --workspace --locked
target/debug/stabilize fetch all
.venv-check/bin/python scripts/jpeg_vs_pillow.py --stabilize target/debug/stabilize --photos "$STABILIZE_DATA/photos"
# Optional (PyTorch is a 3 GB download): the MobileNetV2 logits against PyTorch's.
if [ "${STABILIZE_TORCH_CHECK:-0}" = 1 ]; then
  [ -x .venv-torch/bin/python ] || python3 -m venv .venv-torch
  .venv-torch/bin/pip install -q --disable-pip-version-check -r scripts/requirements-torch.txt
  .venv-torch/bin/python scripts/mobilenet_vs_pytorch.py --stabilize target/debug/stabilize --data "$STABILIZE_DATA"
fi
STABILIZE_REQUIRE_DATA=1 STABILIZE_REQUIRE_CHROMIUM=1 cargo test --workspace --locked
