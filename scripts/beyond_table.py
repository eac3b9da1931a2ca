#!/usr/bin/env python3
"""Markdown tables of scripts/beyond_paper.sh's runs: the classifier variants (clean accuracy,
accuracy and flip rate per distortion, mean corruption error, mean corruption flip rate, wall
times) and the embedding variants (near-duplicate AP per distortion and pooled).

usage: scripts/beyond_table.py OUT_DIR
"""
import json
import sys
from pathlib import Path

CLASSIFY = ["baseline", "stability-noise", "stability-real", "augment-noise", "augment-real", "jsd-real"]
EMBED = ["baseline", "stability-noise", "stability-real", "augment-real"]


def load(p):
    with open(p) as f:
        return json.load(f)


def times(out):
    t = {}
    p = out / "times.txt"
    if p.is_file():
        for line in p.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[-1] == "s":
                t[(parts[0], parts[1])] = float(parts[2])
    return t


def main():
    out = Path(sys.argv[1])
    t = times(out)
    rows = [(n, out / "classify" / n) for n in CLASSIFY if (out / "classify" / n / "eval.json").is_file()]
    if rows:
        specs = [d["spec"] for d in load(rows[0][1] / "eval.json")["distortions"]]
        print("Accuracy (top-1 %) and, in brackets, flip rate (%) per distortion:\n")
        print("| variant | clean | " + " | ".join(specs) + " | mean flip | mCE (unnorm.) | corruption flip | train s |")
        print("|---|---:|" + "---:|" * len(specs) + "---:|---:|---:|---:|")
        for name, d in rows:
            e = load(d / "eval.json")
            cells = [f"{x['top1'] * 100:.1f} ({x['flip_rate'] * 100:.1f})" for x in e["distortions"]]
            mean_flip = sum(x["flip_rate"] for x in e["distortions"]) / len(e["distortions"]) * 100
            c = d / "eval-corruptions.json"
            if c.is_file():
                s = load(c)["corruptions"]
                mce, cflip = f"{s['mean_corruption_error'] * 100:.2f}", f"{s['mean_flip_rate'] * 100:.2f}"
            else:
                mce = cflip = "–"
            train = t.get((f"classify/{name}", "train"))
            print(f"| {name} | {e['clean']['top1'] * 100:.2f} | " + " | ".join(cells)
                  + f" | {mean_flip:.2f} | {mce} | {cflip} | {train:.0f} |" if train else " | – |")
        # Per corruption (mean error over severities).
        corr = [(n, d) for n, d in rows if (d / "eval-corruptions.json").is_file()]
        if corr:
            names = [r["corruption"] for r in load(corr[0][1] / "eval-corruptions.json")["corruptions"]["rows"]]
            print("\nCorruption suite, mean error over severities 1–5 (%):\n")
            print("| variant | " + " | ".join(names) + " |")
            print("|---|" + "---:|" * len(names))
            for name, d in corr:
                r = load(d / "eval-corruptions.json")["corruptions"]["rows"]
                print(f"| {name} | " + " | ".join(f"{x['mean_error'] * 100:.1f}" for x in r) + " |")
    emb = [(n, out / "embed" / n) for n in EMBED if (out / "embed" / n / "eval.json").is_file()]
    if emb:
        specs = [d["spec"] for d in load(emb[0][1] / "eval.json")["distortions"]]
        print("\nEmbeddings: near-duplicate AP per distortion and pooled:\n")
        print("| variant | " + " | ".join(specs) + " | pooled | train s |")
        print("|---|" + "---:|" * (len(specs) + 2))
        for name, d in emb:
            e = load(d / "eval.json")
            train = t.get((f"embed/{name}", "train"))
            print(f"| {name} | " + " | ".join(f"{x['ap']:.3f}" for x in e["distortions"])
                  + f" | {e['pooled']['ap']:.3f} | {train:.0f} |" if train else " | – |")


if __name__ == "__main__":
    main()
