//! Fitting how a run's model is fused with pHash ([`stabilize_core::eval::fusion`]) on pairs of
//! *validation* photos (training-side photos a run kept out of training; for runs older than
//! them, its training photos), in the evaluation's protocol (the same crops, distortions and
//! border treatment): the held-out photos, whose numbers `eval embed` reports, are never used.
//! The chosen rule is written to the run's `fusion.json`, which `eval embed` and `dupes` then
//! use.

use std::path::Path;
use std::time::Instant;

use burn::tensor::Device;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use stabilize_core::data::crops::{Photo, Split};
use stabilize_core::eval::embed::{EvalSet, fuse_pairs, hash_all};
use stabilize_core::eval::fusion::{
    CAP_GRID, FusePairs, FusionFit, PER_BIT_GRID, REGION_PENALTY_GRID, RegionFit, fit_fuse_rule, fit_region_penalty,
};
use stabilize_core::fsutil::write_atomic;
use stabilize_core::image::borders::strip_borders_to;
use stabilize_core::image::hash::HashKind;
use stabilize_core::image::regions::RegionSource;
use stabilize_core::seeds::{FUSION_STREAM, item_seed};
use stabilize_core::{Distortion, Error, run_files};

use super::embed::{Describing, EvalError, EvalEvent, describe_model};
use crate::embed::EmbedNet;
use crate::train::embed::{EmbedTrainConfig, load_embedder};
use crate::train::read_run_config;

/// The photos of `split` a fit uses: its validation photos when it has some (photos the run
/// never trained on), else its training photos (runs made before validation photos); `count`
/// of them (all when fewer, every validation photo when `None`, else as many as are held out),
/// drawn by `seed`, in index order. `Err` when there are fewer than two.
pub fn fit_photos(split: &Split, count: Option<usize>, seed: u64) -> Result<Vec<usize>, EvalError> {
    let validation = !split.val.is_empty();
    let mut pool = if validation { split.val.clone() } else { split.train.clone() };
    if pool.len() < 2 {
        let kind = if validation { "validation" } else { "training" };
        return Err(Error::Invalid(format!("need ≥ 2 {kind} photos to fit a fusion rule, have {}", pool.len())).into());
    }
    let count = count.unwrap_or(if validation { pool.len() } else { split.test.len() });
    pool.shuffle(&mut ChaCha8Rng::seed_from_u64(item_seed(seed ^ FUSION_STREAM, 0)));
    pool.truncate(count.max(2));
    pool.sort_unstable();
    Ok(pool)
}

