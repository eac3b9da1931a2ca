//! `stabilize eval classify|embed` and `stabilize compare`: run the library's evaluations on a
//! run folder, write `eval.json`, print a table or JSON.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use stabilize_burn::Device;
use stabilize_burn::eval::{
    EvalEvent, EvalExtras, evaluate_classifier, evaluate_corruptions, evaluate_embedding_run, evaluate_imagenet,
    fit_fusion, read_embed_eval,
};
use stabilize_burn::mobilenet::MobileNetV2;
use stabilize_burn::model::SmallCnn;
use stabilize_burn::train::{ClassifyTrainConfig, is_imagenet_run, load_classifier, load_embedder, load_imagenet_run};
use stabilize_core::data::dirs;
use stabilize_core::data::fashion_mnist::FashionMnist;
use stabilize_core::eval::ClassifyEval;
use stabilize_core::eval::classify::DEFAULT_DISTORTIONS;
use stabilize_core::eval::fusion::FusePairs;
use stabilize_core::eval::imagenet::ImagenetDistortionEval;
use stabilize_core::image::regions::RegionSource;
use stabilize_core::run_files;

use crate::args::{RegionSourceArg, RunArgs, bar, spinner, write_json};

/// A fixed evaluation suite instead of `--distortions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// The ImageNet-C-style corruption suite (9 corruptions × 5 severities).
    Corruptions,
}

/// Which images a Fashion-MNIST run is evaluated on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum EvalOn {
    /// The 10,000 test images (`eval.json`).
    #[default]
    Test,
    /// The run's validation images, the training images it kept out (`train classify
    /// --val-images`; `eval-validation.json`): for choosing settings without the test split.
    Validation,
}

impl EvalOn {
    /// The run file the evaluation is written to and `compare` reads.
    fn file(self) -> &'static str {
        match self {
            EvalOn::Test => run_files::EVAL,
            EvalOn::Validation => run_files::EVAL_VALIDATION,
        }
    }
}

/// What `eval embed` and `eval fusion` share: the run, and the protocol's distortions, seed and
/// border treatment.
#[derive(clap::Args)]
pub struct EmbedProtocol {
    /// The run folder written by `train embed`.
    #[arg(long)]
    model: PathBuf,
    /// Comma-separated distortion specs [default: the paper's and the in-the-wild edits].
    #[arg(long, default_value = stabilize_core::eval::embed::DEFAULT_DISTORTIONS)]
    distortions: String,
    /// Seed of the distortions' random parts, the held-out triplets (`embed`) and the draw of
    /// fitting photos (`fusion`).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Describe the images as they are, without first cutting solid borders off (what
    /// `dupes`, `embed` and `index` do to every file).
    #[arg(long)]
    keep_borders: bool,
    /// Also describe every image by its whole and five regions (corners and centre at 0.75 of
    /// each side): `eval embed` adds the methods `model+regions` and `model+regions+phash`
    /// (finds copies cut down to part of the picture); `eval fusion` also fits the penalty of a
    /// region match. 6× the embeddings.
    #[arg(long)]
    regions: bool,
    /// Where the regions' descriptors come from: `crops` cuts each region out and embeds it
    /// (6× the forward passes); `map` pools the cells of the model's last feature map that each
    /// region covers (no extra forward pass); `zoom` pools them from the map of the image
    /// enlarged by 1/0.75, so a region is seen at a cut-down copy's scale (2× the passes).
    #[arg(long, value_enum, default_value_t = RegionSourceArg::Crops, requires = "regions")]
    region_source: RegionSourceArg,
    #[command(flatten)]
    run: RunArgs,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// An [`EmbedProtocol`] opened: its distortions, device and the photo pool at the run's input size.
struct Opened {
    distortions: Vec<stabilize_core::Distortion>,
    device: Device,
    photos: Vec<stabilize_core::Photo>,
}

impl EmbedProtocol {
    /// The regions asked for, from their source; `None` without `--regions`.
    fn region_source(&self) -> Option<RegionSource> {
        self.regions.then_some(self.region_source.into())
    }

