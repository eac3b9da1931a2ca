//! Does a 1×1 convolution gain from one matrix product over the whole batch?
//!
//! For each 1×1 convolution shape of MobileNetV2 (at 128 px with the embedding step's 48 images,
//! and at 224 px with 16), times [`stabilize_kernels::conv::forward`] (one product per image,
//! images spread over the threads) against packing the batch into `[c_in, N·H·W]`, one product
//! with all threads, and unpacking to NCHW. Rounds alternate the two; the best of 3 is kept.
//!
//! `cargo run --release -p stabilize-kernels --example pointwise_layout`

use gemm::{Parallelism, gemm};
use rayon::prelude::*;
use stabilize_kernels::conv::{ConvGeometry, forward};
use std::time::Instant;

/// `dst [m, n] = lhs [m, k] · rhs [k, n]`, all row-major and contiguous.
fn product(m: usize, n: usize, k: usize, dst: &mut [f32], lhs: &[f32], rhs: &[f32]) {
    assert!(dst.len() >= m * n && lhs.len() >= m * k && rhs.len() >= k * n);
    // SAFETY: the lengths are checked above; `dst` does not alias the operands.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::Rayon(rayon::current_num_threads()),
        )
    }
}

/// The packed alternative: `x` `[n, c_in, p]` → `[c_in, n·p]`, one product, back to `[n, c_out, p]`.
fn packed(batch: usize, c_in: usize, c_out: usize, p: usize, x: &[f32], w: &[f32], out: &mut [f32]) {
    let mut xp = vec![0f32; c_in * batch * p];
    xp.par_chunks_mut(batch * p).enumerate().for_each(|(c, row)| {
        for n in 0..batch {
            row[n * p..(n + 1) * p].copy_from_slice(&x[(n * c_in + c) * p..][..p]);
        }
    });
    let mut op = vec![0f32; c_out * batch * p];
    product(c_out, batch * p, c_in, &mut op, w, &xp);
    out.par_chunks_mut(c_out * p).enumerate().for_each(|(n, o)| {
        for c in 0..c_out {
            o[c * p..(c + 1) * p].copy_from_slice(&op[c * batch * p + n * p..][..p]);
        }
    });
}

fn main() {
    // (batch, c_in, c_out, side): MobileNetV2's expansions and projections.
    let mut shapes = Vec::new();
    for (batch, scale) in [(48, 128), (16, 224)] {
        for (c_in, c_out, side) in [
            (16, 96, scale / 2),
            (144, 24, scale / 4),
            (192, 32, scale / 8),
            (384, 64, scale / 16),
            (576, 96, scale / 16),
            (960, 160, scale / 32),
            (320, 1280, scale / 32),
        ] {
            shapes.push((batch, c_in, c_out, side));
        }
    }
    println!("{} threads; GFLOP/s, best of 3 alternating rounds", rayon::current_num_threads());
    for (batch, c_in, c_out, side) in shapes {
        let p = side * side;
        let g = ConvGeometry {
            batch,
            c_in,
            h: side,
            w: side,
            c_out,
            kh: 1,
            kw: 1,
            stride: [1, 1],
            pad_begin: [0, 0],
            pad_end: [0, 0],
            dilation: [1, 1],
            groups: 1,
        };
        let x: Vec<f32> = (0..batch * c_in * p).map(|i| (i % 97) as f32 * 0.01).collect();
        let w: Vec<f32> = (0..c_out * c_in).map(|i| (i % 89) as f32 * 0.01).collect();
        let zero = vec![0f32; c_out];
        let (mut a, mut b) = (vec![0f32; batch * c_out * p], vec![0f32; batch * c_out * p]);
        let flops = 2.0 * (batch * c_in * c_out * p) as f64;
        let reps = ((2e9 / flops) as usize).clamp(3, 200);
        let mut best = [f64::MAX; 2];
        for _ in 0..3 {
            let t = Instant::now();
            for _ in 0..reps {
                forward(&g, &x, &w, &zero, &mut a);
            }
            best[0] = best[0].min(t.elapsed().as_secs_f64() / reps as f64);
            let t = Instant::now();
            for _ in 0..reps {
                packed(batch, c_in, c_out, p, &x, &w, &mut b);
            }
            best[1] = best[1].min(t.elapsed().as_secs_f64() / reps as f64);
        }
        let diff = a.iter().zip(&b).map(|(u, v)| (u - v).abs() / u.abs().max(1.0)).fold(0f32, f32::max);
        println!(
            "batch {batch:3}  {c_in:4} → {c_out:4}  {side:3}×{side:<3}  per image {:6.1}  packed {:6.1}  packed/per image {:.2}  (max rel. diff {diff:.1e})",
            flops / best[0] / 1e9,
            flops / best[1] / 1e9,
            best[0] / best[1]
        );
    }
}
