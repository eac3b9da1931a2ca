//! Image collections on disk, embedded with a trained model: [`Embedder`] (a run folder loaded
//! for inference, with its calibrated threshold, or the pretrained ImageNet features) and [`embed_files`] (parallel decode, batched
//! embedding, the per-model cache of [`stabilize_core::dedup::cache`]). Shared by `dupes` and
//! `index`.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use rayon::prelude::*;
use stabilize_core::dedup::FileInfo;
use stabilize_core::dedup::cache::{Cache, CacheEntry, stat};
use stabilize_core::dedup::shards::{SHARD_FILES, SHARD_MODEL, ShardFile, ShardModel};
use stabilize_core::eval::EmbedEval;
use stabilize_core::eval::embed::{FUSED_METHOD, REGIONS_FUSED_METHOD, REGIONS_METHOD};
use stabilize_core::eval::fusion::{FuseRule, read_fit_settings};
use stabilize_core::eval::retrieval::point_at_precision;
use stabilize_core::fsutil::{sha256_bytes, sha256_file};
use stabilize_core::image::borders::into_content;
use stabilize_core::image::hash::{HashKind, PerceptualHash};
use stabilize_core::image::load;
use stabilize_core::image::regions::{REGION_COUNT, REGION_SCALE, RegionSource, regions as image_regions};
use stabilize_core::image::resize::{Filter, resize};
use stabilize_core::run_files;

use crate::embed::{EmbedNet, EmbedNetConfig};
use crate::infer::{
    EMBED_BATCH, embed_images, embed_map_regions, embed_zoomed_map_regions, mirror_wholes, pretrained_features,
};
use crate::mobilenet::FEATURES;
use crate::train::{TrainError, load_embedder};

/// Why a model could not be used on a collection.
#[derive(Debug, thiserror::Error)]
pub enum CollectionError {
    #[error("{0}")]
    Load(#[from] TrainError),
    #[error("{0}")]
    Io(#[from] stabilize_core::Error),
    #[error("{0}")]
    Calibration(String),
    #[error("{0}")]
    Weights(String),
}

/// What an [`Embedder`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbedderKind {
    /// A trained embedding run: `model.forward`, d-dimensional.
    Run,
    /// torchvision's ImageNet MobileNetV2 without fine-tuning: pooled 1280-d features,
    /// L2-normalised.
    Pretrained,
}

/// What is done to a file before it is described, part of the cache key: solid borders cut off
/// ([`into_content`]), then resized to the model's input.
pub const PIPELINE: &str = "strip-borders-v1";

/// What [`PIPELINE`] becomes when each whole is described as the mean of the image and its
/// mirror image ([`Embedder::mirror`]): other vectors, so another cache and index identity.
pub const MIRROR_PIPELINE: &str = "strip-borders-v1+mirror-v1";

/// Part of the cache key when each file is described by its whole and its
/// [`regions`](stabilize_core::image::regions) (scale and layout).
pub const REGIONS_PIPELINE: &str = ":regions-0.75-corners-centre-v1";

/// Part of the cache key when the cut-out regions are mirror-averaged as the wholes are
/// ([`Embedder::mirror_regions`]).
pub const MIRRORED_REGIONS_PIPELINE: &str = ":regions-0.75-corners-centre-mirror-v1";

/// Part of the cache key when the regions are pooled from the feature map
/// ([`RegionSource::Map`]) rather than cut out.
pub const MAP_REGIONS_PIPELINE: &str = ":regions-0.75-corners-centre-map-v1";

/// Part of the cache key when the regions are pooled from the feature map of the enlarged image
/// ([`RegionSource::Zoom`]).
pub const ZOOM_REGIONS_PIPELINE: &str = ":regions-0.75-corners-centre-zoom-v1";

/// Which descriptor to embed with (`--model pretrained|RUN`).
#[derive(Clone, Debug, PartialEq)]
pub enum ModelSpec {
    /// A trained embedding run folder.
    Run(PathBuf),
    /// The pretrained ImageNet features ([`Embedder::pretrained`]) from this weights file.
    Pretrained { weights: PathBuf, input_size: u32 },
}

/// The input side of the pretrained features when none is given: ImageNet's 224 px.
pub const PRETRAINED_INPUT: u32 = 224;

impl ModelSpec {
    /// Loads it onto `device`.
    pub fn load(&self, device: &Device) -> Result<Embedder, CollectionError> {
        match self {
            ModelSpec::Run(dir) => Embedder::load(dir, device),
            ModelSpec::Pretrained { weights, input_size } => Embedder::pretrained(weights, *input_size, device),
        }
    }
}

impl std::fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelSpec::Run(dir) => write!(f, "model {}", dir.display()),
            ModelSpec::Pretrained { input_size, .. } => write!(f, "pretrained MobileNetV2 features ({input_size} px)"),
        }
    }
}

