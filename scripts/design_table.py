#!/usr/bin/env python3
"""One markdown table over several evaluated embedding runs (their eval.json), with the pretrained
features and the four hashes from the first run's evaluation (the same images for every run when
they share the seed and the held-out split).

usage: scripts/design_table.py [--metric ap|recall_at_precision_0.99|precision_at_recall_0.9] NAME=RUN ...

Each row: the method, pooled value, then one column per distortion; the last column is the
training time in minutes (from metrics.json) for runs.
"""
import json
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def main():
    args = sys.argv[1:]
    metric = "ap"
    if args and args[0] == "--metric":
        metric, args = args[1], args[2:]
    if not args:
        sys.exit(__doc__)
    rows, first = [], None
    for a in args:
        name, run = a.rsplit("=", 1)
        ev = load(f"{run}/eval.json")
        try:
            minutes = f"{load(f'{run}/metrics.json')['seconds'] / 60:.1f}"
        except (OSError, KeyError):
            minutes = "–"
        if first is None:
            first = ev
        elif (ev["eval_images"], ev["seed"], ev.get("borders_stripped", False)) != (
            first["eval_images"],
            first["seed"],
            first.get("borders_stripped", False),
        ):
            sys.exit(f"{run}: evaluated on other images than {args[0]}")
        rows.append((name, ev["pooled"], ev["distortions"], minutes))
    for b in first["baselines"]:
        rows.append((b["name"], b["pooled"], b["distortions"], "–"))
    specs = [d["spec"] for d in first["distortions"]]
    print(f"{metric}, {first['eval_images']} held-out images of {first['test_photos']} photos\n")
    print("| method | pooled | " + " | ".join(specs) + " | train min |")
    print("|---|---:|" + "---:|" * len(specs) + "---:|")
    for name, pooled, ds, minutes in rows:
        vals = {d["spec"]: d[metric] for d in ds}
        cells = [f"{vals[s]:.3f}" if s in vals else "–" for s in specs]
        print(f"| {name} | {pooled[metric]:.3f} | " + " | ".join(cells) + f" | {minutes} |")


if __name__ == "__main__":
    main()
