//! The photo loader: JPEG, PNG, WebP, GIF (first frame), BMP, TIFF, and HEIC/HEIF and AVIF
//! (through libheif, feature `heif`: [`crate::image::heif`]) files to RGB [`Image`]s.
//!
//! JPEG goes through libjpeg-turbo (the decoder Pillow uses, so pixels match Pillow's), other
//! formats and CMYK JPEGs through the `image` crate. EXIF orientation is applied; grayscale is
//! replicated to RGB; alpha is dropped (as Pillow's `convert("RGB")` does); 16-bit samples are
//! scaled to 8 bits. A file that cannot be read is reported with a reason, never a panic.

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{ImageDecoder, ImageReader, Limits};
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::image::Image;

/// File extensions treated as images (lower case).
pub const IMAGE_EXTENSIONS: [&str; 11] =
    ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "heic", "heif", "avif"];

/// Safety limits for decoding untrusted files.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Largest accepted `width × height` (decompression-bomb guard). Default 100 Mpx.
    pub max_pixels: u64,
    /// Largest accepted file size in bytes. Default 512 MiB.
    pub max_file_bytes: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { max_pixels: 100_000_000, max_file_bytes: 512 << 20 }
    }
}

/// Loads one image file as RGB with the default limits.
pub fn load_image(path: &Path) -> Result<Image> {
    load_image_with(path, &LoadOptions::default())
}

/// Loads one image file as RGB.
pub fn load_image_with(path: &Path, opts: &LoadOptions) -> Result<Image> {
    let meta = fs::metadata(path).with_path(path)?;
    if meta.is_dir() {
        return Err(Error::Decode { path: path.into(), reason: "is a directory".into() });
    }
    if meta.len() > opts.max_file_bytes {
        return Err(Error::Decode {
            path: path.into(),
            reason: format!("file of {} bytes exceeds the limit of {}", meta.len(), opts.max_file_bytes),
        });
    }
    let bytes = fs::read(path).with_path(path)?;
    decode_image(&bytes, opts).map_err(|reason| Error::Decode { path: path.into(), reason })
}

/// Decodes image bytes to RGB; the error is a one-line reason.
pub fn decode_image(bytes: &[u8], opts: &LoadOptions) -> std::result::Result<Image, String> {
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    if is_heif(bytes) {
        #[cfg(feature = "heif")]
        return crate::image::heif::decode(bytes, &|w, h| check_pixels(w, h, opts));
        #[cfg(not(feature = "heif"))]
        return Err("HEIF/AVIF: this build has no libheif (feature `heif`)".into());
    }
    let format = image::guess_format(bytes).map_err(|_| "not a recognised image format".to_string())?;
    if format == image::ImageFormat::Jpeg {
        let (w, h) = crate::image::jpeg::dimensions(bytes).map_err(|e| e.to_string())?;
        check_pixels(w, h, opts)?;
        if let Ok(img) = crate::image::jpeg::decode(bytes) {
            let orientation = ImageReader::with_format(Cursor::new(bytes), format)
                .into_decoder()
                .and_then(|mut d| d.orientation())
                .unwrap_or(image::metadata::Orientation::NoTransforms);
            let img = if orientation == image::metadata::Orientation::NoTransforms {
                img
            } else {
                let mut dynamic = img.to_dynamic();
                dynamic.apply_orientation(orientation);
                Image::from_dynamic(dynamic).map_err(|e| e.to_string())?
            };
            return Ok(img.to_rgb());
        }
        // CMYK/YCCK and other files libjpeg-turbo will not convert: fall through.
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_alloc = Some(opts.max_pixels.saturating_mul(8).max(64 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let (w, h) = decoder.dimensions();
    check_pixels(w, h, opts)?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut dynamic = image::DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    dynamic.apply_orientation(orientation);
    Ok(Image::from_dynamic(dynamic).map_err(|e| e.to_string())?.to_rgb())
}

/// The brands (ISO BMFF `ftyp`) of the files libheif reads ([`crate::image::heif`], feature `heif`): HEIF stills and sequences, HEVC
/// (`heic`…), AV1 (`avif`, `avis`), and the generic `mif1`/`msf1`.
const BRANDS: [&[u8; 4]; 10] =
    [b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"];

/// Whether `bytes` begin like a HEIF or AVIF file: an `ftyp` box whose major or a compatible
/// brand is one of [`BRANDS`].
pub fn is_heif(bytes: &[u8]) -> bool {
    if bytes.len() < 16 || &bytes[4..8] != b"ftyp" {
        return false;
    }
    let size = (u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize).clamp(16, bytes.len().min(256));
    let major = &bytes[8..12];
    let compatible = bytes[16..size].chunks_exact(4);
    std::iter::once(major).chain(compatible).any(|b| BRANDS.iter().any(|x| x.as_slice() == b))
}

fn check_pixels(w: u32, h: u32, opts: &LoadOptions) -> std::result::Result<(), String> {
    let px = w as u64 * h as u64;
    if px == 0 {
        return Err(format!("empty image {w}x{h}"));
    }
    if px > opts.max_pixels {
        return Err(format!(
            "{w}x{h} = {:.1} Mpx exceeds the limit of {:.1} Mpx (possible decompression bomb)",
            px as f64 / 1e6,
            opts.max_pixels as f64 / 1e6
        ));
    }
    Ok(())
}

/// A file that was not loaded, and why.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Skipped {
    /// Written as [`crate::fsutil::path_text`] makes it (exact for any name).
    #[serde(serialize_with = "serialize_path_text")]
    pub path: PathBuf,
    pub reason: String,
}

/// `skipped PATH: REASON`, the path as [`crate::fsutil::path_text`] writes it.
impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "skipped {}: {}", crate::fsutil::path_text(&self.path), self.reason)
    }
}

