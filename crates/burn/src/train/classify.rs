//! The classifier task: the small CNN on Fashion-MNIST with `CE(x) + α·Lstab(x, x')` (or the
//! augmentation and JSD objectives), one checkpoint per epoch.
//!
//! A step's batch is the clean images `[N, 1, 28, 28]` on [0,1] and, per perturbed view, their
//! copies `x'` (a fresh draw every step; [`PerturbSampler`]); each copy goes through the same
//! weights as its own forward pass (a single `[2N]` batch measured slower on tch and no faster on
//! flex), and gradients flow through every branch. With α = 0 no copy is made: the baseline is
//! plain cross-entropy training. Epoch `e` visits the training images in the order of a shuffle
//! seeded by `(seed, e)`.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use burn::module::Module;
use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use stabilize_core::data::fashion_mnist::{SIDE, Split, validation_start};
use stabilize_core::image::{Channels, Image};
use stabilize_core::seeds::item_seed;

use super::run_dir::{load_run, read_run_config};
use super::{
    HostBatch, IntervalEnd, OptimizerConfig, Plan, Progress, RunConfig, StepLoss, Sums, Task, TrainError, Unit,
};
use crate::infer::split_accuracy;
use crate::loss::{ClassificationLoss, Objective, StabilityForm, classification_loss, cross_entropy, jensen_shannon};
use crate::model::{SmallCnn, SmallCnnConfig};
use crate::stability::{ConfigError, PerturbSampler, StabilityConfig, Target};

/// Everything that defines a classifier training run; saved as `config.json` in the run folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassifyTrainConfig {
    /// The dataset name (`fashion-mnist`).
    pub dataset: String,
    pub model: SmallCnnConfig,
    /// α, σ, the Lstab form, the objective and the perturbation.
    #[serde(flatten)]
    pub stability: StabilityConfig,
    pub epochs: usize,
    pub batch_size: usize,
    /// AdamW's peak learning rate and weight decay.
    #[serde(flatten)]
    pub optimizer: OptimizerConfig,
    pub seed: u64,
    /// Train on the first N training images only (for quick runs and sweeps).
    pub train_subset: Option<usize>,
    /// Keep the last N training images out of training as validation images (`eval classify
    /// --on validation`), to choose settings without the test split; `None`: train on all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_images: Option<usize>,
    /// A finished classifier run whose weights this run starts from (fine-tuning, the paper's
    /// protocol); a new optimiser and its own schedule. `None`: a fresh seeded initialisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
}

impl burn::config::Config for ClassifyTrainConfig {}

impl ClassifyTrainConfig {
    /// The defaults for Fashion-MNIST: α = 0 (baseline), σ = 0.04, the paper's Lstab form,
    /// 10 epochs, batch 128, lr 1e-3, weight decay 1e-4, seed 0.
    pub fn new() -> Self {
        Self {
            dataset: "fashion-mnist".into(),
            model: SmallCnnConfig::new(),
            stability: StabilityConfig { form: Some(StabilityForm::Paper), ..StabilityConfig::new(0.04) },
            epochs: 10,
            batch_size: 128,
            optimizer: OptimizerConfig::new(1e-3),
            seed: 0,
            train_subset: None,
            val_images: None,
            init_from: None,
        }
    }

    /// The Lstab form (the paper's unless set).
    pub fn form(&self) -> StabilityForm {
        self.stability.form.unwrap_or_default()
    }

    /// Checks the ranges; the message names the offending setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.dataset != "fashion-mnist" {
            return Err(ConfigError::Data(format!("unknown dataset '{}' (known: fashion-mnist)", self.dataset)));
        }
        self.stability.validate(Target::Classifier, SIDE as u32)?;
        if self.epochs == 0 || self.batch_size == 0 {
            return Err(ConfigError::Zero("epochs and batch size"));
        }
        self.optimizer.validate()
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

/// The final result of a run (`metrics.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainSummary {
    pub config: ClassifyTrainConfig,
    pub history: Vec<EpochStats>,
    pub test_top1: f64,
    /// Wall time of the epochs run by this invocation.
    pub seconds: f64,
    pub parameters: usize,
}

