//! One training loop for every task.
//!
//! A [`Task`] says what differs between trainings: how a step's batch is made (on a prefetch
//! thread, two steps ahead of the device), the loss parts of one step, and what is recorded per
//! checkpoint interval. [`run`] does the rest, the same way for every task:
//! - the run folder ([`run_dir`]): refuse an existing run, or resume it with the same settings;
//!   checkpoints (model, optimiser, then the state that points at them, written atomically; the
//!   previous checkpoint deleted after) at the end of every interval; a free-space check before
//!   the first step; the final `model.bpk` and `metrics.json`; loading a finished run;
//! - the optimiser (AdamW) and its cosine learning-rate schedule ([`OptimizerConfig`]);
//! - one read-back per step, and a stop on a non-finite loss that names the last good checkpoint;
//! - progress [`Event`]s.
//!
//! The tasks: [`classify`] (the Fashion-MNIST CNN, `CE + α·Lstab`) and [`embed`] (MobileNetV2
//! embeddings, `triplet + α·Σ‖f(x) − f(x')‖₂`) and [`imagenet`] (the pretrained ImageNet
//! MobileNetV2 stabilized on unlabelled photos, `KL(t ‖ s) + α·Lstab`). A new objective is a new
//! task file.

pub mod classify;
pub mod embed;
pub mod imagenet;
mod run_dir;

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::model::materialize;
use crate::stability::ConfigError;

pub use classify::{ClassifyTask, ClassifyTrainConfig, EpochStats, TrainSummary, load_classifier};
pub use embed::{EmbedSummary, EmbedTask, EmbedTrainConfig, IntervalStats, load_embedder};
pub use imagenet::{ImagenetTask, ImagenetTrainConfig, is_imagenet_run, load_imagenet_run};
pub use run_dir::{RunDir, load_run, read_run_config};

/// AdamW with a cosine learning-rate schedule: the optimiser part of a training config
/// (flattened into `config.json` as `lr` and `weight_decay`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// Peak learning rate (cosine decay to 0 over all steps).
    pub lr: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
}

impl OptimizerConfig {
    pub fn new(lr: f64) -> Self {
        Self { lr, weight_decay: 1e-4 }
    }

    /// The learning rate at global step `step` of `total`: `lr·(1 + cos(π·step/total))/2`.
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        0.5 * self.lr * (1.0 + (std::f64::consts::PI * step as f64 / total.max(1) as f64).cos())
    }

    /// The optimiser (AdamW, ε = 1e-8).
    pub fn init(&self) -> ModuleOptimizer {
        AdamWConfig::new().with_epsilon(1e-8).with_weight_decay(self.weight_decay as f32).init()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(ConfigError::OutOfRange { setting: "learning rate", rule: "> 0", value: self.lr });
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(ConfigError::OutOfRange { setting: "weight decay", rule: "≥ 0", value: self.weight_decay });
        }
        Ok(())
    }
}

/// What a checkpoint interval is, for the state file, the checkpoint names and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// One pass over the training set; checkpoints `epoch-001.*`, state `epochs_done`.
    Epoch,
    /// A fixed number of steps; checkpoints `step-000050.*` (steps done), state `steps_done`.
    Step,
}

impl std::fmt::Display for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unit::Epoch => "epoch",
            Unit::Step => "step",
        })
    }
}

/// A run's settings as the run folder keeps them: saved as `config.json`, checked on resume.
pub trait RunConfig: Clone + PartialEq + Serialize + DeserializeOwned {}

impl<C: Clone + PartialEq + Serialize + DeserializeOwned> RunConfig for C {}

/// How a run is driven: its settings, its steps and where its checkpoints fall, its seed and
/// its optimiser.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan<'a, C> {
    /// The task's whole config (`config.json`).
    pub config: &'a C,
    pub total_steps: usize,
    /// Steps per checkpoint interval (the last interval may be shorter).
    pub interval: usize,
    pub unit: Unit,
    /// Seeds the device's RNG before the model is built.
    pub seed: u64,
    pub optimizer: OptimizerConfig,
}

