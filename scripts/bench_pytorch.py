#!/usr/bin/env python3
"""PyTorch reference for `stabilize bench`: the same model, loss, optimiser and batch, in PyTorch.

The model is stabilize's Fashion-MNIST CNN (crates/burn/src/model.rs):
    standardise → conv3×3(1→w) → maxpool 2 → ReLU → conv3×3(w→2w) → maxpool 2 → ReLU
    → linear(2w·7·7→128) → ReLU → linear(128→10)
The stabilized step is stabilize's (crates/burn/src/bench.rs): the clean batch x and x' = x + N(0, 0.04²)
go through the same weights as two forward passes; loss = CE(clean) + 0.01·(−Σ P(·|x) log P(·|x')), AdamW lr 1e-3.
Every image is counted once (a stabilized step over N images counts N).

    python3 scripts/bench_pytorch.py --batch-size 128 --steps 20 [--epoch-images 10000 --data data]

Prints one JSON object: train_img_per_s, train_plain_img_per_s, infer_img_per_s and, with
--epoch-images, epoch_seconds (one stabilized epoch over that many Fashion-MNIST training images,
data pipeline included, then top-1 on the 10k test images).

With --serve it instead answers requests on stdin, one per line, so that `stabilize bench` can
alternate its own measurements with PyTorch's round by round (this machine's speed drifts):
    train_plain STEPS [LAYOUT] | train STEPS [LAYOUT] | infer STEPS [LAYOUT]  ->  {"img_per_s": ...}
    mnv2_infer STEPS [LAYOUT] | mnv2_embed STEPS [LAYOUT]                     ->  {"img_per_s": ...}
    epoch IMAGES                                    ->  {"epoch_seconds": ..., "epoch_test_top1": ...}
LAYOUT is nchw (the default, PyTorch's eager default) or cl (`torch.channels_last` for the model and
its inputs, the standard CPU practice): stabilize compares with the faster of the two.

MobileNetV2 (torchvision's `mobilenet_v2`, random weights, batch norm in inference mode as
stabilize runs it): `mnv2_infer` is ImageNet inference at 224 px (--mnv2-batch images a batch,
logits read back); `mnv2_embed` is stabilize's embedding fine-tuning step at 128 px
(crates/burn/src/bench.rs `embed_step_throughput`): MobileNetV2 → mean pool → linear 1280→128 →
L2-normalise, the stem and the first 12 blocks frozen, --embed-triplets triplets = 3B clean crops
and their 3B noisy copies (σ 0.04) through the same weights, loss = triplet hinge (margin 1) +
0.1·Σ‖f(x) − f(x')‖, AdamW lr 1e-4; every clean crop counted once.
"""
import argparse
import gzip
import json
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

# The stabilized step's loss weight and noise level, as in crates/burn/src/bench.rs.
ALPHA = 0.01
SIGMA = 0.04

MEAN, STD = 0.2860, 0.3530

# Where models and batches live (`--device`, e.g. cuda:0 for `stabilize bench --device cuda`).
DEVICE = torch.device("cpu")