/// Fits the fusion of run `model_dir` with pHash on `count` of its validation photos (default:
/// all), or of its training photos for a run without them (default: as many as it holds out);
/// with `fit_on`, on those runs' validation photos with those runs' models instead (runs of the
/// same recipe that kept them out of training, for a model that trained on every photo; each
/// must split the pool and describe images as `model_dir` does). Several runs (other seeds of the
/// recipe) pool their pairs into one fit, so that the choice rests on more than one model's
/// distances. Under `distortions` seeded by `seed`, over the default grid; with `regions`, also
/// the penalty of a region match ([`fit_region_penalty`], given the fitted rule); with `mirror`,
/// each whole described as the mean of the image and its mirror image, with `mirror_regions`
/// each cut-out region too (crops only; recorded in the fit, so that every command describes
/// files so). Writes `model_dir/fusion.json` and returns it, with
/// the pairs it was fitted on.
#[allow(clippy::too_many_arguments)]
pub fn fit_fusion(
    model_dir: &Path,
    fit_on: &[&Path],
    photos: &[Photo],
    distortions: &[Distortion],
    seed: u64,
    strip_borders: bool,
    regions: Option<RegionSource>,
    mirror: bool,
    mirror_regions: bool,
    count: Option<usize>,
    device: &Device,
    on: &mut dyn FnMut(EvalEvent),
) -> Result<(FusionFit, Vec<FusePairs>), EvalError> {
    let started = Instant::now();
    if mirror_regions && regions != Some(RegionSource::Crops) {
        return Err(Error::Invalid(
            "mirror-averaged regions need regions cut out (`--regions --region-source crops`)".into(),
        )
        .into());
    }
    let mirror = mirror || mirror_regions;
    let sources = if fit_on.is_empty() { vec![model_dir] } else { fit_on.to_vec() };
    // Only the target's config when others fit: its weights are not used.
    let target: Option<EmbedTrainConfig> =
        if fit_on.is_empty() { None } else { Some(read_run_config(model_dir, "an embedding", "a classifier")?) };
    let mut runs = Vec::with_capacity(sources.len());
    // The evaluation images, built once per (photos, size): runs of one recipe and split share them.
    let mut sets: Vec<(Vec<usize>, u32, EvalSet)> = Vec::new();
    for &source in &sources {
        let (config, model) = load_embedder(source, device)?;
        if let Some(target) = &target {
            check_fit_on(target, &config, source)?;
        }
        let size = config.model.input_size as u32;
        let split = config.split(photos);
        let chosen = fit_photos(&split, count, seed)?;
        let set = match sets.iter().position(|(c, s, _)| *c == chosen && *s == size) {
            Some(k) => k,
            None => {
                let set = EvalSet::build(photos, &chosen, size, distortions, seed)?;
                let set = if strip_borders { set.map_images(&|img| strip_borders_to(img, size, size))? } else { set };
                sets.push((chosen, size, set));
                sets.len() - 1
            }
        };
        runs.push(FitSource { config, model, validation: !split.val.is_empty(), set });
    }
    // Penalty 0: the fit sees the whole-to-whole and the regions' distances apart.
    let how = Describing { regions: regions.map(|source| (source, 0.0)), mirror, mirror_regions };
    let per = how.passes();
    let images: usize = runs.iter().map(|r| sets[r.set].2.clean.len()).sum();
    on(EvalEvent::Start { images: images * (1 + distortions.len()) * per });
    on(EvalEvent::Method("fine-tuned model and phash"));
    let hasher = HashKind::Phash;
    let mut pairs: Vec<FusePairs> = Vec::new();
    for FitSource { config, model, set, .. } in &runs {
        let mut failed = None;
        let size = config.model.input_size as u32;
        let these = fuse_pairs(&sets[*set].2, &mut |imgs| {
            let d = describe_model(model, config.model.dim, imgs, size, how, device, &mut failed);
            on(EvalEvent::Embedded(imgs.len() * per));
            (d, hash_all(hasher, imgs))
        });
        if let Some(e) = failed {
            return Err(e.into());
        }
        pool_pairs(&mut pairs, these);
    }
    let grid = fit_fuse_rule(&pairs, &PER_BIT_GRID, &CAP_GRID);
    let regions = match regions {
        Some(source) => Some(RegionFit {
            source,
            mirrored: mirror_regions,
            ..fit_region_penalty(&pairs, grid[0].rule, &REGION_PENALTY_GRID)?
        }),
        None => None,
    };
    let mut distinct_photos: Vec<usize> = sets.iter().flat_map(|(chosen, ..)| chosen.iter().copied()).collect();
    distinct_photos.sort_unstable();
    distinct_photos.dedup();
    let fit = FusionFit {
        rule: grid[0].rule,
        hash: hasher.name().to_string(),
        photos: distinct_photos.len(),
        validation: runs.iter().all(|r| r.validation),
        fitted_on: fit_on.iter().map(|p| p.display().to_string()).collect(),
        eval_images: images,
        seed,
        distortions: distortions.iter().map(|d| d.to_string()).collect(),
        borders_stripped: strip_borders,
        grid,
        regions,
        mirror,
        seconds: started.elapsed().as_secs_f64(),
    };
    write_atomic(&model_dir.join(run_files::FUSION), &serde_json::to_vec_pretty(&fit).expect("serialisable"))?;
    Ok((fit, pairs))
}

/// One run whose model and photos make (part of) a fit.
struct FitSource {
    config: EmbedTrainConfig,
    model: EmbedNet,
    /// Whether its photos are validation photos (else training photos: a run from before them).
    validation: bool,
    /// Its evaluation images: an index into the fit's sets.
    set: usize,
}

/// Adds one run's pairs to `pooled`, distortion by distortion (every run is fitted under the same
/// distortions, in the same order).
fn pool_pairs(pooled: &mut Vec<FusePairs>, pairs: Vec<FusePairs>) {
    if pooled.is_empty() {
        *pooled = pairs;
        return;
    }
    for (into, p) in pooled.iter_mut().zip(pairs) {
        debug_assert_eq!(into.spec, p.spec);
        into.dup.extend(p.dup);
        into.distinct.extend(p.distinct);
        into.dup_regions.extend(p.dup_regions);
        into.distinct_regions.extend(p.distinct_regions);
    }
}

