//! `stabilize train classify [--dataset photos]|embed`: settings from the command line (every default is the
//! config's own, written once in the library), a progress bar over steps, a line per checkpoint.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use stabilize_burn::Device;
use stabilize_burn::embed::EmbedNetConfig;
use stabilize_burn::loss::{Objective, StabTarget, StabilityForm};
use stabilize_burn::stability::StabilityConfig;
use stabilize_burn::train::classify::{ClassifyTask, ClassifyTrainConfig};
use stabilize_burn::train::embed::{EmbedL0, EmbedTask, EmbedTrainConfig, Init};
use stabilize_burn::train::imagenet::{ImagenetIntervalStats, ImagenetTask, ImagenetTrainConfig};
use stabilize_burn::train::{Event, Task};
use stabilize_core::Perturbation;
use stabilize_core::data::dirs;

use crate::args::{RunArgs, bar, log_line};

#[derive(Subcommand)]
pub enum TrainCommand {
    /// Train the small CNN classifier on Fashion-MNIST with L = CE + α·Lstab.
    Classify(TrainClassifyArgs),
    /// Fine-tune an embedding (MobileNetV2 → d) on photo crops: L = triplet + α·Σ‖f(x)−f(x')‖, or anchored to the pretrained network with --l0 distil.
    Embed(TrainEmbedArgs),
}

/// Where a training run goes, and how it reports.
#[derive(clap::Args)]
struct TrainOutput {
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

impl TrainOutput {
    /// The split rule a run continues with ([`resumed_twin_bits`]).
    fn twin_bits(&self, default: Option<u32>) -> Option<u32> {
        resumed_twin_bits(&self.out, self.resume, default)
    }

    /// The validation share a run continues with ([`resumed_val_fraction`]).
    fn val_fraction(&self, default: Option<f64>) -> Option<f64> {
        resumed_val_fraction(&self.out, self.resume, default)
    }

    /// Trains `task` into `--out` (continuing it with `--resume`) with progress on `pb`, then
    /// prints the summary: JSON with `--json`, else `text(summary)`.
    fn train<T: Task>(
        &self,
        task: &T,
        device: &Device,
        pb: &indicatif::ProgressBar,
        on: &mut dyn FnMut(Event<T::Interval>),
        text: impl FnOnce(&T::Summary) -> String,
    ) -> Result<()> {
        let summary = stabilize_burn::train::run(task, device, &self.out, self.resume, on)
            .with_context(|| format!("training into {}", self.out.display()))?;
        pb.finish_and_clear();
        if self.json {
            println!("{}", serde_json::to_string(&summary)?);
        } else {
            println!("{}", text(&summary));
        }
        Ok(())
    }
}

/// The split rule of a run in `out`: on `resume`, the one its `config.json` was started with (runs
/// from before twins were checked have none there and keep every photo, so they resume as they
/// began); else, or when there is no readable config to continue, `default`.
fn resumed_twin_bits(out: &Path, resume: bool, default: Option<u32>) -> Option<u32> {
    match saved_config(out, resume) {
        Some(v) => v.get("twin_bits").and_then(serde_json::Value::as_u64).map(|b| b.min(64) as u32),
        // Resuming reports a missing or damaged config in one line.
        None => default,
    }
}

/// The validation share of a run in `out`, as [`resumed_twin_bits`]: on `resume`, its
/// `config.json`'s (runs from before validation photos have none and trained on every training
/// photo); else `default`.
fn resumed_val_fraction(out: &Path, resume: bool, default: Option<f64>) -> Option<f64> {
    match saved_config(out, resume) {
        Some(v) => v.get("val_fraction").and_then(serde_json::Value::as_f64),
        None => default,
    }
}

/// On `resume`, the run's `config.json` as JSON, if it can be read.
fn saved_config(out: &Path, resume: bool) -> Option<serde_json::Value> {
    if !resume {
        return None;
    }
    std::fs::read(out.join(stabilize_core::run_files::CONFIG))
        .ok()
        .and_then(|text| serde_json::from_slice::<serde_json::Value>(&text).ok())
}

/// `, N left out as twins: …` for a summary line; empty when none were.
fn twins_left_out(twins: &[String]) -> String {
    match twins.len() {
        0 => String::new(),
        n => format!(", {n} left out as twins: {}", twins.join("; ")),
    }
}

fn classify_defaults() -> ClassifyTrainConfig {
    ClassifyTrainConfig::new()
}

fn embed_defaults() -> EmbedTrainConfig {
    EmbedTrainConfig::new()
}

/// What `train classify` trains on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ClassifyDataset {
    /// The small CNN on Fashion-MNIST's labelled images: CE + α·Lstab.
    FashionMnist,
    /// The pretrained ImageNet MobileNetV2 on crops of the unlabelled training photos:
    /// KL(original ‖ model) on the clean crop + α·Lstab (needs --init mobilenet-v2, the default).
    Photos,
}

