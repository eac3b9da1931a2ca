//! Image collections on disk: walk, decode in parallel, embed with a trained model (with a
//! per-model cache) or hash; shared by `dupes` and `index`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use stabilize_core::dupes::FileInfo;
use stabilize_core::load;

/// A trained embedding model, ready to embed files.
pub struct Embedder {
    pub model: stabilize_burn::embed::EmbedNet,
    pub input_size: u32,
    pub dim: usize,
    pub device: stabilize_burn::Device,
    pub dir: PathBuf,
    /// sha256 of model.bpk: what identifies the vectors it makes.
    pub weights_sha256: String,
}

impl Embedder {
    pub fn load(dir: &Path, backend: &str) -> Result<Embedder> {
        let device = crate::device(backend)?;
        let (config, model) = stabilize_burn::embed_train::load_embedder(dir, &device)?;
        let weights_sha256 = stabilize_core::fsutil::sha256_file(&dir.join("model.bpk"))?;
        Ok(Embedder {
            model,
            input_size: config.model.input_size as u32,
            dim: config.model.dim,
            device,
            dir: dir.to_path_buf(),
            weights_sha256,
        })
    }

    /// The distance threshold at precision `p` from the model's evaluation (`eval.json`,
    /// pooled calibration points, else its PR curve).
    pub fn calibrated_threshold(&self, p: f64) -> Result<f64> {
        let eval_path = self.dir.join("eval.json");
        let bytes = std::fs::read(&eval_path).with_context(|| {
            format!(
                "{}: no calibration (run `stabilize eval embed --model {}` or pass --threshold)",
                eval_path.display(),
                self.dir.display()
            )
        })?;
        let eval: stabilize_core::embed_eval::EmbedEval = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not an embedding evaluation", eval_path.display()))?;
        let from_cal = eval
            .pooled
            .calibration
            .iter()
            .filter(|c| c.precision >= p - 1e-12)
            .max_by(|a, b| a.recall.total_cmp(&b.recall));
        from_cal
            .copied()
            .or_else(|| stabilize_core::retrieval::point_at_precision(&eval.pooled.pr_curve, p))
            .map(|pt| pt.threshold)
            .with_context(|| format!("the model's calibration never reaches precision {p}; pass --threshold"))
    }
}

/// One cached embedding.
#[derive(Clone, Serialize, Deserialize)]
pub struct CacheEntry {
    pub size: u64,
    pub mtime_ns: u128,
    pub pixels: u64,
    pub vector: Vec<f32>,
}

/// The embedding cache of a model, keyed by path; one file per model (by its weights' sha256)
/// under $STABILIZE_CACHE_DIR, else $XDG_CACHE_HOME/stabilize, else ~/.cache/stabilize.
pub struct Cache {
    path: PathBuf,
    old: HashMap<String, CacheEntry>,
    new: HashMap<String, CacheEntry>,
}

impl Cache {
    pub fn open(weights_sha256: &str) -> Cache {
        let base = std::env::var_os("STABILIZE_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("stabilize")))
            .or_else(|| std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/stabilize")))
            .unwrap_or_else(|| std::env::temp_dir().join("stabilize-cache"));
        let path = base.join(format!("embeddings-{}.json", &weights_sha256[..16]));
        // An unreadable or damaged cache is only a slower run.
        let old = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        Cache { path, old, new: HashMap::new() }
    }

    /// Writes the entries used in this run (best effort: a cache that cannot be written only costs
    /// speed next time).
    pub fn save(&self) {
        if let Some(parent) = self.path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let bytes = match serde_json::to_vec(&self.new) {
            Ok(b) => b,
            Err(_) => return,
        };
        if let Err(e) = stabilize_core::fsutil::write_atomic(&self.path, &bytes) {
            eprintln!("warning: embedding cache not saved: {e}");
        }
    }
}

/// A file's size and modification time (ns since the epoch).
pub fn stat(p: &Path) -> std::io::Result<(u64, u128)> {
    let meta = std::fs::metadata(p)?;
    let mtime =
        meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    Ok((meta.len(), mtime))
}

/// A progress bar over files (hidden when `quiet`).
pub fn file_bar(n: usize, quiet: bool) -> ProgressBar {
    let pb = if quiet { ProgressBar::hidden() } else { ProgressBar::new(n as u64) };
    pb.set_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} files ({per_sec}, ETA {eta}) {msg}")
            .expect("valid template"),
    );
    pb
}

/// An embedded file.
pub struct Embedded {
    pub info: FileInfo,
    pub mtime_ns: u128,
    pub vector: Vec<f32>,
}

/// Embeds `files` (decoded and resized in parallel, 64 at a time, then embedded as one batch),
/// reading and filling `cache`. Unreadable files go to the returned skip list with the reason.
/// Returns the embedded files, the skipped ones and the number of cache hits.
pub fn embed_files(
    files: &[PathBuf],
    emb: &Embedder,
    mut cache: Option<&mut Cache>,
    pb: &ProgressBar,
) -> (Vec<Embedded>, Vec<load::Skipped>, usize) {
    enum Item {
        Cached(Embedded),
        Image(FileInfo, u128, stabilize_core::Image),
    }
    let opts = load::LoadOptions::default();
    let (mut out, mut skipped, mut hits) = (Vec::new(), Vec::new(), 0usize);
    for chunk in files.chunks(64) {
        let old = cache.as_deref().map(|c| &c.old);
        let decoded: Vec<(PathBuf, Result<Item, String>)> = chunk
            .par_iter()
            .map(|p| {
                let r = (|| {
                    let (size, mtime) = stat(p).map_err(|e| e.to_string())?;
                    let key = p.display().to_string();
                    if let Some(c) = old.and_then(|o| o.get(&key)).filter(|c| c.size == size && c.mtime_ns == mtime) {
                        let info = FileInfo { path: key, pixels: c.pixels, bytes: c.size };
                        return Ok(Item::Cached(Embedded { info, mtime_ns: mtime, vector: c.vector.clone() }));
                    }
                    let img = load::load_image_with(p, &opts).map_err(|e| e.to_string())?;
                    let info = FileInfo { path: key, pixels: img.pixel_count() as u64, bytes: size };
                    let small = stabilize_core::resize::resize(
                        &img.to_rgb(),
                        emb.input_size,
                        emb.input_size,
                        stabilize_core::resize::Filter::Bicubic,
                    )
                    .map_err(|e| e.to_string())?;
                    Ok(Item::Image(info, mtime, small))
                })();
                pb.inc(1);
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
        let fresh = if batch.is_empty() {
            Vec::new()
        } else {
            stabilize_burn::embed_train::embed_images(&emb.model, &batch, 64, &emb.device)
        };
        let mut fresh = fresh.chunks(emb.dim).map(|c| c.to_vec()).zip(pending);
        for row in rows {
            let e = row.unwrap_or_else(|| {
                let (vector, (info, mtime_ns)) = fresh.next().expect("one embedding per image");
                Embedded { info, mtime_ns, vector }
            });
            if let Some(c) = cache.as_deref_mut() {
                c.new.insert(
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