/// Whether a rule fitted with run `source` (config `fit`, folder `path`) may serve run `target`:
/// `source` has validation photos, both hold out the same photos, and both describe images at the
/// same size and dimension.
fn check_fit_on(target: &EmbedTrainConfig, fit: &EmbedTrainConfig, path: &Path) -> Result<(), EvalError> {
    let why = if fit.val_fraction.is_none() {
        "it kept no validation photos out of training (train it with --val-fraction)"
    } else if (target.test_fraction, target.twin_bits) != (fit.test_fraction, fit.twin_bits) {
        "it holds out other photos"
    } else if (target.model.input_size, target.model.dim) != (fit.model.input_size, fit.model.dim) {
        "its model has another input size or dimension"
    } else {
        return Ok(());
    };
    Err(Error::Invalid(format!("cannot fit on {}: {why}", path.display())).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use stabilize_core::{Channels, Image};

    fn photos(n: usize) -> Vec<Photo> {
        (0..n)
            .map(|k| {
                let img = Image::new(200, 200, Channels::Rgb, vec![(k * 7 % 256) as u8; 200 * 200 * 3]).unwrap();
                Photo::prepare(&format!("photo-{k}.png"), &img, 200).unwrap().unwrap()
            })
            .collect()
    }

    #[test]
    fn the_fit_draws_validation_photos_else_training_photos() {
        let ph = photos(60);
        // Flat photos hash alike: without the twin check (a run from before it) all are kept.
        let old =
            EmbedTrainConfig { test_fraction: 0.2, twin_bits: None, val_fraction: None, ..EmbedTrainConfig::new() };
        let split = old.split(&ph);
        let Split { train, test, .. } = &split;
        assert!(!test.is_empty() && split.val.is_empty());
        let a = fit_photos(&split, Some(10), 0).unwrap();
        assert_eq!(a.len(), 10);
        assert!(a.iter().all(|i| train.contains(i) && !test.contains(i)));
        // Seeded: the same draw again, another with another seed; all of them when asked for more;
        // as many as are held out by default.
        assert_eq!(a, fit_photos(&split, Some(10), 0).unwrap());
        assert_ne!(a, fit_photos(&split, Some(10), 1).unwrap());
        assert_eq!(&fit_photos(&split, Some(1000), 0).unwrap(), train);
        assert_eq!(fit_photos(&split, None, 0).unwrap().len(), test.len());
        // A run with validation photos fits on all of them, never on a photo it trained on.
        let new = EmbedTrainConfig { val_fraction: Some(0.2), ..old.clone() };
        let v = new.split(&ph);
        assert!(v.val.len() >= 2, "{:?}", v.val);
        assert_eq!(fit_photos(&v, None, 0).unwrap(), v.val);
        assert!(fit_photos(&v, Some(2), 0).unwrap().iter().all(|i| v.val.contains(i) && !v.train.contains(i)));
        // With the twin check they are one picture: one held-out photo, no training photo, so no fit.
        let twins = EmbedTrainConfig { twin_bits: Some(stabilize_core::data::crops::TWIN_BITS), ..old };
        let s = twins.split(&ph);
        assert_eq!((s.test.len(), s.train.len(), s.twins.len()), (1, 0, 59));
        assert!(fit_photos(&s, Some(10), 0).unwrap_err().to_string().contains("need ≥ 2 training photos"));
    }

    /// Two runs' pairs pool per distortion: the second run's follow the first's.
    #[test]
    fn pairs_of_several_runs_pool_per_distortion() {
        let run = |l2: f32| {
            ["jpeg:10", "hflip"]
                .map(|spec| FusePairs {
                    spec: spec.into(),
                    dup: vec![(l2, 3)],
                    distinct: vec![(l2 + 1.0, 30); 2],
                    dup_regions: vec![l2],
                    distinct_regions: vec![l2 + 0.5; 2],
                })
                .to_vec()
        };
        let mut pooled = Vec::new();
        pool_pairs(&mut pooled, run(0.1));
        pool_pairs(&mut pooled, run(0.2));
        assert_eq!(pooled.len(), 2);
        for p in &pooled {
            assert_eq!(p.dup, [(0.1, 3), (0.2, 3)]);
            assert_eq!(p.distinct, [(1.1, 30), (1.1, 30), (1.2, 30), (1.2, 30)]);
            assert_eq!((p.dup_regions.len(), p.distinct_regions.len()), (2, 4));
        }
    }

    #[test]
    fn a_rule_is_fitted_on_another_run_only_of_the_same_split_and_size() {
        let target = EmbedTrainConfig { val_fraction: None, ..EmbedTrainConfig::new() };
        let fit = EmbedTrainConfig::new();
        let p = Path::new("runs/v");
        check_fit_on(&target, &fit, p).unwrap();
        let no_val = check_fit_on(&target, &target, p).unwrap_err().to_string();
        assert!(no_val.contains("cannot fit on runs/v: it kept no validation photos"), "{no_val}");
        let other = EmbedTrainConfig { twin_bits: None, ..fit.clone() };
        assert!(check_fit_on(&target, &other, p).unwrap_err().to_string().contains("holds out other photos"));
        let other = EmbedTrainConfig { test_fraction: 0.3, ..fit.clone() };
        assert!(check_fit_on(&target, &other, p).unwrap_err().to_string().contains("holds out other photos"));
        let mut other = fit;
        other.model.input_size = 160;
        assert!(check_fit_on(&target, &other, p).unwrap_err().to_string().contains("input size"));
    }
}