/// A trained embedding model, ready to embed files.
pub struct Embedder {
    pub model: EmbedNet,
    pub input_size: u32,
    pub dim: usize,
    pub device: Device,
    /// The run folder, or the weights file for [`EmbedderKind::Pretrained`].
    pub dir: PathBuf,
    /// What identifies the vectors it makes (with [`PIPELINE`], the embedding cache's key:
    /// [`Embedder::cache_key`]): the sha256 of model.bpk
    /// for a run; for the pretrained features, the sha256 of the weights' sha256 and the input
    /// size.
    pub weights_sha256: String,
    pub kind: EmbedderKind,
    /// How the model is fused with a hash: the run's fitted rule (`fusion.json`), else
    /// [`FuseRule::UNFITTED`].
    pub fuse_rule: FuseRule,
    /// What a region match adds to its distance when files are described with regions: the
    /// run's fitted penalty (`fusion.json`), else 0.
    pub region_penalty: f64,
    /// Where the regions' descriptors come from: what the run's penalty was fitted on
    /// (`fusion.json`), else crops.
    pub region_source: RegionSource,
    /// Whether a whole image is described by the mean of its and its mirror image's vectors
    /// (the run's fit, `fusion.json`; [`crate::infer::mirror_wholes`]): one more forward pass
    /// per file.
    pub mirror: bool,
    /// Whether, with regions cut out ([`RegionSource::Crops`]), each region's vector is
    /// mirror-averaged too (the run's fit; [`crate::eval::embed::embed_with_regions`]): twice
    /// the forward passes with regions.
    pub mirror_regions: bool,
}

