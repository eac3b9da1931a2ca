#!/usr/bin/env python3
"""Pillow reference for `stabilize bench`: the JPEG-q round trip and the THUMB-s resize on the same images.

`stabilize bench` writes its prepared RGB images as PNG into a folder and runs this script on it.
Pillow decodes them once (not timed), then, one image at a time on one thread:
    jpeg: encode at quality q (Pillow's defaults: 4:2:0, libjpeg quality scaling), decode, load;
    thumb: resize to s % of each side with BICUBIC, then back to the original size with BICUBIC
           (stabilize's THUMB-s: fast_image_resize's Catmull-Rom, Pillow's BICUBIC kernel).

    python3 scripts/bench_pillow.py DIR --quality 50 --percent 50 --repeats 3

Prints one JSON object: jpeg_roundtrip_img_per_s, resize_img_per_s, pillow version, images.
"""
import argparse
import io
import json
import sys
import time
from pathlib import Path

import PIL
from PIL import Image


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--quality", type=int, default=50)
    ap.add_argument("--percent", type=float, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    images = []
    for p in sorted(Path(args.dir).glob("*.png")):
        with Image.open(p) as im:
            images.append(im.convert("RGB"))
    if not images:
        raise SystemExit(f"no PNG images in {args.dir}")

    def jpeg(im):
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=args.quality)
        buf.seek(0)
        with Image.open(buf) as out:
            out.load()
            return out

    def thumb(im):
        w, h = im.size
        small = im.resize((max(1, round(w * args.percent / 100)), max(1, round(h * args.percent / 100))), Image.BICUBIC)
        return small.resize((w, h), Image.BICUBIC)

    def rate(op):
        for im in images[:2]:
            op(im)
        t = time.perf_counter()
        for _ in range(args.repeats):
            for im in images:
                op(im)
        return args.repeats * len(images) / (time.perf_counter() - t)

    print(json.dumps({
        "pillow": PIL.__version__,
        "images": len(images),
        "jpeg_roundtrip_img_per_s": rate(jpeg),
        "resize_img_per_s": rate(thumb),
    }))


if __name__ == "__main__":
    sys.exit(main())
