#!/usr/bin/env bash
# Issue 9's comparison: baseline, stability (noise), stability (real distortions), augmentation
# (noise and real), AugMix-style JSD on Fashion-MNIST, same seed, data and budget (10,000 training
# images, 3 epochs); each evaluated under the paper's distortions and the corruption suite. Then
# the embedding variants (baseline, stability noise / real, augmentation real) and their
# near-duplicate AP. Re-running skips finished runs.
#   usage: scripts/beyond_paper.sh OUT_DIR [stabilize binary]
set -euo pipefail
out="${1:?usage: scripts/beyond_paper.sh OUT_DIR [stabilize binary]}"
bin="${2:-target/release/stabilize}"
mix_cls="jpeg:10-90,thumb:25-75,crop:0-4,noise:0-0.2"
mix_emb="jpeg:10-90,thumb:25-75,crop:0-8,noise:0-0.2"
be=(--backend "${STABILIZE_BACKEND:-flex}")  # STABILIZE_BACKEND=tch with a --features tch build
common=(--epochs 3 --train-subset 10000 --seed 1 "${be[@]}")
cls() { # name args...
  local name="$1"; shift
  local dir="$out/classify/$name"
  if [ ! -f "$dir/model.bpk" ]; then
    rm -rf "$dir"
    /usr/bin/time -f "classify/$name train %e s" -a -o "$out/times.txt" "$bin" train classify "${common[@]}" "$@" --out "$dir" --json > /dev/null
  fi
  [ -f "$dir/eval.json" ] || /usr/bin/time -f "classify/$name eval %e s" -a -o "$out/times.txt" "$bin" eval classify "${be[@]}" --model "$dir" --json > /dev/null
  [ -f "$dir/eval-corruptions.json" ] || /usr/bin/time -f "classify/$name corruptions %e s" -a -o "$out/times.txt" "$bin" eval classify "${be[@]}" --model "$dir" --suite corruptions --json > /dev/null
}
emb() { # name args...
  local name="$1"; shift
  local dir="$out/embed/$name"
  if [ ! -f "$dir/model.bpk" ]; then
    rm -rf "$dir"
    /usr/bin/time -f "embed/$name train %e s" -a -o "$out/times.txt" "$bin" train embed "${be[@]}" --steps 120 --input-size 64 --seed 1 --checkpoint-every 60 "$@" --out "$dir" --json > /dev/null
  fi
  [ -f "$dir/eval.json" ] || /usr/bin/time -f "embed/$name eval %e s" -a -o "$out/times.txt" "$bin" eval embed "${be[@]}" --model "$dir" --json > /dev/null
}
mkdir -p "$out"
cls baseline --alpha 0
cls stability-noise --loss kl --alpha 2 --sigma 0.2
cls stability-real --loss kl --alpha 2 --perturb "$mix_cls"
cls augment-noise --objective augment --perturb noise:0.2
cls augment-real --objective augment --perturb "$mix_cls"
cls jsd-real --objective jsd --alpha 12 --perturb "$mix_cls"
emb baseline --alpha 0
emb stability-noise --alpha 0.1 --sigma 0.2
emb stability-real --alpha 0.1 --perturb "$mix_emb"
emb augment-real --objective augment --perturb "$mix_emb"
echo "done: $out"
