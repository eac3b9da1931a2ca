//! 2×2, stride-2 max pooling on NCHW slices, and its backward (the classifier CNN's pooling).
//!
//! Semantics of burn-flex's generic pooling, which the burn layer's tests hold these to bit for bit:
//! the first maximum in window order (top-left, top-right, bottom-left, bottom-right) wins ties,
//! and a NaN always wins (the last one, when a window holds several).

use rayon::prelude::*;

/// Max of each 2×2 window of `x` `[n, c, h, w]` into `out` `[n, c, h/2, w/2]` (an odd last row or
/// column is left out), and each winner's position in its window (0..4) into `positions`.
///
/// # Panics
/// When a slice's length does not match the shape.
pub fn max_pool2x2(x: &[f32], [n, c, h, w]: [usize; 4], out: &mut [f32], positions: &mut [u8]) {
    let (oh, ow) = (h / 2, w / 2);
    assert_eq!(x.len(), n * c * h * w, "input length");
    assert_eq!(out.len(), n * c * oh * ow, "output length");
    assert_eq!(positions.len(), out.len(), "positions length");
    if out.is_empty() {
        return;
    }
    out.par_chunks_mut(oh * ow).zip(positions.par_chunks_mut(oh * ow)).zip(x.par_chunks(h * w)).for_each(
        |((out, pos), input)| {
            for r in 0..oh {
                let top = &input[2 * r * w..2 * r * w + w];
                let bottom = &input[(2 * r + 1) * w..(2 * r + 1) * w + w];
                let out = &mut out[r * ow..(r + 1) * ow];
                let pos = &mut pos[r * ow..(r + 1) * ow];
                for q in 0..ow {
                    let window = [top[2 * q], top[2 * q + 1], bottom[2 * q], bottom[2 * q + 1]];
                    let (mut best, mut at) = (window[0], 0u8);
                    for (k, &v) in window.iter().enumerate().skip(1) {
                        if v > best || v.is_nan() {
                            best = v;
                            at = k as u8;
                        }
                    }
                    out[q] = best;
                    pos[q] = at;
                }
            }
        },
    );
}

/// The input gradient `dx` `[n, c, h, w]` of [`max_pool2x2`]: each output's gradient `grad`
/// `[n, c, h/2, w/2]` at its window's winner, zero elsewhere.
///
/// # Panics
/// When a slice's length does not match the shape.
pub fn max_unpool2x2(grad: &[f32], positions: &[u8], [n, c, h, w]: [usize; 4], dx: &mut [f32]) {
    let (oh, ow) = (h / 2, w / 2);
    assert_eq!(grad.len(), n * c * oh * ow, "gradient length");
    assert_eq!(positions.len(), grad.len(), "positions length");
    assert_eq!(dx.len(), n * c * h * w, "input gradient length");
    dx.fill(0.0);
    if grad.is_empty() {
        return;
    }
    dx.par_chunks_mut(h * w).zip(grad.par_chunks(oh * ow)).zip(positions.par_chunks(oh * ow)).for_each(
        |((dx, g), p)| {
            for r in 0..oh {
                for q in 0..ow {
                    let k = p[r * ow + q] as usize;
                    dx[(2 * r + k / 2) * w + 2 * q + k % 2] = g[r * ow + q];
                }
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_windows() {
        // One 2×4 plane, two windows: [1 5 | 2 2; 3 4 | 2 0] → max 5 at 1, tie 2 first at 0.
        let x = [1.0, 5.0, 2.0, 2.0, 3.0, 4.0, 2.0, 0.0];
        let (mut out, mut pos) = ([0f32; 2], [9u8; 2]);
        max_pool2x2(&x, [1, 1, 2, 4], &mut out, &mut pos);
        assert_eq!((out, pos), ([5.0, 2.0], [1, 0]));
        let mut dx = [f32::NAN; 8];
        max_unpool2x2(&[10.0, 20.0], &pos, [1, 1, 2, 4], &mut dx);
        assert_eq!(dx, [0.0, 10.0, 20.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        // A 3×3 plane: the odd last row and column are left out.
        let x: Vec<f32> = (0..9).map(|v| v as f32).collect();
        let (mut out, mut pos) = ([0f32; 1], [0u8; 1]);
        max_pool2x2(&x, [1, 1, 3, 3], &mut out, &mut pos);
        assert_eq!((out, pos), ([4.0], [3]));
        // NaNs win, the last of two.
        let x = [1.0, f32::NAN, f32::NAN, 7.0];
        max_pool2x2(&x, [1, 1, 2, 2], &mut out, &mut pos);
        assert!(out[0].is_nan());
        assert_eq!(pos[0], 2);
    }
}
