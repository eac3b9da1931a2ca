#!/usr/bin/env bash
# PyTorch for the `tch` backend and the PyTorch references: a venv (.venv-torch) with the pinned
# torch 2.9.0 from PyPI (burn 0.22's tch backend pins tch 0.22 = libtorch 2.9.0).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv-torch/bin/python ] || python3 -m venv .venv-torch
.venv-torch/bin/pip install -q --disable-pip-version-check -r scripts/requirements-torch.txt
