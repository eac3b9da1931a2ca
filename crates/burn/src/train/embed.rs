//! The embedding task: MobileNetV2 → pool → linear d → L2-normalise, fine-tuned on triplets from
//! the training photos with `triplet hinge + α·Σ‖f(x) − f(x')‖₂` ([`embed_loss`]), a checkpoint
//! every `checkpoint_every` steps.
//!
//! Step `s` draws its triplets and its perturbation from streams keyed by `(seed, s)`
//! ([`stabilize_core::seeds`]), so a resumed run sees exactly the data an uninterrupted one would.
//! The clean triplet images `[3B, 3, S, S]` (queries, then positives, then negatives) and, when
//! α > 0, their perturbed copies `x'` go through the same weights as two forward passes, with
//! gradients through both branches.
//!
//! Two L0s ([`EmbedL0`]): the paper's triplet hinge, or distillation to the frozen pretrained
//! network (the anchored design, [`distil_loss`]), where every clean image of the step is one
//! training crop and `x'` is pulled towards the teacher's features of `x`.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use stabilize_core::Image;
use stabilize_core::data::crops::{Photo, Split, TWIN_BITS, Triplet, render_triplet, sample_triplet, split};
use stabilize_core::seeds::{BANK_STREAM, TRIPLET_STREAM, item_seed};

use super::{
    HostBatch, IntervalEnd, OptimizerConfig, Plan, Progress, RunConfig, StepLoss, Sums, Task, TrainError, Unit,
};
use crate::embed::{EmbedNet, EmbedNetConfig, contrastive_loss, distil_loss, embed_loss, l2_normalize};
use crate::loss::Objective;
use crate::mobilenet::FEATURES;
use crate::stability::{ConfigError, PerturbSampler, StabilityConfig, Target};
use crate::tensor::planar_pixels;

/// Where the backbone's weights come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Init {
    /// torchvision's ImageNet weights (`stabilize fetch mobilenet-v2`).
    #[default]
    MobilenetV2,
    /// Random weights (from scratch; for tests and ablations).
    Random,
}

impl std::fmt::Display for Init {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Init::MobilenetV2 => "mobilenet-v2",
            Init::Random => "random",
        })
    }
}

/// What L0 is, and what the perturbed copy is pulled towards (`--l0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum EmbedL0 {
    /// The paper's triplet hinge over crops of the training photos; `Lstab = Σ ‖f(x) − f(x')‖`.
    #[default]
    Triplet,
    /// Anchored to the frozen pretrained network `t`: `L0 = ‖s(x) − t(x)‖`,
    /// `Lstab = ‖s(x') − t(x)‖`; the projection starts as the identity (dim 1280), so training
    /// starts from the pretrained descriptor.
    Distil,
}

fn is_triplet(l0: &EmbedL0) -> bool {
    *l0 == EmbedL0::Triplet
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

pub(super) fn is_zero_usize(v: &usize) -> bool {
    *v == 0
}

/// The batch-contrastive term's temperature when none is given (SSCD's).
pub const DEFAULT_TAU: f64 = 0.05;

fn default_tau() -> f64 {
    DEFAULT_TAU
}

fn is_default_tau(v: &f64) -> bool {
    *v == DEFAULT_TAU
}

/// Everything that defines an embedding run; saved as `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbedTrainConfig {
    pub init: Init,
    pub model: EmbedNetConfig,
    /// The L0 and the stability target (absent in older runs: the triplet loss).
    #[serde(default, skip_serializing_if = "is_triplet")]
    pub l0: EmbedL0,
    /// α, σ, the objective (`stability`, or `augment`: the triplet loss on `x'` only, α 0; JSD
    /// needs class distributions and has no embedding form) and the perturbation.
    #[serde(flatten)]
    pub stability: StabilityConfig,
    /// Weight β of the batch-contrastive term added to the anchored loss (`--contrast`,
    /// [`contrastive_loss`]): every perturbed copy against the step's other images; 0 (absent in
    /// older runs): off.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub contrast: f64,
    /// Its temperature τ (`--tau`).
    #[serde(default = "default_tau", skip_serializing_if = "is_default_tau")]
    pub tau: f64,
    /// Crops per training photo in a bank of extra negatives for the contrastive term
    /// (`--contrast-bank`): their teacher features, computed once (the teacher is frozen, so they
    /// never go stale); 0: the step's own crops only.
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub contrast_bank: usize,
    /// Triplet margin g on the L2 distance between unit embeddings (distances lie in [0, 2]).
    pub margin: f64,
    pub steps: usize,
    /// Triplets per step.
    pub batch_size: usize,
    /// AdamW's peak learning rate and weight decay.
    #[serde(flatten)]
    pub optimizer: OptimizerConfig,
    pub seed: u64,
    /// Share of photos held out for evaluation (the split rule is in `stabilize_core::data::crops`).
    pub test_fraction: f64,
    /// Photos this many pHash bits apart or closer count as one picture in the split
    /// ([`stabilize_core::data::crops::split`]): a training twin of a held-out photo is left out.
    /// Absent in runs made before 2026-12-04, which kept every photo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twin_bits: Option<u32>,
    /// Share of the training photos kept out of training as validation photos
    /// ([`Split::with_validation`]), on which `eval fusion` fits the fusion rule. Absent in runs
    /// made before 2026-12-04, which trained on every training photo (their fit uses those).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_fraction: Option<f64>,
    pub checkpoint_every: usize,
}

