//! How the perturbed training copy `x'` is drawn (`--perturb`).
//!
//! - `noise:σ` — the paper's `x' = x + ε`, `ε ~ N(0, σ²)` per pixel on the [0,1] scale, added to
//!   the float pixels and not re-quantised. The training loops draw this noise themselves;
//!   [`Perturbation::paper_sigma`] says when.
//! - a **mix of real distortions with ranges**, e.g. `jpeg:10-90,thumb:25-75,crop:0-8,noise:0-0.1`:
//!   for every image, one of the listed families is picked uniformly, its strength uniformly in
//!   its range (integers for `jpeg` and `crop`), and the distortion is applied to the 8-bit image
//!   as in evaluation ([`Distortion::apply`]). A family given with one value (`jpeg:50`) has that
//!   strength; a list with more than one item, or any family other than noise, is a mix. Every
//!   distortion family can be listed, the in-the-wild edits too (`trim:5-25,pad:10-30,rotate:0-5,
//!   hflip,text:8-15,gray`); `rotate` draws a random sign, `hflip` and `gray` take no value.
//!   A family may carry a weight, `trim:5-35@3`: it is then picked 3 times as often as a family
//!   of weight 1 (the default). Mixes without weights draw exactly as before weights existed.
//!
//! A draw is deterministic in `(image, seed)`.

use std::fmt;
use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::distort::{Distortion, FAMILIES};
use crate::error::{Error, Result};
use crate::image::Image;
use crate::seeds::{PERTURB_DRAW, item_seed};

/// The families that take no strength.
const VALUELESS: [&str; 2] = ["hflip", "gray"];

/// One family of a mix with its strength range (inclusive).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FamilyRange {
    /// One of [`crate::distort::FAMILIES`].
    pub family: &'static str,
    pub lo: f64,
    pub hi: f64,
    /// Relative chance of being picked (`@w`; 1 when not given).
    pub weight: f64,
}

/// How `x'` is drawn; see the module docs.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Perturbation {
    /// The paper's additive float noise with this σ.
    Noise { sigma: f64 },
    /// Real distortions, one family per image.
    Mix(Vec<FamilyRange>),
}

impl Perturbation {
    /// σ when this is the paper's additive noise, else `None`.
    pub fn paper_sigma(&self) -> Option<f64> {
        match self {
            Perturbation::Noise { sigma } => Some(*sigma),
            Perturbation::Mix(_) => None,
        }
    }

    /// The distortion drawn for seed `seed` (a mix), or `None` for the paper's noise.
    pub fn draw(&self, seed: u64) -> Option<Distortion> {
        let Perturbation::Mix(families) = self else { return None };
        let mut rng = ChaCha8Rng::seed_from_u64(item_seed(seed, PERTURB_DRAW));
        let f = if families.iter().all(|f| f.weight == 1.0) {
            families[rng.random_range(0..families.len())]
        } else {
            let total: f64 = families.iter().map(|f| f.weight).sum();
            let mut u = rng.random::<f64>() * total;
            *families
                .iter()
                .find(|f| {
                    u -= f.weight;
                    u < 0.0
                })
                .unwrap_or(&families[families.len() - 1])
        };
        let u: f64 = rng.random();
        let mut v = f.lo + u * (f.hi - f.lo);
        if f.family == "rotate" && rng.random_bool(0.5) {
            v = -v;
        }
        Some(Distortion::with_strength(f.family, v).expect("parsed families are known"))
    }

    /// `x'` of one 8-bit image for a mix (the paper's noise is applied to float pixels by the
    /// training loops; here it is quantised like the `noise:σ` distortion).
    pub fn apply(&self, img: &Image, seed: u64) -> Result<Image> {
        match self.draw(seed) {
            Some(d) => d.apply(img, item_seed(seed, 1)),
            None => Distortion::Noise { sigma: self.paper_sigma().unwrap_or(0.0) as f32 }.apply(img, seed),
        }
    }

