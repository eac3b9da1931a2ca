//! The ImageNet classifier stabilized without labels (`train classify --dataset photos`): the
//! pretrained MobileNetV2 fine-tuned on crops of the training photos with
//!
//! `L = KL(P_t(·|x) ‖ P(·|x)) + α · Lstab(P(·|x), P(·|x'))` ([`distillation_loss`]),
//!
//! `t` the frozen original network (the labels nobody has are replaced by its predictions on the
//! clean crop), `x'` a perturbed copy (`--perturb`: noise and the real edits), both copies through
//! the same weights with gradients through both branches, as in the paper.
//!
//! Step `s` draws its `B` crops (square, side `U[crop_scale] · short`, anywhere in a training
//! photo) and their perturbation from streams keyed by `(seed, s)`, so a resumed run sees what an
//! uninterrupted one would. The held-out photos (`data::crops::split`) and the labelled ImageNet
//! photos ([`imagenet_label`]) never enter training. Batches are `[2B, 3, S, S]` on [0,1]: the
//! clean crops, then their copies (the copies are absent for α = 0). The stem and the first
//! `frozen_blocks` blocks are frozen; their output on the clean crops is computed once for the
//! student and the teacher.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use stabilize_core::data::crops::{Crop, Photo, Split, TWIN_BITS, imagenet_label, split};
use stabilize_core::seeds::{CLASSIFY_CROP_STREAM, item_seed};
use stabilize_core::{Image, Perturbation};

use super::embed::{Init, is_zero_usize, validate_split};
use super::{
    HostBatch, IntervalEnd, OptimizerConfig, Plan, Progress, RunConfig, StepLoss, Sums, Task, TrainError, Unit,
};
use crate::loss::{Objective, StabTarget, StabilityForm, distillation_loss};
use crate::mobilenet::{BLOCKS, MobileNetV2, MobileNetV2Config};
use crate::stability::{ConfigError, PerturbSampler, StabilityConfig, Target};
use crate::tensor::planar_pixels;

/// The `dataset` of such a run: what tells it from a Fashion-MNIST classifier's.
pub const DATASET: &str = "photos";

/// The most perturbed copies the original network's consensus may average over.
pub const MAX_TEACHER_VIEWS: usize = 16;

/// The default `x'`: the paper's noise and the real edits near-duplicates and re-uploads meet.
pub const DEFAULT_PERTURB: &str = "jpeg:10-90,thumb:25-75,crop:0-16,noise:0-0.1,trim:5-25,pad:10-30,rotate:0-5,hflip,text:8-15,gray,blur:0.5-2,contrast:0.5-1.5";

/// Everything that defines such a run; saved as `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImagenetTrainConfig {
    /// Always [`DATASET`].
    pub dataset: String,
    /// The network to stabilize (and the teacher): torchvision's ImageNet weights; `random` only
    /// for tests.
    pub init: Init,
    /// Side of the square training crops (px).
    pub input_size: usize,
    /// Inverted-residual blocks (of 17) frozen after the stem, which is always frozen.
    pub frozen_blocks: usize,
    /// Keep the classifier (linear 1280→1000) frozen, so that AdamW cannot move the weights of
    /// classes the training crops never rank high (tried 2026-12-04: the clean agreement with the
    /// original did not improve; the drift is in the trunk).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub freeze_classifier: bool,
    /// Train only this many blocks after the frozen ones; the blocks above them, the last conv
    /// and the classifier stay the original's, so the trained blocks can only change what the
    /// rest of the network is given (tried 2026-12-04: the low-level blocks, against noise and
    /// compression). `None`: every block after the frozen ones trains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_blocks: Option<usize>,
    /// Side of a training crop as a share of the photo's short side, drawn uniformly in `[lo, hi)`.
    pub crop_scale: (f64, f64),
    /// α, the Lstab form (`kl` or `paper`) and `x'`; the objective is always stability.
    #[serde(flatten)]
    pub stability: StabilityConfig,
    /// What `x'`'s prediction is pulled towards: the model's own clean prediction (the paper) or
    /// the original network's.
    #[serde(default, skip_serializing_if = "StabTarget::is_student")]
    pub stab_target: StabTarget,
    /// The original network's prediction is its softmax averaged over the clean crop and this many
    /// perturbed copies of it (drawn like `x'`, independently): its consensus, which is what both
    /// terms then pull towards (0: the clean crop alone).
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub teacher_views: usize,
    pub steps: usize,
    /// Crops per step.
    pub batch_size: usize,
    #[serde(flatten)]
    pub optimizer: OptimizerConfig,
    pub seed: u64,
    /// Share of photos held out (the embedding runs' split rule).
    pub test_fraction: f64,
    /// Twins in the split, as for the embedding runs ([`EmbedTrainConfig::twin_bits`]); absent in
    /// runs made before 2026-12-04, which kept every photo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twin_bits: Option<u32>,
    pub checkpoint_every: usize,
}