impl Embedder {
    /// Loads the embedding run folder `dir` onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Embedder, CollectionError> {
        let (config, model) = load_embedder(dir, device)?;
        let weights_sha256 = sha256_file(&dir.join(run_files::MODEL))?;
        let fit = read_fit_settings(dir)?;
        Ok(Embedder {
            model,
            input_size: config.model.input_size as u32,
            dim: config.model.dim,
            device: device.clone(),
            dir: dir.to_path_buf(),
            weights_sha256,
            kind: EmbedderKind::Run,
            fuse_rule: fit.rule,
            region_penalty: fit.region_penalty,
            region_source: fit.region_source,
            mirror: fit.mirror,
            mirror_regions: fit.mirror_regions,
        })
    }

    /// torchvision's ImageNet MobileNetV2 (`weights`, the `.pth` file) as a descriptor: the
    /// pooled 1280-d features of `input_size`² RGB input, L2-normalised, without fine-tuning.
    pub fn pretrained(weights: &Path, input_size: u32, device: &Device) -> Result<Embedder, CollectionError> {
        let config = EmbedNetConfig::new().with_input_size(input_size as usize).with_frozen_blocks(0);
        config.validate().map_err(CollectionError::Weights)?;
        let model = config
            .init_pretrained(weights, device)
            .map_err(|e| CollectionError::Weights(format!("{}: {e}", weights.display())))?;
        let file_sha = sha256_file(weights)?;
        let weights_sha256 = sha256_bytes(format!("pretrained-mobilenet-v2:{file_sha}:{input_size}").as_bytes());
        Ok(Embedder {
            model,
            input_size,
            dim: FEATURES,
            device: device.clone(),
            dir: weights.to_path_buf(),
            weights_sha256,
            kind: EmbedderKind::Pretrained,
            fuse_rule: FuseRule::UNFITTED,
            region_penalty: 0.0,
            region_source: RegionSource::Crops,
            mirror: false,
            mirror_regions: false,
        })
    }

    /// The key of this model's embedding cache: the vectors' identity, the [`PIPELINE`], the
    /// hash stored beside each vector (`fused`), and whether each entry holds the regions'
    /// vectors too ([`REGIONS_PIPELINE`]).
    pub fn cache_key(&self, fused: Option<HashKind>, regions: bool) -> String {
        let hash = fused.map_or("", |k| k.name());
        let regions = match (regions, self.region_source) {
            (false, _) => "",
            (true, RegionSource::Crops) if self.mirror_regions => MIRRORED_REGIONS_PIPELINE,
            (true, RegionSource::Crops) => REGIONS_PIPELINE,
            (true, RegionSource::Map) => MAP_REGIONS_PIPELINE,
            (true, RegionSource::Zoom) => ZOOM_REGIONS_PIPELINE,
        };
        sha256_bytes(format!("{}:{}:{hash}{regions}", self.weights_sha256, self.pipeline()).as_bytes())
    }

    /// What is done to a file before and around the model: [`PIPELINE`], or [`MIRROR_PIPELINE`]
    /// for a mirror-averaged model. Recorded in indexes and embedding folders; vectors of two
    /// pipelines are not comparable.
    pub fn pipeline(&self) -> &'static str {
        if self.mirror { MIRROR_PIPELINE } else { PIPELINE }
    }

    /// Why vectors recorded with pipeline `recorded` (an index, an embedding shard) cannot be
    /// compared with this model's: made by an older stabilize (borders kept), or the other side
    /// of [`Embedder::mirror`]; `None` when they can. The reason ends "rebuild `what`".
    pub fn pipeline_mismatch(&self, recorded: &str, what: &str) -> Option<String> {
        let now = self.pipeline();
        if recorded == now {
            None
        } else if recorded == PIPELINE || recorded == MIRROR_PIPELINE {
            Some(format!(
                "made with pipeline {recorded:?}, but {} now describes files with {now:?} (its fusion.json changed); rebuild {what}",
                self.dir.display()
            ))
        } else {
            Some(format!(
                "made by an older stabilize that embedded files with their borders (pipeline {recorded:?}, now {now:?}); rebuild {what}"
            ))
        }
    }

    /// The network's vectors `[N·dim]` of same-sized RGB images (`input_size`²), one per image,
    /// none mirror-averaged: the run's embedding, or the pretrained features.
    fn plain(&self, images: &[stabilize_core::Image]) -> Vec<f32> {
        match self.kind {
            EmbedderKind::Run => embed_images(&self.model, images, EMBED_BATCH, &self.device),
            EmbedderKind::Pretrained => pretrained_features(&self.model, images, EMBED_BATCH, &self.device),
        }
    }

    /// Descriptors `[N·dim]` of same-sized RGB images (`input_size`²), mirror-averaged when
    /// the model is.
    pub fn describe(&self, images: &[stabilize_core::Image]) -> Vec<f32> {
        let mut data = self.plain(images);
        if self.mirror {
            mirror_wholes(&self.model, images, &mut data, 1, EMBED_BATCH, &self.device);
        }
        data
    }

    /// Descriptors of the views [`embed_files`] made, same-sized RGB images (`input_size`²):
    /// without `regions` or with cut-out regions ([`RegionSource::Crops`], already among the
    /// views), one vector per view; otherwise `[N·(1 + REGION_COUNT)·dim]`, each image's whole
    /// then its regions pooled from a feature map ([`RegionSource::Map`], or [`RegionSource::Zoom`]
    /// with the enlarged image made from the `input_size`² one).
    /// With [`Embedder::mirror`], each file's whole vector is mirror-averaged (its regions' too
    /// with [`Embedder::mirror_regions`]).
    fn describe_views(&self, views: &[stabilize_core::Image], regions: bool) -> Result<Vec<f32>, String> {
        let mut data = match (regions, self.region_source) {
            (true, RegionSource::Map) => embed_map_regions(&self.model, views, REGION_SCALE, EMBED_BATCH, &self.device),
            (true, RegionSource::Zoom) => {
                embed_zoomed_map_regions(&self.model, views, REGION_SCALE, EMBED_BATCH, &self.device)
                    .map_err(|e| e.to_string())?
            }
            (false, _) => return Ok(self.describe(views)),
            (true, RegionSource::Crops) => self.plain(views),
        };
        if self.mirror_regions && self.region_source == RegionSource::Crops {
            // Every view, whole or region, averaged with its mirror image.
            mirror_wholes(&self.model, views, &mut data, 1, EMBED_BATCH, &self.device);
        } else if self.mirror {
            let per = 1 + REGION_COUNT;
            let (device, batch) = (&self.device, EMBED_BATCH);
            match self.region_source {
                // Cut-out regions are views of their own: every `per`-th view is a whole.
                RegionSource::Crops => {
                    let wholes: Vec<stabilize_core::Image> = views.iter().step_by(per).cloned().collect();
                    mirror_wholes(&self.model, &wholes, &mut data, per, batch, device);
                }
                RegionSource::Map | RegionSource::Zoom => {
                    mirror_wholes(&self.model, views, &mut data, per, batch, device)
                }
            }
        }
        Ok(data)
    }

    /// The distance threshold at precision `p` from the model's evaluation (`eval.json`,
    /// pooled calibration points, else its PR curve); with `fused`, that of the model fused with
    /// the hash (the evaluation's `model+HASH` method); with `regions`, that of the model with
    /// regions (`model+regions`, `model+regions+HASH`: `eval embed --regions`).
    pub fn calibrated_threshold(&self, p: f64, fused: Option<HashKind>, regions: bool) -> Result<f64, CollectionError> {
        if self.kind == EmbedderKind::Pretrained {
            return Err(CollectionError::Calibration(
                "the pretrained features have no calibration; pass --threshold (an L2 distance)".into(),
            ));
        }
        let eval_path = self.dir.join(run_files::EVAL);
        let bytes = std::fs::read(&eval_path).map_err(|e| {
            CollectionError::Calibration(format!(
                "{}: no calibration ({e}; run `stabilize eval embed --model {}` or pass --threshold)",
                eval_path.display(),
                self.dir.display()
            ))
        })?;
        let eval: EmbedEval = serde_json::from_slice(&bytes).map_err(|e| {
            CollectionError::Calibration(format!("{} is not an embedding evaluation: {e}", eval_path.display()))
        })?;
        // A calibration made with `what` mirror-averaged otherwise than the fit says.
        let mirrored_otherwise = |what: &str, made: bool, says: bool| {
            let with = |b: bool| if b { "with" } else { "without" };
            let rerun = if regions {
                format!(" --regions --region-source {}", self.region_source.name())
            } else {
                String::new()
            };
            CollectionError::Calibration(format!(
                "{} was made {} mirror-averaged {what}, but {} says {}; re-run `stabilize eval embed --model {}{rerun}`",
                eval_path.display(),
                with(made),
                self.dir.join(run_files::FUSION).display(),
                with(says),
                self.dir.display(),
            ))
        };
        if eval.mirror != self.mirror {
            return Err(mirrored_otherwise("wholes", eval.mirror, self.mirror));
        }
        if regions
            && (eval.region_penalty != Some(self.region_penalty)
                || eval.region_source.unwrap_or_default() != self.region_source)
        {
            return Err(CollectionError::Calibration(format!(
                "{} holds no calibration with regions from {} at the run's region penalty {} (re-run `stabilize eval embed --model {} --regions --region-source {}`, or pass --threshold)",
                eval_path.display(),
                self.region_source.name(),
                self.region_penalty,
                self.dir.display(),
                self.region_source.name()
            )));
        }
        if regions && eval.mirror_regions != self.mirror_regions {
            return Err(mirrored_otherwise("regions", eval.mirror_regions, self.mirror_regions));
        }
        let method = |name: &str, what: &str| {
            eval.baselines.iter().find(|m| m.name == name).map(|m| &m.pooled).ok_or_else(|| {
                CollectionError::Calibration(format!(
                    "{} has no calibration of {what} (re-run `stabilize eval embed --model {}{}`, or pass --threshold)",
                    eval_path.display(),
                    self.dir.display(),
                    if regions { " --regions" } else { "" }
                ))
            })
        };
        let pooled = match fused {
            None if regions => method(REGIONS_METHOD, "the model with regions")?,
            None => &eval.pooled,
            Some(kind) if kind != HashKind::Phash => {
                return Err(CollectionError::Calibration(format!(
                    "only the model fused with phash is calibrated; with {} pass --threshold (an L2 distance; fused by the model's rule)",
                    kind.name()
                )));
            }
            Some(_) => {
                let evaluated = eval.fuse_rule.unwrap_or(FuseRule::UNFITTED);
                if evaluated != self.fuse_rule {
                    return Err(CollectionError::Calibration(format!(
                        "{} was made with another fusion rule than {}; re-run `stabilize eval embed --model {}`",
                        eval_path.display(),
                        self.dir.join(run_files::FUSION).display(),
                        self.dir.display()
                    )));
                }
                if regions {
                    method(REGIONS_FUSED_METHOD, "the model with regions fused with phash")?
                } else {
                    method(FUSED_METHOD, "the model fused with phash")?
                }
            }
        };
        let from_cal =
            pooled.calibration.iter().filter(|c| c.precision >= p - 1e-12).max_by(|a, b| a.recall.total_cmp(&b.recall));
        from_cal.copied().or_else(|| point_at_precision(&pooled.pr_curve, p)).map(|pt| pt.threshold).ok_or_else(|| {
            CollectionError::Calibration(format!(
                "the model's calibration never reaches precision {p}; pass --threshold"
            ))
        })
    }
}

