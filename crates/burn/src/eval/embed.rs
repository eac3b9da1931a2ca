//! Evaluating an embedding run folder on the held-out photos: near-duplicate detection and
//! ranking for the fine-tuned model, the pretrained MobileNetV2 features and the four perceptual
//! hashes, in one protocol ([`stabilize_core::eval::embed`]); written to the run's `eval.json`,
//! and with a baseline, the pairs where the two disagree most to `examples/`.

use std::path::Path;
use std::time::Instant;

use burn::tensor::Device;
use rayon::prelude::*;
use stabilize_core::data::crops::Photo;
use stabilize_core::eval::embed::{
    Descriptors, EmbedEval, EvalSet, FUSED_METHOD, PRETRAINED_MIRROR_METHOD, REGIONS_FUSED_METHOD, REGIONS_METHOD,
    disagreements, evaluate_method, hash_all,
};
use stabilize_core::eval::fusion::read_fit_settings;
use stabilize_core::fsutil::write_atomic;
use stabilize_core::image::borders::strip_borders_to;
use stabilize_core::image::hash::HashKind;
use stabilize_core::image::regions::{REGION_COUNT, REGION_SCALE, RegionSource, with_regions};
use stabilize_core::{Distortion, Error, Image, run_files};

use crate::embed::{EmbedNet, EmbedNetConfig};
use crate::infer::{
    EMBED_BATCH, embed_images, embed_map_regions, embed_zoomed_map_regions, mirror_wholes, pretrained_features,
    pretrained_features_mirrored,
};
use crate::mobilenet::FEATURES;
use crate::train::TrainError;
use crate::train::embed::load_embedder;

/// Pairs per distortion written to `examples/` where the model and its baseline disagree most.
pub const EXAMPLES_PER_DISTORTION: usize = 8;

/// Why an embedding evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{0}")]
    Run(#[from] TrainError),
    #[error("{0}")]
    Core(#[from] stabilize_core::Error),
    #[error("{0}")]
    Weights(String),
    #[error("{0}")]
    Baseline(String),
}

/// Progress of [`evaluate_embedding_run`].
pub enum EvalEvent {
    /// The held-out set is built; `images` will be embedded in all (model and pretrained).
    Start { images: usize },
    /// Now describing with this method (`fine-tuned model`, `pretrained features`, `hashes`).
    Method(&'static str),
    /// `n` more images embedded.
    Embedded(usize),
}

/// A finished evaluation and the held-out set it ran on (for the examples).
pub struct EmbeddingEvaluation {
    pub eval: EmbedEval,
    pub set: EvalSet,
}

/// Reads a run's `eval.json` as an embedding evaluation (`what` names it in errors).
pub fn read_embed_eval(dir: &Path) -> Result<EmbedEval, EvalError> {
    let p = dir.join(run_files::EVAL);
    let bytes = std::fs::read(&p)
        .map_err(|e| EvalError::Baseline(format!("reading {} (evaluate the baseline first): {e}", p.display())))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| EvalError::Baseline(format!("{} is not an embedding evaluation: {e}", p.display())))
}

/// Row-major `[N, 1 + REGION_COUNT, dim]` embeddings of same-sized images: each image's whole,
/// then its [`regions`](stabilize_core::image::regions) at [`REGION_SCALE`], at `size` px. With
/// `mirror`, every one of those rows is the unit mean of the view's and its mirror image's
/// vectors ([`mirror_wholes`] over the views: twice the forward passes): the mirror of a region
/// is the mirrored image's region on the other side, so a mirrored copy cut down to part of the
/// picture matches that region as it matches it unmirrored.
pub fn embed_with_regions(
    model: &EmbedNet,
    images: &[Image],
    size: u32,
    mirror: bool,
    device: &Device,
) -> Result<Vec<f32>, stabilize_core::Error> {
    let mut out = Vec::new();
    for chunk in images.chunks(EMBED_BATCH) {
        let parts: Vec<Vec<Image>> =
            chunk.par_iter().map(|img| with_regions(img, REGION_SCALE, size, size)).collect::<Result<_, _>>()?;
        let flat: Vec<Image> = parts.into_iter().flatten().collect();
        let mut data = embed_images(model, &flat, EMBED_BATCH, device);
        if mirror {
            mirror_wholes(model, &flat, &mut data, 1, EMBED_BATCH, device);
        }
        out.extend(data);
    }
    Ok(out)
}

/// How a model describes an image besides its whole's vector.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Describing {
    /// `Some((source, penalty))`: also its regions ([`Descriptors::Regions`]), from `source`.
    pub regions: Option<(RegionSource, f64)>,
    /// The whole's vector is the mean of the image's and its mirror image's ([`mirror_wholes`]).
    pub mirror: bool,
    /// Every cut-out view's vector, the whole's and the regions', mirror-averaged
    /// ([`embed_with_regions`]; with [`RegionSource::Crops`] only; it implies `mirror`'s effect).
    pub mirror_regions: bool,
}

