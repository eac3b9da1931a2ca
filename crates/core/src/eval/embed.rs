//! Evaluation of an embedding (framework-free: the caller supplies the descriptors) run on the held-out photos, as in the paper (Figs. 4 and 5):
//! near-duplicate detection by thresholding a distance, and triplet ranking with distorted
//! queries, for the fine-tuned model and, in the same protocol, for the pretrained features
//! and for perceptual hashes.
//!
//! **Protocol.** Evaluation images are the [`EVAL_CROPS`](crate::data::crops::EVAL_CROPS)
//! corner crops of every test photo at the model's input size. For a distortion d:
//! - near-duplicate pairs: `(x_i, d(x_i))` for every evaluation image i;
//! - distinct pairs: `(x_i, d(x_j))` for every i, j from *different* photos (the distorted side
//!   is distorted in both kinds, so "is the second image distorted" tells nothing);
//! - detection: "duplicate iff D ≤ t" swept over t → PR curve, AP, precision at recall 0.9,
//!   recall at precision 0.99 ([`crate::eval::retrieval`]); `pooled` puts every distortion's
//!   pairs into one experiment;
//! - ranking: [`TRIPLETS_PER_PHOTO`] held-out triplets per test photo (rule in
//!   [`crate::data::crops`]), accuracy = share with `D(d(q), p) < D(d(q), n)`.
//!
//! Distances: L2 between unit embeddings (fine-tuned: 128-d; pretrained: pooled 1280-d
//! ImageNet features, L2-normalised), Hamming bits between 64-bit hashes.

