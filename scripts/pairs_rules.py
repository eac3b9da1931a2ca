#!/usr/bin/env python3
"""Score other ways of counting region matches on the pairs an `eval fusion` fit saw.

    stabilize eval fusion --model COPY --fit-on RUN ... --regions --pairs-csv pairs.csv
    .venv-check/bin/python scripts/pairs_rules.py pairs.csv [--per-bit 0.04 --cap 1.0] [--against other.csv]

The CSV holds one row per pair (`spec,kind,l2,region_l2,bits`). For every distortion it prints AP
and recall at precision 0.99 of the distance fused with pHash by the rule (`--per-bit`, `--cap`):
without regions; with regions at penalty 0.025; with a region match counted only while the
whole-to-whole L2 is under a gate; and with the region distance scaled by a factor. With
`--against`, it prints instead the model alone, fused, and fused with regions (penalty 0.025) for
both files side by side (two descriptors of the same pairs, e.g. without and with `--mirror`).
Validation pairs only: choosing on held-out photos is not what this is for.
"""
import argparse

import numpy as np


def load(path):
    return np.genfromtxt(path, delimiter=",", skip_header=1, dtype=None, encoding=None,
                         names=["spec", "kind", "l2", "region_l2", "bits"])


def ap_recall(dup, distinct):
    """AP and recall at precision 0.99 of "duplicate iff distance ≤ t" (ties in input order)."""
    scores = np.concatenate([dup, distinct])
    truth = np.concatenate([np.ones(len(dup)), np.zeros(len(distinct))])[np.argsort(scores, kind="mergesort")]
    tp = np.cumsum(truth)
    precision = tp / np.arange(1, len(truth) + 1)
    ok = np.where(precision >= 0.99)[0]
    return (precision * truth).sum() / truth.sum(), (tp[ok[-1]] / truth.sum() if len(ok) else 0.0)


def fused(rows, per_bit, cap, region=None):
    """The rule's distance; `region(whole, region_l2)` gives the model's distance with regions."""
    whole, bits = rows["l2"], rows["bits"]
    l2 = whole if region is None else region(whole, rows["region_l2"])
    return np.where(l2 < cap, np.minimum(l2, per_bit * bits), l2)


def table(columns, specs, data):
    print("spec".ljust(13) + "".join(c[0].rjust(16) for c in columns))
    means = {c[0]: [] for c in columns}
    for spec in specs:
        cells = []
        for label, fn in columns:
            rows = data[spec]
            a, r = ap_recall(fn(rows["dup"]), fn(rows["distinct"]))
            means[label].append(r)
            cells.append(f"{a:.5f}/{r:.3f}".rjust(16))
        print(spec.ljust(13) + "".join(cells))
    print("mean recall".ljust(13) + "".join(f"{np.mean(means[c[0]]):.4f}".rjust(16) for c in columns))
    print("min recall".ljust(13) + "".join(f"{np.min(means[c[0]]):.3f}".rjust(16) for c in columns))


def split(raw):
    specs = list(dict.fromkeys(raw["spec"]))
    return specs, {s: {k: raw[(raw["spec"] == s) & (raw["kind"] == k)] for k in ("dup", "distinct")} for s in specs}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv")
    ap.add_argument("--per-bit", type=float, default=0.04)
    ap.add_argument("--cap", type=float, default=1.0)
    ap.add_argument("--penalty", type=float, default=0.025)
    ap.add_argument("--against")
    a = ap.parse_args()
    pb, cap, pen = a.per_bit, a.cap, a.penalty
    specs, data = split(load(a.csv))
    with_regions = lambda w, r: np.minimum(w, r + pen)
    if a.against:
        specs_b, data_b = split(load(a.against))
        assert specs_b == specs, "the two files hold other distortions"
        for title, fn in [("model alone", lambda rows: rows["l2"]),
                          ("fused with pHash", lambda rows: fused(rows, pb, cap)),
                          (f"regions (penalty {pen}) fused with pHash", lambda rows: fused(rows, pb, cap, with_regions))]:
            print(f"== {title}: {a.csv} | {a.against}")
            print("spec".ljust(13) + "first".rjust(16) + "second".rjust(16))
            for s in specs:
                cells = [ap_recall(fn(d[s]["dup"]), fn(d[s]["distinct"])) for d in (data, data_b)]
                print(s.ljust(13) + "".join(f"{x:.5f}/{r:.3f}".rjust(16) for x, r in cells))
        return
    columns = [("no regions", lambda rows: fused(rows, pb, cap)),
               (f"penalty {pen}", lambda rows: fused(rows, pb, cap, with_regions))]
    for gate in (1.2, 1.0, 0.8):
        columns.append((f"gate {gate}", lambda rows, g=gate: fused(
            rows, pb, cap, lambda w, r: np.where(w < g, np.minimum(w, r + pen), w))))
    for scale in (1.1, 1.3, 1.5):
        columns.append((f"x{scale}", lambda rows, m=scale: fused(rows, pb, cap, lambda w, r: np.minimum(w, m * r))))
    table(columns, specs, data)


if __name__ == "__main__":
    main()
