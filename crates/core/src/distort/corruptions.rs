//! A corruption suite in the style of ImageNet-C (Hendrycks & Dietterich, ICLR 2019): nine
//! corruptions at five severities each, for small images.
//!
//! Parameters are those of CIFAR-10-C (the small-image version of the benchmark), except JPEG,
//! whose qualities are ImageNet-C's 25, 18, 15, 10, 7. All work on the [0,1] scale and re-quantise
//! to 8 bits; each is deterministic given `(image, seed)`. Specs read `name:severity`
//! (`gaussian_noise:3`).
//!
//! | corruption | severities 1..5 |
//! |---|---|
//! | `gaussian_noise` | σ 0.04, 0.06, 0.08, 0.09, 0.10 |
//! | `shot_noise` | Poisson with λ = x·c, c = 500, 250, 100, 75, 50 |
//! | `impulse_noise` | salt-and-pepper on a share 0.01, 0.02, 0.03, 0.05, 0.07 of samples |
//! | `gaussian_blur` | σ 0.4, 0.6, 0.7, 0.8, 1.0 px |
//! | `defocus_blur` | disk radius 0.3, 0.4, 0.5, 1, 1.5 px, then a 3×3 Gaussian of σ 0.4, 0.5, 0.6, 0.2, 0.1 |
//! | `brightness` | HSV value + 0.05, 0.1, 0.15, 0.2, 0.3 (gray: the value itself) |
//! | `contrast` | (x − mean)·c + mean, c = 0.75, 0.5, 0.4, 0.3, 0.15 |
//! | `pixelate` | box down to c of each side, box back up; c = 0.95, 0.9, 0.85, 0.75, 0.65 |
//! | `jpeg` | quality 25, 18, 15, 10, 7 |

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution as _, Normal, Poisson};

use crate::error::{Error, Result};
use crate::image::resize::{Filter, resize};
use crate::image::{Channels, Image};

/// The corruption families.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    GaussianNoise,
    ShotNoise,
    ImpulseNoise,
    GaussianBlur,
    DefocusBlur,
    Brightness,
    Contrast,
    Pixelate,
    Jpeg,
}

/// Every family, in the order of the report.
pub const ALL: [Kind; 9] = [
    Kind::GaussianNoise,
    Kind::ShotNoise,
    Kind::ImpulseNoise,
    Kind::GaussianBlur,
    Kind::DefocusBlur,
    Kind::Brightness,
    Kind::Contrast,
    Kind::Pixelate,
    Kind::Jpeg,
];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::GaussianNoise => "gaussian_noise",
            Kind::ShotNoise => "shot_noise",
            Kind::ImpulseNoise => "impulse_noise",
            Kind::GaussianBlur => "gaussian_blur",
            Kind::DefocusBlur => "defocus_blur",
            Kind::Brightness => "brightness",
            Kind::Contrast => "contrast",
            Kind::Pixelate => "pixelate",
            Kind::Jpeg => "jpeg",
        }
    }
}

/// One corruption at one severity (1..=5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corruption {
    pub kind: Kind,
    pub severity: u8,
}

impl std::fmt::Display for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind.name(), self.severity)
    }
}

impl std::str::FromStr for Corruption {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: String| Error::Spec { spec: s.to_string(), reason };
        let (name, sev) = s.split_once(':').ok_or_else(|| bad("expected name:severity".into()))?;
        let kind = ALL
            .into_iter()
            .find(|k| k.name() == name.trim())
            .ok_or_else(|| bad(format!("unknown corruption '{name}'")))?;
        let severity: u8 = sev.trim().parse().map_err(|_| bad("severity must be 1..=5".into()))?;
        Corruption::new(kind, severity).map_err(|e| bad(e.to_string()))
    }
}

/// An image operation evaluated like a distortion: a spec to print and a seeded apply. Both the
/// paper's distortions and the corruptions implement it, so one evaluation loop serves both.
pub trait ImageOp: Sync {
    fn spec(&self) -> String;
    fn apply_op(&self, img: &Image, seed: u64) -> Result<Image>;
}

