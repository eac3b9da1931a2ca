//! Throughput of the distortions that feed training and evaluation: the JPEG-q round trip and the
//! THUMB-s resize (down to s % and back up), in images per second.
//!
//! Each is measured one image at a time on the calling thread (the like-for-like comparison with
//! Pillow, which `stabilize bench` runs on the same images) and over all cores through rayon (what
//! a batch of `Distortion::apply_batch` gets).

use std::path::PathBuf;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::distort::Distortion;
use crate::error::{Error, Result};
use crate::image::Image;
use crate::image::load::{LoadOptions, load_image_with};
use crate::image::resize::{Filter, resize};

/// Images per second of each operation.
#[derive(Clone, Debug, Serialize)]
pub struct ImageOpRates {
    pub images: usize,
    /// Mean pixels per image.
    pub mean_pixels: f64,
    pub quality: u8,
    pub percent: f32,
    /// One image at a time, one thread.
    pub jpeg_roundtrip_img_per_s: f64,
    pub resize_img_per_s: f64,
    /// All cores (rayon), images independent.
    pub jpeg_roundtrip_parallel_img_per_s: f64,
    pub resize_parallel_img_per_s: f64,
}

/// Loads up to `limit` of `paths` as RGB and shrinks each so that its longer side is at most
/// `max_side` px (bicubic); unreadable files are skipped. Errors when none is usable.
pub fn prepare(paths: &[PathBuf], max_side: u32, limit: usize) -> Result<Vec<Image>> {
    let mut out = Vec::new();
    for p in paths {
        if out.len() == limit {
            break;
        }
        let Ok(img) = load_image_with(p, &LoadOptions::default()) else { continue };
        let img = img.to_rgb();
        let (w, h) = (img.width(), img.height());
        let scale = (max_side as f64 / w.max(h) as f64).min(1.0);
        let (nw, nh) = (((w as f64 * scale).round() as u32).max(1), ((h as f64 * scale).round() as u32).max(1));
        out.push(resize(&img, nw, nh, Filter::Bicubic)?);
    }
    if out.is_empty() {
        return Err(Error::Invalid("no readable images to benchmark".into()));
    }
    Ok(out)
}

/// Times `repeats` passes over `images` of `jpeg:quality` and `thumb:percent` (after one warm-up
/// image each), sequentially and in parallel.
pub fn measure(images: &[Image], quality: u8, percent: f32, repeats: usize) -> Result<ImageOpRates> {
    if images.is_empty() || repeats == 0 {
        return Err(Error::Invalid("nothing to benchmark (no images or 0 repeats)".into()));
    }
    let jpeg = Distortion::Jpeg { quality };
    let thumb = Distortion::Thumb { percent };
    let sequential = |d: &Distortion| -> Result<f64> {
        d.apply(&images[0], 0)?;
        let t = Instant::now();
        for _ in 0..repeats {
            for img in images {
                std::hint::black_box(d.apply(img, 0)?);
            }
        }
        Ok((repeats * images.len()) as f64 / t.elapsed().as_secs_f64())
    };
    let parallel = |d: &Distortion| -> Result<f64> {
        let t = Instant::now();
        for _ in 0..repeats {
            images.par_iter().try_for_each(|img| d.apply(img, 0).map(|o| drop(std::hint::black_box(o))))?;
        }
        Ok((repeats * images.len()) as f64 / t.elapsed().as_secs_f64())
    };
    Ok(ImageOpRates {
        images: images.len(),
        mean_pixels: images.iter().map(|i| i.pixel_count() as f64).sum::<f64>() / images.len() as f64,
        quality,
        percent,
        jpeg_roundtrip_img_per_s: sequential(&jpeg)?,
        resize_img_per_s: sequential(&thumb)?,
        jpeg_roundtrip_parallel_img_per_s: parallel(&jpeg)?,
        resize_parallel_img_per_s: parallel(&thumb)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Channels;

    #[test]
    fn rates_are_positive_and_bad_input_is_an_error() {
        let img = Image::new(64, 48, Channels::Rgb, (0..64 * 48 * 3).map(|i| (i * 7 % 251) as u8).collect()).unwrap();
        let r = measure(&[img.clone(), img], 50, 50.0, 2).unwrap();
        assert_eq!(r.images, 2);
        assert_eq!(r.mean_pixels, 64.0 * 48.0);
        for v in [r.jpeg_roundtrip_img_per_s, r.resize_img_per_s, r.jpeg_roundtrip_parallel_img_per_s] {
            assert!(v.is_finite() && v > 0.0, "{v}");
        }
        assert!(measure(&[], 50, 50.0, 2).is_err());
        assert!(prepare(&[PathBuf::from("/nonexistent.png")], 64, 4).is_err());
    }

    #[test]
    fn prepare_shrinks_to_the_longer_side() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.png");
        Image::filled(300, 150, Channels::Gray, 9).unwrap().save(&p).unwrap();
        let imgs = prepare(&[p.clone(), p], 100, 1).unwrap();
        assert_eq!(imgs.len(), 1);
        assert_eq!((imgs[0].width(), imgs[0].height(), imgs[0].channels()), (100, 50, Channels::Rgb));
    }
}