fn serialize_path_text<S: serde::Serializer>(path: &std::path::Path, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&crate::fsutil::path_text(path))
}

/// Lists image files (by extension) under `roots`, recursively, sorted; a root may also be a
/// file. Symlinks are followed with loop detection; unreadable entries are reported.
pub fn list_images(roots: &[PathBuf]) -> (Vec<PathBuf>, Vec<Skipped>) {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for root in roots {
        for entry in walkdir::WalkDir::new(root).follow_links(true) {
            match entry {
                Ok(e) => {
                    let p = e.path();
                    let is_image = p
                        .extension()
                        .and_then(|x| x.to_str())
                        .is_some_and(|x| IMAGE_EXTENSIONS.contains(&x.to_ascii_lowercase().as_str()));
                    if !is_image {
                        continue;
                    }
                    if e.file_type().is_dir() {
                        skipped.push(Skipped { path: p.to_path_buf(), reason: "is a directory".into() });
                    } else {
                        files.push(p.to_path_buf());
                    }
                }
                Err(err) => {
                    let path = err.path().map(Path::to_path_buf).unwrap_or_else(|| root.clone());
                    let reason = if err.loop_ancestor().is_some() {
                        "symlink loop".to_string()
                    } else {
                        err.io_error().map(|e| e.to_string()).unwrap_or_else(|| err.to_string())
                    };
                    skipped.push(Skipped { path, reason });
                }
            }
        }
    }
    files.sort();
    files.dedup();
    (files, skipped)
}

/// Loaded images with their paths (in path order) and the files that were skipped.
#[derive(Debug, Default)]
pub struct Loaded {
    pub images: Vec<(PathBuf, Image)>,
    pub skipped: Vec<Skipped>,
}

/// Loads every image under `roots` in parallel, as RGB.
pub fn load_all(roots: &[PathBuf], opts: &LoadOptions) -> Loaded {
    let (files, mut skipped) = list_images(roots);
    let results: Vec<_> = files.par_iter().map(|p| (p, load_image_with(p, opts))).collect();
    let mut images = Vec::with_capacity(results.len());
    for (p, r) in results {
        match r {
            Ok(img) => images.push((p.clone(), img)),
            Err(e) => skipped.push(Skipped { path: p.clone(), reason: reason_of(&e) }),
        }
    }
    Loaded { images, skipped }
}