impl<C> Plan<'_, C> {
    /// The state's counter after `steps` steps (epochs or steps done).
    fn done(&self, steps: usize) -> usize {
        match self.unit {
            Unit::Epoch => steps / self.interval,
            Unit::Step => steps,
        }
    }

    /// The first step after `done` units.
    fn start_step(&self, done: usize) -> usize {
        match self.unit {
            Unit::Epoch => done * self.interval,
            Unit::Step => done,
        }
    }

    /// Whether a checkpoint follows step `step` (0-based).
    fn checkpoint_after(&self, step: usize) -> bool {
        (step + 1).is_multiple_of(self.interval) || step + 1 == self.total_steps
    }
}

/// One step's input on the host, made on the prefetch thread: pixels `[rows, C, H, W]` on [0,1]
/// (the task knows the layout of its copies) and, for supervised tasks, labels.
pub struct HostBatch {
    pub pixels: Vec<f32>,
    pub labels: Vec<i64>,
}

/// The loss of one step as the task computes it.
pub struct StepLoss {
    /// The scalar to minimise, `[1]`, on the autodiff device.
    pub loss: Tensor<1>,
    /// Detached values read back once per step, `[k]`: the total loss first (checked for
    /// finiteness), then whatever the task records (loss parts, correct counts).
    pub stats: Tensor<1>,
    /// How each value adds to the interval's sums: `sums[k] += stats[k]·weights[k]` (the batch
    /// size for a batch mean that is averaged over items, 1 for counts and per-step means).
    pub weights: Vec<f64>,
    /// Training items (images, triplets) in the step.
    pub items: usize,
}

/// The weighted sums of the step stats over the current interval.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sums {
    pub values: Vec<f64>,
    pub steps: usize,
    pub items: usize,
}

impl Sums {
    fn add(&mut self, stats: &[f32], weights: &[f64], items: usize) {
        self.values.resize(stats.len(), 0.0);
        for ((sum, &v), &w) in self.values.iter_mut().zip(stats).zip(weights) {
            *sum += v as f64 * w;
        }
        self.steps += 1;
        self.items += items;
    }
}

/// Running means of the current interval, for progress displays.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub loss: f64,
    /// Top-1 of the training batches (classifier) or the share of triplets already in order
    /// (embedding).
    pub accuracy: f64,
    /// Training items (images or triplets) per second.
    pub items_per_s: f64,
}

/// The end of a checkpoint interval, as [`Task::interval`] sees it.
pub struct IntervalEnd<'a, M> {
    pub sums: Sums,
    /// The model after the interval's last step (it may be evaluated on `device`).
    pub model: &'a M,
    pub steps_done: usize,
    /// The last learning rate used.
    pub lr: f64,
    /// Seconds of training in the interval.
    pub train_seconds: f64,
    /// The plain (non-autodiff) device.
    pub device: &'a Device,
}

/// What differs between trainings; [`run`] does the rest.
pub trait Task: Sync {
    type Model: Module;
    /// What is recorded per interval (`history` in the state and in `metrics.json`).
    type Interval: Clone + Serialize + DeserializeOwned;
    /// The final result, written as `metrics.json`.
    type Summary: Serialize;

    fn plan(&self) -> Plan<'_, impl RunConfig>;
    /// A fresh model on the autodiff `device` (its RNG is seeded with the plan's seed first).
    fn init(&self, device: &Device) -> Result<Self::Model, TrainError>;
    /// Applied after `init` and after loading a checkpoint (e.g. freezing layers).
    fn prepare(&self, model: Self::Model) -> Self::Model {
        model
    }
    /// The batch of global step `step`; deterministic in the seed and the step.
    fn batch(&self, step: usize) -> Result<HostBatch, TrainError>;
    /// The loss of one step on `model` (same weights for every copy in the batch).
    fn step(&self, model: &Self::Model, batch: HostBatch, device: &Device) -> StepLoss;
    /// Running means from the interval's sums, `seconds` after it began.
    fn progress(&self, sums: &Sums, seconds: f64) -> Progress;
    /// What the interval that just ended records.
    fn interval(&self, end: IntervalEnd<Self::Model>) -> Self::Interval;
    /// The final result from the whole history; `seconds` of this invocation's training.
    fn summary(&self, history: Vec<Self::Interval>, model: &Self::Model, seconds: f64) -> Self::Summary;
}