impl burn::config::Config for EmbedTrainConfig {}

impl EmbedTrainConfig {
    /// Defaults: the baseline (α = 0) with the paper's σ = 0.2 for when α is set, margin 1,
    /// 300 steps of 8 triplets, lr 3e-4, weight decay 1e-4, a quarter of the photos held out,
    /// a checkpoint every 50 steps.
    pub fn new() -> Self {
        Self {
            init: Init::MobilenetV2,
            model: EmbedNetConfig::new(),
            l0: EmbedL0::Triplet,
            stability: StabilityConfig::new(0.2),
            contrast: 0.0,
            tau: DEFAULT_TAU,
            contrast_bank: 0,
            margin: 1.0,
            steps: 300,
            batch_size: 8,
            optimizer: OptimizerConfig::new(3e-4),
            seed: 0,
            test_fraction: 0.25,
            twin_bits: Some(TWIN_BITS),
            val_fraction: Some(DEFAULT_VAL_FRACTION),
            checkpoint_every: 50,
        }
    }

    /// The config's split of `photos`, its validation photos taken from the training side.
    pub fn split(&self, photos: &[Photo]) -> Split {
        split(photos, self.test_fraction, self.twin_bits).with_validation(photos, self.val_fraction)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.model.validate().map_err(ConfigError::Model)?;
        self.stability.validate(Target::Embedding, self.model.input_size as u32)?;
        if !(self.margin.is_finite() && self.margin >= 0.0) {
            return Err(ConfigError::OutOfRange { setting: "margin", rule: "≥ 0", value: self.margin });
        }
        if !(self.contrast.is_finite() && self.contrast >= 0.0) {
            return Err(ConfigError::OutOfRange { setting: "contrast", rule: "≥ 0", value: self.contrast });
        }
        if !(self.tau.is_finite() && self.tau > 0.0 && self.tau <= 10.0) {
            return Err(ConfigError::OutOfRange { setting: "tau", rule: "in (0, 10]", value: self.tau });
        }
        if self.contrast > 0.0 && (self.l0 != EmbedL0::Distil || self.stability.alpha == 0.0) {
            return Err(ConfigError::Objective(
                "--contrast compares perturbed copies with the teacher's features: it needs --l0 distil and --alpha > 0"
                    .into(),
            ));
        }
        if self.contrast_bank > 0 && self.contrast == 0.0 {
            return Err(ConfigError::Objective("--contrast-bank is a bank for --contrast: set --contrast > 0".into()));
        }
        if self.contrast_bank > 64 {
            return Err(ConfigError::OutOfRange {
                setting: "contrast bank",
                rule: "≤ 64 crops per photo",
                value: self.contrast_bank as f64,
            });
        }
        if self.steps == 0 || self.batch_size == 0 || self.checkpoint_every == 0 {
            return Err(ConfigError::Zero("steps, batch size and checkpoint interval"));
        }
        self.optimizer.validate()?;
        if self.l0 == EmbedL0::Distil {
            if self.init != Init::MobilenetV2 {
                return Err(ConfigError::Objective(
                    "--l0 distil anchors to the pretrained network: it needs --init mobilenet-v2".into(),
                ));
            }
            if self.model.dim != FEATURES {
                return Err(ConfigError::Objective(format!(
                    "--l0 distil compares with the pretrained {FEATURES}-d features: it needs --dim {FEATURES}, got {}",
                    self.model.dim
                )));
            }
            if self.stability.objective != Objective::Stability {
                return Err(ConfigError::Objective(format!(
                    "--l0 distil trains with the stability objective, not {}",
                    self.stability.objective
                )));
            }
        }
        validate_split(self.test_fraction, self.twin_bits)?;
        if let Some(f) = self.val_fraction.filter(|f| !(*f > 0.0 && *f < 1.0)) {
            return Err(ConfigError::OutOfRange { setting: "validation fraction", rule: "in (0, 1)", value: f });
        }
        Ok(())
    }
}