/// The reason part of a load error (without the path, which is reported beside it).
fn reason_of(e: &Error) -> String {
    match e {
        Error::Decode { reason, .. } => reason.clone(),
        Error::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Channels;

    fn sample(w: u32, h: u32) -> Image {
        let data = (0..w * h).flat_map(|i| [(i % 256) as u8, (i / 3 % 256) as u8, 200]).collect();
        Image::new(w, h, Channels::Rgb, data).unwrap()
    }

    #[test]
    fn loads_png_jpeg_webp_bmp_tiff_gif_as_rgb() {
        let dir = tempfile::tempdir().unwrap();
        let img = sample(12, 8);
        for ext in ["png", "jpg", "webp", "bmp", "tiff", "gif"] {
            let p = dir.path().join(format!("a.{ext}"));
            img.save(&p).unwrap();
            let back = load_image(&p).unwrap();
            assert_eq!((back.width(), back.height(), back.channels()), (12, 8, Channels::Rgb), "{ext}");
            if ["png", "bmp", "tiff", "webp"].contains(&ext) {
                assert_eq!(back, img, "{ext} is lossless");
            }
        }
    }

    #[test]
    fn gray_and_rgba_and_16bit_become_rgb() {
        let dir = tempfile::tempdir().unwrap();
        let gray = image::GrayImage::from_fn(4, 3, |x, y| image::Luma([(x * 10 + y) as u8]));
        gray.save(dir.path().join("g.png")).unwrap();
        let g = load_image(&dir.path().join("g.png")).unwrap();
        assert_eq!(g.channels(), Channels::Rgb);
        assert_eq!(&g.data()[3 * 5..3 * 6], &[11, 11, 11]); // pixel (1,1)
        let rgba = image::RgbaImage::from_pixel(2, 2, image::Rgba([10, 20, 30, 0]));
        rgba.save(dir.path().join("a.png")).unwrap();
        assert_eq!(load_image(&dir.path().join("a.png")).unwrap().data()[..3], [10, 20, 30]);
        let deep = image::ImageBuffer::<image::Rgb<u16>, _>::from_pixel(2, 2, image::Rgb([65535u16, 0, 32896]));
        deep.save(dir.path().join("d.png")).unwrap();
        assert_eq!(load_image(&dir.path().join("d.png")).unwrap().data()[..3], [255, 0, 128]);
    }

    #[test]
    fn jpeg_decodes_like_the_codec() {
        let img = sample(16, 16);
        let bytes = crate::image::jpeg::encode(&img, 90).unwrap();
        let via_loader = decode_image(&bytes, &LoadOptions::default()).unwrap();
        assert_eq!(via_loader, crate::image::jpeg::decode(&bytes).unwrap());
    }

    #[test]
    fn exif_orientation_is_applied() {
        // A 2x1 JPEG (left black, right white) tagged Orientation = 6 (rotate 90° clockwise) must
        // load as 1x2 with the black pixel on top.
        let img = Image::new(
            16,
            8,
            Channels::Rgb,
            (0..16 * 8)
                .flat_map(|i| {
                    let v = if i % 16 < 8 { 0 } else { 255 };
                    [v, v, v]
                })
                .collect(),
        )
        .unwrap();
        let jpeg = crate::image::jpeg::encode(&img, 95).unwrap();
        let tagged = with_exif_orientation(&jpeg, 6);
        let out = decode_image(&tagged, &LoadOptions::default()).unwrap();
        assert_eq!((out.width(), out.height()), (8, 16));
        assert!(
            out.get(4, 2, 0) < 30 && out.get(4, 13, 0) > 225,
            "top {} bottom {}",
            out.get(4, 2, 0),
            out.get(4, 13, 0)
        );
    }

    /// Inserts an APP1 Exif segment with one Orientation entry right after SOI.
    pub(crate) fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
        let mut tiff = vec![b'M', b'M', 0, 42, 0, 0, 0, 8, 0, 1];
        tiff.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1]);
        tiff.extend_from_slice(&orientation.to_be_bytes());
        tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        let mut payload = b"Exif\0\0".to_vec();
        payload.extend_from_slice(&tiff);
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&payload);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn bad_files_are_reported_not_panicked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("empty.jpg"), b"").unwrap();
        std::fs::write(d.join("garbage.png"), b"this is not an image at all").unwrap();
        let good = crate::image::jpeg::encode(&sample(64, 64), 80).unwrap();
        std::fs::write(d.join("truncated.jpg"), &good[..good.len() / 3]).unwrap();
        std::fs::create_dir(d.join("folder.jpg")).unwrap();
        std::fs::write(d.join("ok.jpg"), &good).unwrap();
        std::fs::write(d.join("notes.txt"), b"ignored").unwrap();
        // A PNG declaring 100000 x 100000 pixels (an IHDR, an empty IDAT, an IEND).
        let chunk = |kind: &[u8], body: &[u8]| {
            let mut c = (body.len() as u32).to_be_bytes().to_vec();
            c.extend_from_slice(kind);
            c.extend_from_slice(body);
            let mut crc = flate2::Crc::new();
            crc.update(&c[4..]);
            c.extend_from_slice(&crc.sum().to_be_bytes());
            c
        };
        let mut ihdr = 100_000u32.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let bomb =
            [b"\x89PNG\r\n\x1a\n".to_vec(), chunk(b"IHDR", &ihdr), chunk(b"IDAT", &[]), chunk(b"IEND", &[])].concat();
        std::fs::write(d.join("bomb.png"), &bomb).unwrap();
        let loaded = load_all(&[d.to_path_buf()], &LoadOptions::default());
        assert_eq!(loaded.images.len(), 1);
        assert!(loaded.images[0].0.ends_with("ok.jpg"));
        let reasons: std::collections::BTreeMap<String, String> = loaded
            .skipped
            .iter()
            .map(|s| (s.path.file_name().unwrap().to_string_lossy().into_owned(), s.reason.clone()))
            .collect();
        assert_eq!(reasons.len(), 5, "{reasons:?}");
        assert_eq!(reasons["empty.jpg"], "empty file");
        assert!(reasons["garbage.png"].contains("not a recognised"), "{reasons:?}");
        assert!(reasons["folder.jpg"].contains("directory"), "{reasons:?}");
        assert!(
            reasons["bomb.png"].contains("decompression bomb") || reasons["bomb.png"].contains("limit"),
            "{reasons:?}"
        );
        assert!(!reasons["truncated.jpg"].is_empty());
        assert!(load_image(&d.join("missing.jpg")).unwrap_err().to_string().contains("missing.jpg"));
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loops_terminate() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("sub/loop")).unwrap();
        sample(4, 4).save(&dir.path().join("sub/x.png")).unwrap();
        let (files, skipped) = list_images(&[dir.path().to_path_buf()]);
        assert_eq!(files.len(), 1);
        assert!(skipped.iter().any(|s| s.reason == "symlink loop"), "{skipped:?}");
    }
}