    fn open(&self) -> Result<Opened> {
        let distortions = stabilize_core::distort::parse_list(&self.distortions)?;
        let device = self.run.device()?;
        let (config, _) = load_embedder(&self.model, &device)?;
        let (photos, skipped) = dirs::photo_pool(&self.run.data(), config.model.input_size)?;
        for s in &skipped {
            eprintln!("{s}");
        }
        Ok(Opened { distortions, device, photos })
    }
}

/// The progress of an embedding evaluation on `pb`.
fn on_event(pb: &indicatif::ProgressBar) -> impl FnMut(EvalEvent) + '_ {
    move |e| match e {
        EvalEvent::Start { images } => pb.set_length(images as u64),
        EvalEvent::Method(m) => pb.set_message(m),
        EvalEvent::Embedded(n) => pb.inc(n as u64),
    }
}

#[derive(Subcommand)]
pub enum EvalCommand {
    /// Evaluate an embedding run on the held-out photos: near-duplicate detection (PR, AP, CDFs)
    /// and ranking under distortions, beside the pretrained features and perceptual hashes.
    Embed {
        #[command(flatten)]
        protocol: EmbedProtocol,
        /// A baseline run already evaluated (its eval.json): write the 8 pairs per distortion where
        /// the two disagree most to MODEL/examples/ (images and distances).
        #[arg(long)]
        baseline: Option<PathBuf>,
    },
    /// Fit how an embedding run is fused with pHash (what `dupes` uses with no --model/--hash) on
    /// pairs of its validation photos (kept out of its training; a run without them: its
    /// training photos), never the held-out ones; writes MODEL/fusion.json. Re-run
    /// `eval embed` after it: the fused calibration is made with the fitted rule.
    Fusion {
        #[command(flatten)]
        protocol: EmbedProtocol,
        /// Photos to fit on [default: every validation photo; a run without them: as many
        /// training photos as it holds out].
        #[arg(long)]
        photos: Option<usize>,
        /// Fit on this run's validation photos with this run's model, and write the rule to
        /// MODEL: for a model trained on every photo, from a run of its recipe trained with
        /// validation photos kept out (`train embed --val-fraction`). Repeat it for runs of other
        /// seeds: their pairs pool into one fit.
        #[arg(long, value_name = "RUN")]
        fit_on: Vec<PathBuf>,
        /// Also write every pair the fit saw to FILE as CSV (`spec,kind,l2,region_l2,bits`:
        /// the model's L2, its nearest region match with --regions, pHash bits).
        #[arg(long, value_name = "FILE")]
        pairs_csv: Option<PathBuf>,
        /// Describe each image's whole by the mean of its descriptor and its mirror image's
        /// (one more forward pass per image): a mirrored copy then matches exactly, and two
        /// views steady the rest. Recorded in MODEL/fusion.json: `eval embed`, `dupes`, `embed`
        /// and `index` then describe files so.
        #[arg(long)]
        mirror: bool,
        /// Describe each cut-out region too by the mean of its and its mirror image's
        /// descriptors (with --regions from crops; implies --mirror): a mirrored copy cut down to
        /// part of the picture then matches its region. 12 forward passes per file with
        /// --regions instead of 7.
        #[arg(long)]
        mirror_regions: bool,
    },
    /// Evaluate a classifier run: a Fashion-MNIST run on its test set, clean and under
    /// distortions; a `--dataset photos` run (the stabilized ImageNet network) beside the
    /// original network on the held-out photos' crops (flip rates, top-5 agreement, agreement
    /// with the original) and on the labelled ImageNet photos.
    Classify {
        /// The run folder written by `train classify`.
        #[arg(long)]
        model: PathBuf,
        /// Comma-separated distortion specs [default: Fashion-MNIST runs the paper's; photos runs
        /// also the in-the-wild edits, as `eval embed`].
        #[arg(long)]
        distortions: Option<String>,
        /// Photos runs: evaluate on the first N held-out photos only (16 crops each).
        #[arg(long)]
        photos: Option<usize>,
        /// Fashion-MNIST runs: the test images, or the run's validation images (`train classify
        /// --val-images`), written to MODEL/eval-validation.json.
        #[arg(long, value_enum, default_value_t)]
        on: EvalOn,
        /// Seed of the distortions' random parts.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// `corruptions`: the ImageNet-C-style suite (9 corruptions × 5 severities) instead of
        /// --distortions; per-corruption error, flip rates and the (unnormalised) mean corruption
        /// error, written to MODEL/eval-corruptions.json.
        #[arg(long, value_enum)]
        suite: Option<Suite>,
        #[command(flatten)]
        run: RunArgs,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: EvalCommand) -> Result<()> {
    match cmd {
        EvalCommand::Classify { model, distortions, photos, on, seed, suite, run, json } => {
            if on == EvalOn::Validation && (is_imagenet_run(&model) || suite.is_some()) {
                bail!("--on validation evaluates Fashion-MNIST runs with --distortions, not photos runs or --suite");
            }
            if is_imagenet_run(&model) {
                if suite.is_some() {
                    bail!("--suite corruptions evaluates Fashion-MNIST runs; {} is a photos run", model.display());
                }
                let distortions = distortions.as_deref().unwrap_or(stabilize_core::eval::embed::DEFAULT_DISTORTIONS);
                return imagenet(&model, distortions, photos, seed, &run, json);
            }
            if photos.is_some() {
                bail!("--photos applies to --dataset photos runs; {} is not one", model.display());
            }
            match suite {
                None => classify(&model, distortions.as_deref().unwrap_or(DEFAULT_DISTORTIONS), on, seed, &run, json),
                Some(Suite::Corruptions) => corruptions(&model, seed, &run, json),
            }
        }
        EvalCommand::Embed { protocol, baseline } => embed(&protocol, baseline.as_deref()),
        EvalCommand::Fusion { protocol, photos, fit_on, pairs_csv, mirror, mirror_regions } => {
            fusion(&protocol, photos, &fit_on, pairs_csv.as_deref(), mirror, mirror_regions)
        }
    }
}

fn fusion(
    p: &EmbedProtocol,
    count: Option<usize>,
    fit_on: &[PathBuf],
    pairs_csv: Option<&Path>,
    mirror: bool,
    mirror_regions: bool,
) -> Result<()> {
    if mirror_regions && p.region_source() != Some(RegionSource::Crops) {
        bail!("--mirror-regions needs --regions with regions cut out (--region-source crops, the default)");
    }
    if let Some(dir) = pairs_csv.and_then(Path::parent).filter(|d| !d.as_os_str().is_empty()) {
        stabilize_core::fsutil::ensure_writable_dir(dir)?;
    }
    let Opened { distortions, device, photos } = p.open()?;
    let (model_dir, json) = (p.model.as_path(), p.json);
    let pb = bar(0, "images embedded", json);
    let fit_on: Vec<&Path> = fit_on.iter().map(PathBuf::as_path).collect();
    let (fit, pairs) = fit_fusion(
        model_dir,
        &fit_on,
        &photos,
        &distortions,
        p.seed,
        !p.keep_borders,
        p.region_source(),
        mirror,
        mirror_regions,
        count,
        &device,
        &mut on_event(&pb),
    )?;
    pb.finish_and_clear();
    if let Some(csv) = pairs_csv {
        let mut out = Vec::new();
        FusePairs::write_csv(&pairs, &mut out)?;
        stabilize_core::fsutil::write_atomic(csv, &out).with_context(|| format!("cannot write {}", csv.display()))?;
    }
    if json {
        println!("{}", serde_json::to_string(&fit)?);
        return Ok(());
    }
    let kind = match (fit.fitted_on.as_slice(), fit.validation) {
        ([run], _) => format!("validation photos of {run} (not trained on by it), with its model"),
        ([], true) => "validation photos (not trained on)".to_string(),
        ([], false) => "training photos".to_string(),
        (runs, _) => {
            format!("validation photos of {} (not trained on by them), with each one's model", runs.join(", "))
        }
    };
    println!(
        "{} {kind}, {} images, {} distortions{}; {:.0}s. Rules, best first (fitted on these photos only):",
        fit.photos,
        fit.eval_images,
        fit.distortions.len(),
        match (fit.mirror, fit.regions.as_ref().is_some_and(|r| r.mirrored)) {
            (true, true) => ", wholes and regions mirror-averaged",
            (true, false) => ", wholes mirror-averaged",
            _ => "",
        },
        fit.seconds
    );
    println!(
        "{:>8} {:>6} {:>10} {:>12} {:>12} {:>11}",
        "per bit", "cap", "pooled AP", "pooled R@P99", "mean R@P99", "min R@P99"
    );
    for s in fit.grid.iter().take(12) {
        println!(
            "{:>8.3} {:>6.2} {:>10.4} {:>12.4} {:>12.4} {:>11.4}",
            s.rule.l2_per_bit,
            s.rule.l2_cap,
            s.scores.pooled_ap,
            s.scores.pooled_recall_at_p99,
            s.scores.mean_recall_at_p99,
            s.scores.min_recall_at_p99
        );
    }
    if let Some(u) = fit.grid.iter().find(|s| s.rule == stabilize_core::eval::fusion::FuseRule::UNFITTED) {
        println!(
            "unfitted rule (0.03 per bit, no cap): pooled AP {:.4}, mean R@P99 {:.4}, min R@P99 {:.4}",
            u.scores.pooled_ap, u.scores.mean_recall_at_p99, u.scores.min_recall_at_p99
        );
    }
    if let Some(r) = &fit.regions {
        println!("region penalty (with the rule above), best first:");
        println!(
            "{:>8} | {:>10} {:>12} {:>12} {:>11} | {:>10} {:>12} {:>12} {:>11}",
            "penalty",
            "fused AP",
            "pooled R@P99",
            "mean R@P99",
            "min R@P99",
            "model AP",
            "pooled R@P99",
            "mean R@P99",
            "min R@P99"
        );
        for g in &r.grid {
            println!(
                "{:>8.3} | {:>10.4} {:>12.4} {:>12.4} {:>11.4} | {:>10.4} {:>12.4} {:>12.4} {:>11.4}",
                g.penalty,
                g.fused.pooled_ap,
                g.fused.pooled_recall_at_p99,
                g.fused.mean_recall_at_p99,
                g.fused.min_recall_at_p99,
                g.model.pooled_ap,
                g.model.pooled_recall_at_p99,
                g.model.mean_recall_at_p99,
                g.model.min_recall_at_p99
            );
        }
    }
    println!(
        "wrote {}; now re-run `stabilize eval embed --model {}{}` (the fused calibration uses the rule)",
        model_dir.join(run_files::FUSION).display(),
        model_dir.display(),
        p.region_source().map_or(String::new(), |s| format!(" --regions --region-source {}", s.name()))
    );
    Ok(())
}

/// Writes an evaluation to `path`; with `json` also prints it and returns true (nothing more to
/// print).
fn save_eval(path: &Path, eval: &impl serde::Serialize, json: bool) -> Result<bool> {
    write_json(path, eval, false)?;
    if json {
        println!("{}", serde_json::to_string(eval)?);
    }
    Ok(json)
}

/// A classifier run folder's model, its dataset and the device.
fn open_classifier(model_dir: &Path, run: &RunArgs) -> Result<(SmallCnn, FashionMnist, Device)> {
    let (_, model, data, device) = open_classifier_run(model_dir, run)?;
    Ok((model, data, device))
}

/// [`open_classifier`], with the run's config.
fn open_classifier_run(
    model_dir: &Path,
    run: &RunArgs,
) -> Result<(ClassifyTrainConfig, SmallCnn, FashionMnist, Device)> {
    let device = run.device()?;
    let (config, model) = load_classifier(model_dir, &device)?;
    config.validate()?;
    Ok((config, model, run.fashion_mnist()?, device))
}

fn classify(model_dir: &Path, distortions: &str, on: EvalOn, seed: u64, run: &RunArgs, json: bool) -> Result<()> {
    let distortions = stabilize_core::distort::parse_list(distortions)?;
    let (config, model, data, device) = open_classifier_run(model_dir, run)?;
    let (images, kind) = match on {
        EvalOn::Test => (data.test, "test"),
        EvalOn::Validation => {
            let Some(n) = config.val_images else {
                bail!(
                    "{} kept no validation images out of training (train it with --val-images N)",
                    model_dir.display()
                );
            };
            (data.train.tail(n), "validation")
        }
    };
    let pb = spinner(json);
    let name = model_dir.display().to_string();
    let specs: Vec<String> = distortions.iter().map(|d| d.to_string()).collect();
    let eval = evaluate_classifier(&name, &model, &images, &distortions, seed, &device, &mut |k, n| {
        pb.set_message(if k < n { format!("evaluating {} ({}/{n})", specs[k], k + 1) } else { "done".into() })
    })?;
    pb.finish_and_clear();
    if save_eval(&model_dir.join(on.file()), &eval, json)? {
        return Ok(());
    }
    println!("{} on {} Fashion-MNIST {kind} images", eval.model, eval.images);
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

/// `eval classify` on a `--dataset photos` run: the original network and the run, side by side.
fn imagenet(
    model_dir: &Path,
    distortions: &str,
    photos: Option<usize>,
    seed: u64,
    run: &RunArgs,
    json: bool,
) -> Result<()> {
    use stabilize_burn::eval::imagenet::images_per_network;
    let distortions = stabilize_core::distort::parse_list(distortions)?;
    let device = run.device()?;
    let (config, stabilized) = load_imagenet_run(model_dir, &device)?;
    let original = MobileNetV2::load_torchvision(&dirs::mobilenet_weights(&run.data())?, &device)?;
    let (pool, skipped) = dirs::photo_pool(&run.data(), config.input_size)?;
    for s in &skipped {
        eprintln!("{s}");
    }
    let mut test = stabilize_core::data::crops::split(&pool, config.test_fraction, config.twin_bits).test;
    if let Some(n) = photos {
        if n == 0 {
            bail!("--photos must be ≥ 1");
        }
        test.truncate(n);
    }
    let labelled: Vec<(stabilize_core::Image, usize)> =
        dirs::labelled_imagenet_photos(&run.data())?.into_iter().map(|(_, img, c)| (img, c)).collect();
    let name = model_dir.display().to_string();
    let pb = bar(2 * images_per_network(test.len(), labelled.len(), distortions.len()), "images classified", json);
    let networks = [("pretrained".to_string(), &original), (name, &stabilized)];
    let size = config.input_size;
    let eval = evaluate_imagenet(&networks, &pool, &test, &labelled, &distortions, size, seed, &device, &mut |n| {
        pb.inc(n as u64)
    })?;
    pb.finish_and_clear();
    if save_eval(&model_dir.join(run_files::EVAL), &eval, json)? {
        return Ok(());
    }
    let (a, b) = (&eval.models[0], &eval.models[1]);
    println!(
        "{} crops of {} held-out photos at {} px, and {} labelled ImageNet photos; {:.0}s",
        eval.images, eval.photos, eval.input_size, a.labelled.images, eval.seconds
    );
    println!("A = the original ImageNet MobileNetV2, B = {}", b.model);
    println!("clean top-1 agreement with A: B {:.2}%", b.clean_agreement * 100.0);
    if let (Some(ca), Some(cb)) = (a.consensus_agreement, b.consensus_agreement) {
        println!(
            "clean top-1 agreement with A's consensus (its most frequent top-1 over each crop and its copies): A {:.2}%, B {:.2}%",
            ca * 100.0,
            cb * 100.0
        );
    }
    println!(
        "labelled photos top-1 / top-5: A {:.0}% / {:.0}%, B {:.0}% / {:.0}%",
        a.labelled.top1 * 100.0,
        a.labelled.top5 * 100.0,
        b.labelled.top1 * 100.0,
        b.labelled.top5 * 100.0
    );
    println!(
        "{:<14} {:>8} {:>8} {:>8} | {:>9} {:>9} | {:>8} {:>8}",
        "distortion", "flip A", "flip B", "B / A", "top5 A", "top5 B", "agree B", "floor B"
    );
    let rows = a.distortions.iter().zip(&b.distortions).map(|(x, y)| (x.spec.as_str(), x, y));
    for (spec, x, y) in rows {
        // B's agreement with A on the distorted crops, and the least flip rate it allows.
        let (agree, floor) = match y.agreement {
            Some(agree) => {
                let floor = ImagenetDistortionEval::flip_floor(x.flip_rate, b.clean_agreement, agree);
                (format!("{:.2}%", agree * 100.0), format!("{:.2}%", floor * 100.0))
            }
            None => ("–".into(), "–".into()),
        };
        println!(
            "{:<14} {:>7.2}% {:>7.2}% {:>8.2} | {:>8.2}% {:>8.2}% | {:>8} {:>8}",
            spec,
            x.flip_rate * 100.0,
            y.flip_rate * 100.0,
            y.flip_rate / x.flip_rate.max(1e-12),
            x.top5_agreement * 100.0,
            y.top5_agreement * 100.0,
            agree,
            floor
        );
    }
    println!(
        "{:<14} {:>7.2}% {:>7.2}% {:>8.2}",
        "mean",
        a.mean_flip_rate * 100.0,
        b.mean_flip_rate * 100.0,
        b.mean_flip_rate / a.mean_flip_rate.max(1e-12)
    );
    Ok(())
}

fn corruptions(model_dir: &Path, seed: u64, run: &RunArgs, json: bool) -> Result<()> {
    let (model, data, device) = open_classifier(model_dir, run)?;
    let pb = spinner(json);
    let name = model_dir.display().to_string();
    let started = Instant::now();
    let eval = evaluate_corruptions(&name, &model, &data.test, seed, &device, &mut |k, n| {
        pb.set_message(format!("corruption {}/{n}", (k + 1).min(n)))
    })?;
    pb.finish_and_clear();
    if save_eval(&model_dir.join(run_files::EVAL_CORRUPTIONS), &eval, json)? {
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

fn read_eval(dir: &Path, on: EvalOn) -> Result<ClassifyEval> {
    let p = dir.join(on.file());
    let flag = if on == EvalOn::Validation { " --on validation" } else { "" };
    let bytes = std::fs::read(&p).with_context(|| {
        format!("{}: no evaluation; run `stabilize eval classify --model {}{flag}` first", p.display(), dir.display())
    })?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not a classifier evaluation", p.display()))
}

pub fn compare(a: &Path, b: &Path, on: EvalOn, json: bool) -> Result<()> {
    let (ea, eb) = (read_eval(a, on)?, read_eval(b, on)?);
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

fn embed(p: &EmbedProtocol, baseline: Option<&Path>) -> Result<()> {
    let Opened { distortions, device, photos } = p.open()?;
    let (model_dir, json) = (p.model.as_path(), p.json);
    let base_eval = baseline.map(read_embed_eval).transpose()?;
    let weights = dirs::mobilenet_weights(&p.run.data())?;
    let pb = bar(0, "images embedded", json);
    let mut on = on_event(&pb);
    let evaluation = evaluate_embedding_run(
        model_dir,
        &photos,
        &weights,
        &distortions,
        p.seed,
        !p.keep_borders,
        EvalExtras { regions: p.region_source() },
        base_eval.as_ref(),
        &device,
        &mut on,
    )?;
    pb.finish_and_clear();
    let eval = evaluation.eval;
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
