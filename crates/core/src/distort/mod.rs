//! Distortions: the suite of the paper's evaluation (JPEG-q, THUMB-s, CROP-o and Gaussian noise,
//! here), how training draws `x'` ([`perturb`]), and the ImageNet-C-style corruption suite
//! ([`corruptions`]).
//!
//! Every distortion maps an 8-bit image to an 8-bit image of the same size and channels, is
//! deterministic given `(image, seed)`, and is re-quantised to 8 bits as a real pipeline would.
//! Specs are written `name:value` (`jpeg:50`, `thumb:30`, `crop:10`, `noise:0.04`) and lists are
//! comma-separated.
//!
//! - `jpeg:q` — encode at quality q (1..=100, libjpeg scaling, 4:2:0 chroma) and decode, through
//!   libjpeg-turbo: see [`crate::image::jpeg`].
//! - `thumb:s` — downscale to s % of each side (0 < s ≤ 100, rounded, at least 1 px) and back up to
//!   the original size, both with the antialiased bicubic (Catmull-Rom) filter, Pillow's default.
//! - `crop:o` — take the `(w−o)×(h−o)` window anchored at one of the four corners (picked by the
//!   seed), so the content shifts by o px along each axis, and resize it back to `w×h` (bicubic).
//! - `noise:σ` — add independent N(0, σ²) to every sample on the [0,1] scale, clamp to [0,1] and
//!   round to 8 bits.
//!
//! The edits near-duplicates meet in the wild ([`edits`] has the details):
//!
//! - `trim:p` — cut p % (0 ≤ p < 90) off each side at a seeded position, resize back: a crop of
//!   part of the picture, where `crop:o` shifts by a few pixels.
//! - `pad:p` — shrink the picture to (100 − p) % of each side (0 ≤ p < 90) inside a solid border
//!   (black, white or grey, by seed).
//! - `rotate:d` — rotate by d degrees (−45 ≤ d ≤ 45, counter-clockwise for d > 0), zoomed so no
//!   corner is empty.
//! - `hflip` — mirror left–right. `gray` — grayscale (ITU-R 601 luma in every channel).
//! - `text:p` — a caption bar of p % of the height (0 < p ≤ 50) with a date stamp or watermark.
//! - `bright:f` (0 ≤ f ≤ 10), `contrast:f` (0 ≤ f ≤ 10), `gamma:g` (0 < g ≤ 10) — tone edits.
//! - `blur:σ` — Gaussian blur of σ px (0 ≤ σ ≤ 50).

pub mod corruptions;
pub mod edits;
pub mod perturb;

use std::fmt;
use std::str::FromStr;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution as _, Normal};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::image::resize::{Filter, resize, resize_region};
use crate::image::{Image, quantize};
use crate::seeds::{CROP_CORNER, item_seed, splitmix64};

/// One distortion with its strength.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Distortion {
    /// JPEG round trip at this quality (1..=100).
    Jpeg { quality: u8 },
    /// Thumbnail to this percentage of each side, then back up.
    Thumb { percent: f32 },
    /// Crop this many pixels off (at a seeded corner), then resize back.
    Crop { offset: u32 },
    /// Additive Gaussian noise with this standard deviation on the [0,1] scale.
    Noise { sigma: f32 },
    /// Cut this percentage off each side (seeded position), resize back.
    Trim { percent: f32 },
    /// A border taking this percentage of each side around the shrunk picture.
    Pad { percent: f32 },
    /// Rotation by this many degrees, counter-clockwise, zoomed to fill.
    Rotate { degrees: f32 },
    /// Mirror left–right.
    Hflip,
    /// A caption bar of this percentage of the height.
    Text { percent: f32 },
    /// Every sample times this factor.
    Bright { factor: f32 },
    /// Distance from the mean gray level times this factor.
    Contrast { factor: f32 },
    /// `255·(v/255)^gamma`.
    Gamma { gamma: f32 },
    /// Grayscale in every channel.
    Gray,
    /// Gaussian blur of this σ in px.
    Blur { sigma: f32 },
}