impl burn::config::Config for ImagenetTrainConfig {}

impl ImagenetTrainConfig {
    /// The README's stabilized classifier: α 1 with KL, `x'` from [`DEFAULT_PERTURB`], 224 px
    /// crops of 0.3–1 of the short side, 8 blocks frozen, 600 steps of 16 crops, lr 2e-5.
    pub fn new() -> Self {
        let mut stability = StabilityConfig::new(0.1);
        stability.alpha = 1.0;
        stability.form = Some(StabilityForm::Kl);
        stability.perturb = Some(default_perturb());
        Self {
            dataset: DATASET.into(),
            init: Init::MobilenetV2,
            input_size: 224,
            frozen_blocks: 8,
            freeze_classifier: false,
            train_blocks: None,
            crop_scale: (0.3, 1.0),
            stability,
            stab_target: StabTarget::Student,
            teacher_views: 0,
            steps: 600,
            batch_size: 16,
            optimizer: OptimizerConfig::new(2e-5),
            seed: 0,
            test_fraction: 0.25,
            twin_bits: Some(TWIN_BITS),
            checkpoint_every: 50,
        }
    }

    /// Lstab's form (KL unless set).
    pub fn form(&self) -> StabilityForm {
        self.stability.form.unwrap_or(StabilityForm::Kl)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.dataset != DATASET {
            return Err(ConfigError::Data(format!(
                "an ImageNet stabilization run trains on {DATASET}, not {}",
                self.dataset
            )));
        }
        if self.frozen_blocks > BLOCKS {
            return Err(ConfigError::Model(format!("frozen blocks must be ≤ {BLOCKS}, got {}", self.frozen_blocks)));
        }
        if !(32..=1024).contains(&self.input_size) {
            return Err(ConfigError::Model(format!("input size must be in 32..=1024 px, got {}", self.input_size)));
        }
        if let Some(n) = self.train_blocks
            && (n == 0 || self.frozen_blocks + n > BLOCKS)
        {
            return Err(ConfigError::Model(format!(
                "train blocks must be ≥ 1 and leave frozen blocks + train blocks ≤ {BLOCKS}, got {} + {n}",
                self.frozen_blocks
            )));
        }
        let (lo, hi) = self.crop_scale;
        if !(lo > 0.0 && lo < hi && hi <= 1.0) {
            return Err(ConfigError::OutOfRange { setting: "crop scale", rule: "0 < lo < hi ≤ 1", value: lo });
        }
        self.stability.validate(Target::Classifier, self.input_size as u32)?;
        if self.stability.objective != Objective::Stability {
            return Err(ConfigError::Objective(format!(
                "stabilizing the ImageNet network trains with the stability objective, not {}",
                self.stability.objective
            )));
        }
        if self.teacher_views > MAX_TEACHER_VIEWS {
            return Err(ConfigError::Model(format!(
                "teacher views must be ≤ {MAX_TEACHER_VIEWS}, got {}",
                self.teacher_views
            )));
        }
        if self.steps == 0 || self.batch_size == 0 || self.checkpoint_every == 0 {
            return Err(ConfigError::Zero("steps, batch size and checkpoint interval"));
        }
        self.optimizer.validate()?;
        validate_split(self.test_fraction, self.twin_bits)
    }
}

impl Default for ImagenetTrainConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Means over one checkpoint interval.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImagenetIntervalStats {
    /// Steps done at the end of the interval.
    pub step: usize,
    pub loss: f64,
    /// The distillation term KL(t ‖ s) on the clean crops (nats).
    pub distil: f64,
    /// Lstab before α (nats); 0 for α = 0.
    pub stability: f64,
    /// Share of the interval's clean crops on which the student's top-1 is the teacher's (its
    /// consensus over the teacher views when there are any).
    pub teacher_agreement: f64,
    /// Share of the interval's crops whose top-1 changes from `x` to `x'` (0 for α = 0).
    pub flip_rate: f64,
    pub seconds: f64,
    /// Crops per second.
    pub crops_per_s: f64,
}

