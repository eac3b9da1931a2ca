//! Stability training of the classifier: the training loop, checkpoints and resume.
//!
//! Each step draws a fresh `ε ~ N(0, σ²)` per pixel (on the host, from a ChaCha stream keyed by
//! the seed and the global step, so a resumed run draws the same noise), forwards the clean and
//! the noisy batch together through the same weights (one `[2N, …]` batch), and minimises
//! `CE(clean) + α·Lstab(clean, noisy)` with AdamW and a cosine learning-rate schedule. With α = 0
//! the noisy half is not computed at all: the baseline is plain cross-entropy training.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution as _, Normal};
use serde::{Deserialize, Serialize};
use stabilize_core::distort::item_seed;
use stabilize_core::fashion_mnist::{SIDE, Split};
use stabilize_core::fsutil::{ensure_writable_dir, write_atomic};
use stabilize_core::metrics::classify::top_k_accuracy;

use stabilize_core::image::{Channels, Image};
use stabilize_core::perturb::Perturbation;

use crate::loss::{ClassificationLoss, Objective, StabilityForm, classification_loss, cross_entropy, jensen_shannon};
use crate::model::{SmallCnn, SmallCnnConfig, materialize};

/// Everything that defines a classifier training run; saved as `config.json` in the run folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassifyTrainConfig {
    /// The dataset name (`fashion-mnist`).
    pub dataset: String,
    pub model: SmallCnnConfig,
    /// Weight of the stability term; 0 trains the baseline.
    pub alpha: f64,
    /// Standard deviation of the training perturbation on the [0,1] pixel scale.
    pub sigma: f64,
    pub form: StabilityForm,
    pub epochs: usize,
    pub batch_size: usize,
    /// Peak learning rate (cosine decay to 0 over all steps).
    pub lr: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    pub seed: u64,
    /// Train on the first N training images only (for quick runs and sweeps).
    pub train_subset: Option<usize>,
    /// What the step minimises (stability, augmentation or JSD consistency).
    #[serde(default)]
    pub objective: Objective,
    /// How `x'` is drawn; `None` is the paper's `noise:σ` with `sigma` above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perturb: Option<Perturbation>,
}

impl ClassifyTrainConfig {
    /// The defaults for Fashion-MNIST: α = 0 (baseline), σ = 0.04, 10 epochs, batch 128, lr 1e-3.
    pub fn new() -> Self {
        Self {
            dataset: "fashion-mnist".into(),
            model: SmallCnnConfig::new(),
            alpha: 0.0,
            sigma: 0.04,
            form: StabilityForm::Paper,
            epochs: 10,
            batch_size: 128,
            lr: 1e-3,
            weight_decay: 1e-4,
            seed: 0,
            train_subset: None,
            objective: Objective::Stability,
            perturb: None,
        }
    }

    /// How `x'` is drawn: `perturb`, else the paper's noise with `sigma`.
    pub fn perturbation(&self) -> Perturbation {
        self.perturb.clone().unwrap_or(Perturbation::Noise { sigma: self.sigma })
    }

    /// Checks the ranges; the message names the offending setting.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err(format!("alpha must be ≥ 0, got {}", self.alpha));
        }
        if !(self.sigma.is_finite() && self.sigma >= 0.0 && self.sigma <= 1.0) {
            return Err(format!("sigma is on the [0,1] pixel scale: 0 ≤ σ ≤ 1, got {}", self.sigma));
        }
        let views = self.objective.views(self.alpha);
        if views > 0 && self.perturbation().paper_sigma() == Some(0.0) {
            return Err(format!(
                "the {} objective needs sigma > 0 or a --perturb (with σ = 0 the copies are identical)",
                self.objective
            ));
        }
        match self.objective {
            Objective::Augment if self.alpha != 0.0 => {
                return Err("the augment objective is CE on x' alone; --alpha does not apply (leave it 0)".into());
            }
            Objective::Jsd if self.alpha <= 0.0 => {
                return Err("the jsd objective needs --alpha > 0 (AugMix's λ; its reference value is 12)".into());
            }
            _ => {}
        }
        if let Some(p) = &self.perturb {
            p.check_side(SIDE as u32).map_err(|e| e.to_string())?;
        }
        if self.epochs == 0 || self.batch_size == 0 {
            return Err("epochs and batch size must be ≥ 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("learning rate must be > 0, got {}", self.lr));
        }
        Ok(())
    }

    /// Learning rate at global step `step` of `total`: cosine from `lr` down to 0.
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        0.5 * self.lr * (1.0 + (std::f64::consts::PI * step as f64 / total.max(1) as f64).cos())
    }
}