/// Every family name [`Distortion`] parses, in the order of the docs. `hflip` and `gray` take no
/// value.
pub const FAMILIES: [&str; 14] = [
    "jpeg", "thumb", "crop", "noise", "trim", "pad", "rotate", "hflip", "text", "bright", "contrast", "gamma", "gray",
    "blur",
];

/// The filter used by `thumb` and `crop`.
pub const RESAMPLE_FILTER: Filter = Filter::Bicubic;

impl Distortion {
    /// The family name: `jpeg`, `thumb`, `crop` or `noise`.
    pub fn family(&self) -> &'static str {
        match self {
            Distortion::Jpeg { .. } => "jpeg",
            Distortion::Thumb { .. } => "thumb",
            Distortion::Crop { .. } => "crop",
            Distortion::Noise { .. } => "noise",
            Distortion::Trim { .. } => "trim",
            Distortion::Pad { .. } => "pad",
            Distortion::Rotate { .. } => "rotate",
            Distortion::Hflip => "hflip",
            Distortion::Text { .. } => "text",
            Distortion::Bright { .. } => "bright",
            Distortion::Contrast { .. } => "contrast",
            Distortion::Gamma { .. } => "gamma",
            Distortion::Gray => "gray",
            Distortion::Blur { .. } => "blur",
        }
    }

    /// The distortion of family `family` (one of [`FAMILIES`]) at strength `v` in the unit of its
    /// spec (rounded for `jpeg` and `crop`; ignored by `hflip` and `gray`); `None` for an unknown
    /// family. The value is not range-checked: the parser does that.
    pub fn with_strength(family: &str, v: f64) -> Option<Distortion> {
        let f = v as f32;
        Some(match family {
            "jpeg" => Distortion::Jpeg { quality: v.round().clamp(1.0, 100.0) as u8 },
            "thumb" => Distortion::Thumb { percent: f },
            "crop" => Distortion::Crop { offset: v.round().max(0.0) as u32 },
            "noise" => Distortion::Noise { sigma: f },
            "trim" => Distortion::Trim { percent: f },
            "pad" => Distortion::Pad { percent: f },
            "rotate" => Distortion::Rotate { degrees: f },
            "hflip" => Distortion::Hflip,
            "text" => Distortion::Text { percent: f },
            "bright" => Distortion::Bright { factor: f },
            "contrast" => Distortion::Contrast { factor: f },
            "gamma" => Distortion::Gamma { gamma: f },
            "gray" => Distortion::Gray,
            "blur" => Distortion::Blur { sigma: f },
            _ => return None,
        })
    }

    /// The strength, in the unit of the spec (`None` for `hflip` and `gray`).
    pub fn strength(&self) -> Option<f64> {
        match *self {
            Distortion::Jpeg { quality } => Some(quality as f64),
            Distortion::Crop { offset } => Some(offset as f64),
            _ => self.float_strength().map(f64::from),
        }
    }

    /// The strength of a family measured in a real number (all but `jpeg`, `crop`, `hflip`, `gray`).
    fn float_strength(&self) -> Option<f32> {
        match *self {
            Distortion::Thumb { percent: v }
            | Distortion::Noise { sigma: v }
            | Distortion::Trim { percent: v }
            | Distortion::Pad { percent: v }
            | Distortion::Rotate { degrees: v }
            | Distortion::Text { percent: v }
            | Distortion::Bright { factor: v }
            | Distortion::Contrast { factor: v }
            | Distortion::Gamma { gamma: v }
            | Distortion::Blur { sigma: v } => Some(v),
            Distortion::Jpeg { .. } | Distortion::Crop { .. } | Distortion::Hflip | Distortion::Gray => None,
        }
    }

    /// Applies the distortion to one image. `seed` drives the random parts (crop corner, noise).
    pub fn apply(&self, img: &Image, seed: u64) -> Result<Image> {
        match *self {
            Distortion::Jpeg { quality } => crate::image::jpeg::round_trip(img, quality),
            Distortion::Thumb { percent } => {
                let scale = |side: u32| ((side as f64 * percent as f64 / 100.0).round() as u32).max(1);
                let small = resize(img, scale(img.width()), scale(img.height()), RESAMPLE_FILTER)?;
                resize(&small, img.width(), img.height(), RESAMPLE_FILTER)
            }
            Distortion::Crop { offset } => {
                if offset == 0 {
                    return Ok(img.clone());
                }
                if offset >= img.width() || offset >= img.height() {
                    return Err(Error::Invalid(format!(
                        "crop:{offset} needs an image larger than {offset} px on each side, got {}x{}",
                        img.width(),
                        img.height()
                    )));
                }
                let (left, top) = crop_corner(offset, seed);
                let window = (left as f64, top as f64, (img.width() - offset) as f64, (img.height() - offset) as f64);
                resize_region(img, Some(window), img.width(), img.height(), RESAMPLE_FILTER)
            }
            Distortion::Noise { sigma } => {
                let mut out = img.clone();
                if sigma == 0.0 {
                    return Ok(out);
                }
                let normal = Normal::new(0.0f32, sigma).map_err(|e| Error::Invalid(e.to_string()))?;
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                for v in out.data_mut() {
                    *v = quantize(*v as f32 / 255.0 + normal.sample(&mut rng));
                }
                Ok(out)
            }
            Distortion::Trim { percent } => edits::trim(img, percent, seed),
            Distortion::Pad { percent } => edits::pad(img, percent, seed),
            Distortion::Rotate { degrees } => edits::rotate(img, degrees),
            Distortion::Hflip => Ok(edits::hflip(img)),
            Distortion::Text { percent } => edits::text(img, percent, seed),
            Distortion::Bright { factor } => Ok(edits::brightness(img, factor)),
            Distortion::Contrast { factor } => Ok(edits::contrast(img, factor)),
            Distortion::Gamma { gamma } => Ok(edits::gamma(img, gamma)),
            Distortion::Gray => Ok(edits::grayscale(img)),
            Distortion::Blur { sigma } => edits::blur(img, sigma),
        }
    }

    /// Applies the distortion to a batch in parallel. Image `i` gets seed `item_seed(seed, i)`, so
    /// the result does not depend on the number of threads.
    pub fn apply_batch(&self, images: &[Image], seed: u64) -> Result<Vec<Image>> {
        images.par_iter().enumerate().map(|(i, img)| self.apply(img, item_seed(seed, i as u64))).collect()
    }
}

