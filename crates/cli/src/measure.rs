//! `stabilize distort` (one distortion, one file) and `stabilize measure` (PSNR of distortions
//! over files and folders).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, bail};
use rayon::prelude::*;
use serde::Serialize;
use stabilize_core::Distortion;
use stabilize_core::eval::metrics;
use stabilize_core::image::load;
use stabilize_core::seeds::item_seed;

use crate::args::bar;

pub fn distort(spec: &str, seed: u64, input: &Path, output: &Path) -> Result<()> {
    let d: Distortion = spec.parse()?;
    let img = load::load_image(input)?;
    let out = d.apply(&img, seed)?;
    out.save(output)?;
    eprintln!("{d}: {} -> {} (PSNR {:.2} dB)", input.display(), output.display(), metrics::psnr(&img, &out)?);
    Ok(())
}

#[derive(Serialize)]
struct MeasureRow {
    path: PathBuf,
    psnr: Vec<f64>,
}

#[derive(Serialize)]
struct MeasureReport {
    specs: Vec<String>,
    images: Vec<MeasureRow>,
    mean_psnr: Vec<f64>,
    skipped: Vec<load::Skipped>,
    seconds: f64,
}

pub fn measure(spec: &str, seed: u64, json: bool, paths: &[PathBuf]) -> Result<()> {
    let distortions = stabilize_core::distort::parse_list(spec)?;
    let started = Instant::now();
    let (files, mut skipped) = load::list_images(paths);
    if files.is_empty() {
        bail!("no image files under {}", paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
    }
    let pb = bar(files.len(), "images", json);
    let results: Vec<(PathBuf, Result<Vec<f64>, String>)> = files
        .par_iter()
        .enumerate()
        .map(|(i, p)| {
            let r = load::load_image(p).map_err(|e| e.to_string()).and_then(|img| {
                distortions
                    .iter()
                    .map(|d| {
                        let out = d.apply(&img, item_seed(seed, i as u64)).map_err(|e| e.to_string())?;
                        metrics::psnr(&img, &out).map_err(|e| e.to_string())
                    })
                    .collect()
            });
            pb.inc(1);
            (p.clone(), r)
        })
        .collect();
    pb.finish_and_clear();
    let mut rows = Vec::new();
    for (path, r) in results {
        match r {
            Ok(psnr) => rows.push(MeasureRow { path, psnr }),
            Err(reason) => skipped.push(load::Skipped { path, reason }),
        }
    }
    if rows.is_empty() {
        bail!("none of the {} files could be measured (first: {})", skipped.len(), skipped[0].reason);
    }
    // Identical outputs (infinite PSNR) are capped at 100 dB for the mean.
    let mean_psnr = (0..distortions.len())
        .map(|k| rows.iter().map(|r| r.psnr[k].min(100.0)).sum::<f64>() / rows.len() as f64)
        .collect();
    let report = MeasureReport {
        specs: distortions.iter().map(|d| d.to_string()).collect(),
        images: rows,
        mean_psnr,
        skipped,
        seconds: started.elapsed().as_secs_f64(),
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{:<14} {:>12}", "distortion", "mean PSNR dB");
        for (s, m) in report.specs.iter().zip(&report.mean_psnr) {
            println!("{s:<14} {m:>12.2}");
        }
        println!("{} images in {:.1}s", report.images.len(), report.seconds);
        for s in &report.skipped {
            println!("{s}");
        }
    }
    Ok(())
}
