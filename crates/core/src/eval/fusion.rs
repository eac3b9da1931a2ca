//! Fusing a learned descriptor with a perceptual hash, and fitting how.
//!
//! A model and a hash fail on different edits (the model on heavy JPEG, noise, grayscale; the hash
//! on crops, borders, mirrors), so a pair that either finds should be close. The plain rule —
//! the nearer of the model's L2 distance and a scaled Hamming distance — also pulls together
//! distinct low-texture images whose hashes happen to agree. A [`FuseRule`] lets the hash vouch
//! for a pair only while the model does not call it clearly different (`l2 < l2_cap`).
//!
//! [`fit_fuse_rule`] picks the rule on pairs of the *validation* photos (training-side photos the
//! run never trained on; runs older than them: its training photos), never the held-out ones,
//! whose numbers are reported: the largest mean, over distortions, of recall at precision 0.99,
//! then the largest pooled AP.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use std::path::Path;

use crate::eval::retrieval::detection;
use crate::image::regions::RegionSource;
use crate::{Error, Result, run_files};

/// How a model's L2 distance (between unit vectors, 0–2) and a hash's Hamming bits combine:
/// `min(l2, l2_per_bit · bits)` when `l2 < l2_cap`, else `l2`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FuseRule {
    /// The L2 distance one Hamming bit counts for.
    pub l2_per_bit: f64,
    /// The hash can only bring a pair closer while the model's L2 is under this (2 = always).
    pub l2_cap: f64,
}

impl FuseRule {
    /// The rule of the check in `shared/notes` (made outside the project on other photos): a bit
    /// is 0.03, no cap. Used by runs without a fitted rule (`fusion.json`).
    pub const UNFITTED: FuseRule = FuseRule { l2_per_bit: 0.03, l2_cap: 2.0 };

    /// The fused distance of a pair `l2` apart by the model and `bits` apart by the hash.
    pub fn distance(&self, l2: f64, bits: f64) -> f64 {
        if l2 < self.l2_cap { l2.min(self.l2_per_bit * bits) } else { l2 }
    }
}

impl Default for FuseRule {
    fn default() -> Self {
        FuseRule::UNFITTED
    }
}

/// One distortion's pairs as both descriptors see them: `(model L2, hash bits)`.
#[derive(Clone, Debug, Default)]
pub struct FusePairs {
    pub spec: String,
    /// Near-duplicate pairs (an image and its distorted copy).
    pub dup: Vec<(f32, u8)>,
    /// Distinct pairs (images of different photos).
    pub distinct: Vec<(f32, u8)>,
    /// With regions: per pair in `dup` / `distinct`, the model's nearest whole-to-region or
    /// region-to-whole L2 ([`crate::eval::embed::Descriptors::Regions`]); empty without.
    pub dup_regions: Vec<f32>,
    pub distinct_regions: Vec<f32>,
}

impl FusePairs {
    /// Writes every pair as a CSV row `spec,kind,l2,region_l2,bits` (`kind` `dup` or `distinct`;
    /// `region_l2` empty without regions), after a header: the distances a fit saw, for analysis
    /// outside the program.
    pub fn write_csv(pairs: &[FusePairs], out: &mut dyn std::io::Write) -> std::io::Result<()> {
        writeln!(out, "spec,kind,l2,region_l2,bits")?;
        for p in pairs {
            for (kind, list, regions) in
                [("dup", &p.dup, &p.dup_regions), ("distinct", &p.distinct, &p.distinct_regions)]
            {
                for (i, (l2, bits)) in list.iter().enumerate() {
                    let region = regions.get(i).map_or(String::new(), |r| r.to_string());
                    writeln!(out, "{},{kind},{l2},{region},{bits}", p.spec)?;
                }
            }
        }
        Ok(())
    }
}

/// The penalties [`fit_region_penalty`] tries: what a region match adds to its L2 before it is
/// compared with the whole-to-whole distance (2 = regions never win: L2 of unit vectors ≤ 2).
pub const REGION_PENALTY_GRID: [f64; 9] = [0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 2.0];

/// How one region penalty does (with the run's fusion rule) on a set of pairs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegionScore {
    pub penalty: f64,
    /// The model with regions alone.
    pub model: Scores,
    /// The model with regions fused with the hash by the run's rule (what the fit maximises).
    pub fused: Scores,
}

