#!/usr/bin/env python3
"""One markdown row per evaluated embedding run: the model alone, fused with pHash, and with cut-out
regions fused with pHash (`eval embed --regions`), on the held-out photos; then its training-photo
fit (`eval fusion --regions`: mean recall at precision 0.99 of the fitted rule, without and with
regions) and its training minutes. A run without an evaluation shows its fit only.

usage: scripts/fusion_table.py NAME=RUN ...   (RUN: a run folder or a results folder holding
eval.json or eval-summary.json, fusion.json and metrics.json)
"""
import json
import os
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print("| run | model AP | model R@P0.99 | +pHash AP | +pHash R@P0.99 | +pHash ≥ 0.95 | regions+pHash AP "
          "| regions+pHash R@P0.99 | regions+pHash ≥ 0.95 | jpeg:10 / trim:15 / trim:25 R@P0.99, regions+pHash "
          "| AP ≥ pretrained, regions+pHash | fit: +pHash / regions+pHash mean R@P0.99 | train min |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for arg in sys.argv[1:]:
        name, run = arg.rsplit("=", 1)
        minutes = load(f"{run}/metrics.json")["seconds"] / 60
        fit = load(f"{run}/fusion.json")
        regions_fit = (fit.get("regions") or {}).get("grid")
        fits = "{:.4f} / {}".format(
            fit["grid"][0]["mean_recall_at_precision_0.99"],
            f"{regions_fit[0]['fused']['mean_recall_at_precision_0.99']:.4f}" if regions_fit else "–",
        )
        path = next((f"{run}/{f}" for f in ("eval.json", "eval-summary.json") if os.path.exists(f"{run}/{f}")), None)
        if path is None:
            print(f"| {name} |" + " – |" * 10 + f" {fits} | {minutes:.1f} |")
            continue
        ev = load(path)
        methods = {b["name"]: b for b in ev["baselines"]}
        if not {"model+phash", "model+regions+phash"} <= methods.keys():
            sys.exit(f"{path} has no model+phash and model+regions+phash rows: make it with `eval embed --regions`")
        pretrained = {d["spec"]: d["ap"] for d in methods["pretrained"]["distortions"]}
        fused, regions = methods["model+phash"], methods["model+regions+phash"]

        def recall(o):
            return o["pooled"]["recall_at_precision_0.99"]

        def passing(o):
            return sum(d["recall_at_precision_0.99"] >= 0.95 for d in o["distortions"])

        by = {d["spec"]: d["recall_at_precision_0.99"] for d in regions["distortions"]}
        at_least = sum(d["ap"] >= pretrained[d["spec"]] for d in regions["distortions"])
        n = len(regions["distortions"])
        print(
            f"| {name} | {ev['pooled']['ap']:.3f} | {recall(ev):.3f} | {fused['pooled']['ap']:.3f} | {recall(fused):.3f} "
            f"| {passing(fused)}/{n} | {regions['pooled']['ap']:.3f} | {recall(regions):.3f} | {passing(regions)}/{n} "
            f"| {by.get('jpeg:10', float('nan')):.3f} / {by.get('trim:15', float('nan')):.3f} / {by.get('trim:25', float('nan')):.3f} "
            f"| {at_least}/{n} | {fits} | {minutes:.1f} |"
        )


if __name__ == "__main__":
    main()