impl ImageOp for Corruption {
    fn spec(&self) -> String {
        self.to_string()
    }
    fn apply_op(&self, img: &Image, seed: u64) -> Result<Image> {
        self.apply(img, seed)
    }
}

impl ImageOp for crate::Distortion {
    fn spec(&self) -> String {
        self.to_string()
    }
    fn apply_op(&self, img: &Image, seed: u64) -> Result<Image> {
        self.apply(img, seed)
    }
}

/// Every corruption at every severity (45).
pub fn suite() -> Vec<Corruption> {
    ALL.into_iter().flat_map(|kind| (1..=5).map(move |severity| Corruption { kind, severity })).collect()
}

fn at<T: Copy>(table: [T; 5], severity: u8) -> T {
    table[(severity - 1) as usize]
}

impl Corruption {
    pub fn new(kind: Kind, severity: u8) -> Result<Self> {
        if !(1..=5).contains(&severity) {
            return Err(Error::Invalid(format!("severity must be 1..=5, got {severity}")));
        }
        Ok(Corruption { kind, severity })
    }

    /// Applies the corruption; `seed` drives the random ones (the noises).
    pub fn apply(&self, img: &Image, seed: u64) -> Result<Image> {
        let s = self.severity;
        let (w, h, ch) = (img.width(), img.height(), img.channels());
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = img.to_f32();
        let out: Vec<f32> =
            match self.kind {
                Kind::GaussianNoise => {
                    let n = Normal::new(0f32, at([0.04, 0.06, 0.08, 0.09, 0.10], s)).expect("valid σ");
                    x.iter().map(|v| v + n.sample(&mut rng)).collect()
                }
                Kind::ShotNoise => {
                    let c = at([500.0f64, 250.0, 100.0, 75.0, 50.0], s);
                    x.iter()
                        .map(|&v| {
                            let lambda = v.clamp(0.0, 1.0) as f64 * c;
                            if lambda <= 0.0 {
                                0.0
                            } else {
                                (Poisson::new(lambda).expect("λ > 0").sample(&mut rng) / c) as f32
                            }
                        })
                        .collect()
                }
                Kind::ImpulseNoise => {
                    let amount = at([0.01f32, 0.02, 0.03, 0.05, 0.07], s);
                    x.iter()
                        .map(|&v| {
                            if rng.random::<f32>() < amount { if rng.random::<bool>() { 1.0 } else { 0.0 } } else { v }
                        })
                        .collect()
                }
                Kind::GaussianBlur => {
                    let k = outer(&gaussian_kernel(at([0.4f32, 0.6, 0.7, 0.8, 1.0], s)));
                    convolve2d(&x, w as usize, h as usize, ch.count(), &k)
                }
                Kind::DefocusBlur => {
                    let (radius, alias) = at([(0.3f32, 0.4f32), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1)], s);
                    let disk = disk_kernel(radius);
                    let blurred = convolve2d(&x, w as usize, h as usize, ch.count(), &disk);
                    convolve2d(&blurred, w as usize, h as usize, ch.count(), &outer(&gaussian_kernel3(alias)))
                }
                Kind::Brightness => {
                    let c = at([0.05f32, 0.1, 0.15, 0.2, 0.3], s);
                    match ch {
                        Channels::Gray => x.iter().map(|v| v + c).collect(),
                        Channels::Rgb => x.chunks(3).flat_map(|p| brighten_hsv(p, c)).collect(),
                    }
                }
                Kind::Contrast => {
                    let c = at([0.75f32, 0.5, 0.4, 0.3, 0.15], s);
                    let mean = x.iter().sum::<f32>() / x.len().max(1) as f32;
                    x.iter().map(|v| (v - mean) * c + mean).collect()
                }
                Kind::Pixelate => {
                    let c = at([0.95f32, 0.9, 0.85, 0.75, 0.65], s);
                    let (sw, sh) = (((w as f32 * c) as u32).max(1), ((h as f32 * c) as u32).max(1));
                    let small = resize(img, sw, sh, Filter::Box)?;
                    return resize(&small, w, h, Filter::Box);
                }
                Kind::Jpeg => return crate::image::jpeg::round_trip(img, at([25, 18, 15, 10, 7], s)),
            };
        Image::from_f32(w, h, ch, &out)
    }
}

