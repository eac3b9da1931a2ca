#!/usr/bin/env bash
# The GPU check (issue 20): on a machine with an NVIDIA GPU, one short run:
#   1. the GPU as libtorch sees it;
#   2. `stabilize bench --backends tch --device cuda`: the classifier's training steps and
#      inference, MobileNetV2 inference and the embedding step, against PyTorch on the same GPU
#      (both layouts; ratios against the faster);
#   3. `eval embed` of the default model on the GPU (a copy of its folder), timed, and its pooled
#      AP beside the CPU evaluation's committed number.
# Nothing here downloads; about 5 minutes after the build.
#
# Two ways to run it:
# - In a set-up checkout (`scripts/setup.sh`, `scripts/setup-torch.sh`, `stabilize fetch all`):
#   it builds the release binary with `--features stabilize/tch` and uses `.venv-torch`.
# - On a machine with PyTorch but no Rust (a lent GPU machine): STABILIZE_BIN=a `tch` binary built
#   against that machine's libtorch version (see docs/benchmarks.md, "GPU"), TORCH_PYTHON=its
#   python; the binary loads libtorch from that python's torch package.
# Environment: STABILIZE_DATA (default ./data), GPU_OUT (default results/gpu), EPOCH_IMAGES
# (default 10000; 0 skips the end-to-end epoch, which needs Fashion-MNIST).
# usage: scripts/gpu_check.sh [cuda:N]
set -uo pipefail
cd "$(dirname "$0")/.."
device=${1:-cuda:0}
out=${GPU_OUT:-results/gpu}
mkdir -p "$out"
export STABILIZE_DATA="${STABILIZE_DATA:-$PWD/data}"
if [ -n "${STABILIZE_BIN:-}" ]; then
  bin=$STABILIZE_BIN
  py=${TORCH_PYTHON:-python3}
  torch_lib=$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))') || exit 1
  export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  set -e
  # shellcheck source=/dev/null
  source scripts/torch-env.sh
  cargo build --release --locked --features stabilize/tch
  set +e
  bin=target/release/stabilize
  py=${TORCH_PYTHON:-.venv-torch/bin/python}
fi
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "nvidia-smi: not found"
  "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "devices", torch.cuda.device_count())'
  nproc
  "$bin" --version
} 2>&1 | tee "$out/gpu.txt"
"$bin" bench --backends tch --device "$device" --rounds 5 --steps 20 --epoch-images "${EPOCH_IMAGES:-10000}" \
  --mobilenet-steps 5 --mobilenet-batch 64 --embed-triplets 16 --pytorch-python "$py" --pillow-python "$py" --json \
  > "$out/bench.json" 2> >(tee "$out/bench.txt" >&2)
echo "bench: exit $?" | tee -a "$out/gpu.txt"
model=$(mktemp -d)
cp models/embed-default/{config.json,metrics.json,fusion.json,model.bpk} "$model/"
start=$(date +%s)
"$bin" eval embed --model "$model" --backend tch --device "$device" --json > "$out/eval-embed.json"
status=$?
end=$(date +%s)
echo "eval embed: exit $status, $((end - start)) s" | tee -a "$out/gpu.txt"
"$py" - "$out/eval-embed.json" models/embed-default/eval.json "$((end - start))" <<'PY' | tee -a "$out/gpu.txt"
import json, os, sys
gpu, secs = json.load(open(sys.argv[1])), sys.argv[3]
cpu = json.load(open(sys.argv[2]))["pooled"]["ap"] if os.path.exists(sys.argv[2]) else float("nan")
print(f"eval embed on the GPU: {secs} s; pooled AP {gpu['pooled']['ap']:.4f} (CPU evaluation: {cpu:.4f})")
PY
rm -rf "$model"
