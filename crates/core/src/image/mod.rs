//! Images: the in-memory [`Image`] type shared by loaders, distortions, hashes and the burn layer,
//! and what reads, writes and measures it — the JPEG codec ([`jpeg`]), resampling ([`resize`]),
//! loading files and folders ([`load`]), perceptual hashes ([`hash`]), solid borders cut off
//! before describing ([`borders`]), whether a copy is a softened one ([`sharpness`]) and codec throughput
//! ([`bench`]).
//!
//! Pixels are 8-bit, interleaved, row-major (`[y][x][c]`), with 1 (grayscale) or 3 (RGB) channels.
//! That is what decoders produce and what a real pipeline re-quantises to after every distortion.

#[cfg(feature = "bench")]
pub mod bench;
pub mod borders;
pub mod hash;
#[cfg(feature = "heif")]
pub mod heif;
pub mod jpeg;
pub mod jpeg_trace;
pub mod load;
pub mod regions;
pub mod resize;
pub mod sharpness;

use std::path::Path;

use crate::error::{Error, Result};

/// Number of interleaved channels of an [`Image`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Channels {
    /// One luma channel.
    Gray,
    /// Red, green, blue.
    Rgb,
}

impl Channels {
    /// Channels per pixel: 1 or 3.
    pub fn count(self) -> usize {
        match self {
            Channels::Gray => 1,
            Channels::Rgb => 3,
        }
    }
}

/// An 8-bit grayscale or RGB image; `data.len() == width * height * channels.count()`.
#[derive(Clone, PartialEq, Eq)]
pub struct Image {
    width: u32,
    height: u32,
    channels: Channels,
    data: Vec<u8>,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Image({}x{} {:?})", self.width, self.height, self.channels)
    }
}

impl Image {
    /// Wraps interleaved pixels; fails when the length does not match the shape or a side is 0.
    pub fn new(width: u32, height: u32, channels: Channels, data: Vec<u8>) -> Result<Self> {
        let expected = width as usize * height as usize * channels.count();
        if width == 0 || height == 0 {
            return Err(Error::InvalidImage(format!("empty image {width}x{height}")));
        }
        if data.len() != expected {
            return Err(Error::InvalidImage(format!(
                "{width}x{height}x{} needs {expected} bytes, got {}",
                channels.count(),
                data.len()
            )));
        }
        Ok(Self { width, height, channels, data })
    }

    /// A constant image (every byte `value`).
    pub fn filled(width: u32, height: u32, channels: Channels, value: u8) -> Result<Self> {
        Self::new(width, height, channels, vec![value; width as usize * height as usize * channels.count()])
    }

    pub fn width(&self) -> u32 {
        self.width
    }
    pub fn height(&self) -> u32 {
        self.height
    }
    pub fn channels(&self) -> Channels {
        self.channels
    }
    /// Interleaved pixel bytes, row-major.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }
    /// Number of pixels (`width * height`).
    pub fn pixel_count(&self) -> usize {
        self.width as usize * self.height as usize
    }

    /// The pixel at `(x, y)`, channel `c`.
    pub fn get(&self, x: u32, y: u32, c: usize) -> u8 {
        let n = self.channels.count();
        self.data[(y as usize * self.width as usize + x as usize) * n + c]
    }

    /// Converts to RGB (gray is replicated); RGB is returned as is.
    pub fn to_rgb(&self) -> Image {
        match self.channels {
            Channels::Rgb => self.clone(),
            Channels::Gray => {
                let data = self.data.iter().flat_map(|&v| [v, v, v]).collect();
                Image { width: self.width, height: self.height, channels: Channels::Rgb, data }
            }
        }
    }