/// Normalised 1-D Gaussian of standard deviation `sigma` px, radius ⌈3σ⌉ (at least 1).
fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    let r = (3.0 * sigma).ceil().max(1.0) as i32;
    let k: Vec<f32> = (-r..=r).map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let sum: f32 = k.iter().sum();
    k.into_iter().map(|v| v / sum).collect()
}

/// Normalised 3-tap Gaussian (OpenCV's 3×3 `GaussianBlur` with that σ).
fn gaussian_kernel3(sigma: f32) -> Vec<f32> {
    let e = (-1.0 / (2.0 * sigma * sigma)).exp();
    let sum = 1.0 + 2.0 * e;
    vec![e / sum, 1.0 / sum, e / sum]
}

/// The aliased disk of ImageNet-C's defocus blur: the grid points with x² + y² ≤ r², normalised.
fn disk_kernel(radius: f32) -> (usize, Vec<f32>) {
    let r = radius.ceil().max(1.0) as i32;
    let size = (2 * r + 1) as usize;
    let mut k: Vec<f32> = (-r..=r)
        .flat_map(|y| (-r..=r).map(move |x| if (x * x + y * y) as f32 <= radius * radius { 1.0 } else { 0.0 }))
        .collect();
    let sum: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    (size, k)
}

/// The square 2-D kernel `k kᵀ` of a 1-D kernel, as `(size, weights)`.
fn outer(k: &[f32]) -> (usize, Vec<f32>) {
    (k.len(), k.iter().flat_map(|a| k.iter().map(move |b| a * b)).collect())
}

/// 2-D convolution with a square kernel `(size, weights)`; edges replicate.
fn convolve2d(x: &[f32], w: usize, h: usize, c: usize, kernel: &(usize, Vec<f32>)) -> Vec<f32> {
    let (size, k) = kernel;
    let r = (*size / 2) as isize;
    let clamp = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
    let mut out = vec![0f32; x.len()];
    for y in 0..h {
        for xx in 0..w {
            for ch in 0..c {
                let mut acc = 0.0;
                for ky in 0..*size {
                    for kx in 0..*size {
                        let wv = k[ky * size + kx];
                        if wv != 0.0 {
                            let sy = clamp(y as isize + ky as isize - r, h);
                            let sx = clamp(xx as isize + kx as isize - r, w);
                            acc += wv * x[(sy * w + sx) * c + ch];
                        }
                    }
                }
                out[(y * w + xx) * c + ch] = acc;
            }
        }
    }
    out
}