/// The top-left corner of the `crop:o` window: one of (0,0), (o,0), (0,o), (o,o), by seed.
pub fn crop_corner(offset: u32, seed: u64) -> (u32, u32) {
    let k = splitmix64(seed ^ CROP_CORNER) & 3;
    ((k & 1) as u32 * offset, (k >> 1) as u32 * offset)
}

impl fmt::Display for Distortion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.float_strength()) {
            (Distortion::Jpeg { quality }, _) => write!(f, "jpeg:{quality}"),
            (Distortion::Crop { offset }, _) => write!(f, "crop:{offset}"),
            (_, Some(v)) => write!(f, "{}:{v}", self.family()),
            (_, None) => f.write_str(self.family()),
        }
    }
}

impl FromStr for Distortion {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Self> {
        let bad = |reason: String| Error::Spec { spec: spec.to_string(), reason };
        let trimmed = spec.trim();
        match trimmed.to_ascii_lowercase().as_str() {
            "hflip" => return Ok(Distortion::Hflip),
            "gray" | "grey" => return Ok(Distortion::Gray),
            _ => {}
        }
        let (name, value) = trimmed.split_once(':').ok_or_else(|| {
            bad("expected name:value, e.g. jpeg:50, thumb:30, crop:10, noise:0.04, trim:15, pad:20, rotate:5, hflip".into())
        })?;
        let value = value.trim();
        let number = |what: &str| -> Result<f64> {
            let v: f64 = value.parse().map_err(|_| bad(format!("{what} '{value}' is not a number")))?;
            if v.is_finite() { Ok(v) } else { Err(bad(format!("{what} must be finite"))) }
        };
        // A percentage, factor or σ within [lo, hi] (an open end where `open_lo`/`open_hi`).
        let within = |what: &str, lo: f64, hi: f64, open_lo: bool, open_hi: bool| -> Result<f32> {
            let v = number(what)?;
            let ok = (if open_lo { v > lo } else { v >= lo }) && (if open_hi { v < hi } else { v <= hi });
            if ok {
                Ok(v as f32)
            } else {
                let (l, r) = (if open_lo { "(" } else { "[" }, if open_hi { ")" } else { "]" });
                Err(bad(format!("{what} must be in {l}{lo}, {hi}{r}")))
            }
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "jpeg" => {
                let q = number("quality")?;
                if q.fract() != 0.0 || !(1.0..=100.0).contains(&q) {
                    return Err(bad("JPEG quality must be an integer in 1..=100".into()));
                }
                Ok(Distortion::Jpeg { quality: q as u8 })
            }
            "thumb" => {
                let s = number("scale")?;
                if !(s > 0.0 && s <= 100.0) {
                    return Err(bad("thumbnail scale is a percentage in (0, 100]".into()));
                }
                Ok(Distortion::Thumb { percent: s as f32 })
            }
            "crop" => {
                let o = number("offset")?;
                if o.fract() != 0.0 || !(0.0..=1_000_000.0).contains(&o) {
                    return Err(bad("crop offset is a whole number of pixels ≥ 0".into()));
                }
                Ok(Distortion::Crop { offset: o as u32 })
            }
            "noise" => {
                let s = number("sigma")?;
                if !(0.0..=1.0).contains(&s) {
                    return Err(bad("noise sigma is on the [0,1] pixel scale: 0 ≤ σ ≤ 1".into()));
                }
                Ok(Distortion::Noise { sigma: s as f32 })
            }
            "trim" => Ok(Distortion::Trim { percent: within("trim share (%)", 0.0, 90.0, false, true)? }),
            "pad" => Ok(Distortion::Pad { percent: within("border share (%)", 0.0, 90.0, false, true)? }),
            "rotate" => Ok(Distortion::Rotate { degrees: within("rotation (degrees)", -45.0, 45.0, false, false)? }),
            "text" => Ok(Distortion::Text { percent: within("caption bar height (%)", 0.0, 50.0, true, false)? }),
            "bright" => Ok(Distortion::Bright { factor: within("brightness factor", 0.0, 10.0, false, false)? }),
            "contrast" => Ok(Distortion::Contrast { factor: within("contrast factor", 0.0, 10.0, false, false)? }),
            "gamma" => Ok(Distortion::Gamma { gamma: within("gamma", 0.0, 10.0, true, false)? }),
            "blur" => Ok(Distortion::Blur { sigma: within("blur sigma (px)", 0.0, 50.0, false, false)? }),
            "hflip" | "gray" | "grey" => Err(bad(format!("{name} takes no value: write '{name}'"))),
            other => Err(bad(format!("unknown distortion '{other}' (known: {})", FAMILIES.join(", ")))),
        }
    }
}