/// "fashion-mnist A, photos B": a setting's default for each dataset, from the configs.
fn per_dataset(what: &str, fashion: impl std::fmt::Display, photos: impl std::fmt::Display) -> String {
    format!("{what} [default: fashion-mnist {fashion}, photos {photos}]")
}

fn photos_defaults() -> ImagenetTrainConfig {
    ImagenetTrainConfig::new()
}

#[derive(clap::Args)]
pub struct TrainClassifyArgs {
    #[arg(long, value_enum, default_value_t = ClassifyDataset::FashionMnist)]
    dataset: ClassifyDataset,
    #[arg(long, help = per_dataset("Weight α of the stability term; 0 trains the baseline.", classify_defaults().stability.alpha, photos_defaults().stability.alpha))]
    alpha: Option<f64>,
    /// σ of the Gaussian perturbation on the [0,1] pixel scale [default: fashion-mnist's config;
    /// with --dataset photos, giving it makes x' the paper's noise:σ instead of the edit mix].
    #[arg(long)]
    sigma: Option<f64>,
    #[arg(long, value_enum, help = per_dataset("Stability term: paper (−Σ P(y|x) log P(y|x')) or kl.", classify_defaults().form(), photos_defaults().form()))]
    loss: Option<StabilityForm>,
    /// stability (CE(x) + α·Lstab), augment (CE(x') only, α 0) or jsd (CE(x) + α·JS over x, x'₁,
    /// x'₂; AugMix's λ = α, reference 12). Photos: stability only.
    #[arg(long, value_enum, default_value_t = classify_defaults().stability.objective)]
    objective: Objective,
    /// How x' is drawn: noise:σ (the paper; fashion-mnist's default is noise:<--sigma>) or a mix of
    /// real distortions with ranges, one family per image, e.g. jpeg:10-90,thumb:25-75,crop:0-8,noise:0-0.1
    /// (`family@w` draws a family w times as often, e.g. crop:0-8@2).
    /// Photos' default: the noise and the in-the-wild edits (`stabilize_burn::train::imagenet::DEFAULT_PERTURB`).
    #[arg(long)]
    perturb: Option<Perturbation>,
    /// Fashion-MNIST: passes over the training set.
    #[arg(long, default_value_t = classify_defaults().epochs)]
    epochs: usize,
    /// Photos: optimiser steps.
    #[arg(long, default_value_t = photos_defaults().steps)]
    steps: usize,
    #[arg(long, help = per_dataset("Images per step.", classify_defaults().batch_size, photos_defaults().batch_size))]
    batch_size: Option<usize>,
    #[arg(long, help = per_dataset("Peak learning rate (AdamW, cosine decay).", classify_defaults().optimizer.lr, photos_defaults().optimizer.lr))]
    lr: Option<f64>,
    #[arg(long, default_value_t = classify_defaults().seed)]
    seed: u64,
    /// Fashion-MNIST: train on the first N training images only.
    #[arg(long)]
    train_subset: Option<usize>,
    /// Fashion-MNIST: keep the last N training images out of training as validation images, to
    /// choose settings on (`eval classify --on validation`) without the test images; a fine-tune
    /// (--init) must start from a run that kept them out too.
    #[arg(long, value_name = "N")]
    val_images: Option<usize>,
    /// Photos: what x''s prediction is pulled towards: student (the paper: the model's own clean
    /// prediction), teacher (the original network's) or label (the original network's top-1 class,
    /// as a hard label).
    #[arg(long, value_enum, default_value_t = photos_defaults().stab_target)]
    stab_target: StabTarget,
    /// Photos: side of the training crops in px.
    #[arg(long, default_value_t = photos_defaults().input_size)]
    input_size: usize,
    /// Photos: inverted-residual blocks (of 17) kept frozen after the stem.
    #[arg(long, default_value_t = photos_defaults().frozen_blocks)]
    frozen_blocks: usize,
    /// Photos: keep the classifier (linear 1280→1000) frozen too.
    #[arg(long)]
    freeze_classifier: bool,
    /// Photos: train only N blocks after the frozen ones; the blocks above them, the last conv and
    /// the classifier stay the original's [default: every block after the frozen ones].
    #[arg(long, value_name = "N")]
    train_blocks: Option<usize>,
    /// Photos: the original network's prediction, what both terms pull towards, is its softmax
    /// averaged over the clean crop and this many perturbed copies of it (its consensus).
    #[arg(long, default_value_t = photos_defaults().teacher_views)]
    teacher_views: usize,
    /// Photos: checkpoint every N steps.
    #[arg(long, default_value_t = photos_defaults().checkpoint_every)]
    checkpoint_every: usize,
    /// Fine-tune: start from this finished classifier run's weights (same architecture), with a new
    /// optimiser and this run's own schedule; the paper's protocol is a baseline, then two
    /// fine-tunes of it with the same budget, α = 0 and α > 0. With --dataset photos: `mobilenet-v2`
    /// (torchvision's ImageNet network, the default there).
    #[arg(long, value_name = "RUN")]
    init: Option<PathBuf>,
    #[command(flatten)]
    output: TrainOutput,
}

