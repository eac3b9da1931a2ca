//! JPEG through libjpeg-turbo (the `turbojpeg` crate, built from source): the codec Pillow ships,
//! with libjpeg's quality scaling, 4:2:0 chroma subsampling for colour (Pillow's default), the
//! accurate integer DCT and "fancy" upsampling on decode. A JPEG-q round trip here is therefore
//! the same operation as `Image.save(buf, "JPEG", quality=q)` followed by `Image.open(buf)`.

use std::cell::RefCell;

use crate::error::{Error, Result};
use crate::image::{Channels, Image};

thread_local! {
    static COMPRESSOR: RefCell<Option<turbojpeg::Compressor>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<turbojpeg::Decompressor>> = const { RefCell::new(None) };
}

fn jerr(e: turbojpeg::Error) -> Error {
    Error::Jpeg(e.to_string())
}

/// Encodes at `quality` (1..=100, libjpeg scaling of the Annex K tables).
pub fn encode(img: &Image, quality: u8) -> Result<Vec<u8>> {
    if !(1..=100).contains(&quality) {
        return Err(Error::Jpeg(format!("quality {quality} is outside 1..=100")));
    }
    let (format, subsamp) = match img.channels() {
        Channels::Gray => (turbojpeg::PixelFormat::GRAY, turbojpeg::Subsamp::Gray),
        Channels::Rgb => (turbojpeg::PixelFormat::RGB, turbojpeg::Subsamp::Sub2x2),
    };
    let n = img.channels().count();
    let view = turbojpeg::Image {
        pixels: img.data(),
        width: img.width() as usize,
        pitch: img.width() as usize * n,
        height: img.height() as usize,
        format,
    };
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(turbojpeg::Compressor::new().map_err(jerr)?);
        }
        let c = slot.as_mut().expect("initialised above");
        c.set_quality(quality as i32).map_err(jerr)?;
        c.set_subsamp(subsamp).map_err(jerr)?;
        c.compress_to_vec(view).map_err(jerr)
    })
}

/// Reads width and height from a JPEG header without decoding it.
pub fn dimensions(bytes: &[u8]) -> Result<(u32, u32)> {
    with_decompressor(|d| {
        let h = d.read_header(bytes).map_err(jerr)?;
        Ok((h.width as u32, h.height as u32))
    })
}

fn with_decompressor<T>(f: impl FnOnce(&mut turbojpeg::Decompressor) -> Result<T>) -> Result<T> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(turbojpeg::Decompressor::new().map_err(jerr)?);
        }
        f(slot.as_mut().expect("initialised above"))
    })
}

/// Decodes a JPEG to gray (for grayscale files) or RGB. CMYK/YCCK files are an error here (the
/// photo loader falls back to another decoder for them).
pub fn decode(bytes: &[u8]) -> Result<Image> {
    with_decompressor(|d| {
        let header = d.read_header(bytes).map_err(jerr)?;
        let (format, channels) = match header.colorspace {
            turbojpeg::Colorspace::Gray => (turbojpeg::PixelFormat::GRAY, Channels::Gray),
            turbojpeg::Colorspace::CMYK | turbojpeg::Colorspace::YCCK => {
                return Err(Error::Jpeg("CMYK/YCCK JPEG is not decoded by libjpeg-turbo to RGB".into()));
            }
            _ => (turbojpeg::PixelFormat::RGB, Channels::Rgb),
        };
        let n = channels.count();
        let (w, h) = (header.width, header.height);
        let mut pixels = vec![0u8; w * h * n];
        let out = turbojpeg::Image { pixels: &mut pixels[..], width: w, pitch: w * n, height: h, format };
        d.decompress(bytes, out).map_err(jerr)?;
        Image::new(w as u32, h as u32, channels, pixels)
    })
}

/// Encode at `quality`, then decode: the JPEG-q distortion.
pub fn round_trip(img: &Image, quality: u8) -> Result<Image> {
    decode(&encode(img, quality)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(channels: Channels) -> Image {
        let (w, h) = (64u32, 48u32);
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                for c in 0..channels.count() {
                    data.push(((x * 4 + y * 2 + c as u32 * 40) % 256) as u8);
                }
            }
        }
        Image::new(w, h, channels, data).unwrap()
    }

    #[test]
    fn round_trip_keeps_shape_and_channels() {
        for ch in [Channels::Gray, Channels::Rgb] {
            let img = gradient(ch);
            let out = round_trip(&img, 50).unwrap();
            assert_eq!((out.width(), out.height(), out.channels()), (64, 48, ch));
        }
    }

    #[test]
    fn flat_image_survives_exactly_and_quality_orders_error() {
        // A constant block has only a DC coefficient, quantised without loss for this level.
        let flat = Image::filled(16, 16, Channels::Gray, 128).unwrap();
        assert_eq!(round_trip(&flat, 10).unwrap(), flat);
        let img = gradient(Channels::Rgb);
        let mse = |q| crate::eval::metrics::mse(&img, &round_trip(&img, q).unwrap()).unwrap();
        assert!(mse(10) > mse(50), "q10 {} vs q50 {}", mse(10), mse(50));
        assert!(mse(50) > mse(95), "q50 {} vs q95 {}", mse(50), mse(95));
    }

    #[test]
    fn quality_scaling_is_libjpegs() {
        // libjpeg: q=50 keeps the Annex K luminance table, whose first entry (DC) is 16; q=10 scales
        // it by 5000/10 % = 500 % -> 80; q=90 by 200-180 = 20 % -> 3. The DQT segment holds it.
        for (q, dc) in [(50u8, 16u8), (10, 80), (90, 3)] {
            let bytes = encode(&gradient(Channels::Gray), q).unwrap();
            let pos = bytes.windows(2).position(|w| w == [0xFF, 0xDB]).expect("DQT marker");
            // FF DB, length (2 bytes), Pq/Tq (1 byte), then 64 entries in zig-zag order.
            assert_eq!(bytes[pos + 5], dc, "quality {q}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(b"not a jpeg").is_err());
        let mut bytes = encode(&gradient(Channels::Rgb), 80).unwrap();
        bytes.truncate(40);
        assert!(decode(&bytes).is_err());
        assert!(encode(&gradient(Channels::Rgb), 0).is_err());
    }
}