/// The classifier task over a training and a test split.
pub struct ClassifyTask<'a> {
    config: ClassifyTrainConfig,
    train: &'a Split,
    test: &'a Split,
    n_train: usize,
    steps_per_epoch: usize,
    sampler: PerturbSampler,
    /// The visiting order of the epoch the prefetch thread is in.
    order: Mutex<(usize, Vec<usize>)>,
}

/// `Err` unless the run `from` (with config `c`) can start `config`: the same architecture, and,
/// when `config` keeps validation images out, a run that kept at least those out (both are the
/// training split's tail, so the fewer lie within the more).
fn check_init(from: &Path, c: &ClassifyTrainConfig, config: &ClassifyTrainConfig) -> Result<(), TrainError> {
    if let Some(n) = config.val_images
        && c.val_images.unwrap_or(0) < n
    {
        return Err(TrainError::Checkpoint {
            path: from.to_path_buf(),
            message: format!(
                "trained on some of this run's {n} validation images (it kept {} out); --init needs a run that kept them out too",
                c.val_images.unwrap_or(0)
            ),
        });
    }
    if c.model != config.model {
        return Err(TrainError::Checkpoint {
            path: from.to_path_buf(),
            message: format!(
                "has another architecture ({:?}) than this run ({:?}); --init needs the same model",
                c.model, config.model
            ),
        });
    }
    Ok(())
}

impl<'a> ClassifyTask<'a> {
    /// The task; with [`ClassifyTrainConfig::init_from`], the run named is checked here (a
    /// finished classifier of the same architecture), before any run folder is made.
    pub fn new(config: &ClassifyTrainConfig, train: &'a Split, test: &'a Split) -> Result<Self, TrainError> {
        config.validate()?;
        if let Some(from) = &config.init_from {
            check_init(from, &read_run_config(from, "a classifier", "an embedding")?, config)?;
        }
        let usable = match config.val_images {
            Some(n) if n == 0 || n >= train.len() => {
                return Err(ConfigError::Data(format!(
                    "validation images must be ≥ 1 and leave training images: {n} of {}",
                    train.len()
                ))
                .into());
            }
            Some(n) => validation_start(train.len(), n),
            None => train.len(),
        };
        let n_train = config.train_subset.unwrap_or(usable).min(usable);
        Ok(Self {
            config: config.clone(),
            train,
            test,
            n_train,
            steps_per_epoch: n_train.div_ceil(config.batch_size),
            sampler: PerturbSampler::new(&config.stability),
            order: Mutex::new((usize::MAX, Vec::new())),
        })
    }

    /// The training indices of step `b` of epoch `epoch`.
    fn indices(&self, epoch: usize, b: usize) -> Vec<usize> {
        let mut order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        if order.0 != epoch {
            let mut o: Vec<usize> = (0..self.n_train).collect();
            o.shuffle(&mut ChaCha8Rng::seed_from_u64(item_seed(self.config.seed, epoch as u64)));
            *order = (epoch, o);
        }
        let bs = self.config.batch_size;
        order.1[b * bs..((b + 1) * bs).min(self.n_train)].to_vec()
    }
}