#[derive(clap::Args)]
pub struct TrainEmbedArgs {
    /// Backbone initialisation: torchvision's ImageNet weights, or random.
    #[arg(long, value_enum, default_value_t = embed_defaults().init)]
    init: Init,
    /// L0 and the stability target: triplet (the paper: triplet hinge, Lstab = Σ‖f(x)−f(x')‖) or
    /// distil (anchored to the frozen pretrained network t: ‖s(x)−t(x)‖ + α·‖s(x')−t(x)‖; needs
    /// --dim 1280, the projection starts as the identity).
    #[arg(long, value_enum, default_value_t = embed_defaults().l0)]
    l0: EmbedL0,
    /// Weight α of the stability term; 0 trains the baseline (paper: 0.1).
    #[arg(long, default_value_t = embed_defaults().stability.alpha)]
    alpha: f64,
    /// σ of the Gaussian perturbation on the [0,1] pixel scale (paper: 0.2).
    #[arg(long, default_value_t = embed_defaults().stability.sigma)]
    sigma: f64,
    /// Weight β of a batch-contrastive term (InfoNCE) added to --l0 distil: each perturbed copy
    /// against the teacher's features of every image of the step (other photos' crops as
    /// negatives); 0: off.
    #[arg(long, default_value_t = embed_defaults().contrast)]
    contrast: f64,
    /// Temperature τ of --contrast (SSCD: 0.05).
    #[arg(long, default_value_t = embed_defaults().tau)]
    tau: f64,
    /// Crops per training photo in a bank of extra negatives for --contrast (the frozen teacher's
    /// features of them, computed once); 0: the step's own crops only.
    #[arg(long, default_value_t = embed_defaults().contrast_bank)]
    contrast_bank: usize,
    /// Triplet margin g on the L2 distance between unit embeddings (distances lie in [0, 2]).
    #[arg(long, default_value_t = embed_defaults().margin)]
    margin: f64,
    /// stability (triplet + α·Σ‖f(x)−f(x')‖₂) or augment (triplet loss on x' only, α 0).
    #[arg(long, value_enum, default_value_t = embed_defaults().stability.objective)]
    objective: Objective,
    /// How x' is drawn: noise:σ (the paper; default noise:<--sigma>) or a mix of real distortions
    /// with ranges, one family per image, e.g. jpeg:10-90,thumb:25-75,crop:0-16,noise:0-0.1
    /// (`family@w` draws a family w times as often, e.g. trim:5-35@3).
    #[arg(long)]
    perturb: Option<Perturbation>,
    #[arg(long, default_value_t = embed_defaults().steps)]
    steps: usize,
    /// Triplets per step.
    #[arg(long, default_value_t = embed_defaults().batch_size)]
    batch_size: usize,
    /// Peak learning rate (AdamW, cosine decay).
    #[arg(long, default_value_t = embed_defaults().optimizer.lr)]
    lr: f64,
    #[arg(long, default_value_t = embed_defaults().seed)]
    seed: u64,
    /// Embedding dimension.
    #[arg(long, default_value_t = EmbedNetConfig::new().dim)]
    dim: usize,
    /// Input side in pixels.
    #[arg(long, default_value_t = EmbedNetConfig::new().input_size)]
    input_size: usize,
    /// Inverted-residual blocks (of 17) kept frozen after the stem.
    #[arg(long, default_value_t = EmbedNetConfig::new().frozen_blocks)]
    frozen_blocks: usize,
    /// Checkpoint every N steps.
    #[arg(long, default_value_t = embed_defaults().checkpoint_every)]
    checkpoint_every: usize,
    /// Share of the training photos kept out of training, on which `eval fusion` fits the fusion
    /// rule (a fixed draw by file name; 0: train on all of them).
    #[arg(long, default_value_t = stabilize_burn::train::embed::DEFAULT_VAL_FRACTION)]
    val_fraction: f64,
    #[command(flatten)]
    output: TrainOutput,
}