/// The share of training photos a new run keeps out for validation: 0.2 (by the draw of
/// [`stabilize_core::data::crops::is_validation`]) leaves the pool's 88 training photos at 68
/// trained on and 20 to fit on.
pub const DEFAULT_VAL_FRACTION: f64 = 0.2;

/// Checks a run's split settings: the held-out share in (0, 1), twin bits ≤ 64.
pub(crate) fn validate_split(test_fraction: f64, twin_bits: Option<u32>) -> Result<(), ConfigError> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(ConfigError::OutOfRange { setting: "test fraction", rule: "in (0, 1)", value: test_fraction });
    }
    if let Some(bits) = twin_bits.filter(|&b| b > 64) {
        return Err(ConfigError::OutOfRange { setting: "twin bits", rule: "≤ 64", value: bits as f64 });
    }
    Ok(())
}

impl Default for EmbedTrainConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Means over one checkpoint interval.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IntervalStats {
    /// Steps done at the end of the interval.
    pub step: usize,
    pub loss: f64,
    pub triplet: f64,
    /// Mean stability term (before α); 0 for the baseline.
    pub stability: f64,
    /// Mean batch-contrastive term (before β); 0 without one.
    #[serde(default)]
    pub contrast: f64,
    /// Share of the interval's training triplets already ordered D(q,p) < D(q,n).
    pub train_order_accuracy: f64,
    pub seconds: f64,
    /// Triplets per second.
    pub triplets_per_s: f64,
}

/// The result of a run (`metrics.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmbedSummary {
    pub config: EmbedTrainConfig,
    pub history: Vec<IntervalStats>,
    pub train_photos: usize,
    /// Training-side photos kept out of training ([`EmbedTrainConfig::val_fraction`]).
    #[serde(default)]
    pub val_photos: usize,
    pub test_photos: usize,
    /// Photos left out as twins of a kept one (`name (twin of NAME, N bits)`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub twins: Vec<String>,
    /// Wall time of the steps run by this invocation.
    pub seconds: f64,
    pub trainable_parameters: usize,
}

/// The triplets of step `step` (deterministic in seed and step).
pub fn step_triplets(photos: &[Photo], pool: &[usize], seed: u64, step: usize, batch: usize) -> Vec<Triplet> {
    let mut rng = ChaCha8Rng::seed_from_u64(item_seed(seed ^ TRIPLET_STREAM, step as u64));
    (0..batch).map(|_| sample_triplet(photos, pool, &mut rng)).collect()
}

/// Renders triplets as `[q…, p…, n…]` images (3B of them, queries first).
pub fn render_batch(photos: &[Photo], triplets: &[Triplet], size: u32) -> stabilize_core::Result<Vec<Image>> {
    let rendered: Vec<[Image; 3]> =
        triplets.par_iter().map(|t| render_triplet(photos, t, size)).collect::<stabilize_core::Result<_>>()?;
    let (mut q, mut p, mut n) = (Vec::new(), Vec::new(), Vec::new());
    for [a, b, c] in rendered {
        q.push(a);
        p.push(b);
        n.push(c);
    }
    q.append(&mut p);
    q.append(&mut n);
    Ok(q)
}