impl Task for ClassifyTask<'_> {
    type Model = SmallCnn;
    type Interval = EpochStats;
    type Summary = TrainSummary;

    /// One interval per epoch.
    fn plan(&self) -> Plan<'_, impl RunConfig> {
        let (interval, unit) = (self.steps_per_epoch, Unit::Epoch);
        let (c, total_steps) = (&self.config, interval * self.config.epochs);
        Plan { config: c, total_steps, interval, unit, seed: c.seed, optimizer: c.optimizer.clone() }
    }

    /// A fresh model, or the weights of [`ClassifyTrainConfig::init_from`] (its architecture was
    /// checked in [`ClassifyTask::new`]).
    fn init(&self, device: &Device) -> Result<SmallCnn, TrainError> {
        let Some(from) = &self.config.init_from else { return Ok(self.config.model.init(device)) };
        let (_, model) =
            load_run(from, "a classifier", "an embedding", |c: &ClassifyTrainConfig| c.model.init(device))?;
        Ok(model)
    }

    /// `[rows, 1, 28, 28]` pixels (copy k in rows k·n..) and the `n` labels.
    fn batch(&self, step: usize) -> Result<HostBatch, TrainError> {
        let idx = self.indices(step / self.steps_per_epoch, step % self.steps_per_epoch);
        let mut clean = Vec::with_capacity(idx.len() * SIDE * SIDE);
        for &i in &idx {
            clean.extend(self.train.pixels(i).iter().map(|&v| v as f32 / 255.0));
        }
        let labels = idx.iter().map(|&i| self.train.labels[i] as i64).collect();
        let views = self.config.stability.views();
        let mut x = Vec::with_capacity(clean.len() * (views + 1));
        if self.config.stability.objective != Objective::Augment {
            x.extend_from_slice(&clean);
        }
        let image = |i: usize| {
            Image::new(SIDE as u32, SIDE as u32, Channels::Gray, self.train.pixels(idx[i]).to_vec()).map(Cow::Owned)
        };
        for v in 0..views {
            let seed = PerturbSampler::view_seed(self.config.seed, v, step);
            x.extend(self.sampler.draw(&clean, idx.len(), image, seed)?);
        }
        Ok(HostBatch { pixels: x, labels })
    }

    /// Stats: total, CE, stability (batch means, weighted by the batch size), correct count.
    fn step(&self, model: &SmallCnn, batch: HostBatch, device: &Device) -> StepLoss {
        let HostBatch { pixels: x, labels: y } = batch;
        let n = y.len();
        let rows = x.len() / (SIDE * SIDE);
        let xt = Tensor::<4>::from_data(TensorData::new(x, [rows, 1, SIDE, SIDE]), device);
        let yt = Tensor::<1, Int>::from_data(TensorData::new(y, [n]), device);
        // Copy k is rows k·n..: the clean one first (the perturbed one alone for augment).
        let parts: Vec<Tensor<2>> = (0..rows / n).map(|k| model.forward(xt.clone().narrow(0, k * n, n))).collect();
        let part = |k: usize| parts[k].clone();
        let hits = part(0).detach().argmax(1).reshape([n]).equal(yt.clone()).int().sum().float();
        let (alpha, form) = (self.config.stability.alpha, self.config.form());
        let loss = match self.config.stability.objective {
            Objective::Stability | Objective::Augment => {
                let noisy = (rows > n).then(|| part(1));
                classification_loss(part(0), noisy, yt, alpha, form)
            }
            Objective::Jsd => {
                let ce = cross_entropy(part(0), yt);
                let js = jensen_shannon(part(0), part(1), part(2));
                ClassificationLoss { total: ce.clone() + js.clone().mul_scalar(alpha), ce, stability: Some(js) }
            }
        };
        let stab = loss.stability.clone().unwrap_or_else(|| loss.ce.clone().zeros_like());
        let stats = Tensor::cat(vec![loss.total.clone().detach(), loss.ce.detach(), stab.detach(), hits], 0);
        let w = n as f64;
        StepLoss { loss: loss.total, stats, weights: vec![w, w, w, 1.0], items: n }
    }

    fn progress(&self, s: &Sums, seconds: f64) -> Progress {
        let seen = s.items as f64;
        Progress { loss: s.values[0] / seen, accuracy: s.values[3] / seen, items_per_s: seen / seconds }
    }

    /// The epoch's means, and the test top-1 after it.
    fn interval(&self, end: IntervalEnd<SmallCnn>) -> EpochStats {
        let started = Instant::now();
        let test_top1 = split_accuracy(end.model, self.test, end.device);
        let (v, seen) = (&end.sums.values, end.sums.items as f64);
        EpochStats {
            epoch: end.steps_done / self.steps_per_epoch,
            loss: v[0] / seen,
            ce: v[1] / seen,
            stability: v[2] / seen,
            train_top1: v[3] / seen,
            test_top1,
            lr_end: end.lr,
            seconds: end.train_seconds + started.elapsed().as_secs_f64(),
            img_per_s: seen / end.train_seconds,
        }
    }

    fn summary(&self, history: Vec<EpochStats>, model: &SmallCnn, seconds: f64) -> TrainSummary {
        TrainSummary {
            config: self.config.clone(),
            test_top1: history.last().map(|s| s.test_top1).unwrap_or(f64::NAN),
            history,
            seconds,
            parameters: model.num_params(),
        }
    }
}