pub fn run(cmd: TrainCommand) -> Result<()> {
    match cmd {
        TrainCommand::Classify(args) => classify(args),
        TrainCommand::Embed(args) => embed(args),
    }
}

/// A progress callback for [`stabilize_burn::train::run`]: the bar over steps, a running
/// message every 10 steps, and `line(interval)` per checkpoint.
fn on_event<'a, I>(
    pb: &'a indicatif::ProgressBar,
    items: &'a str,
    line: impl Fn(&I) -> String + 'a,
) -> impl FnMut(Event<I>) + 'a {
    move |e| match e {
        Event::Start { total_steps, start_step, resumed, unit } => {
            pb.set_length(total_steps as u64);
            pb.set_position(start_step as u64);
            if resumed > 0 {
                pb.println(format!("resuming after {unit} {resumed}"));
            }
        }
        Event::Step { step, interval, progress } => {
            pb.set_position(step as u64 + 1);
            if step % 10 == 0 {
                pb.set_message(format!(
                    "interval {} loss {:.4} acc {:.2}% {:.1} {items}/s",
                    interval + 1,
                    progress.loss,
                    progress.accuracy * 100.0,
                    progress.items_per_s
                ));
            }
        }
        Event::Checkpoint(s) => log_line(pb, line(s)),
    }
}

/// α, σ and the objective from the command line, then `--perturb` (a single `noise:σ` sets σ).
fn set_stability(
    s: &mut StabilityConfig,
    (alpha, sigma, objective): (f64, f64, Objective),
    perturb: Option<Perturbation>,
) {
    (s.alpha, s.sigma, s.objective) = (alpha, sigma, objective);
    if let Some(p) = perturb {
        s.set_perturb(p);
    }
}

