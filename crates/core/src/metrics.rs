//! Image-quality and evaluation metrics.

use crate::error::{Error, Result};
use crate::image::Image;

/// Mean squared error between two images of the same shape, in 8-bit levels squared.
pub fn mse(a: &Image, b: &Image) -> Result<f64> {
    if (a.width(), a.height(), a.channels()) != (b.width(), b.height(), b.channels()) {
        return Err(Error::Invalid(format!(
            "mse of different shapes: {a:?} vs {b:?}"
        )));
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
    Ok(if m == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / m).log10()
    })
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