/// The embedding task over a photo pool (the whole usable pool; the split is the config's).
pub struct EmbedTask<'a> {
    config: EmbedTrainConfig,
    photos: &'a [Photo],
    weights: PathBuf,
    train_pool: Vec<usize>,
    val_photos: usize,
    test_photos: usize,
    twins: Vec<String>,
    sampler: PerturbSampler,
    /// The frozen pretrained network for [`EmbedL0::Distil`], set by `init`.
    teacher: std::sync::OnceLock<EmbedNet>,
    /// The negative bank (`contrast_bank`): the teacher's unit features `[M, d]` and each crop's
    /// photo, set by `init`.
    bank: std::sync::OnceLock<(Tensor<2>, Vec<i64>)>,
}

impl<'a> EmbedTask<'a> {
    /// `weights`: torchvision's MobileNetV2 file (unused with [`Init::Random`]).
    pub fn new(config: &EmbedTrainConfig, photos: &'a [Photo], weights: &Path) -> Result<Self, TrainError> {
        config.validate()?;
        let split = config.split(photos);
        let twins = split.describe_twins(photos);
        let Split { train: train_pool, val, test: test_pool, .. } = split;
        if train_pool.len() < 2 || test_pool.len() < 2 {
            return Err(ConfigError::Data(format!(
                "need ≥ 2 usable photos in each split, have {} train / {} test",
                train_pool.len(),
                test_pool.len()
            ))
            .into());
        }
        Ok(Self {
            config: config.clone(),
            photos,
            weights: weights.to_path_buf(),
            val_photos: val.len(),
            test_photos: test_pool.len(),
            twins,
            train_pool,
            sampler: PerturbSampler::new(&config.stability),
            teacher: std::sync::OnceLock::new(),
            bank: std::sync::OnceLock::new(),
        })
    }

    /// `contrast_bank` crops of every training photo (seeded by the run's seed and the photo) and
    /// the teacher's unit features of them, 64 crops at a time.
    fn negative_bank(&self, teacher: &EmbedNet, device: &Device) -> Result<(Tensor<2>, Vec<i64>), TrainError> {
        let (k, size) = (self.config.contrast_bank, self.config.model.input_size as u32);
        let crops: Vec<(usize, stabilize_core::data::crops::Crop)> = self
            .train_pool
            .iter()
            .flat_map(|&p| {
                let mut rng = ChaCha8Rng::seed_from_u64(item_seed(self.config.seed ^ BANK_STREAM, p as u64));
                (0..k).map(move |_| (p, self.photos[p].random_crop(&mut rng))).collect::<Vec<_>>()
            })
            .collect();
        let images: Vec<Image> =
            crops.par_iter().map(|&(p, c)| self.photos[p].render(c, size)).collect::<stabilize_core::Result<_>>()?;
        let mut features = Vec::new();
        for chunk in images.chunks(64) {
            let x = planar_pixels(&chunk.iter().collect::<Vec<_>>());
            let x = Tensor::<4>::from_data(TensorData::new(x, [chunk.len(), 3, size as usize, size as usize]), device);
            features.push(teacher.forward(x).detach());
        }
        Ok((Tensor::cat(features, 0), crops.iter().map(|&(p, _)| p as i64).collect()))
    }

    /// Whether the step has perturbed copies beside the clean images (stability with α > 0).
    fn stabilized(&self) -> bool {
        self.config.stability.views() > 0 && self.config.stability.objective != Objective::Augment
    }
}