/// The result of a run (`metrics.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImagenetSummary {
    pub config: ImagenetTrainConfig,
    pub history: Vec<ImagenetIntervalStats>,
    pub train_photos: usize,
    pub test_photos: usize,
    /// Labelled ImageNet photos of the training split kept out of training.
    pub labelled_kept_out: usize,
    /// Photos left out as twins of a kept one (`name (twin of NAME, N bits)`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub twins: Vec<String>,
    /// Wall time of the steps run by this invocation.
    pub seconds: f64,
}

/// The training photos of a run: the split's training side without the labelled ImageNet photos.
/// Returns (training indices, held-out count, labelled photos kept out).
pub fn training_photos(photos: &[Photo], split: &Split) -> (Vec<usize>, usize, usize) {
    let (labelled, train): (Vec<usize>, Vec<usize>) =
        split.train.iter().partition(|&&i| imagenet_label(&photos[i].name).is_some());
    (train, split.test.len(), labelled.len())
}

/// The crops of step `step` (deterministic in seed and step): `(photo index, crop)`.
pub fn step_crops(
    photos: &[Photo],
    pool: &[usize],
    scale: (f64, f64),
    seed: u64,
    step: usize,
    batch: usize,
) -> Vec<(usize, Crop)> {
    let mut rng = ChaCha8Rng::seed_from_u64(item_seed(seed ^ CLASSIFY_CROP_STREAM, step as u64));
    (0..batch)
        .map(|_| {
            let p = pool[rng.random_range(0..pool.len())];
            (p, photos[p].random_crop_in(scale, &mut rng))
        })
        .collect()
}

/// The task over a photo pool (the whole usable pool; the split is the config's).
pub struct ImagenetTask<'a> {
    config: ImagenetTrainConfig,
    photos: &'a [Photo],
    weights: PathBuf,
    train_pool: Vec<usize>,
    test_photos: usize,
    labelled_kept_out: usize,
    twins: Vec<String>,
    sampler: PerturbSampler,
    /// The frozen original network, set by `init`.
    teacher: std::sync::OnceLock<MobileNetV2>,
}

impl<'a> ImagenetTask<'a> {
    /// `weights`: torchvision's MobileNetV2 file (unused with [`Init::Random`]).
    pub fn new(config: &ImagenetTrainConfig, photos: &'a [Photo], weights: &Path) -> Result<Self, TrainError> {
        config.validate()?;
        let split = split(photos, config.test_fraction, config.twin_bits);
        let twins = split.describe_twins(photos);
        let (train_pool, test_photos, labelled_kept_out) = training_photos(photos, &split);
        if train_pool.len() < 2 || test_photos < 1 {
            return Err(ConfigError::Data(format!(
                "need ≥ 2 usable training photos and ≥ 1 held out, have {} / {test_photos}",
                train_pool.len()
            ))
            .into());
        }
        Ok(Self {
            config: config.clone(),
            photos,
            weights: weights.to_path_buf(),
            train_pool,
            test_photos,
            labelled_kept_out,
            twins,
            sampler: PerturbSampler::new(&config.stability),
            teacher: std::sync::OnceLock::new(),
        })
    }

    fn stabilized(&self) -> bool {
        self.config.stability.views() > 0
    }
}

