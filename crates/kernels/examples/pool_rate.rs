//! Times the 2×2 max pooling and its backward at the classifier's shapes (batch 256:
//! `[256, 16, 28, 28]` and `[256, 32, 14, 14]`), best of 20 calls each.
//!
//! `cargo run --release -p stabilize-kernels --example pool_rate`

use stabilize_kernels::pool::{max_pool2x2, max_unpool2x2};
use std::time::Instant;

fn main() {
    let n = 256;
    for (c, side) in [(16, 28), (32, 14)] {
        let x: Vec<f32> = (0..n * c * side * side).map(|i| ((i * 7919) % 1000) as f32 * 0.001).collect();
        let outputs = n * c * (side / 2) * (side / 2);
        let (mut out, mut pos, mut dx) = (vec![0f32; outputs], vec![0u8; outputs], vec![0f32; x.len()]);
        let mut best = [f64::MAX; 2];
        for _ in 0..20 {
            let t = Instant::now();
            max_pool2x2(&x, [n, c, side, side], &mut out, &mut pos);
            best[0] = best[0].min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            max_unpool2x2(&out, &pos, [n, c, side, side], &mut dx);
            best[1] = best[1].min(t.elapsed().as_secs_f64());
        }
        println!("[{n}, {c}, {side}, {side}]: forward {:.3} ms, backward {:.3} ms", best[0] * 1e3, best[1] * 1e3);
    }
}
