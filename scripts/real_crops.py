#!/usr/bin/env python3
"""Writes N random square crops (side 0.5–0.8 of the short side, resized to 256 px, PNG) of every
photo in the pool: the real vectors for `stabilize index bench --from`. Seeded; Pillow only.
usage: real_crops.py PHOTOS_DIR OUT_DIR [N=20]"""
import pathlib, random, sys
from PIL import Image, ImageOps

src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
n = int(sys.argv[3]) if len(sys.argv) > 3 else 20
out.mkdir(parents=True, exist_ok=True)
rng = random.Random(0)
count = 0
for p in sorted(src.iterdir()):
    try:
        im = ImageOps.exif_transpose(Image.open(p)).convert("RGB")
    except Exception as e:  # the pool is fetched and verified; report anything odd and go on
        print(f"skipped {p}: {e}", file=sys.stderr)
        continue
    w, h = im.size
    for i in range(n):
        side = int(min(w, h) * rng.uniform(0.5, 0.8))
        x, y = rng.randrange(0, w - side + 1), rng.randrange(0, h - side + 1)
        im.crop((x, y, x + side, y + side)).resize((256, 256), Image.BICUBIC).save(out / f"{p.stem}--{i:02d}.png")
        count += 1
print(f"{count} crops in {out}")