impl Task for ImagenetTask<'_> {
    type Model = MobileNetV2;
    type Interval = ImagenetIntervalStats;
    type Summary = ImagenetSummary;

    fn plan(&self) -> Plan<'_, impl RunConfig> {
        let c = &self.config;
        Plan {
            config: c,
            total_steps: c.steps,
            interval: c.checkpoint_every,
            unit: Unit::Step,
            seed: c.seed,
            optimizer: c.optimizer.clone(),
        }
    }

    /// The network to stabilize, and a frozen copy of it as the teacher.
    fn init(&self, device: &Device) -> Result<MobileNetV2, TrainError> {
        let m = match self.config.init {
            Init::Random => MobileNetV2Config::new().init(device),
            Init::MobilenetV2 => {
                MobileNetV2::load_torchvision(&self.weights, device).map_err(|e| TrainError::file(&self.weights, e))?
            }
        };
        // Random weights are lazy and a clone shares their pending initialisation (freezing the
        // copy would freeze the student): draw them first. A resumed run calls init again: the
        // teacher is the same weights (the device RNG is seeded with the run's seed before init).
        crate::model::materialize(&m);
        let _ = self.teacher.set(m.clone().freeze());
        Ok(m)
    }

    fn prepare(&self, model: MobileNetV2) -> MobileNetV2 {
        let mut model = model.freeze_first(self.config.frozen_blocks);
        if self.config.freeze_classifier {
            model.classifier = model.classifier.freeze();
        }
        if let Some(n) = self.config.train_blocks {
            model = model.freeze_from(self.config.frozen_blocks + n);
        }
        model
    }

    /// `[(1 + [α > 0] + V)·B, 3, S, S]`: the clean crops, then (α > 0) their perturbed copies, then
    /// the `V` = `teacher_views` copies the original's consensus is taken over; no labels.
    fn batch(&self, step: usize) -> Result<HostBatch, TrainError> {
        let c = &self.config;
        let size = c.input_size as u32;
        let crops = step_crops(self.photos, &self.train_pool, c.crop_scale, c.seed, step, c.batch_size);
        let images: Vec<Image> = crops
            .par_iter()
            .map(|&(p, crop)| self.photos[p].render(crop, size))
            .collect::<stabilize_core::Result<_>>()?;
        let mut x = planar_pixels(&images.iter().collect::<Vec<_>>());
        let clean = x.len();
        // View 0 is `x'` (α > 0 only); views 1..=V are the teacher's.
        for v in usize::from(!self.stabilized())..=c.teacher_views {
            let seed = PerturbSampler::view_seed(c.seed, v, step);
            let copies = self.sampler.draw(&x[..clean], images.len(), |i| Ok(Cow::Borrowed(&images[i])), seed)?;
            x.extend(copies);
        }
        Ok(HostBatch { pixels: x, labels: Vec::new() })
    }

    /// Stats: total, distillation, stability (batch means), teacher-agreeing and flipped crops
    /// (counts).
    fn step(&self, model: &MobileNetV2, batch: HostBatch, device: &Device) -> StepLoss {
        let (b, size, k) = (self.config.batch_size, self.config.input_size, self.config.frozen_blocks);
        let stabilized = self.stabilized();
        let views = self.config.teacher_views;
        let rows = b * (1 + usize::from(stabilized) + views);
        let x = Tensor::<4>::from_data(TensorData::new(batch.pixels, [rows, 3, size, size]), device);
        let teacher = self.teacher.get().expect("init sets the teacher");
        let h = model.trunk(x.clone().narrow(0, 0, b), k).detach();
        let mut t = teacher.logits_from_trunk(h.clone(), k).detach();
        if views > 0 {
            t = consensus_log_probs(t, teacher.forward(x.clone().narrow(0, rows - views * b, views * b)).detach());
        }
        let clean = model.logits_from_trunk(h, k);
        let noisy = stabilized.then(|| model.forward(x.narrow(0, b, b)));
        let top1 = |l: &Tensor<2>| l.clone().detach().argmax(1).reshape([b]);
        let clean_top1 = top1(&clean);
        let agree = clean_top1.clone().equal(top1(&t)).int().sum().float();
        let flips = match &noisy {
            Some(n) => clean_top1.not_equal(top1(n)).int().sum().float(),
            None => agree.zeros_like(),
        };
        let c = &self.config;
        let loss = distillation_loss(clean, noisy, t, c.stability.alpha, c.form(), c.stab_target);
        let stab = loss.stability.clone().map(|s| s.detach()).unwrap_or_else(|| loss.ce.zeros_like().detach());
        let stats = Tensor::cat(vec![loss.total.clone().detach(), loss.ce.detach(), stab, agree, flips], 0);
        StepLoss { loss: loss.total, stats, weights: vec![1.0; 5], items: b }
    }

    fn progress(&self, s: &Sums, seconds: f64) -> Progress {
        let crops = s.items as f64;
        Progress { loss: s.values[0] / s.steps as f64, accuracy: s.values[3] / crops, items_per_s: crops / seconds }
    }

    fn interval(&self, end: IntervalEnd<MobileNetV2>) -> ImagenetIntervalStats {
        let (v, steps, crops) = (&end.sums.values, end.sums.steps as f64, end.sums.items as f64);
        ImagenetIntervalStats {
            step: end.steps_done,
            loss: v[0] / steps,
            distil: v[1] / steps,
            stability: v[2] / steps,
            teacher_agreement: v[3] / crops,
            flip_rate: v[4] / crops,
            seconds: end.train_seconds,
            crops_per_s: crops / end.train_seconds,
        }
    }

    fn summary(&self, history: Vec<ImagenetIntervalStats>, _model: &MobileNetV2, seconds: f64) -> ImagenetSummary {
        ImagenetSummary {
            config: self.config.clone(),
            history,
            train_photos: self.train_pool.len(),
            test_photos: self.test_photos,
            labelled_kept_out: self.labelled_kept_out,
            twins: self.twins.clone(),
            seconds,
        }
    }
}

