//! `stabilize dupes`: near-duplicate clusters under folders, by a trained model or a perceptual hash.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use stabilize_core::dupes::{FileInfo, clusters, pairs_under};
use stabilize_core::embed_eval::Descriptors;
use stabilize_core::hash::{HashKind, PerceptualHash};
use stabilize_core::load;

use crate::RunArgs;
use crate::collection::{Cache, Embedder, embed_files, file_bar};

/// Default Hamming threshold (bits of 64) for the hashes when none is given; imagededup uses 10.
const HASH_THRESHOLD: f64 = 10.0;

/// Checks `--precision` and `--threshold` values.
pub fn check_threshold_args(threshold: Option<f64>, precision: Option<f64>) -> Result<()> {
    if let Some(p) = precision {
        if !(p > 0.0 && p <= 1.0) {
            bail!("--precision must be in (0, 1], got {p}");
        }
    }
    if let Some(t) = threshold {
        if !(t.is_finite() && t >= 0.0) {
            bail!("--threshold must be ≥ 0, got {t}");
        }
    }
    Ok(())
}

/// Sets the global worker count (`--jobs`).
pub fn set_jobs(jobs: Option<usize>) -> Result<()> {
    if let Some(j) = jobs {
        if j == 0 {
            bail!("--jobs must be ≥ 1");
        }
        rayon::ThreadPoolBuilder::new().num_threads(j).build_global().context("setting the thread count")?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub fn dupes(
    paths: &[PathBuf],
    model_dir: Option<&Path>,
    hash: Option<&str>,
    threshold: Option<f64>,
    precision: Option<f64>,
    json: bool,
    csv: bool,
    jobs: Option<usize>,
    no_cache: bool,
    run: &RunArgs,
) -> Result<()> {
    let started = Instant::now();
    set_jobs(jobs)?;
    check_threshold_args(threshold, precision)?;
    let quiet = json || csv;
    let (files, mut skipped) = load::list_images(paths);
    let pb = file_bar(files.len(), quiet);
    let mut cache_hits = 0usize;
    let (infos, desc, threshold, method_name) = match model_dir {
        Some(dir) => {
            let emb = Embedder::load(dir, &run.backend)?;
            let t = match threshold {
                Some(t) => t,
                None => emb.calibrated_threshold(precision.unwrap_or(0.99))?,
            };
            let mut cache = (!no_cache).then(|| Cache::open(&emb.weights_sha256));
            let (done, bad, hits) = embed_files(&files, &emb, cache.as_mut(), &pb);
            if let Some(c) = &cache {
                c.save();
            }
            cache_hits = hits;
            skipped.extend(bad);
            let mut data = Vec::with_capacity(done.len() * emb.dim);
            let infos: Vec<FileInfo> = done
                .into_iter()
                .map(|e| {
                    data.extend_from_slice(&e.vector);
                    e.info
                })
                .collect();
            (infos, Descriptors::Vectors { dim: emb.dim, data }, t, format!("model {}", dir.display()))
        }
        None => {
            let kind: HashKind = hash.unwrap_or("phash").parse()?;
            if precision.is_some() {
                bail!("--precision needs --model (the calibration is stored with the model's evaluation)");
            }
            let hasher = kind.hasher();
            let opts = load::LoadOptions::default();
            let results: Vec<(PathBuf, Result<(FileInfo, PerceptualHash), String>)> = files
                .par_iter()
                .map(|p| {
                    let r = (|| {
                        let bytes = std::fs::metadata(p).map_err(|e| e.to_string())?.len();
                        let img = load::load_image_with(p, &opts).map_err(|e| e.to_string())?;
                        let info = FileInfo { path: p.display().to_string(), pixels: img.pixel_count() as u64, bytes };
                        Ok((info, PerceptualHash::of(&hasher, &img)))
                    })();
                    pb.inc(1);
                    (p.clone(), r)
                })
                .collect();
            let (mut infos, mut hashes) = (Vec::new(), Vec::new());
            for (path, r) in results {
                match r {
                    Ok((i, h)) => {
                        infos.push(i);
                        hashes.push(h);
                    }
                    Err(reason) => skipped.push(load::Skipped { path, reason }),
                }
            }
            (infos, Descriptors::Hashes(hashes), threshold.unwrap_or(HASH_THRESHOLD), kind.name().to_string())
        }
    };
    pb.finish_and_clear();
    let pairs = pairs_under(infos.len(), threshold, &|i, j| desc.distance(i, &desc, j));
    let found = clusters(&infos, &pairs);
    let seconds = started.elapsed().as_secs_f64();
    if json {
        let v = serde_json::json!({
            "clusters": found, "skipped": skipped, "files_seen": infos.len() + skipped.len(),
            "seconds": seconds, "method": method_name, "threshold": threshold, "cache_hits": cache_hits,
        });
        println!("{}", serde_json::to_string(&v)?);
    } else if csv {
        println!("cluster,path,keep,max_distance");
        for (k, c) in found.iter().enumerate() {
            for f in &c.files {
                let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
                println!("{k},{},{},{}", q(f), f == &c.keep, c.max_distance);
            }
        }
    } else {
        for (k, c) in found.iter().enumerate() {
            println!("cluster {} ({} files, max distance {:.3}):", k + 1, c.files.len(), c.max_distance);
            for f in &c.files {
                println!("  {} {f}", if f == &c.keep { "keep" } else { "    " });
            }
        }
        for s in &skipped {
            eprintln!("skipped {}: {}", s.path.display(), s.reason);
        }
        eprintln!(
            "{} files, {} skipped, {} clusters ({} files in them) with {method_name} at threshold {threshold:.4} in {seconds:.1}s; nothing was moved or deleted",
            infos.len(),
            skipped.len(),
            found.len(),
            found.iter().map(|c| c.files.len()).sum::<usize>()
        );
    }
    Ok(())
}