/// Loads a trained classifier run folder: its config and the final model (on `device`).
pub fn load_classifier(dir: &Path, device: &Device) -> Result<(ClassifyTrainConfig, SmallCnn), TrainError> {
    load_run(dir, "a classifier", "an embedding", |c: &ClassifyTrainConfig| c.model.init(device))
}

#[cfg(test)]
mod tests {
    use super::super::{Event, run as train};
    use super::*;

    /// The classifier task on `(train, test)` through the loop.
    fn train_classifier(
        config: &ClassifyTrainConfig,
        (train_split, test): (&Split, &Split),
        device: &Device,
        out: &Path,
        resume: bool,
        on: &mut dyn FnMut(Event<EpochStats>),
    ) -> Result<TrainSummary, TrainError> {
        train(&ClassifyTask::new(config, train_split, test)?, device, out, resume, on)
    }

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
        let base = ClassifyTrainConfig::new();
        ClassifyTrainConfig {
            model: SmallCnnConfig::new().with_width(4).with_features(16),
            stability: StabilityConfig { alpha, sigma: 0.1, ..base.stability.clone() },
            epochs: 2,
            batch_size: 32,
            optimizer: OptimizerConfig::new(3e-3),
            seed: 7,
            ..base
        }
    }

    fn run(
        config: &ClassifyTrainConfig,
        out: &Path,
        resume: bool,
        on: &mut dyn FnMut(Event<EpochStats>),
    ) -> TrainSummary {
        let device = Device::flex();
        train_classifier(config, (&fixture(160, 0), &fixture(50, 3)), &device, out, resume, on).unwrap()
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
        assert_eq!(a.history.iter().map(|h| h.epoch).collect::<Vec<_>>(), [1, 2]);
        // Interrupt after the first epoch's checkpoint, then resume: the same final numbers.
        let c_dir = dir.path().join("c");
        let interrupted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(&config, &c_dir, false, &mut |e| {
                if let Event::Checkpoint(s) = e {
                    assert!(s.epoch < 1, "simulated crash after epoch {}", s.epoch);
                }
            })
        }));
        assert!(interrupted.is_err());
        assert!(!c_dir.join("model.bpk").exists());
        assert!(c_dir.join("checkpoint/epoch-001.model.bpk").is_file());
        // Without --resume an existing run is refused; with other settings too.
        let refused =
            train_classifier(&config, (&fixture(160, 0), &fixture(50, 3)), &Device::flex(), &c_dir, false, &mut |_| {});
        assert!(refused.unwrap_err().to_string().contains("1 epochs done); pass --resume"));
        let other = ClassifyTrainConfig { seed: 8, ..config.clone() };
        let refused =
            train_classifier(&other, (&fixture(160, 0), &fixture(50, 3)), &Device::flex(), &c_dir, true, &mut |_| {});
        assert!(refused.unwrap_err().to_string().contains("different settings"));
        let mut resumed_at = None;
        let c = run(&config, &c_dir, true, &mut |e| {
            if let Event::Start { start_step, resumed, .. } = e {
                resumed_at = Some((start_step, resumed));
            }
        });
        assert_eq!(resumed_at, Some((5, 1)), "160 images in batches of 32: epoch 2 starts at step 5");
        assert_eq!(c.history.len(), 2);
        assert_eq!(c.history[1].loss, a.history[1].loss);
        assert_eq!(c.test_top1, a.test_top1);
        // The rotation kept only the newest checkpoint.
        assert!(!c_dir.join("checkpoint/epoch-001.model.bpk").exists());
        assert!(c_dir.join("checkpoint/epoch-002.model.bpk").is_file());
        let (loaded_cfg, model) = load_classifier(&c_dir, &Device::flex()).unwrap();
        assert_eq!(loaded_cfg, config);
        assert_eq!(split_accuracy(&model, &fixture(50, 3), &Device::flex()), c.test_top1);
    }

    /// `init_from` starts from a finished run's weights (the fine-tune's first epoch begins where
    /// the run ended, not at chance); another architecture or a missing run is a clear error.
    #[test]
    fn a_fine_tune_starts_from_the_run_it_names() {
        let _guard = crate::test_rng_lock();
        let dir = tempfile::tempdir().unwrap();
        let base_dir = dir.path().join("base");
        let base = run(&ClassifyTrainConfig { epochs: 12, ..tiny(0.0) }, &base_dir, false, &mut |_| {});
        assert!(base.test_top1 >= 0.9, "{}", base.test_top1);
        let device = Device::flex();
        let (train_split, test) = (fixture(160, 0), fixture(50, 3));
        // The task's initial model is the run's final one: the same test accuracy before any step.
        let tune = ClassifyTrainConfig { epochs: 1, init_from: Some(base_dir.clone()), ..tiny(0.5) };
        let task = ClassifyTask::new(&tune, &train_split, &test).unwrap();
        let start = task.init(&device).unwrap();
        assert_eq!(split_accuracy(&start, &test, &device), base.test_top1);
        let fresh = ClassifyTask::new(&tiny(0.5), &train_split, &test).unwrap().init(&device).unwrap();
        assert!(split_accuracy(&fresh, &test, &device) < 0.5);
        // One epoch of the fine-tune keeps what the run learned.
        let t = run(&tune, &dir.path().join("tune"), false, &mut |_| {});
        assert!(t.history[0].train_top1 >= 0.8, "{:?}", t.history);
        assert_eq!(load_classifier(&dir.path().join("tune"), &device).unwrap().0.init_from, Some(base_dir.clone()));
        // Another width, or no run there: one-line errors naming the folder.
        let wide = ClassifyTrainConfig { model: SmallCnnConfig::new().with_width(8).with_features(16), ..tune.clone() };
        let err = ClassifyTask::new(&wide, &train_split, &test).err().unwrap().to_string();
        assert!(err.contains("another architecture") && err.contains("base"), "{err}");
        let gone = ClassifyTrainConfig { init_from: Some(dir.path().join("nope")), ..tune };
        let err = ClassifyTask::new(&gone, &train_split, &test).err().unwrap().to_string();
        assert!(err.contains("nope") && err.contains("not a classifier run folder"), "{err}");
    }

    /// Validation images never train: the visiting order stops before them, a fine-tune that
    /// keeps them out refuses a run that trained on them, and a share that leaves nothing to
    /// train on is refused.
    #[test]
    fn validation_images_stay_out_of_training() {
        let _guard = crate::test_rng_lock();
        let (train_split, test) = (fixture(160, 0), fixture(50, 3));
        let cfg = ClassifyTrainConfig { val_images: Some(40), ..tiny(0.0) };
        let task = ClassifyTask::new(&cfg, &train_split, &test).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for epoch in 0..2 {
            for b in 0..task.steps_per_epoch {
                seen.extend(task.indices(epoch, b));
            }
        }
        assert_eq!(seen, (0..120).collect(), "every image before the last 40, and none of those");
        for n in [0, 160, 500] {
            let err = ClassifyTask::new(&ClassifyTrainConfig { val_images: Some(n), ..tiny(0.0) }, &train_split, &test)
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains("validation images") && !err.contains('\n'), "{err}");
        }
        // A subset counts within the images left.
        let sub = ClassifyTrainConfig { train_subset: Some(500), ..cfg.clone() };
        assert_eq!(ClassifyTask::new(&sub, &train_split, &test).unwrap().n_train, 120);
        // Fine-tunes: a base that trained on every image cannot start a run that keeps 40 out.
        let dir = tempfile::tempdir().unwrap();
        run(&ClassifyTrainConfig { epochs: 1, ..tiny(0.0) }, &dir.path().join("all"), false, &mut |_| {});
        run(&ClassifyTrainConfig { epochs: 1, ..cfg.clone() }, &dir.path().join("kept"), false, &mut |_| {});
        let tune = |base: &str| ClassifyTrainConfig { init_from: Some(dir.path().join(base)), ..cfg.clone() };
        let err = ClassifyTask::new(&tune("all"), &train_split, &test).err().unwrap().to_string();
        assert!(err.contains("validation images") && err.contains("all"), "{err}");
        ClassifyTask::new(&tune("kept"), &train_split, &test).unwrap();
        assert_eq!(load_classifier(&dir.path().join("kept"), &Device::flex()).unwrap().0.val_images, Some(40));
    }

    #[test]
    fn baseline_trains_to_separate_the_fixture_and_bad_settings_are_refused() {
        let _guard = crate::test_rng_lock();
        let dir = tempfile::tempdir().unwrap();
        let config = ClassifyTrainConfig { epochs: 20, ..tiny(0.0) };
        let s = run(&config, dir.path(), false, &mut |_| {});
        assert_eq!(s.history[0].stability, 0.0);
        assert!(s.test_top1 >= 0.9, "test top-1 {}", s.test_top1);
        let with = |f: &dyn Fn(&mut ClassifyTrainConfig)| {
            let mut c = tiny(0.0);
            f(&mut c);
            c
        };
        for bad in [
            with(&|c| c.stability.alpha = -1.0),
            with(&|c| c.stability.sigma = 2.0),
            with(&|c| (c.stability.alpha, c.stability.sigma) = (0.1, 0.0)),
            with(&|c| c.epochs = 0),
            with(&|c| c.optimizer.lr = 0.0),
            with(&|c| c.dataset = "cifar".into()),
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_diverging_run_stops_with_a_clear_error_and_no_final_model() {
        let _guard = crate::test_rng_lock();
        let dir = tempfile::tempdir().unwrap();
        // An absurd learning rate makes the weights explode until the loss is not finite.
        let bad = ClassifyTrainConfig { epochs: 6, optimizer: OptimizerConfig::new(1e12), ..tiny(0.0) };
        let err = train_classifier(
            &bad,
            (&fixture(160, 0), &fixture(50, 3)),
            &Device::flex(),
            dir.path(),
            false,
            &mut |_| {},
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("the loss became") && !msg.contains('\n'), "{msg}");
        let TrainError::NonFinite { epoch, last_good, .. } = err else { panic!("{msg}") };
        // The error names the last good checkpoint, which is on disk (none in the first epoch).
        match last_good {
            Some(p) => assert!(epoch > Some(0) && p.is_file(), "{}", p.display()),
            None => assert_eq!(epoch, Some(0)),
        }
        assert!(!dir.path().join("model.bpk").exists(), "no final model from a diverged run");
    }

    #[test]
    fn config_json_is_flat_and_old_configs_load() {
        // A config.json written before the stability and optimiser settings were grouped.
        let old = r#"{"dataset":"fashion-mnist","model":{"in_channels":1,"input_size":28,"num_classes":10,
            "width":16,"features":128,"pixel_mean":0.286,"pixel_std":0.353},"alpha":2.0,"sigma":0.2,
            "form":"kl","epochs":10,"batch_size":128,"lr":0.001,"weight_decay":0.0001,"seed":0,
            "train_subset":null}"#;
        let c: ClassifyTrainConfig = serde_json::from_str(old).unwrap();
        assert_eq!((c.stability.alpha, c.form(), c.optimizer.lr), (2.0, StabilityForm::Kl, 1e-3));
        assert_eq!(c.stability.objective, Objective::Stability);
        let v = serde_json::to_value(&c).unwrap();
        for key in ["alpha", "sigma", "form", "objective", "lr", "weight_decay", "epochs"] {
            assert!(v.get(key).is_some(), "{key} missing from {v}");
        }
        assert_eq!(serde_json::from_value::<ClassifyTrainConfig>(v).unwrap(), c);
    }
}