/// The log of the softmax averaged over the clean logits `[B, K]` and the logits of `V` copies of
/// each crop `[V·B, K]` (copy `v` of crop `i` at row `v·B + i`), as logits `[B, K]` (their softmax
/// is the average).
pub fn consensus_log_probs(clean: Tensor<2>, copies: Tensor<2>) -> Tensor<2> {
    let [b, k] = clean.dims();
    let v = copies.dims()[0] / b;
    let p = burn::tensor::activation::softmax(clean, 1);
    let q = burn::tensor::activation::softmax(copies, 1).reshape([v, b, k]).sum_dim(0).reshape([b, k]);
    ((p + q) / (1 + v) as f64).clamp_min(1e-30).log()
}

/// Whether `dir` holds an ImageNet stabilization run (its `config.json` names [`DATASET`]).
pub fn is_imagenet_run(dir: &Path) -> bool {
    std::fs::read(dir.join(stabilize_core::run_files::CONFIG))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v.get("dataset").and_then(|d| d.as_str()) == Some(DATASET))
}

/// Loads a finished run folder: its config and the stabilized network (inference mode).
pub fn load_imagenet_run(dir: &Path, device: &Device) -> Result<(ImagenetTrainConfig, MobileNetV2), TrainError> {
    super::load_run(dir, "an ImageNet classifier", "an embedding or Fashion-MNIST", |_: &ImagenetTrainConfig| {
        MobileNetV2Config::new().init(device)
    })
}

/// The default `x'`, parsed (for callers that show or reuse it).
pub fn default_perturb() -> Perturbation {
    DEFAULT_PERTURB.parse().expect("the default perturbation parses")
}

#[cfg(test)]
mod tests {
    use super::super::{Event, run};
    use super::*;

    fn photos() -> Vec<Photo> {
        let mut names: Vec<String> = (0..7).map(|k| format!("p{k}.png")).collect();
        names.push("foolbox__imagenet_00_243.jpg".into());
        crate::test_photos(&names)
    }

    /// A random 32 px network stabilized against the default edits, a checkpoint every step.
    fn tiny() -> ImagenetTrainConfig {
        ImagenetTrainConfig {
            init: Init::Random,
            input_size: 32,
            frozen_blocks: 14,
            steps: 3,
            batch_size: 3,
            optimizer: OptimizerConfig::new(1e-2),
            seed: 5,
            test_fraction: 0.3,
            checkpoint_every: 1,
            ..ImagenetTrainConfig::new()
        }
    }

    #[test]
    fn labelled_photos_and_held_out_photos_never_train() {
        let ph = photos();
        let (train, test, kept_out) = training_photos(&ph, &split(&ph, 0.3, None));
        let labelled = ph.iter().position(|p| imagenet_label(&p.name).is_some()).unwrap();
        assert!(!train.contains(&labelled));
        assert!(train.iter().all(|&i| !stabilize_core::data::crops::is_test(&ph[i].name, 0.3)));
        assert_eq!(train.len() + test + kept_out, ph.len());
        for step in 0..50 {
            let crops = step_crops(&ph, &train, (0.3, 1.0), 5, step, 4);
            assert!(crops.iter().all(|(p, c)| train.contains(p) && c.side >= 0.3 * 170.0 - 1e-9 && c.side <= 170.0));
        }
        assert_eq!(step_crops(&ph, &train, (0.3, 1.0), 5, 7, 4), step_crops(&ph, &train, (0.3, 1.0), 5, 7, 4));
    }