impl Describing {
    /// Whether every view, whole and cut-out region, is mirror-averaged (`mirror_regions` with
    /// cut-out regions); otherwise only the whole is, with `mirror`.
    pub fn mirrors_every_view(&self) -> bool {
        self.mirror_regions && matches!(self.regions, Some((RegionSource::Crops, _)))
    }

    /// Forward passes per image: each view's, twice for each mirror-averaged one.
    pub fn passes(&self) -> usize {
        let views = self.regions.map_or(1, |(source, _)| source.passes());
        if self.mirrors_every_view() { 2 * views } else { views + usize::from(self.mirror) }
    }
}

/// The model's descriptors of same-sized images at `size` px: the wholes' vectors, or with
/// regions the wholes' and their regions' ([`Descriptors::Regions`]), mirror-averaged wholes
/// (and cut-out regions) when asked ([`Describing`]). For the protocol's describe callbacks,
/// which cannot fail: a region that cannot be rendered leaves zeros of the right layout and its
/// error in `failed` (the caller returns it).
pub fn describe_model(
    model: &EmbedNet,
    dim: usize,
    images: &[Image],
    size: u32,
    how: Describing,
    device: &Device,
    failed: &mut Option<stabilize_core::Error>,
) -> Descriptors {
    let mut d = match how.regions {
        Some((source, penalty)) => {
            let per = 1 + REGION_COUNT;
            let data = match source {
                RegionSource::Crops => embed_with_regions(model, images, size, how.mirror_regions, device),
                RegionSource::Map => Ok(embed_map_regions(model, images, REGION_SCALE, EMBED_BATCH, device)),
                RegionSource::Zoom => embed_zoomed_map_regions(model, images, REGION_SCALE, EMBED_BATCH, device),
            }
            .unwrap_or_else(|e| {
                failed.get_or_insert(e);
                vec![0.0; images.len() * per * dim]
            });
            Descriptors::Regions { dim, per, data, penalty }
        }
        None => Descriptors::Vectors { dim, data: embed_images(model, images, EMBED_BATCH, device) },
    };
    if how.mirror && !how.mirrors_every_view() {
        let (data, per) = match &mut d {
            Descriptors::Regions { data, per, .. } => (data, *per),
            Descriptors::Vectors { data, .. } => (data, 1),
            _ => unreachable!("the model's descriptors are vectors"),
        };
        mirror_wholes(model, images, data, per, EMBED_BATCH, device);
    }
    d
}

/// What [`evaluate_embedding_run`] measures besides the model, the pretrained features, the
/// hashes and the model fused with pHash.
#[derive(Clone, Copy, Debug, Default)]
pub struct EvalExtras {
    /// Also describe every image by its whole and its regions (`model+regions`, and that fused
    /// with pHash, `model+regions+phash`), the regions from this source: 6× the model's
    /// embeddings from crops, the same forward passes from the map.
    pub regions: Option<RegionSource>,
}

