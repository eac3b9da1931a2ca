#!/usr/bin/env python3
"""The README's ImageNet-on-photos table from `eval classify` results of `--dataset photos` runs.

Usage: scripts/imagenet_table.py NAME=RUN_DIR [NAME=RUN_DIR ...]
Each RUN_DIR holds the eval.json of `stabilize eval classify --model RUN_DIR`; all must have been
evaluated on the same crops (the original network's numbers are checked to be identical). Prints a
Markdown table: the original network's flip rate per distortion, then each run's flip rate and its
ratio to the original's; then clean agreement and the labelled photos.
"""
import json
import sys


def main(args):
    if not args or any("=" not in a for a in args):
        sys.exit(__doc__)
    runs = [(a.split("=", 1)[0], json.load(open(a.split("=", 1)[1] + "/eval.json"))) for a in args]
    original = runs[0][1]["models"][0]
    for name, e in runs:
        if e["models"][0] != original or e["images"] != runs[0][1]["images"]:
            sys.exit(f"{name}: evaluated on other crops or settings than {runs[0][0]}")
    head = "| distortion | original flip % | " + " | ".join(f"{n} flip % | ×" for n, _ in runs) + " |"
    print(head)
    print("|---|---:|" + "---:|---:|" * len(runs))
    for k, d in enumerate(original["distortions"]):
        cells = [f"{d['flip_rate'] * 100:.1f}"]
        for _, e in runs:
            f = e["models"][1]["distortions"][k]["flip_rate"]
            cells += [f"{f * 100:.1f}", f"{f / max(d['flip_rate'], 1e-12):.2f}"]
        print(f"| {d['spec']} | " + " | ".join(cells) + " |")
    mean = [f"{original['mean_flip_rate'] * 100:.1f}"]
    for _, e in runs:
        m = e["models"][1]["mean_flip_rate"]
        mean += [f"**{m * 100:.1f}**", f"**{m / original['mean_flip_rate']:.2f}**"]
    print("| mean | " + " | ".join(mean) + " |")
    agree = ["100"] + sum(([f"**{e['models'][1]['clean_agreement'] * 100:.1f}**", ""] for _, e in runs), [])
    print("| clean top-1 agreement with the original % | " + " | ".join(agree) + " |")
    lab = lambda m: f"{round(m['labelled']['top1'] * m['labelled']['images'])}/{m['labelled']['images']}"
    labelled = [lab(original)] + sum(([lab(e["models"][1]), ""] for _, e in runs), [])
    print("| labelled ImageNet photos, top-1 | " + " | ".join(labelled) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