    /// [`Image::to_gray`] without a copy when the image is grey already.
    pub fn as_gray(&self) -> std::borrow::Cow<'_, Image> {
        match self.channels {
            Channels::Gray => std::borrow::Cow::Borrowed(self),
            Channels::Rgb => std::borrow::Cow::Owned(self.to_gray()),
        }
    }

    /// Converts to grayscale with the ITU-R 601 luma weights (as libjpeg and Pillow's `L` do).
    pub fn to_gray(&self) -> Image {
        match self.channels {
            Channels::Gray => self.clone(),
            Channels::Rgb => {
                let data = self
                    .data
                    .chunks_exact(3)
                    .map(|p| {
                        // Pillow: L = R * 299/1000 + G * 587/1000 + B * 114/1000, rounded.
                        let l = p[0] as u32 * 19595 + p[1] as u32 * 38470 + p[2] as u32 * 7471;
                        ((l + 0x8000) >> 16) as u8
                    })
                    .collect();
                Image { width: self.width, height: self.height, channels: Channels::Gray, data }
            }
        }
    }

    /// Pixels as `f32` on the [0,1] scale, same layout.
    pub fn to_f32(&self) -> Vec<f32> {
        self.data.iter().map(|&v| v as f32 / 255.0).collect()
    }

    /// Re-quantises [0,1] floats (any layout matching `width`, `height`, `channels`) to 8 bits:
    /// clamps to [0,1], then rounds to nearest.
    pub fn from_f32(width: u32, height: u32, channels: Channels, values: &[f32]) -> Result<Image> {
        let data = values.iter().map(|&v| quantize(v)).collect();
        Image::new(width, height, channels, data)
    }

    /// Converts into the `image` crate's dynamic image (for encoding to files).
    pub fn to_dynamic(&self) -> image::DynamicImage {
        match self.channels {
            Channels::Gray => image::DynamicImage::ImageLuma8(
                image::GrayImage::from_raw(self.width, self.height, self.data.clone()).expect("shape checked"),
            ),
            Channels::Rgb => image::DynamicImage::ImageRgb8(
                image::RgbImage::from_raw(self.width, self.height, self.data.clone()).expect("shape checked"),
            ),
        }
    }

    /// Converts from any `image` crate image: alpha is dropped (composited on nothing; the colour
    /// channels are kept), 16-bit and float samples are scaled to 8 bits, luma stays gray.
    pub fn from_dynamic(img: image::DynamicImage) -> Result<Image> {
        use image::DynamicImage as D;
        let (w, h) = (img.width(), img.height());
        match img {
            D::ImageLuma8(b) => Image::new(w, h, Channels::Gray, b.into_raw()),
            D::ImageLumaA8(_) | D::ImageLuma16(_) | D::ImageLumaA16(_) => {
                Image::new(w, h, Channels::Gray, img.to_luma8().into_raw())
            }
            D::ImageRgb8(b) => Image::new(w, h, Channels::Rgb, b.into_raw()),
            other => Image::new(w, h, Channels::Rgb, other.to_rgb8().into_raw()),
        }
    }

    /// Writes the image; the format follows the extension (PNG, JPEG at quality 95, WebP lossless,
    /// BMP, TIFF). Written to a temporary file beside `path` and renamed, so a failure leaves no
    /// partial file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let ext = path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase());
        let bytes = match ext.as_deref() {
            Some("jpg") | Some("jpeg") => crate::image::jpeg::encode(self, 95)?,
            Some(e) => {
                let format = image::ImageFormat::from_extension(e)
                    .ok_or_else(|| Error::Unsupported(format!("output format '.{e}'")))?;
                let mut buf = std::io::Cursor::new(Vec::new());
                self.to_dynamic()
                    .write_to(&mut buf, format)
                    .map_err(|e| Error::Unsupported(format!("cannot encode {}: {e}", path.display())))?;
                buf.into_inner()
            }
            None => {
                return Err(Error::Unsupported(format!("{}: no file extension to pick a format", path.display())));
            }
        };
        crate::fsutil::write_atomic(path, &bytes)
    }
}

/// Clamps a [0,1] value and rounds it to the nearest 8-bit level.
#[inline]
pub fn quantize(v: f32) -> u8 {
    if v.is_nan() {
        return 0;
    }
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_checks_shape() {
        assert!(Image::new(2, 2, Channels::Rgb, vec![0; 12]).is_ok());
        assert!(Image::new(2, 2, Channels::Rgb, vec![0; 11]).is_err());
        assert!(Image::new(0, 2, Channels::Gray, vec![]).is_err());
    }

    #[test]
    fn gray_luma_matches_pillow() {
        // Pillow: Image.new("RGB",(1,1),(200,100,50)).convert("L").getpixel((0,0)) == 124
        let img = Image::new(1, 1, Channels::Rgb, vec![200, 100, 50]).unwrap();
        assert_eq!(img.to_gray().data(), &[124]);
        assert_eq!(img.to_gray().to_rgb().data(), &[124, 124, 124]);
    }

    #[test]
    fn quantize_rounds_and_clamps() {
        assert_eq!(quantize(-0.2), 0);
        assert_eq!(quantize(1.7), 255);
        assert_eq!(quantize(0.5), 128);
        assert_eq!(quantize(f32::NAN), 0);
        let img = Image::new(2, 1, Channels::Gray, vec![3, 250]).unwrap();
        let back = Image::from_f32(2, 1, Channels::Gray, &img.to_f32()).unwrap();
        assert_eq!(back, img);
    }
}