use crate::data::crops::{Photo, Triplet, sample_triplet};
use crate::eval::fusion::{FusePairs, FuseRule};
use crate::eval::retrieval::{PrPoint, detection, pr_curve, thin};
use crate::image::hash::{HashKind, PerceptualHash};
use crate::image::regions::RegionSource;
use crate::seeds::{EVAL_QUERY_STREAM, EVAL_STREAM, item_seed};
use crate::{Distortion, Image, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The distortions `eval embed` measures when none are given: the paper's (JPEG-q, THUMB, CROP,
/// noise) and the edits near-duplicates meet in the wild (a crop of part of the side, a border, a
/// rotation, a mirror, a caption, grayscale, blur, contrast).
pub const DEFAULT_DISTORTIONS: &str = "jpeg:50,jpeg:10,thumb:30,thumb:50,crop:10,noise:0.05,trim:15,trim:25,pad:20,rotate:5,hflip,text:12,gray,blur:1.5,contrast:0.6";

/// Held-out ranking triplets drawn per test photo.
pub const TRIPLETS_PER_PHOTO: usize = 4;
/// Distinct-pair distances kept in the JSON per distortion (an evenly spaced sample of the sorted
/// list; the metrics use all of them).
pub const DISTINCT_SAMPLE: usize = 2000;
/// Points kept of each PR curve in the JSON.
pub const CURVE_POINTS: usize = 200;

/// The images an evaluation runs on (the same for every method).
pub struct EvalSet {
    /// Clean evaluation crops.
    pub clean: Vec<Image>,
    /// Test-photo index of each clean crop.
    pub photo_of: Vec<usize>,
    /// `distorted[d][i]` = distortion d applied to `clean[i]`.
    pub distorted: Vec<Vec<Image>>,
    /// Ranking triplets: queries, positives, negatives, and `queries_distorted[d]`.
    pub queries: Vec<Image>,
    pub positives: Vec<Image>,
    pub negatives: Vec<Image>,
    pub queries_distorted: Vec<Vec<Image>>,
    pub distortions: Vec<Distortion>,
}

impl EvalSet {
    /// Builds the set from the test photos (`photos[i]` for `i` in `test`).
    pub fn build(photos: &[Photo], test: &[usize], size: u32, distortions: &[Distortion], seed: u64) -> Result<Self> {
        let mut clean = Vec::new();
        let mut photo_of = Vec::new();
        for &i in test {
            for c in photos[i].eval_crops() {
                clean.push(photos[i].render(c, size)?);
                photo_of.push(i);
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(item_seed(seed ^ EVAL_STREAM, 0));
        let triplets: Vec<Triplet> =
            test.iter().flat_map(|_| 0..TRIPLETS_PER_PHOTO).map(|_| sample_triplet(photos, test, &mut rng)).collect();
        let rendered: Vec<[Image; 3]> =
            triplets.par_iter().map(|t| crate::data::crops::render_triplet(photos, t, size)).collect::<Result<_>>()?;
        let queries: Vec<Image> = rendered.iter().map(|r| r[0].clone()).collect();
        let positives = rendered.iter().map(|r| r[1].clone()).collect();
        let negatives = rendered.iter().map(|r| r[2].clone()).collect();
        let mut distorted = Vec::new();
        let mut queries_distorted = Vec::new();
        for (k, d) in distortions.iter().enumerate() {
            distorted.push(d.apply_batch(&clean, item_seed(seed, k as u64))?);
            queries_distorted.push(d.apply_batch(&queries, item_seed(seed ^ EVAL_QUERY_STREAM, k as u64))?);
        }
        Ok(Self {
            clean,
            photo_of,
            distorted,
            queries,
            positives,
            negatives,
            queries_distorted,
            distortions: distortions.to_vec(),
        })
    }

    /// The same set with `f` applied to every image (in parallel), e.g.
    /// [`strip_borders_to`](crate::image::borders::strip_borders_to) before describing.
    pub fn map_images(&self, f: &(dyn Fn(&Image) -> Result<Image> + Sync)) -> Result<EvalSet> {
        let all = |v: &[Image]| v.par_iter().map(f).collect::<Result<Vec<Image>>>();
        let each = |v: &[Vec<Image>]| v.iter().map(|d| all(d)).collect::<Result<Vec<_>>>();
        Ok(EvalSet {
            clean: all(&self.clean)?,
            photo_of: self.photo_of.clone(),
            distorted: each(&self.distorted)?,
            queries: all(&self.queries)?,
            positives: all(&self.positives)?,
            negatives: all(&self.negatives)?,
            queries_distorted: each(&self.queries_distorted)?,
            distortions: self.distortions.clone(),
        })
    }

    /// Number of images every method must describe.
    pub fn image_count(&self) -> usize {
        self.clean.len() * (1 + self.distortions.len()) + self.queries.len() * (2 + self.distortions.len())
    }
}

/// The name, among an evaluation's baselines, of the model fused with pHash
/// (`model+HASH` in general: [`Descriptors::Fused`]).
pub const FUSED_METHOD: &str = "model+phash";
/// The name, among an evaluation's baselines, of the pretrained features mirror-averaged as a
/// mirror-averaged model is (evaluated only for such a model).
pub const PRETRAINED_MIRROR_METHOD: &str = "pretrained+mirror";
/// The name of the model with regions ([`Descriptors::Regions`]).
pub const REGIONS_METHOD: &str = "model+regions";
/// The name of the model with regions fused with pHash.
pub const REGIONS_FUSED_METHOD: &str = "model+regions+phash";

/// What a method turns images into, and the distance between two of them.
#[derive(Clone)]
pub enum Descriptors {
    /// Row-major `[N, dim]` vectors compared by L2.
    Vectors { dim: usize, data: Vec<f32> },
    /// Row-major `[N, per, dim]` vectors: each image's whole (`[i, 0]`) and its `per − 1` regions
    /// ([`crate::image::regions`]); two images are as close as the nearer of whole-to-whole and
    /// the nearest whole-to-region or region-to-whole plus `penalty` (L2;
    /// [`with_regions`](crate::eval::fusion::with_regions)), never region-to-region.
    Regions { dim: usize, per: usize, data: Vec<f32>, penalty: f64 },
    /// Perceptual hashes compared by Hamming distance.
    Hashes(Vec<PerceptualHash>),
    /// A model's vectors and a hash of the same images, combined by `rule` ([`FuseRule`]): a pair
    /// either finds is close (a learned descriptor and a hash fail on different edits).
    Fused { vectors: Box<Descriptors>, hashes: Vec<PerceptualHash>, rule: FuseRule },
}

impl Descriptors {
    pub fn distance(&self, i: usize, other: &Descriptors, j: usize) -> f64 {
        match (self, other) {
            (Descriptors::Vectors { dim, data }, Descriptors::Vectors { data: o, .. }) => {
                l2_sq(&data[i * dim..(i + 1) * dim], &o[j * dim..(j + 1) * dim]).sqrt()
            }
            (Descriptors::Regions { penalty, .. }, Descriptors::Regions { .. }) => {
                let (whole, region) = self.region_parts(i, other, j);
                crate::eval::fusion::with_regions(whole, region, *penalty)
            }
            (Descriptors::Hashes(a), Descriptors::Hashes(b)) => a[i].distance(&b[j]) as f64,
            (
                Descriptors::Fused { vectors: a, hashes: ha, rule },
                Descriptors::Fused { vectors: b, hashes: hb, .. },
            ) => rule.distance(a.distance(i, b, j), ha[i].distance(&hb[j]) as f64),
            _ => panic!("descriptors of different kinds"),
        }
    }

    /// For [`Descriptors::Regions`]: the whole-to-whole L2 of `i` and `other`'s `j`, and their
    /// nearest whole-to-region or region-to-whole L2 (infinite with one vector per image).
    pub fn region_parts(&self, i: usize, other: &Descriptors, j: usize) -> (f64, f64) {
        let (Descriptors::Regions { dim, per, data, .. }, Descriptors::Regions { data: o, .. }) = (self, other) else {
            panic!("region_parts needs regions on both sides");
        };
        fn row(d: &[f32], dim: usize, per: usize, k: usize, r: usize) -> &[f32] {
            let at = (k * per + r) * dim;
            &d[at..at + dim]
        }
        let row = |d, k, r| row(d, *dim, *per, k, r);
        let (a, b) = (row(data, i, 0), row(o, j, 0));
        let mut region = f64::INFINITY;
        for r in 1..*per {
            region = region.min(l2_sq(a, row(o, j, r))).min(l2_sq(row(data, i, r), b));
        }
        (l2_sq(a, b).sqrt(), region.sqrt())
    }

    /// Only the whole images' vectors of [`Descriptors::Regions`] (other kinds as they are).
    pub fn wholes(&self) -> Descriptors {
        match self {
            Descriptors::Regions { dim, per, data, .. } => Descriptors::Vectors {
                dim: *dim,
                data: data.chunks_exact(dim * per).flat_map(|img| &img[..*dim]).copied().collect(),
            },
            other => other.clone(),
        }
    }

    /// Hashes of `images` with `kind`, in parallel.
    pub fn hashes(kind: HashKind, images: &[Image]) -> Self {
        Descriptors::Hashes(hash_all(kind, images))
    }

    /// `vectors` (a model's) fused with `hashes` of the same images, row for row, by `rule`
    /// ([`Descriptors::Fused`]).
    pub fn fuse(vectors: Descriptors, hashes: Vec<PerceptualHash>, rule: FuseRule) -> Self {
        Descriptors::Fused { vectors: Box::new(vectors), hashes, rule }
    }
}

/// Squared L2 distance (accumulated in f64).
fn l2_sq(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| ((x - y) * (x - y)) as f64).sum()
}

/// Hashes of `images` with `kind`, in parallel, in order.
pub fn hash_all(kind: HashKind, images: &[Image]) -> Vec<PerceptualHash> {
    let hasher = kind.hasher();
    images.par_iter().map(|img| PerceptualHash::of(&hasher, img)).collect()
}

/// One distortion's (or the pooled) results for one method.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DistortionResult {
    pub spec: String,
    /// AP, precision at recall 0.9, recall (and threshold) at precision 0.99.
    #[serde(flatten)]
    pub detection: crate::eval::retrieval::Detection,
    /// Share of held-out triplets with `D(d(q), p) < D(d(q), n)` (`null` for the pooled entry).
    pub ranking_accuracy: Option<f64>,
    /// Every near-duplicate distance, in evaluation-image order.
    pub near_dup_distances: Vec<f64>,
    /// An evenly spaced sample (of the sorted list) of the distinct-pair distances.
    pub distinct_distances: Vec<f64>,
    pub distinct_pairs: usize,
    /// The PR curve's corner points (where recall rises), thinned to at most [`CURVE_POINTS`].
    pub pr_curve: Vec<PrPoint>,
    /// The operating point (largest recall) at each of [`CALIBRATION_PRECISIONS`], from the full
    /// curve: what `stabilize dupes --precision P` uses to pick its threshold.
    #[serde(default)]
    pub calibration: Vec<PrPoint>,
}

/// Precisions at which [`DistortionResult::calibration`] records a threshold.
pub const CALIBRATION_PRECISIONS: [f64; 9] = [0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999];

/// A method's results over all distortions.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MethodResult {
    pub name: String,
    pub distortions: Vec<DistortionResult>,
    pub pooled: DistortionResult,
}

