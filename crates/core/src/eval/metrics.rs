//! Image-quality and evaluation metrics.

use crate::error::{Error, Result};
use crate::image::Image;

/// Mean squared error between two images of the same shape, in 8-bit levels squared.
pub fn mse(a: &Image, b: &Image) -> Result<f64> {
    if (a.width(), a.height(), a.channels()) != (b.width(), b.height(), b.channels()) {
        return Err(Error::Invalid(format!("mse of different shapes: {a:?} vs {b:?}")));
    }
    let sum: u64 = a
        .data()
        .iter()
        .zip(b.data())
        .map(|(&x, &y)| {
            let d = x as i64 - y as i64;
            (d * d) as u64
        })
        .sum();
    Ok(sum as f64 / a.data().len() as f64)
}

/// Peak signal-to-noise ratio in dB with peak 255: `10·log10(255² / MSE)`; `f64::INFINITY` for
/// identical images.
pub fn psnr(a: &Image, b: &Image) -> Result<f64> {
    let m = mse(a, b)?;
    Ok(if m == 0.0 { f64::INFINITY } else { 10.0 * (255.0f64 * 255.0 / m).log10() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Channels;

    #[test]
    fn psnr_known_answer() {
        let a = Image::new(2, 1, Channels::Gray, vec![0, 0]).unwrap();
        let b = Image::new(2, 1, Channels::Gray, vec![10, 0]).unwrap();
        // MSE = 100/2 = 50; PSNR = 10 log10(65025/50) = 31.1411 dB
        assert!((mse(&a, &b).unwrap() - 50.0).abs() < 1e-12);
        assert!((psnr(&a, &b).unwrap() - 31.141_104).abs() < 1e-5);
        assert!(psnr(&a, &a).unwrap().is_infinite());
        assert!(psnr(&a, &a.to_rgb()).is_err());
    }
}

/// Classification and distance statistics on plain slices (framework-free).
pub mod classify {
    /// Indices of the `k` largest scores of one row, largest first (ties: lower index first).
    pub fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..scores.len()).collect();
        idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        idx.truncate(k);
        idx
    }

    /// Share of rows of `logits` (`n × classes`, row-major) whose true label is among the `k`
    /// highest scores.
    pub fn top_k_accuracy(logits: &[f32], classes: usize, labels: &[u8], k: usize) -> f64 {
        top_k_agreement(logits, classes, &labels.iter().map(|&y| y as usize).collect::<Vec<_>>(), k)
    }

    /// Share of rows of `logits` (`n × classes`, row-major) whose `targets[i]` (a label, or the
    /// clean copy's predicted class) is among the `k` highest scores.
    pub fn top_k_agreement(logits: &[f32], classes: usize, targets: &[usize], k: usize) -> f64 {
        assert_eq!(logits.len(), classes * targets.len(), "logits shape");
        let hits = targets
            .iter()
            .enumerate()
            .filter(|&(i, y)| top_k(&logits[i * classes..(i + 1) * classes], k).contains(y))
            .count();
        hits as f64 / targets.len().max(1) as f64
    }

    /// The arg-max class of each row.
    pub fn predictions(logits: &[f32], classes: usize) -> Vec<usize> {
        logits.chunks_exact(classes).map(|row| top_k(row, 1)[0]).collect()
    }

    /// Share of items whose prediction differs between the clean and the distorted copy.
    pub fn flip_rate(clean: &[usize], distorted: &[usize]) -> f64 {
        assert_eq!(clean.len(), distorted.len());
        let flips = clean.iter().zip(distorted).filter(|(a, b)| a != b).count();
        flips as f64 / clean.len().max(1) as f64
    }

    /// Euclidean distance between corresponding rows of two `n × dim` matrices.
    pub fn row_distances(a: &[f32], b: &[f32], dim: usize) -> Vec<f64> {
        assert_eq!(a.len(), b.len());
        a.chunks_exact(dim)
            .zip(b.chunks_exact(dim))
            .map(|(x, y)| x.iter().zip(y).map(|(p, q)| ((p - q) as f64).powi(2)).sum::<f64>().sqrt())
            .collect()
    }

    /// The `q`-quantile (0 ≤ q ≤ 1) with linear interpolation between order statistics
    /// (numpy's default); NaN for an empty slice.
    pub fn quantile(values: &[f64], q: f64) -> f64 {
        if values.is_empty() {
            return f64::NAN;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
    }

    /// Arithmetic mean; NaN for an empty slice.
    pub fn mean(values: &[f64]) -> f64 {
        values.iter().sum::<f64>() / values.len() as f64
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn top_k_and_accuracy_known_answers() {
            assert_eq!(top_k(&[0.1, 0.7, 0.2, 0.7], 3), vec![1, 3, 2]);
            let logits = [0.1, 0.7, 0.2, /* row 2 */ 0.9, 0.05, 0.05, /* row 3 */ 0.3, 0.3, 0.4];
            let labels = [1u8, 1, 1]; // row 3: top-2 is [2, 0] (ties: lower index first), a miss
            assert!((top_k_accuracy(&logits, 3, &labels, 1) - 1.0 / 3.0).abs() < 1e-12);
            assert!((top_k_accuracy(&logits, 3, &labels, 2) - 2.0 / 3.0).abs() < 1e-12);
            assert_eq!(top_k_accuracy(&logits, 3, &labels, 3), 1.0);
            assert_eq!(predictions(&logits, 3), vec![1, 0, 2]);
            // Agreement with other targets: row 1 has 2 in its top 2, row 2 not 2, row 3 has 0.
            assert!((top_k_agreement(&logits, 3, &[2, 2, 0], 2) - 2.0 / 3.0).abs() < 1e-12);
        }

        #[test]
        fn flip_rate_distance_quantile_known_answers() {
            assert_eq!(flip_rate(&[1, 2, 3, 4], &[1, 0, 3, 0]), 0.5);
            assert_eq!(row_distances(&[0.0, 0.0, 1.0, 1.0], &[3.0, 4.0, 1.0, 1.0], 2), vec![5.0, 0.0]);
            // numpy.quantile([1, 2, 3, 4, 10], 0.9) == 7.6
            assert!((quantile(&[10.0, 1.0, 3.0, 2.0, 4.0], 0.9) - 7.6).abs() < 1e-12);
            assert_eq!(quantile(&[5.0], 0.9), 5.0);
            assert_eq!(mean(&[1.0, 2.0, 6.0]), 3.0);
        }
    }
}