/// What an embedding model is given for one decoded image: solid borders cut off (the
/// borderless RGB image is returned first, for regions) and resized to `side`² (bicubic).
pub fn model_input(
    img: &stabilize_core::Image,
    side: u32,
) -> Result<(stabilize_core::Image, stabilize_core::Image), String> {
    let content = into_content(img.to_rgb()).map_err(|e| e.to_string())?;
    let small = resize(&content, side, side, Filter::Bicubic).map_err(|e| e.to_string())?;
    Ok((content, small))
}

/// An embedded file.
pub struct Embedded {
    pub info: FileInfo,
    pub mtime_ns: u128,
    pub vector: Vec<f32>,
    /// The file's perceptual hash, when [`embed_files`] was asked for one.
    pub hash: Option<PerceptualHash>,
}

/// Embeds `files` (decoded, cut free of solid borders and resized in parallel, 64 at a time, then
/// embedded as one batch), reading and filling `cache` (opened with [`Embedder::cache_key`] of the
/// same `hash` and `regions`); with `hash`, also hashes each file (the same borderless, resized
/// image); with `regions`, each vector is the whole's followed by its [`REGION_COUNT`] regions'
/// (`(1 + REGION_COUNT)·dim` values, cut from the borderless full-size image). `on_file` is
/// called once per file read (from worker threads). Unreadable files go to the returned skip list
/// with the reason. Returns the embedded files, the skipped ones and the number of cache hits.
pub fn embed_files(
    files: &[PathBuf],
    emb: &Embedder,
    hash: Option<HashKind>,
    regions: bool,
    mut cache: Option<&mut Cache>,
    on_file: &(dyn Fn() + Sync),
) -> (Vec<Embedded>, Vec<load::Skipped>, usize) {
    enum Item {
        Cached(Embedded),
        Image(FileInfo, u128, Vec<stabilize_core::Image>, Option<PerceptualHash>),
    }
    let opts = load::LoadOptions::default();
    let hasher = hash.map(HashKind::hasher);
    let per = if regions { 1 + REGION_COUNT } else { 1 };
    let (mut out, mut skipped, mut hits) = (Vec::new(), Vec::new(), 0usize);
    for chunk in files.chunks(64) {
        let old = cache.as_deref();
        let decoded: Vec<(PathBuf, Result<Item, String>)> = chunk
            .par_iter()
            .map(|p| {
                let r = (|| {
                    let (size, mtime) = stat(p).map_err(|e| e.to_string())?;
                    let key = stabilize_core::fsutil::path_text(p);
                    if let Some(c) = old.and_then(|o| o.get(&key, size, mtime)) {
                        let cached_hash = c.hash.as_deref().and_then(PerceptualHash::from_bytes);
                        if (hash.is_none() || cached_hash.is_some()) && c.vector.len() == emb.dim * per {
                            let info = FileInfo { path: key, pixels: c.pixels, bytes: c.size };
                            let vector = c.vector.clone();
                            return Ok(Item::Cached(Embedded { info, mtime_ns: mtime, vector, hash: cached_hash }));
                        }
                    }
                    let img = load::load_image_with(p, &opts).map_err(|e| e.to_string())?;
                    let info = FileInfo { path: key, pixels: img.pixel_count() as u64, bytes: size };
                    let (content, small) = model_input(&img, emb.input_size)?;
                    // Hashed at the model's input size, as `eval embed` calibrates the fused
                    // distance (and cheaper than the full image).
                    let h = hasher.as_ref().map(|hs| PerceptualHash::of(hs, &small));
                    let mut views = vec![small];
                    if regions && emb.region_source == RegionSource::Crops {
                        views.extend(
                            image_regions(&content, REGION_SCALE, emb.input_size, emb.input_size)
                                .map_err(|e| e.to_string())?,
                        );
                    }
                    Ok(Item::Image(info, mtime, views, h))
                })();
                on_file();
                (p.clone(), r)
            })
            .collect();
        let mut rows: Vec<Option<Embedded>> = Vec::new();
        let mut pending: Vec<(FileInfo, u128, Option<PerceptualHash>)> = Vec::new();
        let mut batch = Vec::new();
        for (p, r) in decoded {
            match r {
                Ok(Item::Cached(e)) => {
                    hits += 1;
                    rows.push(Some(e));
                }
                Ok(Item::Image(info, mtime, views, h)) => {
                    rows.push(None);
                    pending.push((info, mtime, h));
                    batch.extend(views);
                }
                Err(reason) => skipped.push(load::Skipped { path: p, reason }),
            }
        }
        let described = if batch.is_empty() { Ok(Vec::new()) } else { emb.describe_views(&batch, regions) };
        // Enlarging a 128 px RGB image cannot fail; were it to, every file of the batch is skipped
        // with the reason rather than given a wrong vector.
        let fresh = described.unwrap_or_else(|reason| {
            let failed = pending
                .drain(..)
                .map(|(info, ..)| load::Skipped { path: PathBuf::from(&info.path), reason: reason.clone() });
            skipped.extend(failed);
            rows.retain(Option::is_some);
            Vec::new()
        });
        let mut fresh = fresh.chunks(emb.dim * per).map(|c| c.to_vec()).zip(pending);
        for row in rows {
            let e = row.unwrap_or_else(|| {
                let (vector, (info, mtime_ns, hash)) = fresh.next().expect("one embedding per image");
                Embedded { info, mtime_ns, vector, hash }
            });
            if let Some(c) = cache.as_deref_mut() {
                c.insert(
                    e.info.path.clone(),
                    CacheEntry {
                        size: e.info.bytes,
                        mtime_ns: e.mtime_ns,
                        pixels: e.info.pixels,
                        vector: e.vector.clone(),
                        hash: e.hash.as_ref().map(PerceptualHash::to_bytes),
                    },
                );
            }
            out.push(e);
        }
    }
    (out, skipped, hits)
}