impl Default for ClassifyTrainConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// What one epoch did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochStats {
    pub epoch: usize,
    /// Mean total loss `CE + α·Lstab` over the epoch.
    pub loss: f64,
    pub ce: f64,
    /// Mean stability term (before α); 0 for the baseline.
    pub stability: f64,
    pub train_top1: f64,
    pub test_top1: f64,
    pub lr_end: f64,
    pub seconds: f64,
    /// Training images per second (each image counted once, whether or not it had a noisy copy).
    pub img_per_s: f64,
}

/// The resumable state of a run (`checkpoint/state.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainState {
    pub config: ClassifyTrainConfig,
    pub epochs_done: usize,
    pub history: Vec<EpochStats>,
}

/// Progress reports from [`train_classifier`].
pub enum Event<'a> {
    /// Training starts (or resumes) at `start_step` of `total_steps`.
    Start {
        total_steps: usize,
        start_step: usize,
        resumed_epochs: usize,
    },
    /// After each step: running means of the current epoch.
    Step {
        step: usize,
        epoch: usize,
        loss: f64,
        top1: f64,
        img_per_s: f64,
    },
    EpochEnd(&'a EpochStats),
}

/// Why training stopped.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("invalid training settings: {0}")]
    Config(String),
    #[error("{0}")]
    Io(#[from] stabilize_core::Error),
    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error(
        "the loss became {value} at epoch {epoch}, step {step}; training stopped (last good checkpoint: {})",
        last_good.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "none, stopped in the first epoch".into())
    )]
    NonFinite { epoch: usize, step: usize, value: f32, last_good: Option<PathBuf> },
}

/// The final result of a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainSummary {
    pub config: ClassifyTrainConfig,
    pub history: Vec<EpochStats>,
    pub test_top1: f64,
    /// Wall time of the epochs run by this invocation.
    pub seconds: f64,
    pub parameters: usize,
}

const STATE: &str = "checkpoint/state.json";

/// `[n, 1, 28, 28]` pixels on [0,1] and labels of the given training indices.
fn gather(split: &Split, idx: &[usize]) -> (Vec<f32>, Vec<i64>) {
    let mut x = Vec::with_capacity(idx.len() * SIDE * SIDE);
    for &i in idx {
        x.extend(split.pixels(i).iter().map(|&v| v as f32 / 255.0));
    }
    (x, idx.iter().map(|&i| split.labels[i] as i64).collect())
}

/// `x'` of the training images `idx` under a mix of real distortions, `[n·784]` on [0,1]; image
/// `i` gets seed `item_seed(seed, i)` (thread-count independent).
fn perturb_batch(split: &Split, idx: &[usize], perturb: &Perturbation, seed: u64) -> Result<Vec<f32>, TrainError> {
    use rayon::prelude::*;
    let images: Vec<Vec<f32>> = idx
        .par_iter()
        .enumerate()
        .map(|(i, &k)| {
            let img = Image::new(SIDE as u32, SIDE as u32, Channels::Gray, split.pixels(k).to_vec())?;
            Ok(perturb.apply(&img, item_seed(seed, i as u64))?.to_f32())
        })
        .collect::<Result<_, stabilize_core::Error>>()?;
    Ok(images.concat())
}

/// Images per inference batch: large enough to keep the cores busy, small enough that the
/// convolutions' im2col buffers stay in cache-friendly sizes.
pub const INFER_BATCH: usize = 256;

/// Logits and penultimate features of a whole split, `batch` images at a time, on `device`
/// (no autodiff). `images` yields `[1, 28, 28]` pixel bytes per item.
pub fn infer(
    model: &SmallCnn,
    images: &[&[u8]],
    channels: usize,
    side: usize,
    batch: usize,
    device: &Device,
) -> (Vec<f32>, Vec<f32>) {
    let model = model.valid();
    let mut logits = Vec::new();
    let mut features = Vec::new();
    for chunk in images.chunks(batch) {
        let x: Vec<f32> = chunk.iter().flat_map(|img| img.iter().map(|&v| v as f32 / 255.0)).collect();
        let x = Tensor::<4>::from_data(TensorData::new(x, [chunk.len(), channels, side, side]), device);
        let f = model.features(x);
        let l = model.head(f.clone());
        features.extend(f.try_into_vec_as::<f32>().expect("float features"));
        logits.extend(l.try_into_vec_as::<f32>().expect("float logits"));
    }
    (logits, features)
}

