//! Image collections on disk, embedded with a trained model: [`Embedder`] (a run folder loaded
//! for inference, with its calibrated threshold) and [`embed_files`] (parallel decode, batched
//! embedding, the per-model cache of [`stabilize_core::dedup::cache`]). Shared by `dupes` and
//! `index`.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use rayon::prelude::*;
use stabilize_core::dedup::FileInfo;
use stabilize_core::dedup::cache::{Cache, CacheEntry, stat};
use stabilize_core::eval::EmbedEval;
use stabilize_core::eval::retrieval::point_at_precision;
use stabilize_core::fsutil::sha256_file;
use stabilize_core::image::load;
use stabilize_core::image::resize::{Filter, resize};
use stabilize_core::run_files;

use crate::embed::EmbedNet;
use crate::infer::{EMBED_BATCH, embed_images};
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
}

/// A trained embedding model, ready to embed files.
pub struct Embedder {
    pub model: EmbedNet,
    pub input_size: u32,
    pub dim: usize,
    pub device: Device,
    pub dir: PathBuf,
    /// sha256 of model.bpk: what identifies the vectors it makes.
    pub weights_sha256: String,
}

impl Embedder {
    /// Loads the embedding run folder `dir` onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Embedder, CollectionError> {
        let (config, model) = load_embedder(dir, device)?;
        let weights_sha256 = sha256_file(&dir.join(run_files::MODEL))?;
        Ok(Embedder {
            model,
            input_size: config.model.input_size as u32,
            dim: config.model.dim,
            device: device.clone(),
            dir: dir.to_path_buf(),
            weights_sha256,
        })
    }

    /// The distance threshold at precision `p` from the model's evaluation (`eval.json`,
    /// pooled calibration points, else its PR curve).
    pub fn calibrated_threshold(&self, p: f64) -> Result<f64, CollectionError> {
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
        let from_cal = eval
            .pooled
            .calibration
            .iter()
            .filter(|c| c.precision >= p - 1e-12)
            .max_by(|a, b| a.recall.total_cmp(&b.recall));
        from_cal.copied().or_else(|| point_at_precision(&eval.pooled.pr_curve, p)).map(|pt| pt.threshold).ok_or_else(
            || {
                CollectionError::Calibration(format!(
                    "the model's calibration never reaches precision {p}; pass --threshold"
                ))
            },
        )
    }
}

/// An embedded file.
pub struct Embedded {
    pub info: FileInfo,
    pub mtime_ns: u128,
    pub vector: Vec<f32>,
}

/// Embeds `files` (decoded and resized in parallel, 64 at a time, then embedded as one batch),
/// reading and filling `cache`; `on_file` is called once per file read (from worker threads).
/// Unreadable files go to the returned skip list with the reason. Returns the embedded files, the
/// skipped ones and the number of cache hits.
pub fn embed_files(
    files: &[PathBuf],
    emb: &Embedder,
    mut cache: Option<&mut Cache>,
    on_file: &(dyn Fn() + Sync),
) -> (Vec<Embedded>, Vec<load::Skipped>, usize) {
    enum Item {
        Cached(Embedded),
        Image(FileInfo, u128, stabilize_core::Image),
    }
    let opts = load::LoadOptions::default();
    let (mut out, mut skipped, mut hits) = (Vec::new(), Vec::new(), 0usize);
    for chunk in files.chunks(64) {
        let old = cache.as_deref();
        let decoded: Vec<(PathBuf, Result<Item, String>)> = chunk
            .par_iter()
            .map(|p| {
                let r = (|| {
                    let (size, mtime) = stat(p).map_err(|e| e.to_string())?;
                    let key = p.display().to_string();
                    if let Some(c) = old.and_then(|o| o.get(&key, size, mtime)) {
                        let info = FileInfo { path: key, pixels: c.pixels, bytes: c.size };
                        return Ok(Item::Cached(Embedded { info, mtime_ns: mtime, vector: c.vector.clone() }));
                    }
                    let img = load::load_image_with(p, &opts).map_err(|e| e.to_string())?;
                    let info = FileInfo { path: key, pixels: img.pixel_count() as u64, bytes: size };
                    let small = resize(&img.to_rgb(), emb.input_size, emb.input_size, Filter::Bicubic)
                        .map_err(|e| e.to_string())?;
                    Ok(Item::Image(info, mtime, small))
                })();
                on_file();
                (p.clone(), r)
            })
            .collect();
        let mut rows: Vec<Option<Embedded>> = Vec::new();
        let mut pending: Vec<(FileInfo, u128)> = Vec::new();
        let mut batch = Vec::new();
        for (p, r) in decoded {
            match r {
                Ok(Item::Cached(e)) => {
                    hits += 1;
                    rows.push(Some(e));
                }
                Ok(Item::Image(info, mtime, img)) => {
                    rows.push(None);
                    pending.push((info, mtime));
                    batch.push(img);
                }
                Err(reason) => skipped.push(load::Skipped { path: p, reason }),
            }
        }
        let fresh =
            if batch.is_empty() { Vec::new() } else { embed_images(&emb.model, &batch, EMBED_BATCH, &emb.device) };
        let mut fresh = fresh.chunks(emb.dim).map(|c| c.to_vec()).zip(pending);
        for row in rows {
            let e = row.unwrap_or_else(|| {
                let (vector, (info, mtime_ns)) = fresh.next().expect("one embedding per image");
                Embedded { info, mtime_ns, vector }
            });
            if let Some(c) = cache.as_deref_mut() {
                c.insert(
                    e.info.path.clone(),
                    CacheEntry {
                        size: e.info.bytes,
                        mtime_ns: e.mtime_ns,
                        pixels: e.info.pixels,
                        vector: e.vector.clone(),
                    },
                );
            }
            out.push(e);
        }
    }
    (out, skipped, hits)
}
