#!/usr/bin/env python3
"""The libtorch kernels behind stabilize's `layers` module, timed in PyTorch on the classifier's shapes.

burn 0.22's defaults (what burn-tch ran before `crates/burn/src/layers.rs`) against the kernels the
tch backend uses now, on the Fashion-MNIST CNN's shapes at batch 128 (per call, milliseconds,
median of --repeats runs of --calls calls each):

- ReLU backward: burn's `x <= 0` + `masked_fill` against libtorch's `threshold_backward`;
- conv2d gradients (weight, bias and, for the second convolution, the input): burn's convolution
  over batch/channel-swapped tensors + transposed-copy sum + `conv_transpose2d`, against
  libtorch's `convolution_backward` reached through its autograd the way `layers` does it
  (Σ output·grad, so one extra dot product and multiply);
- 2x2 max pooling with indices, forward: the NCHW kernel (what burn-tch and a default PyTorch
  model use) against the channels-last kernel with both layout copies included.

    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=1073741824 \\
        .venv-torch/bin/python scripts/libtorch_kernels.py
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def timed(fn, calls, repeats):
    for _ in range(3):
        fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        runs.append((time.perf_counter() - start) / calls * 1e3)
    return statistics.median(runs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    torch.manual_seed(0)
    n = args.batch
    t = lambda fn: timed(fn, args.calls, args.repeats)
    rows = []

    for shape in [(n, 16, 14, 14), (n, 32, 7, 7), (n, 128)]:
        out = torch.relu(torch.randn(*shape))
        grad = torch.randn(*shape)
        rows.append((f"relu backward {list(shape)}", t(lambda: grad.masked_fill(out <= 0, 0.0)),
                     t(lambda: torch.ops.aten.threshold_backward(grad, out, 0.0))))

    for cin, cout, side, need_x in [(1, 16, 28, False), (16, 32, 14, True)]:
        x = torch.randn(n, cin, side, side)
        w = torch.randn(cout, cin, 3, 3)
        b = torch.randn(cout)
        g = torch.randn(n, cout, side, side)

        def burn_default():
            F.conv2d(x.transpose(0, 1), g.transpose(0, 1), padding=1).transpose(0, 1).contiguous()
            g.transpose(0, 1).reshape(cout, -1).sum(1)
            if need_x:
                F.conv_transpose2d(g, w, padding=1)

        def through_autograd():
            leaves = [x.detach().requires_grad_(), w.detach().requires_grad_(), b.detach().requires_grad_()]
            y = torch.conv2d(leaves[0], leaves[1], leaves[2], padding=1)
            wanted = leaves[1:] + ([leaves[0]] if need_x else [])
            torch.autograd.grad([y.reshape(-1).dot(g.reshape(-1))], wanted)

        def forward_only():
            torch.conv2d(x, w, b, padding=1)

        fwd = t(forward_only)
        rows.append((f"conv {cin}->{cout} at {side}px: forward + gradients", fwd + t(burn_default), t(through_autograd)))

    for shape in [(n, 16, 28, 28), (n, 32, 14, 14)]:
        x = torch.randn(*shape)

        def channels_last():
            xc = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
            out, idx = F.max_pool2d_with_indices(xc, 2)
            return out.contiguous(), idx.contiguous()

        ref, ref_idx = F.max_pool2d_with_indices(x, 2)
        got, got_idx = channels_last()
        assert torch.equal(ref, got) and torch.equal(ref_idx, got_idx), "channels-last pooling differs"
        rows.append((f"max-pool 2x2 with indices {list(shape)}", t(lambda: F.max_pool2d_with_indices(x, 2)), t(channels_last)))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ms per call, median of {args.repeats} x {args.calls} calls")
    print(f"{'':52} {'burn 0.22 default':>18} {'stabilize layers':>17} {'speed-up':>9}")
    for name, before, after in rows:
        print(f"{name:52} {before:18.3f} {after:17.3f} {before / after:8.1f}x")


if __name__ == "__main__":
    main()