/// Evaluates the embedding run `model_dir` on the held-out photos of `photos` (the run's split),
/// under `distortions` (their random parts and the ranking triplets seeded by `seed`), beside the
/// pretrained features (`weights`) and the hashes; writes `eval.json`. With `baseline` (an
/// evaluation of the same images), also writes the disagreements to `examples/`.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_embedding_run(
    model_dir: &Path,
    photos: &[Photo],
    weights: &Path,
    distortions: &[Distortion],
    seed: u64,
    strip_borders: bool,
    extras: EvalExtras,
    baseline: Option<&EmbedEval>,
    device: &Device,
    on: &mut dyn FnMut(EvalEvent),
) -> Result<EmbeddingEvaluation, EvalError> {
    let started = Instant::now();
    let (config, model) = load_embedder(model_dir, device)?;
    let fit = read_fit_settings(model_dir)?;
    let (rule, fitted_source, penalty, mirror) = (fit.rule, fit.region_source, fit.region_penalty, fit.mirror);
    if let Some(source) = extras.regions
        && source != fitted_source
        && penalty != 0.0
    {
        return Err(Error::Invalid(format!(
            "{}'s region penalty was fitted on regions from {}; re-run `stabilize eval fusion --model {} --regions --region-source {}` first",
            model_dir.join(run_files::FUSION).display(),
            fitted_source.name(),
            model_dir.display(),
            source.name()
        ))
        .into());
    }
    let size = config.model.input_size;
    let test = config.split(photos).test;
    let set = EvalSet::build(photos, &test, size as u32, distortions, seed)?;
    // What every method describes: the images without their solid borders (as `dupes` and
    // `embed` see files), or as they are.
    let stripped = if strip_borders {
        Some(set.map_images(&|img| strip_borders_to(img, size as u32, size as u32))?)
    } else {
        None
    };
    let described = stripped.as_ref().unwrap_or(&set);
    let regions = extras.regions.map(|source| (source, penalty));
    // Mirror-averaged regions when the fit's were and these are its regions (cut out).
    let how = Describing { regions, mirror, mirror_regions: fit.mirror_regions };
    let mirror_regions = how.mirrors_every_view();
    // Forward passes per image: the model's (with its regions and the mirror image) and the
    // pretrained features' (also mirror-averaged, as a second baseline, for a mirrored model).
    let model_passes = how.passes();
    let pretrained_passes = 1 + 2 * usize::from(mirror);
    on(EvalEvent::Start { images: set.image_count() * (model_passes + pretrained_passes) });
    on(EvalEvent::Method("fine-tuned model"));
    // The model's descriptors (with regions when asked), in the order the protocol asks for them,
    // kept for the other methods that use them.
    let mut kept: Vec<Descriptors> = Vec::new();
    let mut failed = None;
    let mut describe = |imgs: &[Image]| {
        let d = describe_model(&model, config.model.dim, imgs, size as u32, how, device, &mut failed);
        on(EvalEvent::Embedded(imgs.len() * model_passes));
        kept.push(d.clone());
        d.wholes()
    };
    let main = evaluate_method("model", described, &mut describe);
    if let Some(e) = failed {
        return Err(e.into());
    }
    on(EvalEvent::Method("pretrained features"));
    let pretrained = EmbedNetConfig::new()
        .with_input_size(size)
        .with_frozen_blocks(0)
        .init_pretrained(weights, device)
        .map_err(|e| EvalError::Weights(format!("{}: {e}", weights.display())))?;
    let mut describe_pre = |imgs: &[Image]| {
        let data = pretrained_features(&pretrained, imgs, EMBED_BATCH, device);
        on(EvalEvent::Embedded(imgs.len()));
        Descriptors::Vectors { dim: FEATURES, data }
    };
    let mut baselines = vec![evaluate_method("pretrained", described, &mut describe_pre)];
    if mirror {
        let mut describe_pre_mirrored = |imgs: &[Image]| {
            let data = pretrained_features_mirrored(&pretrained, imgs, EMBED_BATCH, device);
            on(EvalEvent::Embedded(2 * imgs.len()));
            Descriptors::Vectors { dim: FEATURES, data }
        };
        baselines.push(evaluate_method(PRETRAINED_MIRROR_METHOD, described, &mut describe_pre_mirrored));
    }
    on(EvalEvent::Method("hashes"));
    // pHash's hashes, in the same order, kept beside the model's vectors for the fused method.
    let mut phashes = Vec::new();
    for kind in HashKind::ALL {
        baselines.push(evaluate_method(kind.name(), described, &mut |imgs| {
            let h = hash_all(kind, imgs);
            if kind == HashKind::Phash {
                phashes.push(h.clone());
            }
            Descriptors::Hashes(h)
        }));
    }
    // The fused methods replay both: the protocol describes the same slices in the same order.
    let mut replay = kept.iter().zip(&phashes);
    let mut describe_fused = |_: &[Image]| {
        let (vectors, hashes) = replay.next().expect("one kept description per slice");
        Descriptors::fuse(vectors.wholes(), hashes.clone(), rule)
    };
    baselines.push(evaluate_method(FUSED_METHOD, described, &mut describe_fused));
    assert!(replay.next().is_none(), "the fused method replays every slice the model described");
    if extras.regions.is_some() {
        let mut replay = kept.iter();
        let mut describe_regions = |_: &[Image]| replay.next().expect("one kept description per slice").clone();
        baselines.push(evaluate_method(REGIONS_METHOD, described, &mut describe_regions));
        let mut replay = kept.into_iter().zip(phashes);
        let mut describe_fused = |_: &[Image]| {
            let (vectors, hashes) = replay.next().expect("one kept description per slice");
            Descriptors::fuse(vectors, hashes, rule)
        };
        baselines.push(evaluate_method(REGIONS_FUSED_METHOD, described, &mut describe_fused));
    }
    let eval = EmbedEval {
        model: model_dir.display().to_string(),
        seed,
        test_photos: test.len(),
        eval_images: set.clean.len(),
        ranking_triplets: set.queries.len(),
        distortions: main.distortions,
        pooled: main.pooled,
        baselines,
        borders_stripped: strip_borders,
        fuse_rule: Some(rule),
        region_penalty: extras.regions.map(|_| penalty),
        region_source: extras.regions,
        mirror,
        mirror_regions,
        seconds: started.elapsed().as_secs_f64(),
    };
    write_atomic(&model_dir.join(run_files::EVAL), &serde_json::to_vec(&eval).expect("serialisable"))?;
    // The examples show the images as the methods saw them (borders cut when they were).
    let evaluation = EmbeddingEvaluation { eval, set: stripped.unwrap_or(set) };
    if let Some(base) = baseline {
        write_examples(model_dir, base, &evaluation)?;
    }
    Ok(evaluation)
}