impl Task for EmbedTask<'_> {
    type Model = EmbedNet;
    type Interval = IntervalStats;
    type Summary = EmbedSummary;

    /// A checkpoint every `checkpoint_every` steps.
    fn plan(&self) -> Plan<'_, impl RunConfig> {
        let c = &self.config;
        let optimizer = c.optimizer.clone();
        Plan {
            config: c,
            total_steps: c.steps,
            interval: c.checkpoint_every,
            unit: Unit::Step,
            seed: c.seed,
            optimizer,
        }
    }

    /// With [`EmbedL0::Distil`] also keeps a frozen copy of the pretrained network as the
    /// teacher, and starts the projection as the identity.
    fn init(&self, device: &Device) -> Result<EmbedNet, TrainError> {
        match self.config.init {
            Init::Random => Ok(self.config.model.init(device)),
            Init::MobilenetV2 => {
                let m = self
                    .config
                    .model
                    .init_pretrained(&self.weights, device)
                    .map_err(|e| TrainError::file(&self.weights, e))?;
                if self.config.l0 != EmbedL0::Distil {
                    return Ok(m);
                }
                let m = m.with_identity_projection().map_err(|e| TrainError::Config(ConfigError::Model(e)))?;
                // A resumed run calls init again: the teacher is the same weights.
                let teacher = m.clone().freeze();
                if self.config.contrast_bank > 0 && self.bank.get().is_none() {
                    let _ = self.bank.set(self.negative_bank(&teacher, device)?);
                }
                let _ = self.teacher.set(teacher);
                Ok(m)
            }
        }
    }

    fn prepare(&self, model: EmbedNet) -> EmbedNet {
        model.freeze_trunk()
    }

    /// `[rows, 3, S, S]` pixels: the clean `3B` images and, when stabilized, their `3B` copies
    /// (the copies alone for augment); no labels.
    fn batch(&self, step: usize) -> Result<HostBatch, TrainError> {
        let c = &self.config;
        let triplets = step_triplets(self.photos, &self.train_pool, c.seed, step, c.batch_size);
        let images = render_batch(self.photos, &triplets, c.model.input_size as u32)?;
        let clean = planar_pixels(&images.iter().collect::<Vec<_>>());
        let mut x = if c.stability.objective == Objective::Augment { Vec::new() } else { clean.clone() };
        if c.stability.views() > 0 {
            let seed = PerturbSampler::view_seed(c.seed, 0, step);
            x.extend(self.sampler.draw(&clean, images.len(), |i| Ok(Cow::Borrowed(&images[i])), seed)?);
        }
        // The photo of each clean row (queries and positives: the triplet's photo; negatives: the
        // other), for the contrastive term's mask.
        let photo = |f: fn(&Triplet) -> usize| triplets.iter().map(move |t| f(t) as i64);
        let labels = photo(|t| t.photo).chain(photo(|t| t.photo)).chain(photo(|t| t.other)).collect();
        Ok(HostBatch { pixels: x, labels })
    }

    /// Stats: total, triplet, stability (means over the step's triplets), ordered count; summed
    /// per step.
    fn step(&self, model: &EmbedNet, batch: HostBatch, device: &Device) -> StepLoss {
        let (b, size) = (self.config.batch_size, self.config.model.input_size);
        let stabilized = self.stabilized();
        let rows = if stabilized { 6 * b } else { 3 * b };
        let xt = Tensor::<4>::from_data(TensorData::new(batch.pixels, [rows, 3, size, size]), device);
        let (clean, noisy, teacher) = match self.teacher.get() {
            // Distillation: the frozen trunk once for student and teacher on the clean images.
            Some(t) => {
                let k = model.frozen_blocks();
                let h = model.backbone.trunk(xt.clone().narrow(0, 0, 3 * b), k).detach();
                let teacher = l2_normalize(t.backbone.rest_pooled(h.clone(), k)).detach();
                let noisy = stabilized.then(|| model.forward(xt.narrow(0, 3 * b, 3 * b)));
                (model.forward_from_trunk(h), noisy, Some(teacher))
            }
            None => {
                let clean = model.forward(xt.clone().narrow(0, 0, 3 * b));
                (clean, stabilized.then(|| model.forward(xt.narrow(0, 3 * b, 3 * b))), None)
            }
        };
        // Triplets whose positive is nearer the query than the negative, counted on the device.
        let c = clean.clone().detach();
        let (q, pos, neg) = (c.clone().narrow(0, 0, b), c.clone().narrow(0, b, b), c.narrow(0, 2 * b, b));
        let d_pos = (q.clone() - pos).powi_scalar(2).sum_dim(1);
        let d_neg = (q - neg).powi_scalar(2).sum_dim(1);
        let ordered = d_pos.lower(d_neg).int().sum().float();
        let alpha = self.config.stability.alpha;
        let (beta, tau) = (self.config.contrast, self.config.tau);
        let contrast = match (&teacher, &noisy) {
            (Some(t), Some(x)) if beta > 0.0 => Some(match self.bank.get() {
                Some((bank, photos)) => {
                    let keys = Tensor::cat(vec![t.clone(), bank.clone()], 0);
                    let key_photos: Vec<i64> = batch.labels.iter().chain(photos).copied().collect();
                    contrastive_loss(x.clone(), keys, &batch.labels, &key_photos, tau)
                }
                None => contrastive_loss(x.clone(), t.clone(), &batch.labels, &batch.labels, tau),
            }),
            _ => None,
        };
        let mut loss = match teacher {
            Some(t) => distil_loss(clean, noisy, t, alpha),
            None => embed_loss(clean, noisy, self.config.margin, alpha),
        };
        let zero = loss.triplet.zeros_like().detach();
        let stab = loss.stability.clone().map(|t| t.detach()).unwrap_or_else(|| zero.clone());
        if let Some(c) = &contrast {
            loss.total = loss.total + c.clone().mul_scalar(beta);
        }
        let nce = contrast.map(|c| c.detach()).unwrap_or(zero);
        let stats = Tensor::cat(vec![loss.total.clone().detach(), loss.triplet.detach(), stab, ordered, nce], 0);
        StepLoss { loss: loss.total, stats, weights: vec![1.0; 5], items: b }
    }

    fn progress(&self, s: &Sums, seconds: f64) -> Progress {
        let triplets = s.items as f64;
        Progress {
            loss: s.values[0] / s.steps as f64,
            accuracy: s.values[3] / triplets,
            items_per_s: triplets / seconds,
        }
    }

    /// Means per step over the interval.
    fn interval(&self, end: IntervalEnd<EmbedNet>) -> IntervalStats {
        let (v, steps, triplets) = (&end.sums.values, end.sums.steps as f64, end.sums.items as f64);
        IntervalStats {
            step: end.steps_done,
            loss: v[0] / steps,
            triplet: v[1] / steps,
            stability: v[2] / steps,
            contrast: v[4] / steps,
            train_order_accuracy: v[3] / triplets,
            seconds: end.train_seconds,
            triplets_per_s: triplets / end.train_seconds,
        }
    }

    fn summary(&self, history: Vec<IntervalStats>, model: &EmbedNet, seconds: f64) -> EmbedSummary {
        EmbedSummary {
            config: self.config.clone(),
            history,
            train_photos: self.train_pool.len(),
            val_photos: self.val_photos,
            test_photos: self.test_photos,
            twins: self.twins.clone(),
            seconds,
            trainable_parameters: trainable_parameters(model, self.config.model.frozen_blocks),
        }
    }
}

