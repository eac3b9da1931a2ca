//! Resampling through `fast_image_resize` (SIMD convolution, same kernels as Pillow).

use fast_image_resize as fir;

use crate::error::{Error, Result};
use crate::image::{Channels, Image};

/// The resampling filter (all are antialiased convolutions when downscaling).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Triangle (Pillow `BILINEAR`).
    Bilinear,
    /// Catmull-Rom cubic, a = -0.5 (Pillow `BICUBIC`, the default of `Image.resize`).
    Bicubic,
    /// Lanczos, 3 lobes (Pillow `LANCZOS`).
    Lanczos3,
    /// Box (area average down, pixel replication up; Pillow `BOX`): the pixelate corruption.
    Box,
}

impl Filter {
    fn alg(self) -> fir::ResizeAlg {
        let f = match self {
            Filter::Bilinear => fir::FilterType::Bilinear,
            Filter::Bicubic => fir::FilterType::CatmullRom,
            Filter::Lanczos3 => fir::FilterType::Lanczos3,
            Filter::Box => fir::FilterType::Box,
        };
        fir::ResizeAlg::Convolution(f)
    }
}

fn pixel_type(c: Channels) -> fir::PixelType {
    match c {
        Channels::Gray => fir::PixelType::U8,
        Channels::Rgb => fir::PixelType::U8x3,
    }
}

/// Resizes the sub-rectangle `crop = (left, top, width, height)` of `img` (the whole image when
/// `None`) to `width × height`.
pub fn resize_region(
    img: &Image,
    crop: Option<(f64, f64, f64, f64)>,
    width: u32,
    height: u32,
    filter: Filter,
) -> Result<Image> {
    if width == 0 || height == 0 {
        return Err(Error::Resize(format!("target size {width}x{height} is empty")));
    }
    let src = fir::images::ImageRef::new(img.width(), img.height(), img.data(), pixel_type(img.channels()))
        .map_err(|e| Error::Resize(e.to_string()))?;
    let mut dst = fir::images::Image::new(width, height, pixel_type(img.channels()));
    let mut options = fir::ResizeOptions::new().resize_alg(filter.alg());
    if let Some((l, t, w, h)) = crop {
        options = options.crop(l, t, w, h);
    }
    fir::Resizer::new().resize(&src, &mut dst, &options).map_err(|e| Error::Resize(e.to_string()))?;
    Image::new(width, height, img.channels(), dst.into_vec())
}

/// Resizes the whole image to `width × height`.
pub fn resize(img: &Image, width: u32, height: u32, filter: Filter) -> Result<Image> {
    if (width, height) == (img.width(), img.height()) {
        return Ok(img.clone());
    }
    resize_region(img, None, width, height, filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_stays_constant_and_shapes_follow() {
        for f in [Filter::Bilinear, Filter::Bicubic, Filter::Lanczos3] {
            let img = Image::filled(40, 30, Channels::Rgb, 77).unwrap();
            let small = resize(&img, 13, 9, f).unwrap();
            assert_eq!((small.width(), small.height()), (13, 9));
            assert!(small.data().iter().all(|&v| v == 77));
        }
    }

    #[test]
    fn downscale_by_two_matches_pillows_triangle() {
        // Pillow-style bilinear 2x downscale of the row [0, 100, 200, 100]: output 0 is centred at
        // input x = 1.0 with support 2, covering pixels 0..3 with weights 0.75, 0.75, 0.25
        // (normalised): (0·0.75 + 100·0.75 + 200·0.25)/1.75 = 71.4; output 1 (centre 3.0) covers
        // pixels 1..4 with 0.25, 0.75, 0.75: (25 + 150 + 75)/1.75 = 142.9.
        // Pillow: Image.frombytes("L",(4,1),bytes([0,100,200,100])).resize((2,1), BILINEAR) -> 71, 143
        let img = Image::new(4, 1, Channels::Gray, vec![0, 100, 200, 100]).unwrap();
        let out = resize(&img, 2, 1, Filter::Bilinear).unwrap();
        let d = out.data();
        assert!((d[0] as i32 - 71).abs() <= 1 && (d[1] as i32 - 143).abs() <= 1, "{d:?}");
    }
}