/// Progress reports from [`run`].
pub enum Event<'a, I> {
    /// Training starts at `start_step` of `total_steps`; `resumed` units were done before.
    Start { total_steps: usize, start_step: usize, resumed: usize, unit: Unit },
    /// After each step: `step` (0-based) of interval `interval` (0-based), running means.
    Step { step: usize, interval: usize, progress: Progress },
    /// An interval ended and its checkpoint is on disk.
    Checkpoint(&'a I),
}

/// Why training stopped.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("invalid training settings: {0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Io(#[from] stabilize_core::Error),
    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error(
        "the loss became {value} at {}step {step}; training stopped (last good checkpoint: {})",
        epoch.map(|e| format!("epoch {e}, ")).unwrap_or_default(),
        last_good.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "none, stopped before the first checkpoint".into())
    )]
    NonFinite { step: usize, epoch: Option<usize>, value: f32, last_good: Option<PathBuf> },
}

impl TrainError {
    /// A checkpoint or model file that could not be read or written.
    pub(crate) fn file(path: &Path, e: impl std::fmt::Display) -> Self {
        TrainError::Checkpoint { path: path.to_path_buf(), message: e.to_string() }
    }
}

/// Trains `task` into the run folder `out` (or, with `resume`, continues it from its last
/// checkpoint): `config.json`, `checkpoint/`, then `model.bpk` (inference mode) and
/// `metrics.json`. `device` is the plain device; training runs on its autodiff form.
pub fn run<T: Task>(
    task: &T,
    device: &Device,
    out: &Path,
    resume: bool,
    on: &mut dyn FnMut(Event<T::Interval>),
) -> Result<T::Summary, TrainError> {
    let plan = task.plan();
    let mut dir = RunDir::<_, T::Interval>::open(out, plan.config, plan.unit, resume)?;

    let train_dev = device.clone().autodiff();
    device.seed(plan.seed);
    let model = task.init(&train_dev)?;
    materialize(&model);
    run_dir::ensure_checkpoint_space(out, model.num_params())?;
    let mut model = task.prepare(model);
    let mut optim = plan.optimizer.init();
    if dir.done() > 0 {
        let (m, o) = dir.load_checkpoint(model, optim)?;
        (model, optim) = (task.prepare(m), o);
    }

    let first = plan.start_step(dir.done());
    on(Event::Start { total_steps: plan.total_steps, start_step: first, resumed: dir.done(), unit: plan.unit });
    let run_started = Instant::now();
    let mut sums = Sums::default();
    let mut interval_started = Instant::now();
    let mut slot = Some(model);
    let make = |i: usize| task.batch(first + i).map(|b| (first + i, b));
    prefetch(plan.total_steps - first, 2, make, |batch| -> Result<(), TrainError> {
        let (step, batch) = batch?;
        let lr = plan.optimizer.lr_at(step, plan.total_steps);
        let model = slot.take().expect("model");
        let StepLoss { loss, stats, weights, items } = task.step(&model, batch, &train_dev);
        // One read-back per step: the total and the task's records together.
        let stats: Vec<f32> = stats.try_into_vec_as::<f32>().expect("float stats");
        if !stats[0].is_finite() {
            return Err(TrainError::NonFinite {
                step,
                epoch: (plan.unit == Unit::Epoch).then(|| step / plan.interval),
                value: stats[0],
                last_good: dir.last_checkpoint(),
            });
        }
        sums.add(&stats, &weights, items);
        let progress = task.progress(&sums, interval_started.elapsed().as_secs_f64());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let model = optim.step(lr, model, grads);
        on(Event::Step { step, interval: step / plan.interval, progress });
        if plan.checkpoint_after(step) {
            let train_seconds = interval_started.elapsed().as_secs_f64();
            let sums = std::mem::take(&mut sums);
            let end = IntervalEnd { sums, model: &model, steps_done: step + 1, lr, train_seconds, device };
            let stats = task.interval(end);
            dir.checkpoint(plan.done(step + 1), &model, &optim, stats.clone())?;
            on(Event::Checkpoint(&stats));
            interval_started = Instant::now();
        }
        slot = Some(model);
        Ok(())
    })?;
    let model = slot.take().expect("model");
    let summary = task.summary(dir.history().to_vec(), &model, run_started.elapsed().as_secs_f64());
    dir.finish(&model, &summary)?;
    Ok(summary)
}