/// Top-1 accuracy of `model` on a split.
pub fn split_accuracy(model: &SmallCnn, split: &Split, device: &Device) -> f64 {
    let images: Vec<&[u8]> = (0..split.len()).map(|i| split.pixels(i)).collect();
    let (logits, _) = infer(model, &images, 1, SIDE, INFER_BATCH, device);
    top_k_accuracy(&logits, 10, &split.labels, 1)
}

/// Trains (or, with `resume`, continues) a classifier into `out`:
/// `out/config.json`, `out/model.bpk`, `out/metrics.json`, and `out/checkpoint/` (state, model
/// and optimizer after each epoch, written atomically).
pub fn train_classifier(
    config: &ClassifyTrainConfig,
    train: &Split,
    test: &Split,
    device: &Device,
    out: &Path,
    resume: bool,
    on: &mut dyn FnMut(Event),
) -> Result<TrainSummary, TrainError> {
    config.validate().map_err(TrainError::Config)?;
    ensure_writable_dir(&out.join("checkpoint"))?;
    let state_path = out.join(STATE);
    let mut state = if state_path.is_file() {
        let state: TrainState = read_json(&state_path)?;
        if !resume {
            return Err(TrainError::Checkpoint {
                path: out.to_path_buf(),
                message: format!(
                    "already holds a run ({} epochs done); pass --resume or choose another --out",
                    state.epochs_done
                ),
            });
        }
        if state.config != *config {
            return Err(TrainError::Checkpoint {
                path: state_path,
                message: "was trained with different settings; resume with the same settings".into(),
            });
        }
        state
    } else {
        TrainState { config: config.clone(), epochs_done: 0, history: Vec::new() }
    };
    write_atomic(&out.join("config.json"), &serde_json::to_vec_pretty(config).expect("serialisable"))?;

    let train_dev = device.clone().autodiff();
    device.seed(config.seed);
    let mut model = config.model.init(&train_dev);
    materialize(&model);
    ensure_checkpoint_space(out, model.num_params())?;
    let mut optim = AdamWConfig::new().with_epsilon(1e-8).with_weight_decay(config.weight_decay as f32).init();
    if state.epochs_done > 0 {
        let (m, o) = checkpoint_paths(out, state.epochs_done);
        model =
            model.try_load_file(&m).map_err(|e| TrainError::Checkpoint { path: m.clone(), message: e.to_string() })?;
        optim = optim.load(&o).map_err(|e| TrainError::Checkpoint { path: o.clone(), message: e.to_string() })?;
    }

    let n_train = config.train_subset.unwrap_or(train.len()).min(train.len());
    let steps_per_epoch = n_train.div_ceil(config.batch_size);
    let total_steps = steps_per_epoch * config.epochs;
    on(Event::Start {
        total_steps,
        start_step: state.epochs_done * steps_per_epoch,
        resumed_epochs: state.epochs_done,
    });
    let perturb = config.perturbation();
    let noise = Normal::new(0.0f32, perturb.paper_sigma().unwrap_or(config.sigma).max(f64::MIN_POSITIVE) as f32)
        .expect("valid sigma");
    let views = config.objective.views(config.alpha);
    let run_started = Instant::now();

    for epoch in state.epochs_done..config.epochs {
        let started = Instant::now();
        let mut order: Vec<usize> = (0..n_train).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(item_seed(config.seed, epoch as u64)));
        let (mut sum_loss, mut sum_ce, mut sum_stab, mut correct, mut seen) = (0.0, 0.0, 0.0, 0usize, 0usize);
        let mut lr = config.lr;
        // The host side of each batch (gather, scale, noise) is prepared on a second thread, two
        // batches ahead, while the device works on the current one.
        let make_batch = |b: usize| -> Result<(usize, Vec<f32>, Vec<i64>), TrainError> {
            let idx = &order[b * config.batch_size..((b + 1) * config.batch_size).min(n_train)];
            let step = epoch * steps_per_epoch + b;
            let (clean, y) = gather(train, idx);
            let mut x = Vec::with_capacity(clean.len() * (views + 1));
            if config.objective != Objective::Augment {
                x.extend_from_slice(&clean);
            }
            for v in 0..views {
                let seed = item_seed(config.seed ^ 0x5EED_0F_0015E ^ (v as u64 * 0xA5A5_0000), step as u64);
                match perturb.paper_sigma() {
                    Some(_) => {
                        let mut rng = ChaCha8Rng::seed_from_u64(seed);
                        x.extend(clean.iter().map(|&p| p + noise.sample(&mut rng)));
                    }
                    None => x.extend(perturb_batch(train, idx, &perturb, seed)?),
                }
            }
            Ok((step, x, y))
        };
        let mut slot = Some(model);
        let epoch_result = prefetch(steps_per_epoch, 2, make_batch, |batch| {
            let (step, x, y) = batch?;
            lr = config.lr_at(step, total_steps);
            let n = y.len();
            let rows = x.len() / (SIDE * SIDE);
            let xt = Tensor::<4>::from_data(TensorData::new(x, [rows, 1, SIDE, SIDE]), &train_dev);
            let yt = Tensor::<1, Int>::from_data(TensorData::new(y, [n]), &train_dev);
            // Each copy through the same weights as its own forward pass (a single [2N] or [3N]
            // batch measured slower on tch and no faster on flex); rows k·n.. are copy k, the
            // clean one first (the perturbed one alone for augment).
            let model = slot.as_ref().expect("model");
            let parts: Vec<Tensor<2>> = (0..rows / n).map(|k| model.forward(xt.clone().narrow(0, k * n, n))).collect();
            let part = |k: usize| parts[k].clone();
            let hits = part(0).detach().argmax(1).reshape([n]).equal(yt.clone()).int().sum().float();
            let loss = match config.objective {
                Objective::Stability | Objective::Augment => {
                    let noisy = (rows > n).then(|| part(1));
                    classification_loss(part(0), noisy, yt, config.alpha, config.form)
                }
                Objective::Jsd => {
                    let ce = cross_entropy(part(0), yt);
                    let js = jensen_shannon(part(0), part(1), part(2));
                    ClassificationLoss {
                        total: ce.clone() + js.clone().mul_scalar(config.alpha),
                        ce,
                        stability: Some(js),
                    }
                }
            };
            // One read-back per step: total, CE, stability term and correct count together.
            let stab = loss.stability.clone().unwrap_or_else(|| loss.ce.clone().zeros_like());
            let stats =
                Tensor::cat(vec![loss.total.clone().detach(), loss.ce.clone().detach(), stab.detach(), hits], 0);
            let stats: Vec<f32> = stats.try_into_vec_as::<f32>().expect("float stats");
            let total = stats[0];
            if !total.is_finite() {
                return Err(TrainError::NonFinite {
                    epoch,
                    step,
                    value: total,
                    last_good: (state.epochs_done > 0).then(|| checkpoint_paths(out, state.epochs_done).0),
                });
            }
            sum_loss += total as f64 * n as f64;
            sum_ce += stats[1] as f64 * n as f64;
            sum_stab += stats[2] as f64 * n as f64;
            correct += stats[3] as usize;
            seen += n;
            let m = slot.take().expect("model");
            let grads = GradientsParams::from_grads(loss.total.backward(), &m);
            slot = Some(optim.step(lr, m, grads));
            on(Event::Step {
                step,
                epoch,
                loss: sum_loss / seen as f64,
                top1: correct as f64 / seen as f64,
                img_per_s: seen as f64 / started.elapsed().as_secs_f64(),
            });
            Ok(())
        });
        epoch_result?;
        model = slot.expect("model");
        let train_seconds = started.elapsed().as_secs_f64();
        let stats = EpochStats {
            epoch: epoch + 1,
            loss: sum_loss / seen as f64,
            ce: sum_ce / seen as f64,
            stability: sum_stab / seen as f64,
            train_top1: correct as f64 / seen as f64,
            test_top1: split_accuracy(&model, test, device),
            lr_end: lr,
            seconds: started.elapsed().as_secs_f64(),
            img_per_s: seen as f64 / train_seconds,
        };
        // Checkpoint: model and optimizer under epoch-numbered names, then the state that points
        // at them (atomic), then the previous epoch's files.
        let (m, o) = checkpoint_paths(out, epoch + 1);
        model.clone().save_file(&m).map_err(|e| TrainError::Checkpoint { path: m.clone(), message: e.to_string() })?;
        optim.save(&o).map_err(|e| TrainError::Checkpoint { path: o.clone(), message: e.to_string() })?;
        state.epochs_done = epoch + 1;
        state.history.push(stats.clone());
        write_atomic(&state_path, &serde_json::to_vec_pretty(&state).expect("serialisable"))?;
        if epoch > 0 {
            let (pm, po) = checkpoint_paths(out, epoch);
            let _ = fs::remove_file(pm);
            let _ = fs::remove_file(po);
        }
        on(Event::EpochEnd(&stats));
    }

    let final_model = out.join("model.bpk");
    model
        .clone()
        .valid()
        .save_file(&final_model)
        .map_err(|e| TrainError::Checkpoint { path: final_model.clone(), message: e.to_string() })?;
    let summary = TrainSummary {
        config: config.clone(),
        test_top1: state.history.last().map(|s| s.test_top1).unwrap_or(f64::NAN),
        history: state.history.clone(),
        seconds: run_started.elapsed().as_secs_f64(),
        parameters: model.num_params(),
    };
    write_atomic(&out.join("metrics.json"), &serde_json::to_vec_pretty(&summary).expect("serialisable"))?;
    Ok(summary)
}

