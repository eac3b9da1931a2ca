#!/usr/bin/env bash
# The paper's classifier protocol on Fashion-MNIST: train a baseline (10 epochs, the README's), then
# fine-tune two copies of it with the same budget, α = 0 and α > 0 (`--init`), evaluate both and
# compare the two fine-tunes. Resumable: finished steps are skipped.
# Usage: scripts/classify_finetune.sh OUT_DIR ALPHA LOSS PERTURB EPOCHS LR [stabilize binary]
# Environment: SEED=K, every run's seed (default 1, the README's); VAL=N, every run keeps the last
# N training images out (`--val-images`) and is evaluated on them instead of the test images
# (`--on validation`), for choosing settings without the test set.
set -euo pipefail
usage="usage: scripts/classify_finetune.sh OUT_DIR ALPHA LOSS PERTURB EPOCHS LR [BIN]"
out="${1:?$usage}"; alpha="${2:?alpha}"; loss="${3:?loss}"; perturb="${4:?perturb}"
epochs="${5:?epochs}"; lr="${6:?lr}"; bin="${7:-target/release/stabilize}"; seed="${SEED:-1}"
val=(); on=(); evalfile=eval.json
if [ -n "${VAL:-}" ]; then val=(--val-images "$VAL"); on=(--on validation); evalfile=eval-validation.json; fi
train() { # DIR ARGS…
  local dir="$1"; shift
  if [ ! -f "$dir/model.bpk" ]; then
    local resume=(); [ -f "$dir/checkpoint/state.json" ] && resume=(--resume)
    local start=$SECONDS
    "$bin" train classify --seed "$seed" --batch-size 128 "${val[@]}" "$@" --out "$dir" "${resume[@]}"
    echo "$(basename "$dir"): training wall time $((SECONDS - start)) s"
  fi
  [ -f "$dir/$evalfile" ] || "$bin" eval classify --model "$dir" "${on[@]}" > "$dir/${evalfile%.json}.txt"
}
train "$out/baseline" --epochs 10 --lr 1e-3 --alpha 0
train "$out/finetune-alpha0" --init "$out/baseline" --epochs "$epochs" --lr "$lr" --alpha 0
train "$out/finetune-stabilized" --init "$out/baseline" --epochs "$epochs" --lr "$lr" \
  --alpha "$alpha" --loss "$loss" --perturb "$perturb"
"$bin" compare "${on[@]}" "$out/finetune-alpha0" "$out/finetune-stabilized"