/// Runs `consume` on `make(0)`, `make(1)`, …, `make(n - 1)` in order, with `make` running on a
/// second thread up to `depth` items ahead. Stops at the first error of `consume` (the producer
/// then stops too).
pub fn prefetch<T: Send, E>(
    n: usize,
    depth: usize,
    make: impl Fn(usize) -> T + Send + Sync,
    mut consume: impl FnMut(T) -> Result<(), E>,
) -> Result<(), E> {
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel(depth);
        let make = &make;
        s.spawn(move || {
            for i in 0..n {
                if tx.send(make(i)).is_err() {
                    break; // the consumer stopped
                }
            }
        });
        for item in rx.iter().take(n) {
            consume(item)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_cut_runs_into_intervals() {
        let o = OptimizerConfig::new(1e-3);
        let config = ();
        let epochs =
            Plan { config: &config, total_steps: 30, interval: 10, unit: Unit::Epoch, seed: 0, optimizer: o.clone() };
        assert_eq!((epochs.done(20), epochs.start_step(2)), (2, 20));
        assert!(epochs.checkpoint_after(9) && !epochs.checkpoint_after(10) && epochs.checkpoint_after(29));
        // Step intervals: the last one may be shorter.
        let steps = Plan { config: &config, total_steps: 25, interval: 10, unit: Unit::Step, seed: 0, optimizer: o };
        assert_eq!((steps.done(20), steps.start_step(20)), (20, 20));
        assert!(steps.checkpoint_after(19) && steps.checkpoint_after(24) && !steps.checkpoint_after(22));
    }

    /// Every run folder committed under `results/` (written by older versions) still loads as
    /// its task's config, validates, and writes back the same settings.
    #[test]
    fn the_committed_run_configs_still_load() {
        fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, found);
                } else if p.file_name().is_some_and(|n| n == stabilize_core::run_files::CONFIG) {
                    found.push(p);
                }
            }
        }
        let mut found = Vec::new();
        walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results"), &mut found);
        assert!(found.len() >= 20, "{found:?}");
        for p in found {
            let text = std::fs::read_to_string(&p).unwrap();
            let raw: serde_json::Value = serde_json::from_str(&text).unwrap();
            let reread = if raw.get("dataset").and_then(|d| d.as_str()) == Some(imagenet::DATASET) {
                let c: ImagenetTrainConfig =
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                c.validate().unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                serde_json::to_value(c).unwrap()
            } else if raw.get("init").is_some() {
                let c: EmbedTrainConfig =
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                c.validate().unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                serde_json::to_value(c).unwrap()
            } else {
                let c: ClassifyTrainConfig =
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                c.validate().unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                serde_json::to_value(c).unwrap()
            };
            // Every setting the old file had is written back with the same value.
            for (k, v) in raw.as_object().unwrap() {
                assert_eq!(reread.get(k), Some(v), "{}: {k}", p.display());
            }
        }
    }

    #[test]
    fn sums_weight_each_column() {
        let mut s = Sums::default();
        s.add(&[0.5, 3.0], &[4.0, 1.0], 4);
        s.add(&[0.25, 1.0], &[2.0, 1.0], 2);
        assert_eq!(s, Sums { values: vec![2.5, 4.0], steps: 2, items: 6 });
    }

    #[test]
    fn cosine_schedule_and_optimizer_checks() {
        let o = OptimizerConfig::new(3e-3);
        assert!((o.lr_at(0, 10) - 3e-3).abs() < 1e-15);
        assert!((o.lr_at(5, 10) - 1.5e-3).abs() < 1e-15);
        assert!(o.lr_at(10, 10).abs() < 1e-15);
        assert!(OptimizerConfig::new(0.0).validate().unwrap_err().to_string().contains("learning rate must be > 0"));
        assert!(OptimizerConfig { weight_decay: -1.0, ..o }.validate().is_err());
    }

    #[test]
    fn prefetch_keeps_order_and_stops_at_the_first_error() {
        let mut seen = Vec::new();
        prefetch(
            6,
            2,
            |i| i * i,
            |v| -> Result<(), ()> {
                seen.push(v);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, [0, 1, 4, 9, 16, 25]);
        let mut n = 0;
        let r = prefetch(
            1000,
            2,
            |i| i,
            |v| {
                n += 1;
                if v == 3 { Err(v) } else { Ok(()) }
            },
        );
        assert_eq!((r, n), (Err(3), 4));
    }
}