/// Runs `consume` on `make(0)`, `make(1)`, …, `make(n - 1)` in order, with `make` running on a
/// second thread up to `depth` items ahead. Stops at the first error of `consume` (the producer
/// then stops too).
pub(crate) fn prefetch<T: Send, E>(
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

/// Fails before training when `out`'s file system cannot hold two checkpoints (the old one stays
/// until the new one is in place) of weights and AdamW's two moments, and the final model: a full
/// disk is found before the first step, not after the last.
pub(crate) fn ensure_checkpoint_space(out: &Path, num_params: usize) -> Result<(), TrainError> {
    Ok(stabilize_core::fsutil::ensure_space(out, num_params as u64 * 4 * 7 + (16 << 20), "training")?)
}

fn checkpoint_paths(out: &Path, epoch: usize) -> (PathBuf, PathBuf) {
    let dir = out.join("checkpoint");
    (dir.join(format!("epoch-{epoch:03}.model.bpk")), dir.join(format!("epoch-{epoch:03}.optim.bpk")))
}

pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, TrainError> {
    let bytes = fs::read(path).map_err(|e| stabilize_core::Error::io(path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| TrainError::Checkpoint { path: path.to_path_buf(), message: e.to_string() })
}

/// Loads a trained classifier run folder: its config and the final model (on `device`).
pub fn load_classifier(dir: &Path, device: &Device) -> Result<(ClassifyTrainConfig, SmallCnn), TrainError> {
    let config_path = dir.join("config.json");
    if !config_path.is_file() {
        return Err(TrainError::Checkpoint {
            path: dir.to_path_buf(),
            message: "is not a classifier run folder (no config.json)".into(),
        });
    }
    let bytes = fs::read(&config_path).map_err(|e| stabilize_core::Error::io(&config_path, e))?;
    let config: ClassifyTrainConfig = serde_json::from_slice(&bytes).map_err(|e| TrainError::Checkpoint {
        path: dir.to_path_buf(),
        message: format!("is not a classifier run ({e}); is this an embedding run?"),
    })?;
    let model_path = dir.join("model.bpk");
    if !model_path.is_file() {
        return Err(TrainError::Checkpoint {
            path: dir.to_path_buf(),
            message: "has no model.bpk (training unfinished? use --resume)".into(),
        });
    }
    let model = config
        .model
        .init(device)
        .try_load_file(&model_path)
        .map_err(|e| TrainError::Checkpoint { path: model_path.clone(), message: e.to_string() })?;
    Ok((config, model))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny learnable fixture: class c is a bright horizontal band at rows 2c..2c+3, plus
    /// deterministic texture.
    fn fixture(n: usize, offset: usize) -> Split {
        let mut images = Vec::with_capacity(n * SIDE * SIDE);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let c = (i + offset) % 10;
            for y in 0..SIDE {
                for x in 0..SIDE {
                    let band = if y >= 2 * c + 3 && y < 2 * c + 6 { 200 } else { 20 };
                    images.push((band + (x * 7 + y * 3 + i) % 30) as u8);
                }
            }
            labels.push(c as u8);
        }
        Split { images, labels }
    }

    fn tiny(alpha: f64) -> ClassifyTrainConfig {
        ClassifyTrainConfig {
            model: SmallCnnConfig::new().with_width(4).with_features(16),
            alpha,
            sigma: 0.1,
            epochs: 2,
            batch_size: 32,
            lr: 3e-3,
            seed: 7,
            ..ClassifyTrainConfig::new()
        }
    }

    fn run(config: &ClassifyTrainConfig, out: &Path, resume: bool, on: &mut dyn FnMut(Event)) -> TrainSummary {
        let device = Device::flex();
        train_classifier(config, &fixture(160, 0), &fixture(50, 3), &device, out, resume, on).unwrap()
    }

    #[test]
    fn same_seed_same_run_learns_and_resume_matches() {
        let _guard = crate::test_rng_lock();
        let dir = tempfile::tempdir().unwrap();
        let config = tiny(0.5);
        let a = run(&config, &dir.path().join("a"), false, &mut |_| {});
        let b = run(&config, &dir.path().join("b"), false, &mut |_| {});
        assert_eq!(
            serde_json::to_string(&a.history.iter().map(|h| (h.loss, h.test_top1)).collect::<Vec<_>>()).unwrap(),
            serde_json::to_string(&b.history.iter().map(|h| (h.loss, h.test_top1)).collect::<Vec<_>>()).unwrap()
        );
        assert!(a.history[1].stability > 0.0);
        assert!(a.history[1].loss < a.history[0].loss, "{:?}", a.history);
        // Interrupt after the first epoch's checkpoint, then resume: the same final numbers.
        let c_dir = dir.path().join("c");
        let interrupted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(&config, &c_dir, false, &mut |e| {
                if let Event::EpochEnd(s) = e {
                    assert!(s.epoch < 1, "simulated crash after epoch {}", s.epoch);
                }
            })
        }));
        assert!(interrupted.is_err());
        assert!(!c_dir.join("model.bpk").exists());
        // Without --resume an existing run is refused.
        let refused =
            train_classifier(&config, &fixture(160, 0), &fixture(50, 3), &Device::flex(), &c_dir, false, &mut |_| {});
        assert!(refused.unwrap_err().to_string().contains("--resume"));
        let c = run(&config, &c_dir, true, &mut |_| {});
        assert_eq!(c.history.len(), 2);
        assert_eq!(c.history[1].loss, a.history[1].loss);
        assert_eq!(c.test_top1, a.test_top1);
        let (loaded_cfg, model) = load_classifier(&c_dir, &Device::flex()).unwrap();
        assert_eq!(loaded_cfg, config);
        assert_eq!(split_accuracy(&model, &fixture(50, 3), &Device::flex()), c.test_top1);
    }

    #[test]
    fn baseline_trains_to_separate_the_fixture_and_bad_settings_are_refused() {
        let _guard = crate::test_rng_lock();
        let dir = tempfile::tempdir().unwrap();
        let config = ClassifyTrainConfig { epochs: 20, ..tiny(0.0) };
        let s = run(&config, dir.path(), false, &mut |_| {});
        assert_eq!(s.history[0].stability, 0.0);
        assert!(s.test_top1 >= 0.9, "test top-1 {}", s.test_top1);
        for bad in [
            ClassifyTrainConfig { alpha: -1.0, ..tiny(0.0) },
            ClassifyTrainConfig { sigma: 2.0, ..tiny(0.0) },
            ClassifyTrainConfig { alpha: 0.1, sigma: 0.0, ..tiny(0.0) },
            ClassifyTrainConfig { epochs: 0, ..tiny(0.0) },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert!((tiny(0.0).lr_at(0, 10) - 3e-3).abs() < 1e-12);
        assert!(tiny(0.0).lr_at(10, 10).abs() < 1e-12);
    }

    #[test]
    fn a_diverging_run_stops_with_a_clear_error_and_no_final_model() {
        let _guard = crate::test_rng_lock();
        let dir = tempfile::tempdir().unwrap();
        // An absurd learning rate makes the weights explode until the loss is not finite.
        let bad = ClassifyTrainConfig { epochs: 6, lr: 1e12, ..tiny(0.0) };
        let err =
            train_classifier(&bad, &fixture(160, 0), &fixture(50, 3), &Device::flex(), dir.path(), false, &mut |_| {})
                .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("the loss became") && !msg.contains('\n'), "{msg}");
        let TrainError::NonFinite { epoch, last_good, .. } = err else { panic!("{msg}") };
        // The error names the last good checkpoint, which is on disk (none in the first epoch).
        match last_good {
            Some(p) => assert!(epoch > 0 && p.is_file(), "{}", p.display()),
            None => assert_eq!(epoch, 0),
        }
        assert!(!dir.path().join("model.bpk").exists(), "no final model from a diverged run");
    }
}
