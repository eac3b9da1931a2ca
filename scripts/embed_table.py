#!/usr/bin/env python3
"""Markdown tables of two embedding evaluations (baseline, stabilized eval.json) with their baselines.

usage: scripts/embed_table.py BASELINE_RUN STABILIZED_RUN
"""
import json
import statistics
import sys


def load(d):
    with open(f"{d}/eval.json") as f:
        return json.load(f)



def main():
    base, stab = load(sys.argv[1]), load(sys.argv[2])
    methods = [("fine-tuned, α = 0 (baseline)", base["distortions"] + [base["pooled"]]),
               ("fine-tuned, stabilized", stab["distortions"] + [stab["pooled"]])]
    for b in stab["baselines"]:
        name = "pretrained MobileNetV2 (1280-d)" if b["name"] == "pretrained" else b["name"]
        methods.append((name, b["distortions"] + [b["pooled"]]))
    specs = [d["spec"] for d in stab["distortions"]] + ["pooled"]
    for metric, title in [("ap", "AP"), ("precision_at_recall_0.9", "precision at recall 0.9"),
                          ("ranking_accuracy", "ranking accuracy (distorted query)")]:
        print(f"\n{title}:\n")
        cols = specs if metric != "ranking_accuracy" else specs[:-1]
        print("| method | " + " | ".join(cols) + " |")
        print("|---|" + "---:|" * len(cols))
        for name, rs in methods:
            vals = {r["spec"]: r[metric] for r in rs}
            print(f"| {name} | " + " | ".join(f"{vals[c]:.3f}" for c in cols) + " |")
    print("\nnear-duplicate distance, median (p90), relative to the median distinct-pair distance:\n")
    print("| method | " + " | ".join(specs[:-1]) + " |")
    print("|---|" + "---:|" * (len(specs) - 1))
    for name, rs in methods[:3]:
        cells = []
        for r in rs[:-1]:
            dist_med = statistics.median(r["distinct_distances"])
            nd = sorted(r["near_dup_distances"])
            cells.append(f"{statistics.median(nd) / dist_med:.3f} ({nd[int(0.9 * (len(nd) - 1))] / dist_med:.3f})")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