    /// Whether `draw` can return a crop larger than `side` px allows.
    pub fn check_side(&self, side: u32) -> Result<()> {
        if let Perturbation::Mix(fs) = self {
            for f in fs {
                if f.family == "crop" && f.hi.round() as u32 >= side {
                    return Err(Error::Invalid(format!(
                        "--perturb crop:{}-{} needs images larger than {} px; these are {side} px",
                        f.lo, f.hi, f.hi
                    )));
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for Perturbation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Perturbation::Noise { sigma } => write!(f, "noise:{sigma}"),
            Perturbation::Mix(fs) => {
                let items: Vec<String> = fs
                    .iter()
                    .map(|r| {
                        let item = if VALUELESS.contains(&r.family) {
                            r.family.to_string()
                        } else if r.lo == r.hi {
                            format!("{}:{}", r.family, r.lo)
                        } else {
                            format!("{}:{}-{}", r.family, r.lo, r.hi)
                        };
                        if r.weight == 1.0 { item } else { format!("{item}@{}", r.weight) }
                    })
                    .collect();
                f.write_str(&items.join(","))
            }
        }
    }
}

impl FromStr for Perturbation {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Self> {
        let bad = |reason: String| Error::Spec { spec: spec.to_string(), reason };
        let mut families = Vec::new();
        for item in spec.split(',') {
            let (item, weight) = match item.split_once('@') {
                Some((item, w)) => {
                    let w: f64 =
                        w.trim().parse().ok().filter(|w: &f64| w.is_finite() && *w > 0.0 && *w <= 1000.0).ok_or_else(
                            || bad(format!("weight '{}' of {} is not a number in (0, 1000]", w.trim(), item.trim())),
                        )?;
                    (item.trim(), w)
                }
                None => (item.trim(), 1.0),
            };
            let (name, value) = match item.split_once(':') {
                Some((n, v)) => (n.trim().to_ascii_lowercase(), Some(v.trim())),
                None => (item.to_ascii_lowercase(), None),
            };
            let name = if name == "grey" { "gray".to_string() } else { name };
            let family: &'static str = FAMILIES.iter().copied().find(|f| *f == name).ok_or_else(|| {
                if name.is_empty() {
                    bad("expected family:value or family:lo-hi, e.g. noise:0.04 or jpeg:10-90,thumb:25-75,crop:0-8"
                        .into())
                } else {
                    bad(format!("unknown family '{name}' (known: {})", FAMILIES.join(", ")))
                }
            })?;
            let (lo, hi) = match (VALUELESS.contains(&family), value) {
                (true, None) => (0.0, 0.0),
                (true, Some(_)) => return Err(bad(format!("{family} takes no value: write '{family}'"))),
                (false, None) => return Err(bad(format!("{family} needs a value or a range, e.g. {family}:lo-hi"))),
                (false, Some(value)) => {
                    let (lo, hi) = match value.split_once('-') {
                        Some((a, b)) => (a.trim(), b.trim()),
                        None => (value, value),
                    };
                    // Each end must be a valid distortion on its own (the same checks as `--spec`).
                    let end = |v: &str| -> Result<f64> {
                        Distortion::from_str(&format!("{family}:{v}"))?;
                        Ok(v.parse().expect("checked by the distortion parser"))
                    };
                    (end(lo)?, end(hi)?)
                }
            };
            if lo > hi {
                return Err(bad(format!("range {lo}-{hi} of {family} is reversed")));
            }
            if families.iter().any(|f: &FamilyRange| f.family == family) {
                return Err(bad(format!("{family} is listed twice")));
            }
            families.push(FamilyRange { family, lo, hi, weight });
        }
        if families.len() == 1 && families[0].weight != 1.0 {
            return Err(bad("a weight sets how often a family is drawn among several: list more than one".into()));
        }
        match families.as_slice() {
            [FamilyRange { family: "noise", lo, hi, weight: _ }] if lo == hi => Ok(Perturbation::Noise { sigma: *lo }),
            _ => Ok(Perturbation::Mix(families)),
        }
    }
}

impl From<Perturbation> for String {
    fn from(p: Perturbation) -> String {
        p.to_string()
    }
}

impl TryFrom<String> for Perturbation {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Channels;

    #[test]
    fn specs_parse_print_back_and_bad_ones_are_refused() {
        assert_eq!("noise:0.04".parse::<Perturbation>().unwrap(), Perturbation::Noise { sigma: 0.04 });
        let mix: Perturbation = "jpeg:10-90, thumb:25-75,crop:0-8,noise:0-0.1".parse().unwrap();
        assert_eq!(mix.to_string(), "jpeg:10-90,thumb:25-75,crop:0-8,noise:0-0.1");
        assert_eq!(mix.to_string().parse::<Perturbation>().unwrap(), mix);
        assert_eq!(mix.paper_sigma(), None);
        // One fixed real distortion is a (one-item) mix; a noise range too.
        assert!(matches!("jpeg:50".parse::<Perturbation>().unwrap(), Perturbation::Mix(_)));
        assert!(matches!("noise:0-0.1".parse::<Perturbation>().unwrap(), Perturbation::Mix(_)));
        for bad in [
            "",
            "jpeg",
            "jpeg:0-50",
            "jpeg:90-10",
            "fog:1-2",
            "thumb:0-50",
            "noise:0-2",
            "jpeg:10,jpeg:20",
            "crop:1.5-3",
            "trim:5-25@0",
            "trim:5-25@-1",
            "trim:5-25@x",
            "gray@",
            "trim:5-35@3",
            "noise:0.05@2",
        ] {
            assert!(bad.parse::<Perturbation>().is_err(), "{bad} should be refused");
        }
        let json = serde_json::to_string(&mix).unwrap();
        assert_eq!(serde_json::from_str::<Perturbation>(&json).unwrap(), mix);
    }