/// Detection summary of one way of measuring distance on a set of pairs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Scores {
    pub pooled_ap: f64,
    #[serde(rename = "pooled_recall_at_precision_0.99")]
    pub pooled_recall_at_p99: f64,
    #[serde(rename = "mean_recall_at_precision_0.99")]
    pub mean_recall_at_p99: f64,
    #[serde(rename = "min_recall_at_precision_0.99")]
    pub min_recall_at_p99: f64,
}

impl Scores {
    /// The fits' order, best first: the larger mean recall at precision 0.99 over distortions,
    /// then the larger pooled AP.
    pub fn best_first(&self, other: &Scores) -> std::cmp::Ordering {
        other.mean_recall_at_p99.total_cmp(&self.mean_recall_at_p99).then(other.pooled_ap.total_cmp(&self.pooled_ap))
    }
}

/// What [`fit_region_penalty`] chose, and every penalty tried (best first).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegionFit {
    /// Where the regions' descriptors came from (files written before there was a choice:
    /// crops).
    #[serde(default)]
    pub source: RegionSource,
    pub penalty: f64,
    pub grid: Vec<RegionScore>,
    /// Whether each cut-out region was described, as the whole then is, by the mean of its
    /// vector and its mirror image's (`eval fusion --mirror-regions`, crops only); files
    /// written before the choice: no.
    #[serde(default)]
    pub mirrored: bool,
}

/// The model's distance with regions: the whole-to-whole `whole`, or the nearest region match
/// `region` plus `penalty` when that is nearer.
pub fn with_regions(whole: f64, region: f64, penalty: f64) -> f64 {
    whole.min(region + penalty)
}

/// Scores `distance(pair index in dup or distinct, is_dup)` over every distortion and pooled.
fn scores(pairs: &[FusePairs], distance: &(dyn Fn(&FusePairs, usize, bool) -> f64 + Sync)) -> Scores {
    let per: Vec<(Vec<f64>, Vec<f64>)> = pairs
        .iter()
        .map(|p| {
            let dup = (0..p.dup.len()).map(|i| distance(p, i, true)).collect();
            let distinct = (0..p.distinct.len()).map(|i| distance(p, i, false)).collect();
            (dup, distinct)
        })
        .collect();
    let recalls: Vec<f64> =
        per.par_iter().map(|(dup, distinct)| detection(dup, distinct).recall_at_precision_0_99).collect();
    let dup: Vec<f64> = per.iter().flat_map(|p| p.0.iter().copied()).collect();
    let distinct: Vec<f64> = per.iter().flat_map(|p| p.1.iter().copied()).collect();
    let pooled = detection(&dup, &distinct);
    Scores {
        pooled_ap: pooled.ap,
        pooled_recall_at_p99: pooled.recall_at_precision_0_99,
        mean_recall_at_p99: recalls.iter().sum::<f64>() / recalls.len().max(1) as f64,
        min_recall_at_p99: recalls.iter().copied().fold(f64::INFINITY, f64::min).min(1.0),
    }
}

/// Scores every penalty of `grid` on `pairs` (which must hold the regions' distances), the
/// model fused with the hash by `rule`; returns the fit: the largest mean recall at precision
/// 0.99 of the fused distance, then the largest pooled AP, then the grid's order.
pub fn fit_region_penalty(pairs: &[FusePairs], rule: FuseRule, grid: &[f64]) -> Result<RegionFit> {
    if pairs.iter().any(|p| p.dup_regions.len() != p.dup.len() || p.distinct_regions.len() != p.distinct.len()) {
        return Err(Error::Invalid("the pairs hold no regions' distances to fit a region penalty on".into()));
    }
    let mut out: Vec<RegionScore> = grid
        .iter()
        .map(|&penalty| {
            let model = |p: &FusePairs, i: usize, dup: bool| {
                let (pair, region) =
                    if dup { (p.dup[i], p.dup_regions[i]) } else { (p.distinct[i], p.distinct_regions[i]) };
                (with_regions(pair.0 as f64, region as f64, penalty), pair.1 as f64)
            };
            RegionScore {
                penalty,
                model: scores(pairs, &|p, i, dup| model(p, i, dup).0),
                fused: scores(pairs, &|p, i, dup| {
                    let (l2, bits) = model(p, i, dup);
                    rule.distance(l2, bits)
                }),
            }
        })
        .collect();
    out.sort_by(|a, b| a.fused.best_first(&b.fused));
    Ok(RegionFit { source: RegionSource::default(), penalty: out[0].penalty, grid: out, mirrored: false })
}