fn classify(args: TrainClassifyArgs) -> Result<()> {
    if args.dataset == ClassifyDataset::Photos {
        return classify_photos(args);
    }
    let d = classify_defaults();
    let mut config = ClassifyTrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size.unwrap_or(d.batch_size),
        seed: args.seed,
        train_subset: args.train_subset,
        val_images: args.val_images,
        init_from: args.init.clone(),
        ..classify_defaults()
    };
    set_stability(
        &mut config.stability,
        (args.alpha.unwrap_or(d.stability.alpha), args.sigma.unwrap_or(d.stability.sigma), args.objective),
        args.perturb,
    );
    config.stability.form = Some(args.loss.unwrap_or(d.form()));
    config.optimizer.lr = args.lr.unwrap_or(d.optimizer.lr);
    config.validate()?;
    let device = args.output.run.device()?;
    let data = args.output.run.fashion_mnist()?;
    let pb = bar(0, "steps", args.output.json);
    let mut on = on_event(&pb, "img", |s: &stabilize_burn::train::EpochStats| {
        format!(
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
        )
    });
    let task = ClassifyTask::new(&config, &data.train, &data.test)?;
    args.output.train(&task, &device, &pb, &mut on, |summary| {
        let s = &config.stability;
        format!(
            "trained {} ({} parameters): test top-1 {:.2}% in {:.0}s -> {}",
            if s.alpha > 0.0 {
                format!("stabilized α={} σ={} ({})", s.alpha, s.sigma, config.form())
            } else {
                "baseline".into()
            },
            summary.parameters,
            summary.test_top1 * 100.0,
            summary.seconds,
            args.output.out.display()
        )
    })
}

/// `train classify --dataset photos`: the ImageNet MobileNetV2 stabilized on unlabelled photos.
fn classify_photos(args: TrainClassifyArgs) -> Result<()> {
    match args.init.as_deref().map(|p| p.to_string_lossy()) {
        None => {}
        Some(i) if i == "mobilenet-v2" => {}
        Some(i) => bail!("--dataset photos stabilizes torchvision's network: --init mobilenet-v2 (got {i})"),
    }
    if args.train_subset.is_some() || args.val_images.is_some() {
        bail!("--train-subset and --val-images apply to --dataset fashion-mnist; photos train for --steps");
    }
    let d = photos_defaults();
    let mut config = ImagenetTrainConfig {
        input_size: args.input_size,
        frozen_blocks: args.frozen_blocks,
        freeze_classifier: args.freeze_classifier,
        train_blocks: args.train_blocks,
        teacher_views: args.teacher_views,
        stab_target: args.stab_target,
        steps: args.steps,
        batch_size: args.batch_size.unwrap_or(d.batch_size),
        seed: args.seed,
        checkpoint_every: args.checkpoint_every,
        twin_bits: args.output.twin_bits(d.twin_bits),
        ..photos_defaults()
    };
    let s = &mut config.stability;
    (s.alpha, s.objective) = (args.alpha.unwrap_or(d.stability.alpha), args.objective);
    if let Some(sigma) = args.sigma {
        (s.perturb, s.sigma) = (None, sigma);
    }
    if let Some(p) = args.perturb {
        s.perturb = None;
        s.set_perturb(p);
    }
    s.form = Some(args.loss.unwrap_or(d.form()));
    config.optimizer.lr = args.lr.unwrap_or(d.optimizer.lr);
    config.validate()?;
    let device = args.output.run.device()?;
    let data = args.output.run.data();
    let weights = dirs::mobilenet_weights(&data)?;
    let (photos, skipped) = dirs::photo_pool(&data, config.input_size)?;
    for s in &skipped {
        eprintln!("{s}");
    }
    let pb = bar(config.steps, "steps", args.output.json);
    let mut on = on_event(&pb, "crops", |s: &ImagenetIntervalStats| {
        format!(
            "step {:>5}: loss {:.4} (distil {:.4}, stab {:.4}) agrees with the original {:.1}%, flips {:.1}%, {:.1} crops/s {:.0}s",
            s.step,
            s.loss,
            s.distil,
            s.stability,
            s.teacher_agreement * 100.0,
            s.flip_rate * 100.0,
            s.crops_per_s,
            s.seconds
        )
    });
    let task = ImagenetTask::new(&config, &photos, &weights)?;
    args.output.train(&task, &device, &pb, &mut on, |summary| {
        format!(
            "stabilized the ImageNet MobileNetV2 for {} steps on {} photos ({} held out, {} labelled kept out{}) in {:.0}s; model in {}",
            config.steps,
            summary.train_photos,
            summary.test_photos,
            summary.labelled_kept_out,
            twins_left_out(&summary.twins),
            summary.seconds,
            args.output.out.join(stabilize_core::run_files::MODEL).display()
        )
    })
}

