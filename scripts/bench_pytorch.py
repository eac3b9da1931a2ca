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
    train_plain STEPS | train STEPS | infer STEPS   ->  {"img_per_s": ...}
    epoch IMAGES                                    ->  {"epoch_seconds": ..., "epoch_test_top1": ...}
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
from torch import nn

# The stabilized step's loss weight and noise level, as in crates/burn/src/bench.rs.
ALPHA = 0.01
SIGMA = 0.04

MEAN, STD = 0.2860, 0.3530


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


def train_rate(width, batch, steps, stabilized):
    torch.manual_seed(0)
    model = SmallCnn(width)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(batch, 1, 28, 28)
    y = torch.arange(batch) % 10
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


def infer_rate(width, batch, steps):
    torch.manual_seed(0)
    model = SmallCnn(width).eval()
    x = torch.rand(batch, 1, 28, 28)
    with torch.inference_mode():
        for _ in range(3):
            model(x).numpy()
        t = time.perf_counter()
        for _ in range(steps):
            model(x).numpy()
    return batch * steps / (time.perf_counter() - t)


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
    model = SmallCnn(width)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    order = np.random.default_rng(1).permutation(len(xtr))
    for i in range(0, len(order), batch):
        idx = order[i : i + batch]
        x = torch.from_numpy(xtr[idx].astype(np.float32) / 255.0).unsqueeze(1)
        y = torch.from_numpy(ytr[idx].astype(np.int64))
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
            x = torch.from_numpy(xte[i : i + 256].astype(np.float32) / 255.0).unsqueeze(1)
            correct += int((model(x).argmax(1).numpy() == yte[i : i + 256]).sum())
    return time.perf_counter() - t, correct / len(xte)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--infer-batch", type=int, default=256)
    ap.add_argument("--epoch-images", type=int, default=0, help="also time one epoch over this many images")
    ap.add_argument("--data", default="data", help="stabilize's data folder (for --epoch-images)")
    ap.add_argument("--serve", action="store_true", help="answer requests on stdin (see above)")
    args = ap.parse_args()
    if args.serve:
        print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
        for line in sys.stdin:
            kind, n = line.split()
            n = int(n)
            if kind == "train_plain":
                out = {"img_per_s": train_rate(args.width, args.batch_size, n, False)}
            elif kind == "train":
                out = {"img_per_s": train_rate(args.width, args.batch_size, n, True)}
            elif kind == "infer":
                out = {"img_per_s": infer_rate(args.width, args.infer_batch, n)}
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
