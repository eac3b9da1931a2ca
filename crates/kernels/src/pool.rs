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
                pool_row(top, bottom, &mut out[r * ow..(r + 1) * ow], &mut pos[r * ow..(r + 1) * ow]);
            }
        },
    );
}

/// Output lanes per step of [`pool_row`] and [`unpool_row`]: one AVX2 register of f32.
const LANES: usize = 8;

/// The winners of [`LANES`] windows given as their four corners (`corners[k][i]`: corner `k` —
/// top-left, top-right, bottom-left, bottom-right — of window `i`) and their positions (0..4):
/// lane-wise selects, so that the compiler keeps them in vector registers and nothing branches on
/// the data. The first maximum wins ties, the last NaN wins.
#[inline(always)]
fn lanes_max(corners: &[[f32; LANES]; 4]) -> ([f32; LANES], [u32; LANES]) {
    let mut best = corners[0];
    let mut at = [0u32; LANES];
    for (k, corner) in corners.iter().enumerate().skip(1) {
        for i in 0..LANES {
            let v = corner[i];
            #[allow(clippy::eq_op)]
            let take = v > best[i] || v != v;
            best[i] = if take { v } else { best[i] };
            at[i] = if take { k as u32 } else { at[i] };
        }
    }
    (best, at)
}

multiversion! {
/// One output row of [`max_pool2x2`] from its two input rows (`top`, `bottom`, each at least
/// `2 · out.len()` long), [`LANES`] windows at a time; the last group is padded with zeros that
/// are computed and dropped (the classifier's rows are 14 and 7 windows long).
fn pool_row(top: &[f32], bottom: &[f32], out: &mut [f32], pos: &mut [u8]) {
    let ow = out.len();
    let mut q0 = 0;
    while q0 < ow {
        let n = (ow - q0).min(LANES);
        let t = &top[2 * q0..2 * (q0 + n)];
        let b = &bottom[2 * q0..2 * (q0 + n)];
        let mut corners = [[0f32; LANES]; 4];
        for i in 0..n {
            corners[0][i] = t[2 * i];
            corners[1][i] = t[2 * i + 1];
            corners[2][i] = b[2 * i];
            corners[3][i] = b[2 * i + 1];
        }
        let (best, at) = lanes_max(&corners);
        out[q0..q0 + n].copy_from_slice(&best[..n]);
        for (p, a) in pos[q0..q0 + n].iter_mut().zip(at) {
            *p = a as u8;
        }
        q0 += n;
    }
}
}

multiversion! {
/// One output row of [`max_unpool2x2`]: writes every element of the two input-gradient rows it
/// covers (`top`, `bottom`, each at least `2 · grad.len()` long) once, the gradient at each
/// window's winner and zero elsewhere; [`LANES`] windows at a time, as [`pool_row`].
fn unpool_row(grad: &[f32], positions: &[u8], top: &mut [f32], bottom: &mut [f32]) {
    let ow = grad.len();
    let mut q0 = 0;
    while q0 < ow {
        let n = (ow - q0).min(LANES);
        let (mut g, mut k) = ([0f32; LANES], [4u32; LANES]);
        g[..n].copy_from_slice(&grad[q0..q0 + n]);
        for (k, &p) in k.iter_mut().zip(&positions[q0..q0 + n]) {
            *k = p as u32;
        }
        // corners[j][i]: what corner j of window i receives.
        let mut corners = [[0f32; LANES]; 4];
        for (j, corner) in corners.iter_mut().enumerate() {
            for i in 0..LANES {
                corner[i] = if k[i] == j as u32 { g[i] } else { 0.0 };
            }
        }
        let t = &mut top[2 * q0..2 * (q0 + n)];
        let b = &mut bottom[2 * q0..2 * (q0 + n)];
        for i in 0..n {
            t[2 * i] = corners[0][i];
            t[2 * i + 1] = corners[1][i];
            b[2 * i] = corners[2][i];
            b[2 * i + 1] = corners[3][i];
        }
        q0 += n;
    }
}
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
    if grad.is_empty() {
        dx.fill(0.0);
        return;
    }
    dx.par_chunks_mut(h * w).zip(grad.par_chunks(oh * ow)).zip(positions.par_chunks(oh * ow)).for_each(
        |((dx, g), p)| {
            for r in 0..oh {
                let (top, bottom) = dx[2 * r * w..(2 * r + 2) * w].split_at_mut(w);
                unpool_row(&g[r * ow..(r + 1) * ow], &p[r * ow..(r + 1) * ow], top, bottom);
                // An odd last column is in no window.
                if w % 2 == 1 {
                    top[w - 1] = 0.0;
                    bottom[w - 1] = 0.0;
                }
            }
            // Nor is an odd last row.
            dx[2 * oh * w..].fill(0.0);
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition: the winner of one window `[top-left, top-right, bottom-left,
    /// bottom-right]` and its position.
    fn window_max(window: [f32; 4]) -> (f32, u8) {
        let (mut best, mut at) = (window[0], 0u8);
        for (k, &v) in window.iter().enumerate().skip(1) {
            if v > best || v.is_nan() {
                best = v;
                at = k as u8;
            }
        }
        (best, at)
    }

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

    /// Both copies (AVX2 and plain) of the 8-lane rows against the window-by-window definition, on
    /// planes wider than a lane group (odd sizes, ties from a coarse grid, NaNs, signed zeros).
    #[test]
    fn lane_rows_match_the_definition() {
        let (n, c) = (2, 3);
        for (h, w) in [(2, 16), (5, 19), (6, 34), (7, 41), (4, 2)] {
            let mut state = 12345u32 + (h * w) as u32;
            let x: Vec<f32> = (0..n * c * h * w)
                .map(|_| {
                    state = state.wrapping_mul(1664525).wrapping_add(1013904223);
                    match state >> 28 {
                        0 => f32::NAN,
                        1 => -0.0,
                        2 => 0.0,
                        v => (v % 5) as f32 - 2.0,
                    }
                })
                .collect();
            let (oh, ow) = (h / 2, w / 2);
            let grad: Vec<f32> = (0..n * c * oh * ow).map(|i| i as f32 + 1.0).collect();
            // The definition: every window on its own, then a zeroed input gradient with each
            // output's gradient at its winner.
            let (mut want, mut want_pos) = (Vec::new(), Vec::new());
            let mut want_dx = vec![0f32; x.len()];
            for plane in 0..n * c {
                let xp = &x[plane * h * w..];
                for r in 0..oh {
                    for q in 0..ow {
                        let at = |dy: usize, dx: usize| xp[(2 * r + dy) * w + 2 * q + dx];
                        let (v, k) = window_max([at(0, 0), at(0, 1), at(1, 0), at(1, 1)]);
                        let o = want.len();
                        want.push(v);
                        want_pos.push(k);
                        let k = k as usize;
                        want_dx[plane * h * w + (2 * r + k / 2) * w + 2 * q + k % 2] = grad[o];
                    }
                }
            }
            for plain in [false, true] {
                let _guard = plain.then(crate::PlainPath::force);
                let (mut out, mut pos) = (vec![0f32; want.len()], vec![9u8; want.len()]);
                max_pool2x2(&x, [n, c, h, w], &mut out, &mut pos);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&out), bits(&want), "{h}×{w}, plain {plain}");
                assert_eq!(pos, want_pos, "{h}×{w}, plain {plain}");
                let mut dx = vec![f32::NAN; x.len()];
                max_unpool2x2(&grad, &pos, [n, c, h, w], &mut dx);
                assert_eq!(bits(&dx), bits(&want_dx), "{h}×{w}, plain {plain}");
            }
        }
    }
}