    #[test]
    fn weights_set_how_often_a_family_is_drawn() {
        let mix: Perturbation = "trim:5-35@3, gray,hflip@1".parse().unwrap();
        assert_eq!(mix.to_string(), "trim:5-35@3,gray,hflip");
        assert_eq!(mix.to_string().parse::<Perturbation>().unwrap(), mix);
        let n = 6000u64;
        let trims = (0..n).filter(|&s| matches!(mix.draw(s), Some(Distortion::Trim { .. }))).count();
        let grays = (0..n).filter(|&s| mix.draw(s) == Some(Distortion::Gray)).count();
        // Expected 3/5 and 1/5 of the draws; 5 standard deviations of slack.
        assert!((3600 - 190..=3600 + 190).contains(&trims), "{trims}");
        assert!((1200 - 155..=1200 + 155).contains(&grays), "{grays}");
        // A weight of 1 is no weight: the same mix, written without it.
        let ones: Perturbation = "jpeg:10-90@1,thumb:25-75@1,gray@1".parse().unwrap();
        assert_eq!(ones.to_string(), "jpeg:10-90,thumb:25-75,gray");
    }

    #[test]
    fn draws_cover_every_family_within_range_and_are_seeded() {
        let mix: Perturbation = "jpeg:10-90,thumb:25-75,crop:0-8,noise:0-0.1".parse().unwrap();
        let mut seen = std::collections::HashSet::new();
        for s in 0..400u64 {
            let d = mix.draw(s).unwrap();
            assert_eq!(mix.draw(s), Some(d));
            match d {
                Distortion::Jpeg { quality } => assert!((10..=90).contains(&quality)),
                Distortion::Thumb { percent } => assert!((25.0..=75.0).contains(&percent)),
                Distortion::Crop { offset } => assert!(offset <= 8),
                Distortion::Noise { sigma } => assert!((0.0..=0.1).contains(&sigma)),
                other => panic!("{other} is not in the mix"),
            }
            seen.insert(d.family());
        }
        assert_eq!(seen.len(), 4);
        assert_eq!(Perturbation::Noise { sigma: 0.1 }.draw(3), None);
    }

    #[test]
    fn the_in_the_wild_edits_mix_with_signed_rotations_and_valueless_families() {
        assert!("hflip,gray,Grey".parse::<Perturbation>().is_err(), "gray listed twice");
        let mix: Perturbation = "trim:5-25,pad:10-30,rotate:1-5,hflip,text:8-15,gray".parse().unwrap();
        assert_eq!(mix.to_string(), "trim:5-25,pad:10-30,rotate:1-5,hflip,text:8-15,gray");
        assert_eq!(mix.to_string().parse::<Perturbation>().unwrap(), mix);
        let (mut signs, mut seen) = ([false; 2], std::collections::HashSet::new());
        for s in 0..600u64 {
            let d = mix.draw(s).unwrap();
            match d {
                Distortion::Trim { percent } => assert!((5.0..=25.0).contains(&percent)),
                Distortion::Pad { percent } => assert!((10.0..=30.0).contains(&percent)),
                Distortion::Rotate { degrees } => {
                    assert!((1.0..=5.0).contains(&degrees.abs()), "{degrees}");
                    signs[(degrees > 0.0) as usize] = true;
                }
                Distortion::Text { percent } => assert!((8.0..=15.0).contains(&percent)),
                Distortion::Hflip | Distortion::Gray => {}
                other => panic!("{other} is not in the mix"),
            }
            seen.insert(d.family());
        }
        assert_eq!(seen.len(), 6);
        assert_eq!(signs, [true, true], "rotations go both ways");
        for bad in ["hflip:1", "trim", "rotate:50", "pad:5-95", "sepia:1"] {
            assert!(bad.parse::<Perturbation>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn apply_changes_the_image_and_checks_crop_sizes() {
        let img = Image::new(28, 28, Channels::Gray, (0..784).map(|i| (i * 37 % 256) as u8).collect()).unwrap();
        let mix: Perturbation = "jpeg:10-20".parse().unwrap();
        let a = mix.apply(&img, 7).unwrap();
        assert_eq!((a.width(), a.height()), (28, 28));
        assert_ne!(a, img);
        assert_eq!(mix.apply(&img, 7).unwrap(), a);
        assert!("crop:0-30".parse::<Perturbation>().unwrap().check_side(28).is_err());
        assert!("crop:0-8".parse::<Perturbation>().unwrap().check_side(28).is_ok());
    }
}