class SmallCnn(nn.Module):
    def __init__(self, width=16, features=128, classes=10, channels=1, side=28):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.fc1 = nn.Linear(2 * width * (side // 4) ** 2, features)
        self.fc2 = nn.Linear(features, classes)

    def forward(self, x):
        x = (x - MEAN) / STD
        x = F.relu(F.max_pool2d(self.conv1(x), 2))  # stabilize's order: pool, then ReLU (they commute)
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


def step_loss(model, x, y, stabilized, alpha=ALPHA, sigma=SIGMA, noise=None):
    if not stabilized:
        return F.cross_entropy(model(x), y)
    # As stabilize does: the two copies through the same weights as two forward passes.
    clean = model(x)
    noisy = model(x + (sigma * torch.randn_like(x) if noise is None else noise))
    stab = -(F.softmax(clean, 1) * F.log_softmax(noisy, 1)).sum(1).mean()
    return F.cross_entropy(clean, y) + alpha * stab


def layout(model, x, cl):
    """The model and input on DEVICE, in channels-last memory format when `cl`."""
    model, x = model.to(DEVICE), x.to(DEVICE)
    if cl:
        return model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    return model, x


def train_rate(width, batch, steps, stabilized, cl=False):
    torch.manual_seed(0)
    model, x = layout(SmallCnn(width), torch.rand(batch, 1, 28, 28), cl)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    y = (torch.arange(batch) % 10).to(DEVICE)
    # x' noise drawn before the timed steps, as stabilize's bench does (its training loops draw it
    # on their batch-preparation thread, off the training thread).
    noises = [SIGMA * torch.randn_like(x) for _ in range(steps + 3)] if stabilized else []

    def step():
        loss = step_loss(model, x, y, stabilized, noise=noises.pop() if stabilized else None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()  # stabilize reads the loss back every step too

    for _ in range(3):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - t)


def infer_rate(width, batch, steps, cl=False):
    torch.manual_seed(0)
    model, x = layout(SmallCnn(width).eval(), torch.rand(batch, 1, 28, 28), cl)
    with torch.inference_mode():
        for _ in range(3):
            model(x).cpu().numpy()
        t = time.perf_counter()
        for _ in range(steps):
            model(x).cpu().numpy()
    return batch * steps / (time.perf_counter() - t)


def imagenet_normalize(x):
    mean = torch.tensor([0.485, 0.456, 0.406], device=x.device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def mnv2_infer_rate(batch, steps, cl=False, side=224):
    """ImageNet logits of `batch` random 224 px images a step (normalisation included)."""
    torch.manual_seed(0)
    model, x = layout(torchvision.models.mobilenet_v2().eval(), torch.rand(batch, 3, side, side), cl)
    with torch.inference_mode():
        model(imagenet_normalize(x)).cpu().numpy()  # warm-up
        t = time.perf_counter()
        for _ in range(steps):
            model(imagenet_normalize(x)).cpu().numpy()
    return batch * steps / (time.perf_counter() - t)


class Embedder(nn.Module):
    def __init__(self, dim=128, frozen=12):
        super().__init__()
        self.features = torchvision.models.mobilenet_v2().features
        self.proj = nn.Linear(1280, dim)
        for p in self.features[: 1 + frozen].parameters():  # the stem and the first `frozen` blocks
            p.requires_grad_(False)

    def forward(self, x):
        h = self.features(imagenet_normalize(x)).mean((2, 3))
        return F.normalize(self.proj(h), dim=1)


def mnv2_embed_rate(triplets, steps, cl=False, side=128):
    """stabilize's embedding fine-tuning step (see the module docs); clean crops per second."""
    torch.manual_seed(0)
    n = 3 * triplets
    model, x = layout(Embedder().eval(), torch.rand(n, 3, side, side), cl)  # eval: BN in inference mode
    noisy = [(x + SIGMA * torch.randn_like(x)).contiguous(memory_format=torch.channels_last if cl else torch.contiguous_format)
             for _ in range(steps + 1)]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step():
        clean = model(x)
        other = model(noisy.pop())
        q, p, m = clean[:triplets], clean[triplets : 2 * triplets], clean[2 * triplets :]
        d = lambda a, b: ((a - b).pow(2).sum(1) + 1e-8).sqrt()
        hinge = (1.0 + d(q, p) - d(q, m)).clamp_min(0).mean()
        loss = hinge + 0.1 * d(clean, other).sum() / triplets
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    step()  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return n * steps / (time.perf_counter() - t)


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def epoch_seconds(data, width, batch, images):
    """One stabilized epoch (α 0.01, σ 0.04) over `images` training images from the IDX files,
    decode and batching included, then top-1 on the test set."""
    t = time.perf_counter()
    fm = os.path.join(data, "fashion-mnist")
    xtr = read_idx(os.path.join(fm, "train-images-idx3-ubyte.gz"))[:images]
    ytr = read_idx(os.path.join(fm, "train-labels-idx1-ubyte.gz"))[:images]
    xte = read_idx(os.path.join(fm, "t10k-images-idx3-ubyte.gz"))
    yte = read_idx(os.path.join(fm, "t10k-labels-idx1-ubyte.gz"))
    torch.manual_seed(1)
    model = SmallCnn(width).to(DEVICE)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    order = np.random.default_rng(1).permutation(len(xtr))
    for i in range(0, len(order), batch):
        idx = order[i : i + batch]
        x = torch.from_numpy(xtr[idx].astype(np.float32) / 255.0).unsqueeze(1).to(DEVICE)
        y = torch.from_numpy(ytr[idx].astype(np.int64)).to(DEVICE)
        loss = step_loss(model, x, y, True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if not np.isfinite(loss.item()):
            raise SystemExit("loss is not finite")
    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(xte), 256):
            x = torch.from_numpy(xte[i : i + 256].astype(np.float32) / 255.0).unsqueeze(1).to(DEVICE)
            correct += int((model(x).argmax(1).cpu().numpy() == yte[i : i + 256]).sum())
    return time.perf_counter() - t, correct / len(xte)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--infer-batch", type=int, default=256)
    ap.add_argument("--mnv2-batch", type=int, default=16, help="MobileNetV2 inference batch (224 px)")
    ap.add_argument("--embed-triplets", type=int, default=8, help="triplets of the embedding step (128 px)")
    ap.add_argument("--epoch-images", type=int, default=0, help="also time one epoch over this many images")
    ap.add_argument("--data", default="data", help="stabilize's data folder (for --epoch-images)")
    ap.add_argument("--serve", action="store_true", help="answer requests on stdin (see above)")
    ap.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:N")
    args = ap.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    if args.serve:
        print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(DEVICE)}), flush=True)
        for line in sys.stdin:
            kind, n, *rest = line.split()
            n = int(n)
            if rest and rest[0] not in ("nchw", "cl"):
                print(json.dumps({"error": f"unknown layout {rest[0]}"}), flush=True)
                continue
            cl = bool(rest) and rest[0] == "cl"
            if kind == "train_plain":
                out = {"img_per_s": train_rate(args.width, args.batch_size, n, False, cl)}
            elif kind == "train":
                out = {"img_per_s": train_rate(args.width, args.batch_size, n, True, cl)}
            elif kind == "infer":
                out = {"img_per_s": infer_rate(args.width, args.infer_batch, n, cl)}
            elif kind == "mnv2_infer":
                out = {"img_per_s": mnv2_infer_rate(args.mnv2_batch, n, cl)}
            elif kind == "mnv2_embed":
                out = {"img_per_s": mnv2_embed_rate(args.embed_triplets, n, cl)}
            elif kind == "epoch":
                secs, top1 = epoch_seconds(args.data, args.width, args.batch_size, n)
                out = {"epoch_seconds": secs, "epoch_test_top1": top1}
            else:
                out = {"error": f"unknown request {kind}"}
            print(json.dumps(out), flush=True)
        return 0
    out = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "train_plain_img_per_s": train_rate(args.width, args.batch_size, args.steps, False),
        "train_img_per_s": train_rate(args.width, args.batch_size, args.steps, True),
        "infer_img_per_s": infer_rate(args.width, args.infer_batch, args.steps),
    }
    if args.epoch_images:
        secs, top1 = epoch_seconds(args.data, args.width, args.batch_size, args.epoch_images)
        out["epoch_seconds"] = secs
        out["epoch_test_top1"] = top1
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
