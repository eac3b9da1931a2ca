#!/usr/bin/env python3
"""The README's ImageNet-on-photos table from `eval classify` results of `--dataset photos` runs.

Usage: scripts/imagenet_table.py NAME=RUN_DIR [NAME=RUN_DIR ...]
Each RUN_DIR holds the eval.json of `stabilize eval classify --model RUN_DIR`; all must have been
evaluated on the same crops (the original network's numbers are checked to be identical). Prints a
Markdown table: the original network's flip rate per distortion, then each run's flip rate and its
ratio to the original's; then clean agreement, agreement with the original's consensus (when every
run has it) and the labelled photos; then, for the runs that measured it, the agreement on the
distorted crops and the flip-rate floor it implies. The original's numbers are
compared without the per-distortion agreement, which files written before 2026-12-04 lack, and
may differ by one crop per distortion (flex and tch round differently, and a near-tie can fall
either way); the table shows the first run's.
"""
import json
import sys


def main(args):
    if not args or any("=" not in a for a in args):
        sys.exit(__doc__)
    runs = [(a.split("=", 1)[0], json.load(open(a.split("=", 1)[1] + "/eval.json"))) for a in args]
    original = runs[0][1]["models"][0]

    images = runs[0][1]["images"]

    def same(a, b):
        close = lambda x, y: abs(x - y) <= 1.5 / images
        pairs = list(zip(a["distortions"], b["distortions"]))
        return len(a["distortions"]) == len(b["distortions"]) and all(
            x["spec"] == y["spec"] and close(x["flip_rate"], y["flip_rate"]) and close(x["top5_agreement"], y["top5_agreement"])
            for x, y in pairs
        )

    for name, e in runs:
        if e["images"] != images or not same(e["models"][0], original):
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
    if all("consensus_agreement" in e["models"][1] for _, e in runs):
        cons = [f"{runs[0][1]['models'][0]['consensus_agreement'] * 100:.1f}"]
        cons += sum(([f"{e['models'][1]['consensus_agreement'] * 100:.1f}", ""] for _, e in runs), [])
        print("| clean top-1 agreement with the original's consensus % | " + " | ".join(cons) + " |")
    lab = lambda m: f"{round(m['labelled']['top1'] * m['labelled']['images'])}/{m['labelled']['images']}"
    labelled = [lab(original)] + sum(([lab(e["models"][1]), ""] for _, e in runs), [])
    print("| labelled ImageNet photos, top-1 | " + " | ".join(labelled) + " |")
    agreement_table(original, [(n, e) for n, e in runs if all("agreement" in d for d in e["models"][1]["distortions"])])


def agreement_table(original, runs):
    """Per run measured with it: the agreement with the original on the distorted crops, and the
    least flip rate that agreement allows (`flip ≥ original flip − clean disagreement − disagreement
    on the copies`); then, per distortion, the least ratio to the original's flip rate that any
    network agreeing with it on 97 % of the clean crops and of the copies could reach."""
    if not runs:
        return
    print()
    print("| distortion | " + " | ".join(f"{n} agreement on the copy % | {n} least flip %" for n, _ in runs) + " | least × at 97 % agreement on clean crops and copies |")
    print("|---|" + "---:|---:|" * len(runs) + "---:|")
    for k, d in enumerate(original["distortions"]):
        cells = []
        for _, e in runs:
            m = e["models"][1]
            a = m["distortions"][k]["agreement"]
            floor = max(0.0, d["flip_rate"] - (1 - m["clean_agreement"]) - (1 - a))
            cells += [f"{a * 100:.1f}", f"{floor * 100:.1f}"]
        best = max(0.0, d["flip_rate"] - 0.06) / max(d["flip_rate"], 1e-12)
        print(f"| {d['spec']} | " + " | ".join(cells) + f" | {best:.2f} |")
    clean = sum(([f"**{e['models'][1]['clean_agreement'] * 100:.1f}**", ""] for _, e in runs), [])
    print("| clean crops | " + " | ".join(clean) + " | |")


if __name__ == "__main__":
    main(sys.argv[1:])