fn result(spec: String, dup: Vec<f64>, mut distinct: Vec<f64>, ranking: Option<f64>) -> DistortionResult {
    let det = detection(&dup, &distinct);
    let full = pr_curve(&dup, &distinct);
    let calibration =
        CALIBRATION_PRECISIONS.iter().filter_map(|&p| crate::eval::retrieval::point_at_precision(&full, p)).collect();
    // Keep the points where recall rises (and the last): the curve's shape, few points.
    let corners: Vec<PrPoint> = full
        .iter()
        .enumerate()
        .filter(|(i, p)| *i == 0 || *i + 1 == full.len() || p.recall > full[i - 1].recall)
        .map(|(_, p)| *p)
        .collect();
    let curve = thin(&corners, CURVE_POINTS);
    distinct.sort_by(f64::total_cmp);
    DistortionResult {
        spec,
        detection: det,
        ranking_accuracy: ranking,
        near_dup_distances: dup,
        distinct_pairs: distinct.len(),
        distinct_distances: thin(&distinct, DISTINCT_SAMPLE),
        pr_curve: curve,
        calibration,
    }
}

/// `pair(i, j)` for every `(i, j)` of images of different photos (`photo_of`), in row-major
/// order, in parallel: the protocol's distinct pairs.
fn distinct_pairs<T: Send>(photo_of: &[usize], pair: impl Fn(usize, usize) -> T + Sync) -> Vec<T> {
    let n = photo_of.len();
    (0..n)
        .into_par_iter()
        .flat_map_iter(|i| {
            let pair = &pair;
            (0..n).filter(move |&j| photo_of[j] != photo_of[i]).map(move |j| pair(i, j))
        })
        .collect()
}

