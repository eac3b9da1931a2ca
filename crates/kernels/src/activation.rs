//! ReLU6 (MobileNetV2's activation) and its gradient, in place, over contiguous f32 slices.

use rayon::prelude::*;

/// Elements per parallel task: large enough that the split costs nothing next to the loop.
const CHUNK: usize = 1 << 15;

/// `x = min(max(x, 0), 6)` element-wise, in place; a NaN stays NaN (as `f32::clamp`).
pub fn relu6_in_place(x: &mut [f32]) {
    x.par_chunks_mut(CHUNK).for_each(clamp06);
}

crate::multiversion! {
fn clamp06(x: &mut [f32]) {
    for v in x {
        *v = v.clamp(0.0, 6.0);
    }
}
}

/// The ReLU6 gradient from its output, in place: `grad` kept where `0 < output < 6` (or the output
/// is NaN), zero where the output sits at either bound (PyTorch's `hardtanh_backward` convention).
///
/// # Panics
/// When the slices differ in length.
pub fn relu6_grad_in_place(output: &[f32], grad: &mut [f32]) {
    assert_eq!(output.len(), grad.len(), "output and gradient lengths");
    grad.par_chunks_mut(CHUNK).zip(output.par_chunks(CHUNK)).for_each(|(g, o)| mask06(o, g));
}

crate::multiversion! {
fn mask06(output: &[f32], grad: &mut [f32]) {
    for (g, o) in grad.iter_mut().zip(output) {
        if *o <= 0.0 || *o >= 6.0 {
            *g = 0.0;
        }
    }
}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_and_masks() {
        let mut x = [-1.0, 0.0, 0.5, 6.0, 7.5, f32::NAN];
        relu6_in_place(&mut x);
        assert_eq!(&x[..5], &[0.0, 0.0, 0.5, 6.0, 6.0]);
        assert!(x[5].is_nan());
        let mut g = [1.0; 6];
        relu6_grad_in_place(&x, &mut g);
        assert_eq!(g, [0.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
        // Longer than one task.
        let mut big: Vec<f32> = (0..3 * CHUNK + 5).map(|i| (i % 17) as f32 - 5.0).collect();
        relu6_in_place(&mut big);
        assert!(big.iter().enumerate().all(|(i, v)| *v == ((i % 17) as f32 - 5.0).clamp(0.0, 6.0)));
    }
}