/// Writes the pairs per distortion where `evaluation` and `baseline` disagree most to
/// `model_dir/examples/` (clean and distorted PNGs, and `examples.json`).
pub fn write_examples(
    model_dir: &Path,
    baseline: &EmbedEval,
    evaluation: &EmbeddingEvaluation,
) -> Result<(), EvalError> {
    let (eval, set) = (&evaluation.eval, &evaluation.set);
    if baseline.eval_images != eval.eval_images || baseline.seed != eval.seed {
        return Err(EvalError::Baseline(format!(
            "the baseline was evaluated on other images (seed {}, {} images); re-evaluate it with --seed {}",
            baseline.seed, baseline.eval_images, eval.seed
        )));
    }
    if baseline.borders_stripped != eval.borders_stripped {
        return Err(EvalError::Baseline(
            "the baseline was evaluated with borders treated differently; re-evaluate both the same way".into(),
        ));
    }
    let examples = disagreements(&baseline.distortions, &eval.distortions, EXAMPLES_PER_DISTORTION);
    let dir = model_dir.join(run_files::EXAMPLES_DIR);
    for (k, (spec, rows)) in examples.iter().enumerate() {
        let sub = dir.join(spec.replace(':', "-"));
        std::fs::create_dir_all(&sub).map_err(|e| Error::io(&sub, e))?;
        for (r, row) in rows.iter().enumerate() {
            set.clean[row.index].save(&sub.join(format!("{r}-clean.png")))?;
            set.distorted[k][row.index].save(&sub.join(format!("{r}-distorted.png")))?;
        }
    }
    write_atomic(&model_dir.join(run_files::EXAMPLES), &serde_json::to_vec_pretty(&examples).expect("serialisable"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use stabilize_core::Channels;
    use stabilize_core::image::regions::regions;

    /// `n` RGB images of `side`² px, each a different repeating pattern.
    fn patterned(n: usize, side: usize) -> Vec<Image> {
        (0..n)
            .map(|k| {
                let data = (0..side * side * 3).map(|i| ((i * (7 + k)) % 251) as u8).collect();
                Image::new(side as u32, side as u32, Channels::Rgb, data).unwrap()
            })
            .collect()
    }

    #[test]
    fn with_regions_each_image_is_its_whole_then_its_five_regions() {
        let device = Device::flex();
        let model = EmbedNetConfig::new().with_dim(8).with_input_size(32).init(&device);
        let imgs = patterned(3, 32);
        let all = embed_with_regions(&model, &imgs, 32, false, &device).unwrap();
        let per = 1 + REGION_COUNT;
        assert_eq!(all.len(), 3 * per * 8);
        // Row 0 of each image is its whole, rows 1.. its regions in `regions`' order.
        let wholes = embed_images(&model, &imgs, EMBED_BATCH, &device);
        let second = embed_images(&model, &regions(&imgs[1], REGION_SCALE, 32, 32).unwrap(), EMBED_BATCH, &device);
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4);
        for k in 0..3 {
            assert!(close(&all[k * per * 8..k * per * 8 + 8], &wholes[k * 8..k * 8 + 8]), "image {k}");
        }
        assert!(close(&all[(per + 1) * 8..(2 * per) * 8], &second));
        // A region is another input than the whole (an untrained network maps both near each other).
        assert_ne!(&all[..8], &all[8..16]);
    }

    #[test]
    fn forward_passes_per_image_count_each_view_and_its_mirror() {
        let how = |regions: Option<RegionSource>, mirror, mirror_regions| Describing {
            regions: regions.map(|s| (s, 0.05)),
            mirror,
            mirror_regions,
        };
        let crops = Some(RegionSource::Crops);
        assert_eq!(how(None, false, false).passes(), 1);
        assert_eq!(how(None, true, false).passes(), 2);
        assert_eq!(how(crops, false, false).passes(), 6);
        assert_eq!(how(crops, true, false).passes(), 7);
        assert_eq!(how(crops, true, true).passes(), 12);
        // Regions pooled from a feature map are not views of their own: only the whole mirrors.
        assert!(!how(Some(RegionSource::Map), true, true).mirrors_every_view());
        assert_eq!(how(Some(RegionSource::Map), true, true).passes(), 2);
        assert_eq!(how(Some(RegionSource::Zoom), true, false).passes(), 3);
        // Without regions there is nothing else to mirror.
        assert!(!how(None, true, true).mirrors_every_view());
    }

    #[test]
    fn zoomed_map_regions_are_the_whole_then_the_enlarged_images_windows() {
        use stabilize_core::image::regions::{map_window_weights, zoomed_side};
        use stabilize_core::image::resize::{Filter, resize};
        let device = Device::flex();
        let model = EmbedNetConfig::new().with_dim(8).with_input_size(64).init(&device);
        let imgs = patterned(3, 64);
        // Batches of 2 so that a chunk boundary falls inside the three images.
        let all = crate::infer::embed_zoomed_map_regions(&model, &imgs, REGION_SCALE, 2, &device).unwrap();
        let per = 1 + REGION_COUNT;
        assert_eq!(all.len(), 3 * per * 8);
        let wholes = embed_images(&model, &imgs, EMBED_BATCH, &device);
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4);
        // 64 px → 85 px enlarged → a 3×3 last map; its region rows are the weights' rows 1...
        assert_eq!(zoomed_side(64, REGION_SCALE), 85);
        let big = resize(&imgs[2], 85, 85, Filter::Bicubic).unwrap();
        let x = crate::tensor::images_to_tensor(&[&big], &device);
        let third: Vec<f32> = model
            .forward_windows(x, |h, w| {
                assert_eq!((h, w), (3, 3));
                map_window_weights(h, w, REGION_SCALE)[h * w..].to_vec()
            })
            .try_into_vec_as()
            .unwrap();
        for k in 0..3 {
            assert!(close(&all[k * per * 8..k * per * 8 + 8], &wholes[k * 8..k * 8 + 8]), "image {k}");
        }
        assert!(close(&all[(2 * per + 1) * 8..3 * per * 8], &third));
    }
}
