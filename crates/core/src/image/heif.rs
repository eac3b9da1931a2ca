//! HEIF images (HEIC from phones: HEVC inside) and AVIF (AV1 inside), through the system libheif
//! ([`libheif_rs`]; Debian's libheif1 decodes HEVC with libde265 and AV1 with dav1d or aom). The
//! decoded picture has the file's own transformations applied (rotation, mirroring, crop: a HEIF
//! file carries its orientation there, not in EXIF) and is converted to 8-bit RGB. Feature `heif`.

use std::sync::OnceLock;

use libheif_rs::{Channel, ColorSpace, CompressionFormat, EncoderQuality, HeifContext, LibHeif, RgbChroma};

use crate::image::{Channels, Image};

/// libheif, initialised once for the process (its init is reference counted and not free).
fn lib() -> &'static LibHeif {
    static LIB: OnceLock<LibHeif> = OnceLock::new();
    LIB.get_or_init(LibHeif::new)
}

/// Decodes the primary image of a HEIF/AVIF file to RGB; `check` sees `(width, height)` before
/// any pixel is decoded (the decompression-bomb guard). Errors are one-line reasons.
pub fn decode(bytes: &[u8], check: &dyn Fn(u32, u32) -> Result<(), String>) -> Result<Image, String> {
    let lib = lib();
    let ctx = HeifContext::read_from_bytes(bytes).map_err(|e| format!("HEIF: {e}"))?;
    let handle = ctx.primary_image_handle().map_err(|e| format!("HEIF: {e}"))?;
    check(handle.width(), handle.height())?;
    let img = lib.decode(&handle, ColorSpace::Rgb(RgbChroma::Rgb), None).map_err(|e| format!("HEIF: {e}"))?;
    let plane = img.planes().interleaved.ok_or("HEIF: the decoder gave no RGB plane")?;
    let (w, h, stride) = (plane.width as usize, plane.height as usize, plane.stride);
    if !matches!(plane.bits_per_pixel, 8 | 24)
        || stride < 3 * w
        || plane.data.len() < stride * h.saturating_sub(1) + 3 * w
    {
        return Err(format!("HEIF: unexpected RGB plane ({} bits per pixel, stride {stride})", plane.bits_per_pixel));
    }
    let mut data = Vec::with_capacity(3 * w * h);
    for row in plane.data.chunks(stride).take(h) {
        data.extend_from_slice(&row[..3 * w]);
    }
    Image::new(w as u32, h as u32, Channels::Rgb, data).map_err(|e| e.to_string())
}

/// The codec inside a HEIF file written by [`encode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeifCodec {
    /// HEVC: a `.heic` file as phones write (libheif's x265 encoder).
    Hevc,
    /// AV1: a `.avif` file (libheif's aom encoder).
    Av1,
}

/// Encodes an RGB image as HEIC or AVIF at `quality` (0–100), with the encoders the system
/// libheif has; for making test files and copies in the formats phones write.
pub fn encode(img: &Image, codec: HeifCodec, quality: u8) -> Result<Vec<u8>, String> {
    let rgb = img.to_rgb();
    let (w, h) = (rgb.width(), rgb.height());
    let mut out = libheif_rs::Image::new(w, h, ColorSpace::Rgb(RgbChroma::C444)).map_err(|e| e.to_string())?;
    for c in [Channel::R, Channel::G, Channel::B] {
        out.create_plane(c, w, h, 8).map_err(|e| e.to_string())?;
    }
    let planes = out.planes_mut();
    for (k, plane) in [planes.r, planes.g, planes.b].into_iter().enumerate() {
        let plane = plane.ok_or("no plane")?;
        let stride = plane.stride;
        for (y, row) in plane.data.chunks_mut(stride).take(h as usize).enumerate() {
            for (x, v) in row[..w as usize].iter_mut().enumerate() {
                *v = rgb.get(x as u32, y as u32, k);
            }
        }
    }
    let format = match codec {
        HeifCodec::Hevc => CompressionFormat::Hevc,
        HeifCodec::Av1 => CompressionFormat::Av1,
    };
    let mut encoder = lib().encoder_for_format(format).map_err(|e| format!("no {codec:?} encoder: {e}"))?;
    encoder.set_quality(EncoderQuality::Lossy(quality)).map_err(|e| e.to_string())?;
    let mut ctx = HeifContext::new().map_err(|e| e.to_string())?;
    ctx.encode_image(&out, &mut encoder, None).map_err(|e| e.to_string())?;
    ctx.write_to_bytes().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth picture with edges (codecs keep it well): a gradient with a bright square.
    fn sample() -> Image {
        let (w, h) = (96u32, 64u32);
        let data = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                let square = (30..60).contains(&x) && (20..44).contains(&y);
                if square { [240, 230, 40] } else { [(x * 2) as u8, (y * 3) as u8, 120] }
            })
            .collect();
        Image::new(w, h, Channels::Rgb, data).unwrap()
    }

    fn psnr(a: &Image, b: &Image) -> f64 {
        let mse = a.data().iter().zip(b.data()).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum::<f64>()
            / a.data().len() as f64;
        10.0 * (255.0f64.powi(2) / mse.max(1e-12)).log10()
    }

    #[test]
    fn heic_and_avif_decode_to_the_picture_they_hold() {
        let img = sample();
        for codec in [HeifCodec::Hevc, HeifCodec::Av1] {
            let bytes = encode(&img, codec, 90).unwrap();
            assert!(crate::image::load::is_heif(&bytes), "{codec:?}: {:?}", &bytes[..16]);
            let back = decode(&bytes, &|_, _| Ok(())).unwrap();
            assert_eq!((back.width(), back.height()), (96, 64), "{codec:?}");
            let db = psnr(&img, &back);
            assert!(db > 30.0, "{codec:?}: {db:.1} dB");
            // Through the loader too, and its size guard runs before decoding.
            let opts = crate::image::load::LoadOptions { max_pixels: 1000, ..Default::default() };
            let err = crate::image::load::decode_image(&bytes, &opts).unwrap_err();
            assert!(err.contains("exceeds"), "{err}");
            let loaded = crate::image::load::decode_image(&bytes, &Default::default()).unwrap();
            assert_eq!(loaded, back);
        }
    }

    #[test]
    fn broken_heif_is_a_reason_not_a_crash() {
        let bytes = encode(&sample(), HeifCodec::Hevc, 80).unwrap();
        for cut in [20, 100, bytes.len() / 2, bytes.len() - 10] {
            let err = decode(&bytes[..cut], &|_, _| Ok(())).unwrap_err();
            assert!(err.starts_with("HEIF"), "{cut}: {err}");
        }
        assert!(
            !crate::image::load::is_heif(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"),
            "an MP4 is not a picture"
        );
        assert!(!crate::image::load::is_heif(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"));
    }
}
