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
STABILIZE_REQUIRE_DATA=1 cargo test --workspace --locked