/// Adds `c` to the HSV value of one RGB pixel (clamped to 1), keeping hue and saturation.
fn brighten_hsv(p: &[f32], c: f32) -> [f32; 3] {
    let (r, g, b) = (p[0].clamp(0.0, 1.0), p[1].clamp(0.0, 1.0), p[2].clamp(0.0, 1.0));
    let v = r.max(g).max(b);
    if v <= 0.0 {
        let nv = c.min(1.0);
        return [nv, nv, nv];
    }
    // Same hue and saturation at a new value: the pixel scales by v'/v.
    let nv = (v + c).min(1.0);
    let f = nv / v;
    [r * f, g * f, b * f]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(w: u32, h: u32, ch: Channels) -> Image {
        let n = (w * h) as usize * ch.count();
        let data = (0..n).map(|i| ((i * 37 + (i / 7) * 11) % 200 + 20) as u8).collect();
        Image::new(w, h, ch, data).unwrap()
    }

    fn mad(a: &Image, b: &Image) -> f64 {
        a.data().iter().zip(b.data()).map(|(&x, &y)| (x as f64 - y as f64).abs()).sum::<f64>() / a.data().len() as f64
    }

    #[test]
    fn every_corruption_keeps_size_is_deterministic_and_grows_with_severity() {
        for ch in [Channels::Gray, Channels::Rgb] {
            let img = sample(28, 28, ch);
            for kind in ALL {
                let mut last = -1.0;
                for severity in 1..=5 {
                    let c = Corruption::new(kind, severity).unwrap();
                    let a = c.apply(&img, 3).unwrap();
                    assert_eq!((a.width(), a.height(), a.channels()), (28, 28, ch));
                    assert_eq!(a, c.apply(&img, 3).unwrap(), "{c} not deterministic");
                    let d = mad(&img, &a);
                    assert!(d > 0.0, "{c} changed nothing");
                    // Allow small non-monotone steps (the defocus table's radius/alias trade-off,
                    // JPEG at neighbouring qualities); the trend must rise.
                    assert!(d >= last * 0.8, "{c}: {d} after {last}");
                    last = last.max(d);
                }
                let d1 = mad(&img, &Corruption::new(kind, 1).unwrap().apply(&img, 3).unwrap());
                assert!(last > d1, "{kind:?}: severity 5 ({last}) not stronger than 1 ({d1})");
            }
        }
    }

    #[test]
    fn known_answers() {
        // Contrast on a two-level image: values move toward the mean by the factor.
        let img = Image::new(2, 1, Channels::Gray, vec![51, 153]).unwrap(); // 0.2, 0.6; mean 0.4
        let c = Corruption::new(Kind::Contrast, 2).unwrap().apply(&img, 0).unwrap(); // c = 0.5
        assert_eq!(c.data(), &[77, 128]); // 0.3 → 76.5 → 77, 0.5 → 127.5 → 128
        // Brightness keeps hue: (0.4, 0.2, 0.0) at v 0.4 + 0.1 → scaled by 1.25.
        let px = Image::new(1, 1, Channels::Rgb, vec![102, 51, 0]).unwrap();
        let b = Corruption::new(Kind::Brightness, 2).unwrap().apply(&px, 0).unwrap();
        assert_eq!(b.data(), &[128, 64, 0]);
        // A flat image is a fixed point of both blurs and of pixelate.
        let flat = Image::filled(9, 7, Channels::Rgb, 90).unwrap();
        for kind in [Kind::GaussianBlur, Kind::DefocusBlur, Kind::Pixelate] {
            assert_eq!(Corruption::new(kind, 5).unwrap().apply(&flat, 0).unwrap(), flat, "{kind:?}");
        }
        // Impulse noise hits about its share of samples, with only 0 or 255.
        let big = Image::filled(100, 100, Channels::Gray, 128).unwrap();
        let out = Corruption::new(Kind::ImpulseNoise, 5).unwrap().apply(&big, 1).unwrap();
        let hit = out.data().iter().filter(|&&v| v != 128).count();
        assert!(out.data().iter().all(|&v| v == 128 || v == 0 || v == 255));
        assert!((hit as f64 / 10_000.0 - 0.07).abs() < 0.01, "{hit}");
        // Shot noise keeps the mean (Poisson is unbiased).
        let out = Corruption::new(Kind::ShotNoise, 5).unwrap().apply(&big, 1).unwrap();
        let mean = out.data().iter().map(|&v| v as f64).sum::<f64>() / 10_000.0;
        assert!((mean - 128.0).abs() < 1.5, "{mean}");
        // Kernels are normalised.
        assert!((gaussian_kernel(0.7).iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(disk_kernel(0.3).1.iter().filter(|&&v| v > 0.0).count(), 1);
        assert_eq!(disk_kernel(1.0).1.iter().filter(|&&v| v > 0.0).count(), 5);
    }

    #[test]
    fn specs_parse_and_print() {
        let c: Corruption = "gaussian_noise:3".parse().unwrap();
        assert_eq!(c, Corruption { kind: Kind::GaussianNoise, severity: 3 });
        assert_eq!(c.to_string(), "gaussian_noise:3");
        assert!("fog:1".parse::<Corruption>().unwrap_err().to_string().contains("unknown corruption 'fog'"));
        assert!("jpeg:6".parse::<Corruption>().unwrap_err().to_string().contains("1..=5"));
        assert_eq!(suite().len(), 45);
    }
}