    #[test]
    fn a_run_starts_at_the_teacher_and_resumes_exactly() {
        let _guard = crate::test_rng_lock();
        let dir = tempfile::tempdir().unwrap();
        let ph = photos();
        let cfg = tiny();
        let go = |out: &Path, resume: bool, on: &mut dyn FnMut(Event<ImagenetIntervalStats>)| {
            run(&ImagenetTask::new(&cfg, &ph, Path::new("unused"))?, &Device::flex(), out, resume, on)
        };
        let a = go(&dir.path().join("a"), false, &mut |_| {}).unwrap();
        assert_eq!(a.history.len(), 3);
        // Before the first update the student is the teacher: zero distillation, full agreement.
        assert!(a.history[0].distil.abs() < 1e-6, "{:?}", a.history[0]);
        assert_eq!(a.history[0].teacher_agreement, 1.0);
        // A random network predicts almost uniformly, so the terms stay tiny here (the CLI test
        // trains the real network); they are finite and KLs are not negative beyond rounding.
        assert!(a.history.iter().all(|h| h.loss.is_finite() && h.stability > -1e-6 && h.distil > -1e-6));
        assert_eq!(a.labelled_kept_out + a.train_photos + a.test_photos, ph.len());
        // Interrupted after the second checkpoint, then resumed: the same numbers.
        let c_dir = dir.path().join("c");
        let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            go(&c_dir, false, &mut |e| {
                if let Event::Checkpoint(s) = e {
                    assert!(s.step < 2, "simulated crash");
                }
            })
        }));
        assert!(crashed.is_err());
        let c = go(&c_dir, true, &mut |_| {}).unwrap();
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-5 * x.abs().max(y.abs()).max(1e-6);
        for (u, v) in c.history.iter().zip(&a.history) {
            assert!(close(u.loss, v.loss) && close(u.stability, v.stability), "{:?} vs {:?}", c.history, a.history);
        }
        // The folder loads as this kind of run only.
        assert!(is_imagenet_run(&c_dir));
        let (loaded, _) = load_imagenet_run(&c_dir, &Device::flex()).unwrap();
        assert_eq!(loaded, cfg);
        assert!(super::super::load_classifier(&c_dir, &Device::flex()).is_err());
    }

    /// Clean [0, ln 3] → [¼, ¾] and one copy [ln 3, 0] → [¾, ¼] average to [½, ½]; a second crop
    /// whose copy agrees keeps its own distribution. Copy `v` of crop `i` is row `v·B + i`.
    #[test]
    fn the_consensus_averages_the_originals_softmax_over_the_copies() {
        let device = Device::flex();
        let ln3 = 3f32.ln();
        let clean = Tensor::<2>::from_data(TensorData::from([[0.0f32, ln3], [0.0, 0.0]]), &device);
        let copies = Tensor::<2>::from_data(TensorData::from([[ln3, 0.0f32], [0.0, 0.0]]), &device);
        let p = burn::tensor::activation::softmax(consensus_log_probs(clean.clone(), copies), 1);
        let tol = burn::tensor::Tolerance::absolute(1e-6);
        p.to_data().assert_approx_eq::<f32>(&TensorData::from([[0.5f32, 0.5], [0.5, 0.5]]), tol);
        // Two copies of each crop: (¼ + ¾ + ¾)/3 = 7/12 for class 0 of crop 0.
        let two =
            Tensor::<2>::from_data(TensorData::from([[ln3, 0.0f32], [0.0, 0.0], [ln3, 0.0], [0.0, 0.0]]), &device);
        let p = burn::tensor::activation::softmax(consensus_log_probs(clean, two), 1);
        p.to_data().assert_approx_eq::<f32>(&TensorData::from([[7.0f32 / 12.0, 5.0 / 12.0], [0.5, 0.5]]), tol);
    }

    /// With teacher views the batch appends them after the clean crops and `x'` (which stay as
    /// they were), and a run trains on them.
    #[test]
    fn teacher_views_follow_the_copies_and_train() {
        let _guard = crate::test_rng_lock();
        let ph = photos();
        let plain = tiny();
        let cfg = ImagenetTrainConfig { teacher_views: 2, steps: 1, ..tiny() };
        let a = ImagenetTask::new(&plain, &ph, Path::new("unused")).unwrap().batch(0).unwrap().pixels;
        let b = ImagenetTask::new(&cfg, &ph, Path::new("unused")).unwrap().batch(0).unwrap().pixels;
        let image = 3 * 32 * 32;
        assert_eq!((a.len(), b.len()), (2 * 3 * image, 4 * 3 * image));
        assert_eq!(&b[..a.len()], &a[..]);
        assert_ne!(&b[2 * 3 * image..3 * 3 * image], &b[3 * 3 * image..]);
        let dir = tempfile::tempdir().unwrap();
        let task = ImagenetTask::new(&cfg, &ph, Path::new("unused")).unwrap();
        let s = run(&task, &Device::flex(), dir.path(), false, &mut |_| {}).unwrap();
        assert!(s.history.iter().all(|h| h.loss.is_finite() && h.distil > -1e-6), "{:?}", s.history);
        let (loaded, _) = load_imagenet_run(dir.path(), &Device::flex()).unwrap();
        assert_eq!(loaded.teacher_views, 2);
    }

    /// With `train_blocks`, the blocks above the trained ones, the last conv and the classifier
    /// end the run as the original's, bit for bit, while the trained block moves.
    #[test]
    fn train_blocks_leave_the_layers_above_them_as_the_original() {
        let _guard = crate::test_rng_lock();
        let ph = photos();
        let cfg = ImagenetTrainConfig { train_blocks: Some(1), steps: 2, ..tiny() };
        let dir = tempfile::tempdir().unwrap();
        let task = ImagenetTask::new(&cfg, &ph, Path::new("unused")).unwrap();
        run(&task, &Device::flex(), dir.path(), false, &mut |_| {}).unwrap();
        let (loaded, trained) = load_imagenet_run(dir.path(), &Device::flex()).unwrap();
        assert_eq!(loaded.train_blocks, Some(1));
        let original = task.teacher.get().unwrap();
        let values = |t: Tensor<4>| t.into_data().try_into_vec::<f32>().unwrap();
        let block = |m: &MobileNetV2, i: usize| values(m.blocks[i].project.conv.weight.val());
        // Block 14 (the one after the 14 frozen) trains; 15, 16, the last conv and the classifier do not.
        assert_ne!(block(&trained, 14), block(original, 14));
        for i in [13, 15, 16] {
            assert_eq!(block(&trained, i), block(original, i), "block {i}");
        }
        assert_eq!(values(trained.last.conv.weight.val()), values(original.last.conv.weight.val()));
        let head = |m: &MobileNetV2| m.classifier.weight.val().into_data().try_into_vec::<f32>().unwrap();
        assert_eq!(head(&trained), head(original));
    }

    #[test]
    fn bad_settings_are_refused_in_one_line() {
        let with = |f: &dyn Fn(&mut ImagenetTrainConfig)| {
            let mut c = tiny();
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert!(with(&|c| c.dataset = "fashion-mnist".into()).contains("photos"));
        assert!(with(&|c| c.stability.objective = Objective::Augment).contains("augment"));
        assert!(with(&|c| c.frozen_blocks = 18).contains("frozen blocks"));
        assert!(with(&|c| c.teacher_views = MAX_TEACHER_VIEWS + 1).contains("teacher views"));
        assert!(with(&|c| c.train_blocks = Some(0)).contains("train blocks"));
        assert!(with(&|c| c.train_blocks = Some(4)).contains("train blocks"), "14 frozen + 4 > 17");
        assert!(with(&|c| c.crop_scale = (0.5, 0.4)).contains("crop scale"));
        assert!(with(&|c| c.stability.alpha = -1.0).contains("alpha"));
        assert!(with(&|c| c.stability.perturb = Some("crop:0-40".parse().unwrap())).contains("crop"));
        for e in [with(&|c| c.steps = 0), with(&|c| c.optimizer.lr = f64::NAN)] {
            assert!(!e.contains('\n'), "{e}");
        }
        tiny().validate().unwrap();
        ImagenetTrainConfig::new().validate().unwrap();
        let json = serde_json::to_value(ImagenetTrainConfig::new()).unwrap();
        assert_eq!((json["dataset"].as_str(), json["form"].as_str()), (Some("photos"), Some("kl")));
    }
}
