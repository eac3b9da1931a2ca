#!/usr/bin/env bash
# The GPU check (issue 20): on a machine with an NVIDIA GPU and this checkout set up
# (`scripts/setup.sh`, `scripts/setup-torch.sh`, `stabilize fetch all`), one short run:
#   1. the GPU as libtorch sees it;
#   2. `stabilize bench --backends tch --device cuda`: the classifier's training steps and
#      inference, MobileNetV2 inference and the embedding step, against PyTorch on the same GPU
#      (both layouts; ratios against the faster);
#   3. `eval embed` of the default model on the GPU (a copy of its folder: the data dir's is the
#      binary's), timed, and its pooled AP beside the CPU evaluation's committed number.
# Output goes to results/gpu/ (commit it). Nothing here downloads; about 5 minutes after the build.
# usage: scripts/gpu_check.sh [cuda:N]
set -euo pipefail
cd "$(dirname "$0")/.."
device=${1:-cuda:0}
out=results/gpu
mkdir -p "$out"
# shellcheck source=/dev/null
source scripts/torch-env.sh
export STABILIZE_DATA="${STABILIZE_DATA:-$PWD/data}"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "nvidia-smi: not found"
  .venv-torch/bin/python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "devices", torch.cuda.device_count())'
} | tee "$out/gpu.txt"
cargo build --release --locked --features stabilize/tch
bin=target/release/stabilize
"$bin" --version | tee -a "$out/gpu.txt"
"$bin" bench --backends tch --device "$device" --rounds 5 --steps 20 --epoch-images 10000 \
  --mobilenet-steps 5 --mobilenet-batch 64 --embed-triplets 16 --json \
  > "$out/bench.json" 2> >(tee "$out/bench.txt" >&2)
model=$(mktemp -d)
cp models/embed-default/{config.json,metrics.json,fusion.json,model.bpk} "$model/"
start=$(date +%s)
"$bin" eval embed --model "$model" --backend tch --device "$device" --json > "$out/eval-embed.json"
end=$(date +%s)
.venv-torch/bin/python - "$out/eval-embed.json" models/embed-default/eval.json "$((end - start))" <<'PY' | tee -a "$out/gpu.txt"
import json, sys
gpu, cpu, secs = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
print(f"eval embed on the GPU: {secs} s; pooled AP {gpu['pooled']['ap']:.4f} (CPU evaluation: {cpu['pooled']['ap']:.4f})")
PY
rm -rf "$model"
