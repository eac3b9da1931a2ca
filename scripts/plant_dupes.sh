#!/usr/bin/env bash
# Builds the planted near-duplicate set: every photo of the pool, shrunk to at most 640 px on its
# long side (PNG), plus its jpeg:50, thumb:30 and crop:10 copies written by `stabilize distort`
# (PNG, so the copies carry exactly the distortion). File names: NAME.png and NAME__jpeg-50.png …,
# so the true groups are the names before "__".
# SPECS (4th argument): the copies to plant, space-separated distortion specs; "paper" (the
# default) is "jpeg:50 thumb:30 crop:10", "edits" adds the in-the-wild edits: "trim:15 pad:20
# rotate:5 hflip text:12 gray blur:1.5".
# WHICH (5th argument): "all" photos (the default) or "heldout": only the photos of the embedding
# runs' test split (first byte of sha256(file name) < 64, short side >= 160 px), the photos no model
# trained on, so a model's calibrated threshold is tried on photos it never saw.
# usage: scripts/plant_dupes.sh OUT_DIR [STABILIZE_BIN] [DATA_DIR] [SPECS] [WHICH]
set -euo pipefail
out=${1:?usage: plant_dupes.sh OUT_DIR [BIN] [DATA_DIR] [SPECS]}
bin=${2:-target/debug/stabilize}
data=${3:-data}
specs=${4:-paper}
which=${5:-all}
case "$specs" in
  paper) specs="jpeg:50 thumb:30 crop:10";;
  edits) specs="jpeg:50 thumb:30 crop:10 trim:15 pad:20 rotate:5 hflip text:12 gray blur:1.5";;
esac
mkdir -p "$out"
.venv-check/bin/python - "$data/photos" "$out" "$which" <<'PY'
import hashlib, pathlib, sys
from PIL import Image, ImageOps
src, out, which = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
if which not in ("all", "heldout"):
    sys.exit(f"WHICH must be all or heldout, not {which}")
for p in sorted(src.iterdir()):
    im = ImageOps.exif_transpose(Image.open(p)).convert("RGB")
    if which == "heldout" and (min(im.size) < 160 or hashlib.sha256(p.name.encode()).digest()[0] >= 64):
        continue
    im.thumbnail((640, 640), Image.BICUBIC)
    im.save(out / (p.stem.replace("__", "--") + ".png"))
PY
seed=0
for f in "$out"/*.png; do
  case "$f" in *__*) continue;; esac
  stem=${f%.png}
  for spec in $specs; do
    seed=$((seed + 1))
    "$bin" distort --spec "$spec" --seed "$seed" "$f" "${stem}__${spec/:/-}.png" 2>/dev/null
  done
done
echo "planted: $(ls "$out" | wc -l) files in $out"