/// The grids [`fit_fuse_rule`] searches by default: bits from 0.01 to 0.06, caps from 0.6 to none.
pub const PER_BIT_GRID: [f64; 8] = [0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06];
pub const CAP_GRID: [f64; 9] = [0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 2.0];

/// How one rule does on a set of pairs (the fit maximises the mean recall at precision 0.99 over
/// distortions).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FuseScore {
    pub rule: FuseRule,
    #[serde(flatten)]
    pub scores: Scores,
}

/// Scores `rule` on `pairs` (every distortion, and all of them pooled).
pub fn score_rule(rule: FuseRule, pairs: &[FusePairs]) -> FuseScore {
    let scores = scores(pairs, &|p, i, dup| {
        let (l2, bits) = if dup { p.dup[i] } else { p.distinct[i] };
        rule.distance(l2 as f64, bits as f64)
    });
    FuseScore { rule, scores }
}

/// Scores every rule of the grid (`per_bit` × `caps`) on `pairs`; returns the scores, best first
/// (largest mean recall at precision 0.99, then largest pooled AP, then the grid's order).
pub fn fit_fuse_rule(pairs: &[FusePairs], per_bit: &[f64], caps: &[f64]) -> Vec<FuseScore> {
    let mut scores: Vec<FuseScore> = per_bit
        .iter()
        .flat_map(|&b| caps.iter().map(move |&c| FuseRule { l2_per_bit: b, l2_cap: c }))
        .map(|r| score_rule(r, pairs))
        .collect();
    scores.sort_by(|a, b| a.scores.best_first(&b.scores));
    scores
}

/// What `stabilize eval fusion` writes to a run's `fusion.json`: the chosen rule and how it was
/// chosen.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FusionFit {
    pub rule: FuseRule,
    /// The hash fused with the model.
    pub hash: String,
    /// Training photos the pairs came from (none of them held out; a photo fitted with two runs'
    /// models counts once), the evaluation images described (every run's), and the seed of the
    /// distortions' random parts.
    pub photos: usize,
    /// Whether those were validation photos, which the run never trained on (else training
    /// photos, for runs made before validation photos were kept out).
    #[serde(default)]
    pub validation: bool,
    /// The runs whose models and validation photos made the fit, when not this one (`eval fusion
    /// --fit-on`: runs of the same recipe that kept validation photos out, for a model that
    /// trained on every training photo; several pool their pairs). Files written when only one
    /// could be named hold it as a string.
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    pub fitted_on: Vec<String>,
    pub eval_images: usize,
    pub seed: u64,
    pub distortions: Vec<String>,
    pub borders_stripped: bool,
    /// Every rule tried, best first.
    pub grid: Vec<FuseScore>,
    /// The penalty of a region match (`eval fusion --regions`), fitted with `rule` on the same
    /// pairs; `null` when regions were not fitted ([`read_fit_settings`] then gives crops and 0).
    #[serde(default)]
    pub regions: Option<RegionFit>,
    /// Whether the model described each image's whole by the mean of its descriptor and its
    /// mirror image's (`eval fusion --mirror`); every command then describes files so
    /// ([`read_fit_settings`]). Files from before the choice: no.
    #[serde(default)]
    pub mirror: bool,
    pub seconds: f64,
}

/// A list of strings, or one string (a list of one), or null (none).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

/// What a run's fit (`fusion.json`) tells every command that describes images with its model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FitSettings {
    /// How the model is fused with pHash ([`FuseRule::UNFITTED`] without a fit).
    pub rule: FuseRule,
    /// Where the fitted region penalty's regions came from (crops without one).
    pub region_source: RegionSource,
    /// What a region match adds to its distance (0, a region match counts as it is, without one).
    pub region_penalty: f64,
    /// Whether each whole is described mirror-averaged ([`FusionFit::mirror`]; no without a fit).
    pub mirror: bool,
    /// Whether each cut-out region is described mirror-averaged too ([`RegionFit::mirrored`];
    /// no without a region fit).
    pub mirror_regions: bool,
}

impl Default for FitSettings {
    fn default() -> Self {
        FitSettings {
            rule: FuseRule::UNFITTED,
            region_source: RegionSource::default(),
            region_penalty: 0.0,
            mirror: false,
            mirror_regions: false,
        }
    }
}

