#!/usr/bin/env bash
# PyTorch for the `tch` backend and the PyTorch references: a venv (.venv-torch) with the pinned
# torch 2.9.0 from PyPI (burn 0.22's tch backend pins tch 0.22 = libtorch 2.9.0).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv-torch/bin/python ] || python3 -m venv .venv-torch
# --no-cache-dir: the wheels (3 GB with the CUDA libraries PyPI's torch depends on) would otherwise
# stay in pip's cache beside the 6.8 GB they install to.
.venv-torch/bin/pip install -q --disable-pip-version-check --no-cache-dir -r scripts/requirements-torch.txt