/// Runs the protocol for one method. `describe` turns a slice of images into descriptors.
pub fn evaluate_method(name: &str, set: &EvalSet, describe: &mut dyn FnMut(&[Image]) -> Descriptors) -> MethodResult {
    let clean = describe(&set.clean);
    let pos = describe(&set.positives);
    let neg = describe(&set.negatives);
    let n = set.clean.len();
    let mut per = Vec::new();
    let (mut all_dup, mut all_distinct) = (Vec::new(), Vec::new());
    for (k, d) in set.distortions.iter().enumerate() {
        let dist = describe(&set.distorted[k]);
        let dup: Vec<f64> = (0..n).map(|i| clean.distance(i, &dist, i)).collect();
        let distinct: Vec<f64> = distinct_pairs(&set.photo_of, |i, j| clean.distance(i, &dist, j));
        let q = describe(&set.queries_distorted[k]);
        let t = set.queries.len();
        let right = (0..t).filter(|&i| q.distance(i, &pos, i) < q.distance(i, &neg, i)).count();
        all_dup.extend(&dup);
        all_distinct.extend(&distinct);
        per.push(result(d.to_string(), dup, distinct, Some(right as f64 / t.max(1) as f64)));
    }
    let pooled = result("pooled".into(), all_dup, all_distinct, None);
    MethodResult { name: name.to_string(), distortions: per, pooled }
}

/// A slice of images → a model's vectors and a hash of each, row for row.
pub type DescribeBoth<'a> = dyn FnMut(&[Image]) -> (Descriptors, Vec<PerceptualHash>) + 'a;