impl From<&FusionFit> for FitSettings {
    fn from(f: &FusionFit) -> Self {
        let (region_source, region_penalty, mirror_regions) =
            f.regions.as_ref().map_or((RegionSource::default(), 0.0, false), |r| {
                (r.source, r.penalty, r.mirrored && r.source == RegionSource::Crops)
            });
        // Mirror-averaged regions imply mirror-averaged wholes (`fit_fusion` writes both).
        FitSettings { rule: f.rule, region_source, region_penalty, mirror: f.mirror || mirror_regions, mirror_regions }
    }
}

/// The [`FitSettings`] of run folder `dir` (`stabilize eval fusion`), the defaults when it has no
/// `fusion.json`. A file that is there but cannot be read is an error, not the fallback.
pub fn read_fit_settings(dir: &Path) -> Result<FitSettings> {
    Ok(read_fusion_fit(dir)?.as_ref().map_or_else(FitSettings::default, FitSettings::from))
}

/// Run folder `dir`'s `fusion.json`, `None` when there is none; a file that is there but cannot
/// be read is an error.
pub fn read_fusion_fit(dir: &Path) -> Result<Option<FusionFit>> {
    let p = dir.join(run_files::FUSION);
    match std::fs::read(&p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&p, e)),
        Ok(bytes) => serde_json::from_slice::<FusionFit>(&bytes).map(Some).map_err(|e| {
            Error::Invalid(format!("{} is not a fusion fit ({e}); re-run `stabilize eval fusion`", p.display()))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_penalty_is_fitted_to_keep_distinct_region_matches_out() {
        // Whole-to-whole: trims at 0.8 (lost among distinct pairs at 0.6–1.0), jpeg copies at 0.1.
        // Regions: trims at 0.1; distinct pairs' region matches at 0.2–0.3 (closer than their
        // wholes), and the jpeg copies' regions no nearer than their wholes.
        let distinct: Vec<(f32, u8)> = (0..400).map(|i| (0.6 + (i % 40) as f32 * 0.01, 30)).collect();
        let distinct_regions: Vec<f32> = (0..400).map(|i| 0.2 + (i % 10) as f32 * 0.01).collect();
        let pairs = vec![
            FusePairs {
                spec: "trim".into(),
                dup: vec![(0.8, 30); 40],
                distinct: distinct.clone(),
                dup_regions: vec![0.1; 40],
                distinct_regions: distinct_regions.clone(),
            },
            FusePairs {
                spec: "jpeg".into(),
                dup: vec![(0.1, 30); 40],
                distinct,
                dup_regions: vec![0.15; 40],
                distinct_regions,
            },
        ];
        let rule = FuseRule { l2_per_bit: 0.01, l2_cap: 2.0 };
        let fit = fit_region_penalty(&pairs, rule, &REGION_PENALTY_GRID).unwrap();
        // Penalty 0: the jpeg copies (0.1) sit under every distinct region match, the trims (0.1)
        // too: everything found. Any penalty ≥ 0.1 pushes the trims (0.1 + p) past distinct
        // regions (0.2 + p) — still found; 2: the trims are lost.
        assert_eq!(
            fit.penalty,
            0.0,
            "{:?}",
            fit.grid.iter().map(|g| (g.penalty, g.fused.mean_recall_at_p99)).collect::<Vec<_>>()
        );
        assert_eq!(fit.grid[0].fused.min_recall_at_p99, 1.0);
        let never = fit.grid.iter().find(|g| g.penalty == 2.0).unwrap();
        assert_eq!(never.fused.min_recall_at_p99, 0.0, "without regions the trims are lost");
        // Regions that bring distinct pairs under the jpeg copies: a penalty keeps them out.
        let mut close = pairs.clone();
        for p in &mut close {
            p.distinct_regions = vec![0.05; 400];
        }
        close[0].dup_regions = vec![0.0; 40];
        let fit = fit_region_penalty(&close, rule, &REGION_PENALTY_GRID).unwrap();
        assert!(fit.penalty > 0.0 && fit.penalty < 2.0, "{}", fit.penalty);
        assert_eq!(fit.grid[0].fused.min_recall_at_p99, 1.0);
        // Pairs without regions cannot be fitted.
        let mut bare = pairs;
        bare[1].dup_regions.clear();
        assert!(fit_region_penalty(&bare, rule, &REGION_PENALTY_GRID).is_err());
    }

    #[test]
    fn pairs_are_written_one_row_each() {
        let p = FusePairs {
            spec: "trim:25".into(),
            dup: vec![(0.5, 3)],
            distinct: vec![(1.25, 30), (0.75, 12)],
            dup_regions: vec![0.25],
            distinct_regions: vec![1.0, 0.5],
        };
        let mut out = Vec::new();
        FusePairs::write_csv(&[p], &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "spec,kind,l2,region_l2,bits\ntrim:25,dup,0.5,0.25,3\ntrim:25,distinct,1.25,1,30\ntrim:25,distinct,0.75,0.5,12\n"
        );
    }

    #[test]
    fn fitted_on_reads_one_run_or_several() {
        let read = |v: serde_json::Value| -> Vec<String> {
            #[derive(Deserialize)]
            struct F {
                #[serde(default, deserialize_with = "one_or_many")]
                fitted_on: Vec<String>,
            }
            serde_json::from_value::<F>(v).unwrap().fitted_on
        };
        assert_eq!(read(serde_json::json!({"fitted_on": "runs/v"})), ["runs/v"]);
        assert_eq!(read(serde_json::json!({"fitted_on": ["runs/a", "runs/b"]})), ["runs/a", "runs/b"]);
        assert!(read(serde_json::json!({})).is_empty());
        assert!(read(serde_json::json!({"fitted_on": null})).is_empty());
    }

    #[test]
    fn the_cap_keeps_the_model_when_it_is_sure() {
        let r = FuseRule { l2_per_bit: 0.03, l2_cap: 1.0 };
        assert!((r.distance(0.5, 2.0) - 0.06).abs() < 1e-12);
        assert_eq!(r.distance(0.5, 30.0), 0.5);
        // Over the cap the hash is not asked, however close it says the pair is.
        assert_eq!(r.distance(1.2, 0.0), 1.2);
        assert_eq!(FuseRule::UNFITTED.distance(1.9, 0.0), 0.0);
    }

    /// Pairs where the hash alone finds the copies of one distortion, the model alone those of
    /// another, and some distinct pairs have agreeing hashes but a model that says "different".
    fn pairs() -> Vec<FusePairs> {
        let distinct: Vec<(f32, u8)> = (0..400)
            .map(|i| if i < 20 { (1.25, 1) } else { (0.9 + (i % 50) as f32 * 0.01, 20 + (i % 30) as u8) })
            .collect();
        vec![
            // The model finds these (0.2), the hash does not (25 bits).
            FusePairs {
                spec: "trim".into(),
                dup: vec![(0.2, 25); 40],
                distinct: distinct.clone(),
                ..Default::default()
            },
            // The hash finds these (2 bits), the model places them among the distinct pairs.
            FusePairs { spec: "jpeg".into(), dup: vec![(1.05, 2); 40], distinct, ..Default::default() },
        ]
    }

    #[test]
    fn the_plain_rule_loses_the_model_s_finds_to_agreeing_hashes() {
        // Without a cap, 20 distinct pairs at 1 bit (0.03) come before the model's 0.2: the trim
        // copies are lost at precision 0.99.
        let plain = score_rule(FuseRule::UNFITTED, &pairs());
        assert_eq!(plain.scores.min_recall_at_p99, 0.0);
        // With a cap under 1.25 those pairs stay at the model's distance: both kinds found.
        let capped = score_rule(FuseRule { l2_per_bit: 0.03, l2_cap: 1.2 }, &pairs());
        assert_eq!(capped.scores.min_recall_at_p99, 1.0);
        assert_eq!(capped.scores.pooled_recall_at_p99, 1.0);
        assert!((capped.scores.pooled_ap - 1.0).abs() < 1e-12);
    }

    #[test]
    fn the_fit_picks_a_capped_rule_and_ranks_best_first() {
        let grid = fit_fuse_rule(&pairs(), &PER_BIT_GRID, &CAP_GRID);
        assert_eq!(grid.len(), PER_BIT_GRID.len() * CAP_GRID.len());
        assert!(grid[0].rule.l2_cap <= 1.25, "{:?}", grid[0].rule);
        assert!(grid[0].rule.l2_cap > 1.05, "the jpeg copies need the hash: {:?}", grid[0].rule);
        assert_eq!(grid[0].scores.mean_recall_at_p99, 1.0);
        assert!(grid.windows(2).all(|w| w[0].scores.mean_recall_at_p99 >= w[1].scores.mean_recall_at_p99));
    }
}
