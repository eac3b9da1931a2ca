#!/usr/bin/env python3
"""Load a `stabilize export` file into PyTorch, and check it reproduces stabilize's outputs.

    stabilize export RUN --out model.safetensors [--reference ref --images PHOTOS...]
    python scripts/load_in_pytorch.py model.safetensors [--check ref] [--tolerance 1e-4] [--json]

`load(path)` returns a torch module that takes images as stabilize's models do, `[N, C, H, W]`
float on the [0,1] scale (it normalises them itself), and the file's metadata:

- `kind = embedding`: torchvision's `mobilenet_v2()` backbone + `head` (nn.Linear(1280, d)); the
  output is `normalize(head(features(x).mean((2, 3))))`, unit L2 norm (the default model: d = 1280,
  128 px input; near-duplicates are close in L2). When the metadata's `descriptor` starts
  with `mirror-averaged` (the default model), stabilize compares `normalize(out(x) + out(x.flip(3)))`,
  the mean of an image's and its mirror image's outputs; `--check` compares the network itself.
- `kind = imagenet-classifier`: torchvision's `mobilenet_v2()`, ImageNet logits (224 px crops).
- `kind = fashion-cnn`: a plain `nn.Sequential`, logits of the 10 Fashion-MNIST classes.

With `--check DIR` (written by `stabilize export --reference DIR`), it runs the module on
DIR/input.npy and compares with DIR/output.npy; exit status 1 when the largest absolute difference
exceeds --tolerance. Needs torch, torchvision and safetensors (scripts/requirements-torch.txt).

The core of it, for your own code (an embedding model):

    import torch, torch.nn.functional as F, torchvision
    from safetensors.torch import load_file
    state = load_file("model.safetensors")
    net = torchvision.models.mobilenet_v2()
    head = torch.nn.Linear(1280, state["head.weight"].shape[0])
    head.load_state_dict({"weight": state.pop("head.weight"), "bias": state.pop("head.bias")})
    net.load_state_dict(state)            # strict: every torchvision key is there
    net.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():                 # x: [N, 3, 128, 128] on [0,1]
        e = F.normalize(head(net.features((x - mean) / std).mean((2, 3))), dim=1)
"""
import argparse
import json
import pathlib
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from safetensors import safe_open
from safetensors.torch import load_file

FORMAT = "stabilize-export-1"


class Normalized(torch.nn.Module):
    """`(x - mean) / std` per channel, then `body`."""

    def __init__(self, body, mean, std):
        super().__init__()
        self.body = body
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return self.body((x - self.mean) / self.std)


class Embedder(torch.nn.Module):
    """MobileNetV2 features, global average pool, linear head, L2 normalisation."""

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x):
        return F.normalize(self.head(self.backbone.features(x).mean((2, 3))), dim=1)


def fashion_cnn(meta):
    c, w, f, k, s = (int(meta[key]) for key in ("in_channels", "width", "features", "num_classes", "input_size"))
    return torch.nn.Sequential(
        torch.nn.Conv2d(c, w, 3, padding=1), torch.nn.MaxPool2d(2), torch.nn.ReLU(),
        torch.nn.Conv2d(w, 2 * w, 3, padding=1), torch.nn.MaxPool2d(2), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(2 * w * (s // 4) ** 2, f), torch.nn.ReLU(), torch.nn.Linear(f, k),
    )


def load(path):
    """The torch module of a `stabilize export` file (eval mode) and the file's metadata."""
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a stabilize export ({FORMAT}); metadata format = {meta.get('format')!r}")
    state = load_file(str(path))
    kind = meta["kind"]
    if kind == "fashion-cnn":
        body = fashion_cnn(meta)
        body.load_state_dict(state)
    elif kind in ("embedding", "imagenet-classifier"):
        body = torchvision.models.mobilenet_v2()
        if kind == "embedding":
            head = torch.nn.Linear(1280, int(meta["dim"]))
            head.load_state_dict({"weight": state.pop("head.weight"), "bias": state.pop("head.bias")})
            body.load_state_dict(state)
            body = Embedder(body, head)
        else:
            body.load_state_dict(state)
    else:
        raise ValueError(f"{path}: unknown kind {kind!r}")
    model = Normalized(body, json.loads(meta["mean"]), json.loads(meta["std"]))
    return model.eval(), meta


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a file written by `stabilize export`")
    ap.add_argument("--check", help="a folder written by `stabilize export --reference`")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    model, meta = load(a.model)
    result = {"model": a.model, "kind": meta["kind"], "input_size": int(meta["input_size"]),
              "parameters": sum(p.numel() for p in model.parameters()), "torch": torch.__version__}
    ok = True
    if a.check:
        d = pathlib.Path(a.check)
        x = torch.from_numpy(np.load(d / "input.npy"))
        want = np.load(d / "output.npy")
        with torch.no_grad():
            got = model(x).numpy()
        if got.shape != want.shape:
            sys.exit(f"{a.check}: output shape {got.shape} from PyTorch, {want.shape} from stabilize")
        diff = float(np.abs(got - want).max())
        same_argmax = int((got.argmax(1) == want.argmax(1)).sum())
        result.update({"images": int(x.shape[0]), "max_abs_diff": diff, "tolerance": a.tolerance,
                       "largest_output": float(np.abs(want).max()), "same_argmax": same_argmax})
        ok = diff <= a.tolerance
    if a.json:
        print(json.dumps(result))
    else:
        line = f"{a.model}: {result['kind']}, {result['parameters']:,} parameters, {result['input_size']} px input"
        if a.check:
            line += (f"; on {result['images']} reference inputs max |difference| {result['max_abs_diff']:.2e}"
                     f" (tolerance {a.tolerance:g}, outputs up to {result['largest_output']:.3g}),"
                     f" same argmax {same_argmax}/{result['images']}")
        print(line)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
