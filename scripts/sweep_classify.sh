#!/usr/bin/env bash
# The small α/σ sweep for the classifier: same seed, 10,000 training images, 3 epochs, evaluated
# on the full test set under the default distortions. Usage: scripts/sweep_classify.sh OUT_DIR [BIN]
set -euo pipefail
out="${1:?usage: scripts/sweep_classify.sh OUT_DIR [stabilize binary]}"
bin="${2:-target/release/stabilize}"
common=(--epochs 3 --train-subset 10000 --seed 1)
run() { # name alpha sigma [loss]
  local dir="$out/$1"
  [ -f "$dir/eval.json" ] && return 0
  if [ ! -f "$dir/model.bpk" ]; then rm -rf "$dir"; fi
  [ -f "$dir/model.bpk" ] || "$bin" train classify "${common[@]}" --alpha "$2" --sigma "$3" --loss "${4:-paper}" --out "$dir"
  "$bin" eval classify --model "$dir" > "$dir/eval.txt"
}
run baseline 0 0.04
run a0.01-s0.04 0.01 0.04
run a0.1-s0.04 0.1 0.04
run a0.1-s0.1 0.1 0.1
run a1-s0.1 1 0.1
run kl-a1-s0.1 1 0.1 kl
run kl-a5-s0.2 5 0.2 kl
for d in "$out"/a* "$out"/kl-*; do "$bin" compare "$out/baseline" "$d"; echo; done
