#!/usr/bin/env bash
# The paper's classifier protocol on Fashion-MNIST: train a baseline (10 epochs, the README's), then
# fine-tune two copies of it with the same budget, α = 0 and α > 0 (`--init`), evaluate both and
# compare the two fine-tunes. Resumable: finished steps are skipped.
# Usage: scripts/classify_finetune.sh OUT_DIR ALPHA LOSS PERTURB EPOCHS LR [stabilize binary]
set -euo pipefail
usage="usage: scripts/classify_finetune.sh OUT_DIR ALPHA LOSS PERTURB EPOCHS LR [BIN]"
out="${1:?$usage}"; alpha="${2:?alpha}"; loss="${3:?loss}"; perturb="${4:?perturb}"
epochs="${5:?epochs}"; lr="${6:?lr}"; bin="${7:-target/release/stabilize}"
train() { # DIR ARGS…
  local dir="$1"; shift
  if [ ! -f "$dir/model.bpk" ]; then
    local resume=(); [ -f "$dir/checkpoint/state.json" ] && resume=(--resume)
    local start=$SECONDS
    "$bin" train classify --seed 1 --batch-size 128 "$@" --out "$dir" "${resume[@]}"
    echo "$(basename "$dir"): training wall time $((SECONDS - start)) s"
  fi
  [ -f "$dir/eval.json" ] || "$bin" eval classify --model "$dir" > "$dir/eval.txt"
}
train "$out/baseline" --epochs 10 --lr 1e-3 --alpha 0
train "$out/finetune-alpha0" --init "$out/baseline" --epochs "$epochs" --lr "$lr" --alpha 0
train "$out/finetune-stabilized" --init "$out/baseline" --epochs "$epochs" --lr "$lr" \
  --alpha "$alpha" --loss "$loss" --perturb "$perturb"
"$bin" compare "$out/finetune-alpha0" "$out/finetune-stabilized"