/// Parameters that receive gradients (not frozen).
fn trainable_parameters(model: &EmbedNet, k: usize) -> usize {
    let blocks: usize = model.backbone.blocks[k..].iter().map(|b| b.num_params()).sum();
    blocks + model.backbone.last.num_params() + model.proj.num_params()
}

/// Loads an embedding run folder: its config and final model (on `device`, inference mode).
pub fn load_embedder(dir: &Path, device: &Device) -> Result<(EmbedTrainConfig, EmbedNet), TrainError> {
    super::load_run(dir, "an embedding", "a classifier", |c: &EmbedTrainConfig| c.model.init(device))
}

#[cfg(test)]
mod tests {
    use super::super::{Event, run};
    use super::*;

    /// A new run of `config` into `out` on flex, without progress.
    fn fresh(
        config: &EmbedTrainConfig,
        photos: &[Photo],
        weights: &Path,
        out: &Path,
    ) -> Result<EmbedSummary, TrainError> {
        run(&EmbedTask::new(config, photos, weights)?, &Device::flex(), out, false, &mut |_| {})
    }
    use stabilize_core::distort::perturb::Perturbation;

    use crate::infer::embed_images;

    fn photos() -> Vec<Photo> {
        crate::test_photos(&(3..9).map(|k| format!("p{k}.png")).collect::<Vec<_>>())
    }

