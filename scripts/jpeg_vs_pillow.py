#!/usr/bin/env python3
"""Check that stabilize's JPEG-q round trip matches Pillow's.

For every photo under PHOTOS and every quality q, both tools load the photo (EXIF orientation
applied, converted to RGB), encode it at quality q with their defaults (4:2:0 chroma), decode it and
measure PSNR against the loaded original. The mean PSNR per quality must agree within --tolerance dB.

    python3 scripts/jpeg_vs_pillow.py --stabilize target/release/stabilize --photos data/photos

Prints a table and exits 1 if any quality differs by more than the tolerance.
"""
import argparse
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps


def pillow_psnr(path: Path, quality: int) -> float:
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        ref = np.asarray(im, dtype=np.float64)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as out:
        dec = np.asarray(out.convert("RGB"), dtype=np.float64)
    mse = float(np.mean((ref - dec) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stabilize", default="target/release/stabilize", help="path to the stabilize binary")
    ap.add_argument("--photos", default="data/photos", help="folder of photos")
    ap.add_argument("--qualities", default="10,30,50,90")
    ap.add_argument("--tolerance", type=float, default=0.5, help="allowed |mean PSNR difference| in dB")
    ap.add_argument("--json", help="also write the comparison to this JSON file")
    args = ap.parse_args()

    qualities = [int(q) for q in args.qualities.split(",")]
    spec = ",".join(f"jpeg:{q}" for q in qualities)
    out = subprocess.run(
        [args.stabilize, "measure", "--json", "--spec", spec, args.photos],
        check=True, capture_output=True, text=True,
    )
    ours = json.loads(out.stdout)
    if ours["skipped"]:
        print(f"stabilize skipped {len(ours['skipped'])} files: {ours['skipped'][:3]}", file=sys.stderr)
    rows = ours["images"]
    if not rows:
        print("no images measured", file=sys.stderr)
        return 1

    failed = 0
    report = []
    print(f"{len(rows)} photos from {args.photos}")
    print(f"{'quality':>7} {'stabilize dB':>13} {'Pillow dB':>10} {'delta dB':>9} {'max |per-image delta|':>22}")
    for k, q in enumerate(qualities):
        ours_q = [min(r["psnr"][k], 100.0) for r in rows]
        pil_q = [min(pillow_psnr(Path(r["path"]), q), 100.0) for r in rows]
        m_ours, m_pil = float(np.mean(ours_q)), float(np.mean(pil_q))
        delta = m_ours - m_pil
        worst = max(abs(a - b) for a, b in zip(ours_q, pil_q))
        ok = abs(delta) <= args.tolerance
        failed += not ok
        report.append({"quality": q, "stabilize": m_ours, "pillow": m_pil, "delta": delta, "max_abs_image_delta": worst})
        print(f"{q:>7} {m_ours:>13.3f} {m_pil:>10.3f} {delta:>+9.3f} {worst:>22.3f}  {'ok' if ok else 'FAIL'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"photos": len(rows), "qualities": report}, indent=2))
    print(f"jpeg-vs-pillow: {len(qualities) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
