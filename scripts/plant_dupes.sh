#!/usr/bin/env bash
# Builds the planted near-duplicate set: every photo of the pool, shrunk to at most 640 px on its
# long side (PNG), plus its jpeg:50, thumb:30 and crop:10 copies written by `stabilize distort`
# (PNG, so the copies carry exactly the distortion). File names: NAME.png and NAME__jpeg-50.png …,
# so the true groups are the names before "__".
# SPECS (4th argument): the copies to plant, space-separated distortion specs; "paper" (the
# default) is "jpeg:50 thumb:30 crop:10", "edits" adds the in-the-wild edits: "trim:15 pad:20
# rotate:5 hflip text:12 gray blur:1.5".
# usage: scripts/plant_dupes.sh OUT_DIR [STABILIZE_BIN] [DATA_DIR] [SPECS]
set -euo pipefail
out=${1:?usage: plant_dupes.sh OUT_DIR [BIN] [DATA_DIR] [SPECS]}
bin=${2:-target/debug/stabilize}
data=${3:-data}
specs=${4:-paper}
case "$specs" in
  paper) specs="jpeg:50 thumb:30 crop:10";;
  edits) specs="jpeg:50 thumb:30 crop:10 trim:15 pad:20 rotate:5 hflip text:12 gray blur:1.5";;
esac
mkdir -p "$out"
.venv-check/bin/python - "$data/photos" "$out" <<'PY'
import pathlib, sys
from PIL import Image, ImageOps
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for p in sorted(src.iterdir()):
    im = ImageOps.exif_transpose(Image.open(p)).convert("RGB")
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