impl From<Distortion> for String {
    fn from(d: Distortion) -> String {
        d.to_string()
    }
}

impl TryFrom<String> for Distortion {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

/// Parses a comma-separated list of specs (`jpeg:10,thumb:30,noise:0.1`); empty items are errors.
pub fn parse_list(specs: &str) -> Result<Vec<Distortion>> {
    specs.split(',').map(|s| s.parse()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::metrics::mse;
    use crate::image::Channels;

    fn textured(w: u32, h: u32, channels: Channels) -> Image {
        let mut data = Vec::with_capacity((w * h) as usize * channels.count());
        for y in 0..h {
            for x in 0..w {
                for c in 0..channels.count() {
                    let v = (x * 7 + y * 13 + c as u32 * 50 + (x * y) % 17) % 256;
                    data.push(v as u8);
                }
            }
        }
        Image::new(w, h, channels, data).unwrap()
    }

    fn all() -> Vec<Distortion> {
        parse_list(
            "jpeg:10,jpeg:50,thumb:30,thumb:50,crop:2,crop:4,noise:0.05,noise:0.1,trim:15,pad:20,rotate:5,rotate:-3,\
             hflip,text:15,bright:1.3,contrast:0.6,gamma:1.5,gray,blur:1.5",
        )
        .unwrap()
    }

    #[test]
    fn parser_round_trips_and_rejects_bad_specs() {
        for d in all() {
            assert_eq!(d.to_string().parse::<Distortion>().unwrap(), d);
        }
        assert_eq!("JPEG:50".parse::<Distortion>().unwrap(), Distortion::Jpeg { quality: 50 });
        assert_eq!(" noise:0.04 ".parse::<Distortion>().unwrap(), Distortion::Noise { sigma: 0.04 });
        for bad in [
            "jpeg",
            "jpeg:",
            "jpeg:0",
            "jpeg:101",
            "jpeg:50.5",
            "thumb:0",
            "thumb:150",
            "crop:-1",
            "crop:2.5",
            "noise:-0.1",
            "noise:2",
            "noise:nan",
            "fog:3",
            "trim:90",
            "pad:-1",
            "rotate:46",
            "text:0",
            "gamma:0",
            "blur:51",
            "hflip:1",
            "bright:x",
            "",
            "jpeg:abc",
        ] {
            let err = bad.parse::<Distortion>().unwrap_err().to_string();
            assert!(err.starts_with("bad distortion spec"), "{bad}: {err}");
        }
        assert!(parse_list("jpeg:10,,noise:0.1").is_err());
        let json = serde_json::to_string(&Distortion::Thumb { percent: 30.0 }).unwrap();
        assert_eq!(json, "\"thumb:30\"");
    }

    #[test]
    fn every_distortion_keeps_shape_and_is_deterministic() {
        for ch in [Channels::Gray, Channels::Rgb] {
            let img = textured(37, 29, ch);
            for d in all() {
                let a = d.apply(&img, 7).unwrap();
                assert_eq!((a.width(), a.height(), a.channels()), (37, 29, ch), "{d}");
                assert_eq!(a, d.apply(&img, 7).unwrap(), "{d} not deterministic");
                // Every distortion here changes a textured image (but `gray` of a gray one).
                if !(d == Distortion::Gray && ch == Channels::Gray) {
                    assert!(mse(&img, &a).unwrap() > 0.5, "{d} did nothing");
                }
            }
        }
    }

    #[test]
    fn the_extremes_of_every_range_work_on_tiny_images() {
        let extremes = "trim:89.9,pad:89.9,rotate:45,rotate:-45,text:50,text:0.1,bright:0,bright:10,contrast:0,\
                        contrast:10,gamma:0.01,gamma:10,blur:50,blur:0.1,hflip,gray";
        for (w, h) in [(1, 1), (2, 1), (16, 12), (3, 40)] {
            for ch in [Channels::Gray, Channels::Rgb] {
                let img = textured(w, h, ch);
                for d in parse_list(extremes).unwrap() {
                    let out = d.apply(&img, 5).unwrap_or_else(|e| panic!("{d} on {w}x{h}: {e}"));
                    assert_eq!((out.width(), out.height(), out.channels()), (w, h, ch), "{d}");
                }
            }
        }
    }

    #[test]
    fn batch_equals_items_with_derived_seeds() {
        let imgs: Vec<Image> = (0..9).map(|i| textured(20 + i, 16, Channels::Rgb)).collect();
        for d in all() {
            let batch = d.apply_batch(&imgs, 42).unwrap();
            for (i, (img, out)) in imgs.iter().zip(&batch).enumerate() {
                assert_eq!(out, &d.apply(img, item_seed(42, i as u64)).unwrap(), "{d} item {i}");
            }
        }
    }

    #[test]
    fn jpeg_is_the_codec_round_trip() {
        let img = textured(32, 32, Channels::Rgb);
        let d: Distortion = "jpeg:30".parse().unwrap();
        assert_eq!(d.apply(&img, 0).unwrap(), crate::image::jpeg::round_trip(&img, 30).unwrap());
        // Lower quality, more error.
        let e10 = mse(&img, &"jpeg:10".parse::<Distortion>().unwrap().apply(&img, 0).unwrap()).unwrap();
        let e90 = mse(&img, &"jpeg:90".parse::<Distortion>().unwrap().apply(&img, 0).unwrap()).unwrap();
        assert!(e10 > 2.5 * e90, "q10 {e10} vs q90 {e90}");
    }

    #[test]
    fn thumb_blurs_a_checkerboard_to_its_mean() {
        // A 1-px checkerboard has no energy below Nyquist: at 50 % it averages to mid-grey, and the
        // upscale keeps it grey. Interior pixels (away from edge effects) end within ±3 of 127.5.
        let (w, h) = (32u32, 32u32);
        let data = (0..h).flat_map(|y| (0..w).map(move |x| if (x + y) % 2 == 0 { 0 } else { 255 })).collect();
        let img = Image::new(w, h, Channels::Gray, data).unwrap();
        let out = Distortion::Thumb { percent: 50.0 }.apply(&img, 0).unwrap();
        for y in 4..h - 4 {
            for x in 4..w - 4 {
                let v = out.get(x, y, 0) as f64;
                assert!((v - 127.5).abs() <= 3.0, "({x},{y}) = {v}");
            }
        }
        // thumb:100 is the identity.
        assert_eq!(Distortion::Thumb { percent: 100.0 }.apply(&img, 0).unwrap(), img);
    }

    #[test]
    fn crop_shifts_content_from_the_seeded_corner() {
        // Horizontal ramp v = 4x. A window anchored at left = 0 starts at value ~0, one anchored at
        // left = 16 starts at ~64; resizing 48 columns back to 64 keeps those first values.
        let (w, h) = (64u32, 64u32);
        let data = (0..h).flat_map(|_| (0..w).map(|x| (4 * x) as u8)).collect();
        let img = Image::new(w, h, Channels::Gray, data).unwrap();
        let mut seen = [false; 2];
        for seed in 0..32 {
            let (left, _) = crop_corner(16, seed);
            let out = Distortion::Crop { offset: 16 }.apply(&img, seed).unwrap();
            let first = out.get(0, 32, 0) as i32;
            let expected = if left == 0 { 1 } else { 65 };
            assert!((first - expected).abs() <= 3, "seed {seed}: left {left}, first column {first}");
            // The last column is the window's last: 4·47 = 188 or 4·63 = 252 (±3).
            let last = out.get(63, 32, 0) as i32;
            assert!((last - (expected + 188 - 1)).abs() <= 4, "seed {seed}: last column {last}");
            seen[(left != 0) as usize] = true;
        }
        assert_eq!(seen, [true, true], "both horizontal anchors occur over 32 seeds");
        assert!(Distortion::Crop { offset: 64 }.apply(&img, 0).is_err());
        assert_eq!(Distortion::Crop { offset: 0 }.apply(&img, 0).unwrap(), img);
    }

    #[test]
    fn noise_has_the_requested_sigma() {
        // Mid-grey, so clamping never bites: the residual is N(0, σ²) quantised to 1/255 steps.
        let img = Image::filled(256, 256, Channels::Rgb, 128).unwrap();
        let out = Distortion::Noise { sigma: 0.1 }.apply(&img, 3).unwrap();
        let diffs: Vec<f64> = img.data().iter().zip(out.data()).map(|(&a, &b)| (b as f64 - a as f64) / 255.0).collect();
        let n = diffs.len() as f64;
        let mean = diffs.iter().sum::<f64>() / n;
        let std = (diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(mean.abs() < 0.002, "mean {mean}");
        assert!((std - 0.1).abs() < 0.002, "std {std}");
        assert_ne!(out, Distortion::Noise { sigma: 0.1 }.apply(&img, 4).unwrap(), "seed must matter");
        // At black, clamping folds the negative half onto 0: the mean rises to σ/√(2π) ≈ 0.0399.
        let black = Image::filled(256, 256, Channels::Gray, 0).unwrap();
        let out = Distortion::Noise { sigma: 0.1 }.apply(&black, 3).unwrap();
        let mean = out.data().iter().map(|&v| v as f64 / 255.0).sum::<f64>() / out.data().len() as f64;
        assert!((mean - 0.0399).abs() < 0.002, "mean at black {mean}");
        assert_eq!(Distortion::Noise { sigma: 0.0 }.apply(&img, 3).unwrap(), img);
    }
}
