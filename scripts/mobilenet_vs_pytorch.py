#!/usr/bin/env python3
"""Check stabilize's MobileNetV2 against PyTorch on the same input.

Runs `stabilize imagenet --dump DIR` on foolbox's 20 labelled ImageNet photos, feeds the exact
input it used (input.npy, [N,3,224,224] on [0,1]) to torchvision's mobilenet_v2 with the same
.pth weights (ImageNet normalisation applied here, as the Rust model applies it itself), and
compares the logits. Also reports top-1 against the labels in the file names
(foolbox__imagenet_NN_LABEL.jpg).

Needs torch and torchvision from PyPI (scripts/requirements-torch.txt). Exit status 1 when the
largest absolute logit difference exceeds --tolerance (default 1e-3) or top-1 < 18/20.
"""
import argparse
import json
import pathlib
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchvision


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stabilize", default="target/debug/stabilize")
    ap.add_argument("--data", default="data")
    ap.add_argument("--tolerance", type=float, default=1e-3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    data = pathlib.Path(a.data)
    photos = sorted((data / "photos").glob("foolbox__imagenet_*.jpg"))
    if len(photos) != 20:
        sys.exit(f"expected 20 foolbox ImageNet photos in {data/'photos'}, found {len(photos)}")
    weights = data / "mobilenet-v2" / "mobilenet_v2-b0353104.pth"
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([a.stabilize, "imagenet", "--data-dir", str(data), "--dump", tmp, "--json", *map(str, photos)],
                       check=True, stdout=subprocess.DEVNULL)
        x = np.load(pathlib.Path(tmp) / "input.npy")
        rust_logits = np.load(pathlib.Path(tmp) / "logits.npy")
        paths = json.loads((pathlib.Path(tmp) / "paths.json").read_text())
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch_logits = model((torch.from_numpy(x) - mean) / std).numpy()
    diff = float(np.abs(torch_logits - rust_logits).max())
    labels = [int(re.search(r"_(\d+)\.jpg$", p).group(1)) for p in paths]
    top1_rust = int((rust_logits.argmax(1) == np.array(labels)).sum())
    top1_torch = int((torch_logits.argmax(1) == np.array(labels)).sum())
    same_top1 = int((rust_logits.argmax(1) == torch_logits.argmax(1)).sum())
    result = {
        "images": len(paths), "max_abs_logit_diff": diff, "tolerance": a.tolerance,
        "top1_stabilize": top1_rust, "top1_pytorch": top1_torch, "same_top1": same_top1,
        "torch": torch.__version__, "torchvision": torchvision.__version__,
    }
    if a.json:
        print(json.dumps(result))
    else:
        print(f"{len(paths)} images: max |logit difference| {diff:.2e} (tolerance {a.tolerance:g}); "
              f"top-1 stabilize {top1_rust}/20, PyTorch {top1_torch}/20, same prediction {same_top1}/20 "
              f"(torch {torch.__version__})")
    ok = diff <= a.tolerance and top1_rust >= 18
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