/// Every pair of `set`'s protocol (per distortion: each image with its copy, and with the copies
/// of other photos' images) as a model and a hash see them, for
/// [`fit_fuse_rule`](crate::eval::fusion::fit_fuse_rule). `describe` gives, for a slice of images,
/// the model's vectors and the hashes of the same images. The ranking triplets are not used.
pub fn fuse_pairs(set: &EvalSet, describe: &mut DescribeBoth<'_>) -> Vec<FusePairs> {
    let (cv, ch) = describe(&set.clean);
    let n = set.clean.len();
    set.distortions
        .iter()
        .enumerate()
        .map(|(k, d)| {
            let (dv, dh) = describe(&set.distorted[k]);
            let bits = |i: usize, j: usize| ch[i].distance(&dh[j]).min(255) as u8;
            if let Descriptors::Regions { .. } = cv {
                // The whole-to-whole and the regions' distances, kept apart for the penalty's fit.
                let pair = |i: usize, j: usize| {
                    let (whole, region) = cv.region_parts(i, &dv, j);
                    ((whole as f32, bits(i, j)), region as f32)
                };
                let (dup, dup_regions) = (0..n).map(|i| pair(i, i)).unzip();
                let (distinct, distinct_regions) = distinct_pairs(&set.photo_of, pair).into_iter().unzip();
                FusePairs { spec: d.to_string(), dup, distinct, dup_regions, distinct_regions }
            } else {
                let pair = |i: usize, j: usize| (cv.distance(i, &dv, j) as f32, bits(i, j));
                let dup = (0..n).map(|i| pair(i, i)).collect();
                let distinct = distinct_pairs(&set.photo_of, pair);
                FusePairs { spec: d.to_string(), dup, distinct, ..Default::default() }
            }
        })
        .collect()
}

/// The whole evaluation of one embedding run (`eval.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmbedEval {
    /// The run folder evaluated.
    pub model: String,
    pub seed: u64,
    pub test_photos: usize,
    pub eval_images: usize,
    pub ranking_triplets: usize,
    pub distortions: Vec<DistortionResult>,
    pub pooled: DistortionResult,
    /// The pretrained features (`pretrained`), every perceptual hash, and the model fused with
    /// pHash (`model+phash`, [`Descriptors::Fused`]), same protocol.
    pub baselines: Vec<MethodResult>,
    /// Whether solid borders were cut off every image before any method described it
    /// ([`crate::image::borders`]); `false` in evaluations made before that existed.
    #[serde(default)]
    pub borders_stripped: bool,
    /// The rule `model+phash` was fused by (`null` in evaluations made before rules were fitted:
    /// [`FuseRule::UNFITTED`]).
    #[serde(default)]
    pub fuse_rule: Option<FuseRule>,
    /// The penalty of a region match in `model+regions` and `model+regions+phash` (`eval embed
    /// --regions`); `null` when regions were not evaluated.
    #[serde(default)]
    pub region_penalty: Option<f64>,
    /// Where the regions' descriptors came from; `null` without regions (and in files written
    /// before there was a choice, which used crops).
    #[serde(default)]
    pub region_source: Option<RegionSource>,
    /// Whether the model's whole-image descriptors were mirror-averaged (the run's fit,
    /// [`crate::eval::fusion::FusionFit::mirror`]); the calibration holds only for that.
    #[serde(default)]
    pub mirror: bool,
    /// Whether the cut-out regions' descriptors were mirror-averaged too (the run's fit,
    /// [`crate::eval::fusion::RegionFit::mirrored`]); the calibration with regions holds only
    /// for that.
    #[serde(default)]
    pub mirror_regions: bool,
    pub seconds: f64,
}

/// One near-duplicate pair on which two models disagree (for the report's example figure).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Disagreement {
    /// Index of the evaluation image.
    pub index: usize,
    pub baseline_distance: f64,
    pub stabilized_distance: f64,
}

