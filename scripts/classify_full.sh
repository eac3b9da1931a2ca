#!/usr/bin/env bash
# Baseline and stabilized classifiers on the full Fashion-MNIST training set, same seed and
# epochs, then their evaluations and the comparison table. (The baseline's σ is the default 0.04;
# with α = 0 it is never used.)
# Usage: scripts/classify_full.sh OUT_DIR ALPHA SIGMA LOSS [stabilize binary]
set -euo pipefail
out="${1:?usage: scripts/classify_full.sh OUT_DIR ALPHA SIGMA LOSS [BIN]}"; alpha="${2:?alpha}"; sigma="${3:?sigma}"
loss="${4:?loss: paper or kl}"; bin="${5:-target/release/stabilize}"
common=(--epochs 10 --seed 1 --batch-size 128 --lr 1e-3)
for run in "baseline 0 0.04 paper" "stabilized $alpha $sigma $loss"; do
  set -- $run
  dir="$out/$1"
  if [ ! -f "$dir/model.bpk" ]; then
    resume=(); [ -f "$dir/checkpoint/state.json" ] && resume=(--resume)
    start=$SECONDS
    "$bin" train classify "${common[@]}" --alpha "$2" --sigma "$3" --loss "$4" --out "$dir" "${resume[@]}"
    echo "$1: training wall time $((SECONDS - start)) s"
  fi
  [ -f "$dir/eval.json" ] || "$bin" eval classify --model "$dir" > "$dir/eval.txt"
done
"$bin" compare "$out/baseline" "$out/stabilized"