    fn tiny(alpha: f64) -> EmbedTrainConfig {
        EmbedTrainConfig {
            init: Init::Random,
            model: EmbedNetConfig::new().with_dim(8).with_input_size(32).with_frozen_blocks(16),
            stability: StabilityConfig { alpha, ..StabilityConfig::new(0.1) },
            steps: 4,
            batch_size: 2,
            optimizer: OptimizerConfig::new(1e-3),
            seed: 3,
            test_fraction: 0.34,
            checkpoint_every: 2,
            ..EmbedTrainConfig::new()
        }
    }

    fn with(alpha: f64, f: impl Fn(&mut EmbedTrainConfig)) -> EmbedTrainConfig {
        let mut c = tiny(alpha);
        f(&mut c);
        c
    }

    #[test]
    fn same_seed_same_run_and_resume_matches() {
        let _guard = crate::test_rng_lock();
        let dir = tempfile::tempdir().unwrap();
        let ph = photos();
        let cfg = tiny(0.1);
        let Split { train, test, .. } = cfg.split(&ph);
        assert!(train.len() >= 2 && test.len() >= 2, "{train:?} {test:?}");
        let run = |out: &Path, resume: bool, on: &mut dyn FnMut(Event<IntervalStats>)| {
            run(&EmbedTask::new(&cfg, &ph, Path::new("unused"))?, &Device::flex(), out, resume, on)
        };
        let a = run(&dir.path().join("a"), false, &mut |_| {}).unwrap();
        let b = run(&dir.path().join("b"), false, &mut |_| {}).unwrap();
        let key = |s: &EmbedSummary| s.history.iter().map(|h| (h.loss, h.stability)).collect::<Vec<_>>();
        assert_eq!(a.history.len(), 2);
        assert_eq!(b.history.len(), 2);
        assert!(a.history[0].stability > 0.0);
        // Interrupted after the first checkpoint, then resumed: the same numbers.
        let c_dir = dir.path().join("c");
        let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(&c_dir, false, &mut |e| {
                if let Event::Checkpoint(s) = e {
                    assert!(s.step < 2, "simulated crash");
                }
            })
        }));
        assert!(crashed.is_err());
        assert!(run(&c_dir, false, &mut |_| {}).unwrap_err().to_string().contains("--resume"));
        let c = run(&c_dir, true, &mut |_| {}).unwrap();
        // flex's multi-threaded reductions are not bit-reproducible between runs (a 1-ulp f32
        // difference in the loss was seen), so compare to 1e-6 relative.
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1e-9);
        for (u, v) in key(&c).iter().zip(key(&a)) {
            assert!(close(u.0, v.0) && close(u.1, v.1), "{:?} vs {:?}", key(&c), key(&a));
        }
        // The saved model gives the same embeddings as the one that trained.
        let (loaded_cfg, m) = load_embedder(&c_dir, &Device::flex()).unwrap();
        assert_eq!(loaded_cfg, cfg);
        let imgs = render_batch(&ph, &step_triplets(&ph, &test, 9, 0, 2), 32).unwrap();
        let e = embed_images(&m, &imgs, 4, &Device::flex());
        let (_, m_a) = load_embedder(&dir.path().join("a"), &Device::flex()).unwrap();
        let e_a = embed_images(&m_a, &imgs, 4, &Device::flex());
        assert!(e.iter().zip(&e_a).all(|(u, v)| (u - v).abs() < 1e-5), "{e:?} vs {e_a:?}");
        assert_eq!(e.len(), 6 * 8);
    }

    #[test]
    fn baseline_has_no_stability_term_and_bad_settings_are_refused() {
        let _guard = crate::test_rng_lock();
        let dir = tempfile::tempdir().unwrap();
        let s = fresh(&tiny(0.0), &photos(), Path::new("unused"), dir.path()).unwrap();
        assert!(s.history.iter().all(|h| h.stability == 0.0));
        assert!(s.trainable_parameters > 0);
        for bad in [
            with(0.0, |c| c.stability.alpha = -0.1),
            with(0.0, |c| c.stability.sigma = 1.5),
            with(0.0, |c| c.steps = 0),
            with(0.0, |c| c.stability.form = Some(crate::loss::StabilityForm::Kl)),
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        let missing = EmbedTrainConfig { init: Init::MobilenetV2, ..tiny(0.0) };
        let e = fresh(&missing, &photos(), Path::new("/nonexistent/w.pth"), &dir.path().join("m")).unwrap_err();
        assert!(e.to_string().contains("w.pth"), "{e}");
        assert!(load_embedder(dir.path().join("nothing").as_path(), &Device::flex()).is_err());
    }

    #[test]
    fn real_distortion_perturbations_and_augmentation_train() {
        let _guard = crate::test_rng_lock();
        let dir = tempfile::tempdir().unwrap();
        let mix: Perturbation = "jpeg:10-90,thumb:25-75,crop:0-4".parse().unwrap();
        let run = |cfg: EmbedTrainConfig, name: &str| {
            fresh(&cfg, &photos(), Path::new("unused"), &dir.path().join(name)).unwrap()
        };
        // Stability against real distortions: a positive, finite stability term.
        let s = run(with(0.1, |c| c.stability.perturb = Some(mix.clone())), "stab");
        assert!(s.history.iter().all(|h| h.stability > 0.0 && h.loss.is_finite()), "{:?}", s.history);
        // Augmentation: the triplet loss on x' only, no stability term; its config round-trips.
        let a = run(
            with(0.0, |c| (c.stability.objective, c.stability.perturb) = (Objective::Augment, Some(mix.clone()))),
            "aug",
        );
        assert!(a.history.iter().all(|h| h.stability == 0.0 && h.triplet.is_finite()));
        let cfg: EmbedTrainConfig =
            serde_json::from_slice(&std::fs::read(dir.path().join("aug/config.json")).unwrap()).unwrap();
        assert_eq!((cfg.stability.objective, cfg.stability.perturb), (Objective::Augment, Some(mix.clone())));
        for bad in [
            with(0.1, |c| c.stability.objective = Objective::Jsd),
            with(0.1, |c| c.stability.objective = Objective::Augment),
            with(0.1, |c| c.stability.perturb = Some("crop:0-40".parse().unwrap())),
            with(0.1, |c| c.stability.sigma = 0.0),
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;

    #[test]
    fn old_embedding_configs_load_and_keep_their_json_shape() {
        let old = r#"{"init":"mobilenet-v2","model":{"dim":128,"input_size":64,"frozen_blocks":12},
            "alpha":0.1,"sigma":0.2,"margin":1.0,"steps":40,"batch_size":8,"lr":0.0003,
            "weight_decay":0.0001,"seed":0,"test_fraction":0.25,"checkpoint_every":20}"#;
        let c: EmbedTrainConfig = serde_json::from_str(old).unwrap();
        assert_eq!((c.init, c.stability.alpha, c.stability.form, c.optimizer.lr), (Init::MobilenetV2, 0.1, None, 3e-4));
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["init"], "mobilenet-v2");
        assert!(v.get("form").is_none() && v.get("alpha").is_some() && v.get("lr").is_some(), "{v}");
        assert!(serde_json::from_str::<EmbedTrainConfig>(&old.replace("mobilenet-v2", "resnet")).is_err());
        // A run from before twins were checked keeps every photo, and says nothing of twins.
        assert_eq!(c.twin_bits, None);
        assert!(v.get("twin_bits").is_none(), "{v}");
        // New runs check them, and a bound over 64 bits is refused.
        let new = EmbedTrainConfig::new();
        assert_eq!(new.twin_bits, Some(stabilize_core::data::crops::TWIN_BITS));
        assert_eq!(serde_json::to_value(&new).unwrap()["twin_bits"], 10);
        let wide = EmbedTrainConfig { twin_bits: Some(65), ..EmbedTrainConfig::new() };
        assert!(wide.validate().unwrap_err().to_string().contains("twin bits"));
        // Likewise validation photos: none in an old run, a fifth of the training photos in a new
        // one, and a share outside (0, 1) refused.
        assert!(c.val_fraction.is_none() && v.get("val_fraction").is_none(), "{v}");
        assert_eq!(serde_json::to_value(&new).unwrap()["val_fraction"], DEFAULT_VAL_FRACTION);
        for bad in [0.0, 1.0, f64::NAN] {
            let c = EmbedTrainConfig { val_fraction: Some(bad), ..EmbedTrainConfig::new() };
            assert!(c.validate().unwrap_err().to_string().contains("validation fraction"));
        }
    }
}
