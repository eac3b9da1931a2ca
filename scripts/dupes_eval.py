#!/usr/bin/env python3
"""Precision and recall of `stabilize dupes` clusters against the planted truth (scripts/plant_dupes.sh).

A pair of files is predicted a duplicate when they share a cluster and truly one when their names
agree before "__"; also, per kind of copy (the name after "__"), the share found in one cluster with
its original. usage: scripts/dupes_eval.py DIR [--stabilize BIN] -- DUPES_ARGS…
"""
import argparse
import collections
import itertools
import json
import pathlib
import subprocess
import time


def group(path):
    return pathlib.Path(path).stem.split("__")[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--stabilize", default="target/debug/stabilize")
    ap.add_argument("rest", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    args = [x for x in a.rest if x != "--"]
    t = time.time()
    out = subprocess.run([a.stabilize, "dupes", a.dir, "--json", *args], check=True, capture_output=True, text=True)
    wall = time.time() - t
    r = json.loads(out.stdout)
    files = [p for p in pathlib.Path(a.dir).iterdir()]
    sizes = collections.Counter(group(p) for p in files)
    true_pairs = sum(k * (k - 1) // 2 for k in sizes.values())
    predicted = correct = 0
    exact = 0
    for c in r["clusters"]:
        for x, y in itertools.combinations(c["files"], 2):
            predicted += 1
            correct += group(x) == group(y)
        gs = {group(f) for f in c["files"]}
        exact += len(gs) == 1 and len(c["files"]) == sizes[next(iter(gs))]
    # Per kind of copy: the share of copies that share a cluster with their original.
    cluster_of = {f: k for k, c in enumerate(r["clusters"]) for f in c["files"]}
    found, total = collections.Counter(), collections.Counter()
    for f in files:
        if "__" not in f.stem:
            continue
        kind = f.stem.split("__", 1)[1]
        orig = str(f.with_name(group(f) + f.suffix))
        total[kind] += 1
        k = cluster_of.get(str(f))
        found[kind] += k is not None and cluster_of.get(orig) == k
    per_copy = {kind: round(found[kind] / total[kind], 3) for kind in sorted(total)}
    p = correct / predicted if predicted else 1.0
    rec = correct / true_pairs if true_pairs else 1.0
    print(json.dumps({"method": r["method"], "threshold": r["threshold"], "files": r["files_seen"],
                      "clusters": len(r["clusters"]), "exact_clusters": exact, "groups": len(sizes),
                      "pair_precision": round(p, 4), "pair_recall": round(rec, 4), "seconds": round(wall, 1),
                      "copies_found_with_their_original": per_copy}))


if __name__ == "__main__":
    main()