/// Per distortion, the `k` near-duplicate pairs where `base` and `stab` disagree most: largest
/// `D_base / median_base(distinct) − D_stab / median_stab(distinct)`, i.e. where the baseline
/// thinks the pair is far apart (relative to its distinct pairs) and the stabilized model does not.
pub fn disagreements(
    base: &[DistortionResult],
    stab: &[DistortionResult],
    k: usize,
) -> Vec<(String, Vec<Disagreement>)> {
    let median = |v: &[f64]| if v.is_empty() { 1.0 } else { v[v.len() / 2].max(1e-12) };
    base.iter()
        .zip(stab)
        .map(|(b, s)| {
            let (mb, ms) = (median(&b.distinct_distances), median(&s.distinct_distances));
            let mut idx: Vec<usize> = (0..b.near_dup_distances.len().min(s.near_dup_distances.len())).collect();
            let score = |i: usize| b.near_dup_distances[i] / mb - s.near_dup_distances[i] / ms;
            idx.sort_by(|&x, &y| score(y).total_cmp(&score(x)).then(x.cmp(&y)));
            let rows = idx
                .into_iter()
                .take(k)
                .map(|i| Disagreement {
                    index: i,
                    baseline_distance: b.near_dup_distances[i],
                    stabilized_distance: s.near_dup_distances[i],
                })
                .collect();
            (b.spec.clone(), rows)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Channels;

    #[test]
    fn the_default_suite_holds_the_paper_and_the_edits() {
        let ds = crate::distort::parse_list(DEFAULT_DISTORTIONS).unwrap();
        let families: std::collections::BTreeSet<&str> = ds.iter().map(|d| d.family()).collect();
        for f in ["jpeg", "thumb", "crop", "noise", "trim", "pad", "rotate", "hflip", "text", "gray", "blur"] {
            assert!(families.contains(f), "{f} missing from {DEFAULT_DISTORTIONS}");
        }
    }

    fn photos() -> Vec<Photo> {
        (0..5u32)
            .map(|k| {
                let (w, h) = (180u32, 160u32);
                let data = (0..w * h * 3)
                    .map(|i| {
                        let (p, c) = (i / 3, i % 3);
                        let (x, y) = (p % w, p / w);
                        (((x / (4 + k)) * 37 + (y / (3 + k)) * 53 + c * 70 + k * 90) % 256) as u8
                    })
                    .collect();
                Photo::prepare(&format!("t{k}"), &Image::new(w, h, Channels::Rgb, data).unwrap(), 256).unwrap().unwrap()
            })
            .collect()
    }

    #[test]
    fn a_fused_distance_is_the_nearer_of_the_vectors_and_the_scaled_hash() {
        let ph = photos();
        let imgs: Vec<Image> = (0..3).map(|k| ph[k].render(ph[k].eval_crops()[0], 64).unwrap()).collect();
        // Images 0 and 1 are the same picture; 2 is another photo.
        let same = vec![imgs[0].clone(), imgs[0].clone(), imgs[2].clone()];
        let h = hash_all(HashKind::Phash, &same);
        let bits = h[0].distance(&h[2]) as f64;
        assert!(bits > 10.0, "{bits}");
        // Vectors: 0 and 1 far apart (the hash finds them), 0 and 2 close (the vectors do).
        let v = Descriptors::Vectors { dim: 1, data: vec![0.0, 1.5, 0.1] };
        let f = Descriptors::fuse(v, h.clone(), FuseRule::UNFITTED);
        assert_eq!(f.distance(0, &f, 1), 0.0);
        assert!((f.distance(0, &f, 2) - 0.1).abs() < 1e-6);
        // Both far: the smaller of 1.5 and 0.03 per bit.
        let v = Descriptors::Vectors { dim: 1, data: vec![0.0, 0.0, 1.5] };
        let f = Descriptors::fuse(v, h.clone(), FuseRule::UNFITTED);
        assert!((f.distance(0, &f, 2) - (FuseRule::UNFITTED.l2_per_bit * bits).min(1.5)).abs() < 1e-9);
        // Capped under 1.5: the model's 1.5 stands whatever the hash says.
        let f = Descriptors::fuse(
            Descriptors::Vectors { dim: 1, data: vec![0.0, 0.0, 1.5] },
            h,
            FuseRule { l2_per_bit: 0.001, l2_cap: 1.0 },
        );
        assert_eq!(f.distance(0, &f, 2), 1.5);
    }

    #[test]
    fn a_regions_distance_is_the_nearest_whole_or_region_match() {
        // Two images, 1-d vectors, whole + 2 regions each.
        let d = Descriptors::Regions { dim: 1, per: 3, data: vec![0.0, 5.0, 9.0, 3.0, 0.5, 8.5], penalty: 0.0 };
        // whole–whole 3; whole 0 vs regions of image 1: 0.5, 8.5; regions of 0 vs whole 3: 2, 6.
        assert!((d.distance(0, &d, 1) - 0.5).abs() < 1e-12);
        assert!((d.distance(1, &d, 0) - 0.5).abs() < 1e-12, "symmetric");
        // Regions are never compared with regions: 5 vs 8.5 would be 3.5, 9 vs 8.5 would be 0.5.
        let d = Descriptors::Regions { dim: 1, per: 3, data: vec![0.0, 5.0, 9.0, 20.0, 30.0, 8.5], penalty: 0.0 };
        assert!((d.distance(0, &d, 1) - 8.5).abs() < 1e-12, "{}", d.distance(0, &d, 1));
        assert_eq!(d.distance(0, &d, 0), 0.0);
        assert_eq!(d.region_parts(0, &d, 1), (20.0, 8.5));
        // A penalty is added to the region match only: 8.5 + 5 = 13.5 < 20; + 12 → the whole's 20.
        let with =
            |penalty| Descriptors::Regions { dim: 1, per: 3, data: vec![0.0, 5.0, 9.0, 20.0, 30.0, 8.5], penalty };
        assert!((with(5.0).distance(0, &with(5.0), 1) - 13.5).abs() < 1e-12);
        assert_eq!(with(12.0).distance(0, &with(12.0), 1), 20.0);
        // The wholes alone are the first vector of each image.
        let Descriptors::Vectors { dim, data } = d.wholes() else { panic!("vectors") };
        assert_eq!((dim, data), (1, vec![0.0, 20.0]));
        // Fused with a hash, the regions' distance is what the rule sees.
        let img = Image::new(8, 8, Channels::Rgb, vec![100; 192]).unwrap();
        let h = hash_all(HashKind::Phash, &[img.clone(), img]);
        let f = Descriptors::fuse(d, h, FuseRule { l2_per_bit: 1.0, l2_cap: 100.0 });
        assert_eq!(f.distance(0, &f, 1), 0.0, "identical hashes");
    }

    #[test]
    fn protocol_counts_and_a_perfect_method() {
        let ph = photos();
        let ds = crate::distort::parse_list("jpeg:50,noise:0.05").unwrap();
        let set = EvalSet::build(&ph, &[0, 1, 2, 3, 4], 32, &ds, 1).unwrap();
        assert_eq!(set.clean.len(), 5 * crate::data::crops::EVAL_CROPS);
        assert_eq!(set.clean.len(), 80);
        assert_eq!(set.queries.len(), 5 * TRIPLETS_PER_PHOTO);
        assert_eq!(set.image_count(), 80 * 3 + 20 * 4);
        // An oracle that describes an image by its source photo and crop exactly: every
        // near-duplicate at distance 0, distinct ones at 1 → AP 1.
        let mut calls = 0;
        let mut oracle = |imgs: &[Image]| {
            calls += 1;
            let _ = imgs;
            Descriptors::Vectors { dim: 1, data: vec![0.0; imgs.len()] }
        };
        let r = evaluate_method("zeros", &set, &mut oracle);
        assert_eq!(calls, 3 + 2 * 2);
        // All distances 0: every threshold lumps everything together → AP = precision = dup share.
        let d = &r.distortions[0];
        assert_eq!(d.near_dup_distances.len(), 80);
        // Each of the 80 images against the 64 crops of the other four photos.
        assert_eq!(d.distinct_pairs, 80 * 64);
        assert!((d.detection.ap - 80.0 / 5200.0).abs() < 1e-12, "{}", d.detection.ap);
        assert_eq!(d.ranking_accuracy, Some(0.0));
        assert_eq!(r.pooled.near_dup_distances.len(), 160);
        // pHash separates light JPEG copies of these textures better than chance.
        let h = evaluate_method("phash", &set, &mut |imgs| Descriptors::hashes(HashKind::Phash, imgs));
        assert!(h.distortions[0].detection.ap > 80.0 / 5200.0, "{}", h.distortions[0].detection.ap);
    }

    #[test]
    fn disagreements_rank_by_relative_distance() {
        let mk = |dup: Vec<f64>| result("jpeg:50".into(), dup, vec![1.0, 1.0, 1.0], None);
        let base = vec![mk(vec![0.9, 0.1, 0.5])];
        let stab = vec![mk(vec![0.1, 0.1, 0.4])];
        let d = disagreements(&base, &stab, 2);
        assert_eq!(d[0].0, "jpeg:50");
        assert_eq!(d[0].1.iter().map(|x| x.index).collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(d[0].1[0].baseline_distance, 0.9);
    }
}