fn embed(args: TrainEmbedArgs) -> Result<()> {
    let mut config = EmbedTrainConfig {
        init: args.init,
        l0: args.l0,
        model: EmbedNetConfig::new()
            .with_dim(args.dim)
            .with_input_size(args.input_size)
            .with_frozen_blocks(args.frozen_blocks),
        margin: args.margin,
        contrast: args.contrast,
        tau: args.tau,
        contrast_bank: args.contrast_bank,
        steps: args.steps,
        batch_size: args.batch_size,
        seed: args.seed,
        checkpoint_every: args.checkpoint_every,
        twin_bits: args.output.twin_bits(embed_defaults().twin_bits),
        // 0 is "none"; any other value outside (0, 1) is refused by `validate`.
        val_fraction: args.output.val_fraction((args.val_fraction != 0.0).then_some(args.val_fraction)),
        ..embed_defaults()
    };
    set_stability(&mut config.stability, (args.alpha, args.sigma, args.objective), args.perturb);
    config.optimizer.lr = args.lr;
    config.validate()?;
    let device = args.output.run.device()?;
    let data = args.output.run.data();
    let weights = match config.init {
        Init::MobilenetV2 => dirs::mobilenet_weights(&data)?,
        Init::Random => PathBuf::new(),
    };
    let (photos, skipped) = dirs::photo_pool(&data, config.model.input_size)?;
    for s in &skipped {
        eprintln!("{s}");
    }
    let pb = bar(config.steps, "steps", args.output.json);
    let mut on = on_event(&pb, "triplets", |s: &stabilize_burn::train::IntervalStats| {
        let contrast = if s.contrast > 0.0 { format!(", contrast {:.4}", s.contrast) } else { String::new() };
        format!(
            "step {:>5}: loss {:.4} (triplet {:.4}, stab {:.4}{contrast}) ordered {:.1}% {:.2} triplets/s {:.0}s",
            s.step,
            s.loss,
            s.triplet,
            s.stability,
            s.train_order_accuracy * 100.0,
            s.triplets_per_s,
            s.seconds
        )
    });
    let task = EmbedTask::new(&config, &photos, &weights)?;
    args.output.train(&task, &device, &pb, &mut on, |summary| {
        format!(
            "trained {} steps on {} photos ({} kept out for validation, {} held out{}) in {:.0}s; {} trainable parameters; model in {}",
            config.steps,
            summary.train_photos,
            summary.val_photos,
            summary.test_photos,
            twins_left_out(&summary.twins),
            summary.seconds,
            summary.trainable_parameters,
            args.output.out.join(stabilize_core::run_files::MODEL).display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_run_keeps_the_split_it_began_with() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let config = out.join(stabilize_core::run_files::CONFIG);
        // A new run, or nothing to resume: the default.
        assert_eq!(resumed_twin_bits(out, false, Some(10)), Some(10));
        assert_eq!(resumed_twin_bits(out, true, Some(10)), Some(10));
        // A run from before twins were checked: every photo, as it began.
        std::fs::write(&config, r#"{"steps":600,"test_fraction":0.25}"#).unwrap();
        assert_eq!(resumed_twin_bits(out, true, Some(10)), None);
        assert_eq!(resumed_twin_bits(out, false, Some(10)), Some(10));
        // A run that recorded its bound keeps it.
        std::fs::write(&config, r#"{"steps":600,"twin_bits":6}"#).unwrap();
        assert_eq!(resumed_twin_bits(out, true, Some(10)), Some(6));
        // The validation share likewise: none in a run from before it, its own when saved.
        assert_eq!(resumed_val_fraction(out, true, Some(0.2)), None);
        assert_eq!(resumed_val_fraction(out, false, Some(0.2)), Some(0.2));
        std::fs::write(&config, r#"{"steps":600,"twin_bits":10,"val_fraction":0.3}"#).unwrap();
        assert_eq!(resumed_val_fraction(out, true, Some(0.2)), Some(0.3));
        // A damaged config is left to the resume's own one-line error.
        std::fs::write(&config, b"{").unwrap();
        assert_eq!(resumed_twin_bits(out, true, Some(10)), Some(10));
    }
}
