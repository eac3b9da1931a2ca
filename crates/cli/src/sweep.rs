//! `stabilize sweep`: trains and evaluates the classifier over an α × σ grid (same seed, data and
//! budget), then writes `sweep.json`, `sweep.md` and the frontier figure `frontier.svg`.
//! Finished grid points are reused; an interrupted one resumes from its checkpoint.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use stabilize_burn::eval::evaluate_classifier;
use stabilize_burn::loss::StabilityForm;
use stabilize_burn::train::{ClassifyTask, ClassifyTrainConfig, TrainSummary, load_classifier};
use stabilize_core::eval::ClassifyEval;
use stabilize_core::eval::classify::DEFAULT_DISTORTIONS;
use stabilize_core::eval::sweep::{Sweep, SweepPoint, markdown_table, pareto_front};
use stabilize_core::fsutil::write_atomic;
use stabilize_core::report::frontier_svg;
use stabilize_core::run_files;

use crate::args::RunArgs;

/// The sweep's summary file in its folder (read by `report --sweep`).
pub const SWEEP_JSON: &str = "sweep.json";

/// The grid and the shared training settings.
#[derive(clap::Args)]
pub struct SweepArgs {
    /// Stability weights, comma-separated (0 is the baseline, trained once).
    #[arg(long, value_delimiter = ',', default_value = "0,0.001,0.01,0.1,1")]
    pub alpha: Vec<f64>,
    /// Noise σ on the [0,1] scale, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.01,0.04,0.1,0.2")]
    pub sigma: Vec<f64>,
    /// Stability term: paper or kl.
    #[arg(long, value_enum, default_value_t = StabilityForm::Paper)]
    pub loss: StabilityForm,
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Train on the first N training images (the whole grid uses the same ones).
    #[arg(long, default_value_t = 10_000)]
    pub train_subset: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Distortions the flip rate is averaged over.
    #[arg(long, default_value = DEFAULT_DISTORTIONS)]
    pub distortions: String,
    /// Sweep folder: one run folder per grid point, and the summary.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
    /// Print sweep.json's content as one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn run_name(alpha: f64, sigma: f64) -> String {
    if alpha == 0.0 { "baseline".into() } else { format!("a{alpha}-s{sigma}") }
}

pub fn run(args: SweepArgs) -> Result<()> {
    if args.alpha.is_empty() || args.sigma.is_empty() {
        bail!("--alpha and --sigma need at least one value each");
    }
    let distortions = stabilize_core::distort::parse_list(&args.distortions)?;
    let form = args.loss;
    // The grid, the baseline once; every config is checked before anything trains.
    let mut grid: Vec<(f64, f64)> = Vec::new();
    for &a in &args.alpha {
        for &s in &args.sigma {
            let point = if a == 0.0 { (0.0, args.sigma[0]) } else { (a, s) };
            if !grid.contains(&point) {
                grid.push(point);
            }
        }
    }
    let configs: Vec<ClassifyTrainConfig> = grid
        .iter()
        .map(|&(alpha, sigma)| {
            let mut c = ClassifyTrainConfig {
                epochs: args.epochs,
                seed: args.seed,
                train_subset: Some(args.train_subset),
                ..ClassifyTrainConfig::new()
            };
            (c.stability.alpha, c.stability.sigma, c.stability.form) = (alpha, sigma, Some(form));
            c.validate().map_err(|e| anyhow::anyhow!("α {alpha}, σ {sigma}: {e}"))?;
            Ok(c)
        })
        .collect::<Result<_>>()?;
    let device = args.run.device()?;
    let data = args.run.fashion_mnist()?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;

    let pb = if args.json { ProgressBar::hidden() } else { ProgressBar::new(grid.len() as u64) };
    pb.set_style(ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} runs {msg}").expect("valid"));
    let mut points = Vec::new();
    for config in &configs {
        let name = run_name(config.stability.alpha, config.stability.sigma);
        let dir = args.out.join(&name);
        pb.set_message(format!("{name}: training"));
        let summary: TrainSummary = if dir.join(run_files::MODEL).is_file() {
            serde_json::from_slice(&std::fs::read(dir.join(run_files::METRICS))?)
                .with_context(|| format!("{}: unreadable metrics.json", dir.display()))?
        } else {
            let resume = dir.join(run_files::STATE).is_file();
            let task = ClassifyTask::new(config, &data.train, &data.test)?;
            stabilize_burn::train::run(&task, &device, &dir, resume, &mut |_| {})?
        };
        let eval_path = dir.join(run_files::EVAL);
        let specs: Vec<String> = distortions.iter().map(|d| d.to_string()).collect();
        let cached: Option<ClassifyEval> = std::fs::read(&eval_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<ClassifyEval>(&b).ok())
            .filter(|e| e.distortions.iter().map(|d| d.spec.clone()).collect::<Vec<_>>() == specs);
        let eval = match cached {
            Some(e) => e,
            None => {
                pb.set_message(format!("{name}: evaluating"));
                let (_, model) = load_classifier(&dir, &device)?;
                let e = evaluate_classifier(&name, &model, &data.test, &distortions, 0, &device, &mut |_, _| {})?;
                write_atomic(&eval_path, &serde_json::to_vec_pretty(&e)?)?;
                e
            }
        };
        let n = eval.distortions.len().max(1) as f64;
        points.push(SweepPoint {
            alpha: config.stability.alpha,
            sigma: config.stability.sigma,
            run: name,
            clean_top1: eval.clean.top1,
            mean_flip_rate: eval.distortions.iter().map(|d| d.flip_rate).sum::<f64>() / n,
            mean_distorted_top1: eval.distortions.iter().map(|d| d.top1).sum::<f64>() / n,
            train_seconds: summary.seconds,
        });
        pb.inc(1);
    }
    pb.finish_and_clear();
    let sweep = Sweep {
        distortions: distortions.iter().map(|d| d.to_string()).collect(),
        frontier: pareto_front(&points),
        points,
    };
    write_atomic(&args.out.join(SWEEP_JSON), &serde_json::to_vec_pretty(&sweep)?)?;
    write_atomic(&args.out.join("frontier.svg"), frontier_svg(&sweep.points)?.as_bytes())?;
    let table = markdown_table(&sweep);
    write_atomic(&args.out.join("sweep.md"), table.as_bytes())?;
    if args.json {
        println!("{}", serde_json::to_string(&sweep)?);
    } else {
        print!("{table}");
        println!("wrote {}", Path::new(&args.out).join(SWEEP_JSON).display());
    }
    Ok(())
}