/// What [`write_embeddings`] wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ExportSummary {
    pub rows: usize,
    pub dim: usize,
    pub skipped: usize,
}

/// Writes `dir/embeddings.npy` (float32, `N × dim`, row i the vector of `embedded[i]`),
/// `dir/paths.txt` (one path per line, line i = row i) and `dir/skipped.json` (the files that
/// could not be read, with reasons), and the shard's `model.json` ([`ShardModel`]: `model`) and
/// `files.json` ([`ShardFile`] per row), each atomically, so `index build --from-npy` can index
/// them ([`stabilize_core::dedup::shards`]). Paths are written as
/// [`stabilize_core::fsutil::path_text`] makes them: exact, one line each even when a name holds
/// a line break or is not UTF-8.
pub fn write_embeddings(
    dir: &Path,
    model: &ShardModel,
    embedded: &[Embedded],
    skipped: &[load::Skipped],
) -> Result<ExportSummary, CollectionError> {
    let dim = model.dim;
    std::fs::create_dir_all(dir).map_err(|source| stabilize_core::Error::Io { path: dir.to_path_buf(), source })?;
    let (mut data, mut lines) = (Vec::with_capacity(embedded.len() * dim), String::new());
    let mut files = Vec::with_capacity(embedded.len());
    let mut rows = 0;
    for e in embedded {
        data.extend_from_slice(&e.vector);
        lines.push_str(&e.info.path);
        lines.push('\n');
        files.push(ShardFile {
            bytes: e.info.bytes,
            pixels: e.info.pixels,
            mtime_ns: e.mtime_ns,
            phash: e.hash.as_ref().map(PerceptualHash::to_hex),
        });
        rows += 1;
    }
    let model_json = serde_json::to_vec_pretty(model).expect("a model description serialises");
    stabilize_core::fsutil::write_atomic(&dir.join(SHARD_MODEL), &model_json)?;
    let files_json = serde_json::to_vec(&files).expect("file entries serialise");
    stabilize_core::fsutil::write_atomic(&dir.join(SHARD_FILES), &files_json)?;
    stabilize_core::data::npy::write_npy(&dir.join("embeddings.npy"), &data, &[rows, dim])?;
    stabilize_core::fsutil::write_atomic(&dir.join("paths.txt"), lines.as_bytes())?;
    let json = serde_json::to_vec_pretty(skipped).expect("skips serialise");
    stabilize_core::fsutil::write_atomic(&dir.join("skipped.json"), &json)?;
    Ok(ExportSummary { rows, dim, skipped: skipped.len() })
}
