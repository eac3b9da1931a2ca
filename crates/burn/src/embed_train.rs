//! Fine-tuning the embedding network on triplets from the training photos, with stability.
//!
//! Step `s` draws its triplets and its noise from ChaCha streams keyed by `(seed, s)`, so a
//! resumed run sees exactly the data an uninterrupted one would. The clean triplet images
//! `[3B, 3, S, S]` and (when α > 0) their perturbed copies `x' = x + N(0, σ²)` go through the
//! network as one `[6B, …]` batch (same weights, gradients through both branches); the loss is
//! [`embed_loss`]. Checkpoints (model, optimizer, state) are written atomically every
//! `checkpoint_every` steps.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution as _, Normal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use stabilize_core::Image;
use stabilize_core::crops::{Photo, Triplet, is_test, render_triplet, sample_triplet};
use stabilize_core::distort::item_seed;
use stabilize_core::fsutil::{ensure_writable_dir, write_atomic};

use stabilize_core::perturb::Perturbation;

use crate::embed::{EmbedNet, EmbedNetConfig, embed_loss};
use crate::loss::Objective;
use crate::model::materialize;
use crate::tensor::{images_to_tensor, planar_pixels};
use crate::train::{TrainError, read_json};

/// Everything that defines an embedding run; saved as `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbedTrainConfig {
    /// Where the backbone comes from: `mobilenet-v2` (torchvision's ImageNet weights) or
    /// `random` (from scratch; for tests and ablations).
    pub init: String,
    pub model: EmbedNetConfig,
    /// Weight of the stability term; 0 trains the baseline.
    pub alpha: f64,
    /// Standard deviation of the perturbation on the [0,1] pixel scale.
    pub sigma: f64,
    /// Triplet margin g on the L2 distance between unit embeddings.
    pub margin: f64,
    pub steps: usize,
    /// Triplets per step.
    pub batch_size: usize,
    /// Peak learning rate (cosine decay to 0).
    pub lr: f64,
    pub weight_decay: f64,
    pub seed: u64,
    /// Share of photos held out for evaluation (the split rule is in `stabilize_core::crops`).
    pub test_fraction: f64,
    pub checkpoint_every: usize,
    /// `stability` (the paper) or `augment` (the triplet loss on `x'` only; α 0). JSD needs class
    /// distributions and has no embedding form.
    #[serde(default)]
    pub objective: Objective,
    /// How `x'` is drawn; `None` is the paper's `noise:σ` with `sigma` above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perturb: Option<Perturbation>,
}

impl EmbedTrainConfig {
    /// Defaults: the paper's α = 0.1, σ = 0.2 are set by the caller; baseline α = 0 here.
    pub fn new() -> Self {
        Self {
            init: "mobilenet-v2".into(),
            model: EmbedNetConfig::new(),
            alpha: 0.0,
            sigma: 0.2,
            margin: 1.0,
            steps: 300,
            batch_size: 8,
            lr: 3e-4,
            weight_decay: 1e-4,
            seed: 0,
            test_fraction: 0.25,
            checkpoint_every: 50,
            objective: Objective::Stability,
            perturb: None,
        }
    }

    /// How `x'` is drawn: `perturb`, else the paper's noise with `sigma`.
    pub fn perturbation(&self) -> Perturbation {
        self.perturb.clone().unwrap_or(Perturbation::Noise { sigma: self.sigma })
    }

    pub fn validate(&self) -> Result<(), String> {
        self.model.validate()?;
        if self.init != "mobilenet-v2" && self.init != "random" {
            return Err(format!("unknown --init `{}` (available: mobilenet-v2, random)", self.init));
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err(format!("alpha must be ≥ 0, got {}", self.alpha));
        }
        if !(self.sigma.is_finite() && (0.0..=1.0).contains(&self.sigma)) {
            return Err(format!("sigma is on the [0,1] pixel scale: 0 ≤ σ ≤ 1, got {}", self.sigma));
        }
        let views = self.objective.views(self.alpha);
        if views > 0 && self.perturbation().paper_sigma() == Some(0.0) {
            return Err(format!("the {} objective needs sigma > 0 or a --perturb", self.objective));
        }
        match self.objective {
            Objective::Jsd => {
                return Err(
                    "the jsd objective needs class probabilities; embeddings train with stability or augment".into()
                );
            }
            Objective::Augment if self.alpha != 0.0 => {
                return Err(
                    "the augment objective is the triplet loss on x' alone; --alpha does not apply (leave it 0)".into(),
                );
            }
            _ => {}
        }
        if let Some(p) = &self.perturb {
            p.check_side(self.model.input_size as u32).map_err(|e| e.to_string())?;
        }
        if !(self.margin.is_finite() && self.margin >= 0.0) {
            return Err(format!("margin must be ≥ 0, got {}", self.margin));
        }
        if self.steps == 0 || self.batch_size == 0 || self.checkpoint_every == 0 {
            return Err("steps, batch size and checkpoint interval must be ≥ 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("learning rate must be > 0, got {}", self.lr));
        }
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            return Err(format!("test fraction must be in (0, 1), got {}", self.test_fraction));
        }
        Ok(())
    }

    pub fn lr_at(&self, step: usize) -> f64 {
        0.5 * self.lr * (1.0 + (std::f64::consts::PI * step as f64 / self.steps as f64).cos())
    }
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
    /// Share of the interval's training triplets already ordered D(q,p) < D(q,n).
    pub train_order_accuracy: f64,
    pub seconds: f64,
    /// Triplets per second.
    pub triplets_per_s: f64,
}

/// Resumable state (`checkpoint/state.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmbedState {
    pub config: EmbedTrainConfig,
    pub steps_done: usize,
    pub history: Vec<IntervalStats>,
}

/// The result of a run (`metrics.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmbedSummary {
    pub config: EmbedTrainConfig,
    pub history: Vec<IntervalStats>,
    pub train_photos: usize,
    pub test_photos: usize,
    /// Wall time of the steps run by this invocation.
    pub seconds: f64,
    pub trainable_parameters: usize,
}

/// Progress reports.
pub enum EmbedEvent<'a> {
    Start { total_steps: usize, start_step: usize },
    Step { step: usize, loss: f64, triplets_per_s: f64 },
    Checkpoint(&'a IntervalStats),
}

const STATE: &str = "checkpoint/state.json";

/// Indices of the training and the test photos under the config's split.
pub fn split_indices(photos: &[Photo], test_fraction: f64) -> (Vec<usize>, Vec<usize>) {
    (0..photos.len()).partition(|&i| !is_test(&photos[i].name, test_fraction))
}

/// The triplets of step `step` (deterministic in seed and step).
pub fn step_triplets(photos: &[Photo], pool: &[usize], seed: u64, step: usize, batch: usize) -> Vec<Triplet> {
    let mut rng = ChaCha8Rng::seed_from_u64(item_seed(seed ^ 0x7219_1E75, step as u64));
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

fn pixels(images: &[Image]) -> Vec<f32> {
    planar_pixels(&images.iter().collect::<Vec<_>>())
}

/// Fine-tunes from the pretrained weights at `weights` (unused with `init = "random"`) into `out` (`config.json`, `model.bpk`,
/// `metrics.json`, `checkpoint/`). `photos` is the whole usable pool; the split is the config's.
pub fn train_embedder(
    config: &EmbedTrainConfig,
    photos: &[Photo],
    weights: &Path,
    device: &Device,
    out: &Path,
    resume: bool,
    on: &mut dyn FnMut(EmbedEvent),
) -> Result<EmbedSummary, TrainError> {
    config.validate().map_err(TrainError::Config)?;
    let (train_pool, test_pool) = split_indices(photos, config.test_fraction);
    if train_pool.len() < 2 || test_pool.len() < 2 {
        return Err(TrainError::Config(format!(
            "need ≥ 2 usable photos in each split, have {} train / {} test",
            train_pool.len(),
            test_pool.len()
        )));
    }
    ensure_writable_dir(&out.join("checkpoint"))?;
    let state_path = out.join(STATE);
    let mut state = if state_path.is_file() {
        let state: EmbedState = read_json(&state_path)?;
        if !resume {
            return Err(TrainError::Checkpoint {
                path: out.to_path_buf(),
                message: format!(
                    "already holds a run ({} steps done); pass --resume or choose another --out",
                    state.steps_done
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
        EmbedState { config: config.clone(), steps_done: 0, history: Vec::new() }
    };
    write_atomic(&out.join("config.json"), &serde_json::to_vec_pretty(config).expect("serialisable"))?;

    let train_dev = device.clone().autodiff();
    device.seed(config.seed);
    let model = if config.init == "random" {
        config.model.init(&train_dev)
    } else {
        config
            .model
            .init_pretrained(weights, &train_dev)
            .map_err(|e| TrainError::Checkpoint { path: weights.to_path_buf(), message: e.to_string() })?
    };
    materialize(&model);
    crate::train::ensure_checkpoint_space(out, model.num_params())?;
    let mut model = model.freeze_trunk();
    let mut optim = AdamWConfig::new().with_epsilon(1e-8).with_weight_decay(config.weight_decay as f32).init();
    if state.steps_done > 0 {
        let (m, o) = checkpoint_paths(out, state.steps_done);
        model = model
            .try_load_file(&m)
            .map_err(|e| TrainError::Checkpoint { path: m.clone(), message: e.to_string() })?
            .freeze_trunk();
        optim = optim.load(&o).map_err(|e| TrainError::Checkpoint { path: o.clone(), message: e.to_string() })?;
    }
    on(EmbedEvent::Start { total_steps: config.steps, start_step: state.steps_done });

    let size = config.model.input_size;
    let b = config.batch_size;
    let views = config.objective.views(config.alpha);
    let augment = config.objective == Objective::Augment;
    let stabilized = views > 0 && !augment;
    let perturb = config.perturbation();
    let noise = Normal::new(0.0f32, perturb.paper_sigma().unwrap_or(config.sigma).max(f64::MIN_POSITIVE) as f32)
        .expect("valid sigma");
    let run_started = Instant::now();
    let (mut sum_loss, mut sum_trip, mut sum_stab, mut ordered, mut seen) = (0.0, 0.0, 0.0, 0usize, 0usize);
    let mut interval_started = Instant::now();
    // Triplet sampling, cropping and noise run on a second thread, two steps ahead of the device.
    let first = state.steps_done;
    let make_batch = |i: usize| -> stabilize_core::Result<(usize, Vec<f32>)> {
        let step = first + i;
        let triplets = step_triplets(photos, &train_pool, config.seed, step, b);
        let images = render_batch(photos, &triplets, size as u32)?;
        let seed = item_seed(config.seed ^ 0x5EED_0F_0015E, step as u64);
        let mut x = if augment { Vec::new() } else { pixels(&images) };
        if views > 0 {
            match perturb.paper_sigma() {
                Some(_) => {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    let noisy: Vec<f32> = if augment {
                        pixels(&images).into_iter().map(|v| v + noise.sample(&mut rng)).collect()
                    } else {
                        x.iter().map(|&v| v + noise.sample(&mut rng)).collect()
                    };
                    x.extend(noisy);
                }
                None => {
                    let perturbed: Vec<Image> = images
                        .par_iter()
                        .enumerate()
                        .map(|(k, img)| perturb.apply(img, item_seed(seed, k as u64)))
                        .collect::<stabilize_core::Result<_>>()?;
                    x.extend(pixels(&perturbed));
                }
            }
        }
        Ok((step, x))
    };
    let mut slot = Some(model);
    crate::train::prefetch(config.steps - first, 2, make_batch, |batch| -> Result<(), TrainError> {
        let (step, x) = batch?;
        let rows = if stabilized { 6 * b } else { 3 * b };
        let model = slot.take().expect("model");
        let xt = Tensor::<4>::from_data(TensorData::new(x, [rows, 3, size, size]), &train_dev);
        // The clean and the perturbed copies through the same weights, as two forward passes.
        let clean = model.forward(xt.clone().narrow(0, 0, 3 * b));
        let noisy = stabilized.then(|| model.forward(xt.narrow(0, 3 * b, 3 * b)));
        // Triplets whose positive is nearer the query than the negative, counted on the device.
        let c = clean.clone().detach();
        let (q, pos, neg) = (c.clone().narrow(0, 0, b), c.clone().narrow(0, b, b), c.narrow(0, 2 * b, b));
        let d_pos = (q.clone() - pos).powi_scalar(2).sum_dim(1);
        let d_neg = (q - neg).powi_scalar(2).sum_dim(1);
        let ordered_now = d_pos.lower(d_neg).int().sum().float();
        let loss = embed_loss(clean, noisy, config.margin, config.alpha);
        // One read-back per step.
        let parts: Vec<f32> = Tensor::cat(
            vec![
                loss.total.clone().detach(),
                loss.triplet.clone().detach(),
                loss.stability.clone().map(|t| t.detach()).unwrap_or_else(|| loss.triplet.zeros_like().detach()),
                ordered_now,
            ],
            0,
        )
        .try_into_vec_as::<f32>()
        .expect("float loss");
        if !parts[0].is_finite() {
            return Err(TrainError::NonFinite {
                epoch: 0,
                step,
                value: parts[0],
                last_good: (state.steps_done > 0).then(|| checkpoint_paths(out, state.steps_done).0),
            });
        }
        let grads = GradientsParams::from_grads(loss.total.backward(), &model);
        let model = optim.step(config.lr_at(step), model, grads);
        ordered += parts[3] as usize;
        sum_loss += parts[0] as f64;
        sum_trip += parts[1] as f64;
        sum_stab += parts[2] as f64;
        seen += 1;
        on(EmbedEvent::Step {
            step: step + 1,
            loss: sum_loss / seen as f64,
            triplets_per_s: (seen * b) as f64 / interval_started.elapsed().as_secs_f64(),
        });
        if (step + 1) % config.checkpoint_every == 0 || step + 1 == config.steps {
            let secs = interval_started.elapsed().as_secs_f64();
            let stats = IntervalStats {
                step: step + 1,
                loss: sum_loss / seen as f64,
                triplet: sum_trip / seen as f64,
                stability: sum_stab / seen as f64,
                train_order_accuracy: ordered as f64 / (seen * b) as f64,
                seconds: secs,
                triplets_per_s: (seen * b) as f64 / secs,
            };
            let prev = state.steps_done;
            let (m, o) = checkpoint_paths(out, step + 1);
            model
                .clone()
                .save_file(&m)
                .map_err(|e| TrainError::Checkpoint { path: m.clone(), message: e.to_string() })?;
            optim.save(&o).map_err(|e| TrainError::Checkpoint { path: o.clone(), message: e.to_string() })?;
            state.steps_done = step + 1;
            state.history.push(stats.clone());
            write_atomic(&state_path, &serde_json::to_vec_pretty(&state).expect("serialisable"))?;
            if prev > 0 {
                let (pm, po) = checkpoint_paths(out, prev);
                let _ = fs::remove_file(pm);
                let _ = fs::remove_file(po);
            }
            on(EmbedEvent::Checkpoint(&stats));
            (sum_loss, sum_trip, sum_stab, ordered, seen) = (0.0, 0.0, 0.0, 0, 0);
            interval_started = Instant::now();
        }
        slot = Some(model);
        Ok(())
    })?;
    let model = slot.expect("model");

    let final_model = out.join("model.bpk");
    model
        .clone()
        .valid()
        .save_file(&final_model)
        .map_err(|e| TrainError::Checkpoint { path: final_model.clone(), message: e.to_string() })?;
    let trainable = trainable_parameters(&model, config.model.frozen_blocks);
    let summary = EmbedSummary {
        config: config.clone(),
        history: state.history.clone(),
        train_photos: train_pool.len(),
        test_photos: test_pool.len(),
        seconds: run_started.elapsed().as_secs_f64(),
        trainable_parameters: trainable,
    };
    write_atomic(&out.join("metrics.json"), &serde_json::to_vec_pretty(&summary).expect("serialisable"))?;
    Ok(summary)
}

/// Parameters that receive gradients (not frozen).
fn trainable_parameters(model: &EmbedNet, k: usize) -> usize {
    let blocks: usize = model.backbone.blocks[k..].iter().map(|b| b.num_params()).sum();
    blocks + model.backbone.last.num_params() + model.proj.num_params()
}

fn checkpoint_paths(out: &Path, step: usize) -> (PathBuf, PathBuf) {
    let dir = out.join("checkpoint");
    (dir.join(format!("step-{step:06}.model.bpk")), dir.join(format!("step-{step:06}.optim.bpk")))
}

/// Loads an embedding run folder: its config and final model (on `device`, inference mode).
pub fn load_embedder(dir: &Path, device: &Device) -> Result<(EmbedTrainConfig, EmbedNet), TrainError> {
    let config_path = dir.join("config.json");
    if !config_path.is_file() {
        return Err(TrainError::Checkpoint {
            path: dir.to_path_buf(),
            message: "is not an embedding run folder (no config.json)".into(),
        });
    }
    let bytes = fs::read(&config_path).map_err(|e| stabilize_core::Error::io(&config_path, e))?;
    let config: EmbedTrainConfig = serde_json::from_slice(&bytes).map_err(|e| TrainError::Checkpoint {
        path: config_path.clone(),
        message: format!("is not an embedding run config ({e}); is this a classifier run?"),
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

/// `f` of same-sized RGB images, `batch` at a time, without autodiff, row-major on the host.
fn batched(
    model: &EmbedNet,
    images: &[Image],
    batch: usize,
    device: &Device,
    f: impl Fn(&EmbedNet, Tensor<4>) -> Tensor<2>,
) -> Vec<f32> {
    let model = model.valid();
    let mut out = Vec::new();
    for chunk in images.chunks(batch.max(1)) {
        let refs: Vec<&Image> = chunk.iter().collect();
        out.extend(f(&model, images_to_tensor(&refs, device)).try_into_vec_as::<f32>().expect("float"));
    }
    out
}

/// Embeddings `[N·d]` (row-major) of same-sized RGB images, `batch` at a time, without autodiff.
pub fn embed_images(model: &EmbedNet, images: &[Image], batch: usize, device: &Device) -> Vec<f32> {
    batched(model, images, batch, device, |m, x| m.forward(x))
}

/// L2-normalised pooled ImageNet features `[N·1280]` of the backbone (the "pretrained, not
/// fine-tuned" baseline), `batch` at a time.
pub fn pretrained_features(model: &EmbedNet, images: &[Image], batch: usize, device: &Device) -> Vec<f32> {
    batched(model, images, batch, device, |m, x| crate::embed::l2_normalize(m.pooled(x)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use stabilize_core::Channels;

    /// Six textured "photos" of 200×170 px, each with its own pattern.
    fn photos() -> Vec<Photo> {
        (3..9u32)
            .map(|k| {
                let (w, h) = (200u32, 170u32);
                let data = (0..w * h * 3)
                    .map(|i| {
                        let (p, c) = (i / 3, i % 3);
                        let (x, y) = (p % w, p / w);
                        ((x * (k + 1) + y * (2 * k + 3) + c * 40 + (x / (k + 5)) * 17) % 256) as u8
                    })
                    .collect();
                let img = Image::new(w, h, Channels::Rgb, data).unwrap();
                Photo::prepare(&format!("p{k}.png"), &img, 256).unwrap().unwrap()
            })
            .collect()
    }

    fn tiny(alpha: f64) -> EmbedTrainConfig {
        EmbedTrainConfig {
            init: "random".into(),
            model: EmbedNetConfig::new().with_dim(8).with_input_size(32).with_frozen_blocks(16),
            alpha,
            sigma: 0.1,
            steps: 4,
            batch_size: 2,
            lr: 1e-3,
            seed: 3,
            test_fraction: 0.34,
            checkpoint_every: 2,
            ..EmbedTrainConfig::new()
        }
    }

    #[test]
    fn same_seed_same_run_and_resume_matches() {
        let _guard = crate::test_rng_lock();
        let dir = tempfile::tempdir().unwrap();
        let ph = photos();
        let (train, test) = split_indices(&ph, 0.34);
        assert!(train.len() >= 2 && test.len() >= 2, "{train:?} {test:?}");
        let cfg = tiny(0.1);
        let run = |out: &Path, resume: bool, on: &mut dyn FnMut(EmbedEvent)| {
            train_embedder(&cfg, &ph, Path::new("unused"), &Device::flex(), out, resume, on)
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
                if let EmbedEvent::Checkpoint(s) = e {
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
        let s =
            train_embedder(&tiny(0.0), &photos(), Path::new("unused"), &Device::flex(), dir.path(), false, &mut |_| {})
                .unwrap();
        assert!(s.history.iter().all(|h| h.stability == 0.0));
        assert!(s.trainable_parameters > 0);
        for bad in [
            EmbedTrainConfig { alpha: -0.1, ..tiny(0.0) },
            EmbedTrainConfig { sigma: 1.5, ..tiny(0.0) },
            EmbedTrainConfig { steps: 0, ..tiny(0.0) },
            EmbedTrainConfig { init: "resnet".into(), ..tiny(0.0) },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        let missing = EmbedTrainConfig { init: "mobilenet-v2".into(), ..tiny(0.0) };
        let e = train_embedder(
            &missing,
            &photos(),
            Path::new("/nonexistent/w.pth"),
            &Device::flex(),
            &dir.path().join("m"),
            false,
            &mut |_| {},
        )
        .unwrap_err();
        assert!(e.to_string().contains("w.pth"), "{e}");
        assert!(load_embedder(dir.path().join("nothing").as_path(), &Device::flex()).is_err());
    }

    #[test]
    fn real_distortion_perturbations_and_augmentation_train() {
        let _guard = crate::test_rng_lock();
        let dir = tempfile::tempdir().unwrap();
        let mix: Perturbation = "jpeg:10-90,thumb:25-75,crop:0-4".parse().unwrap();
        let run = |cfg: EmbedTrainConfig, name: &str| {
            train_embedder(
                &cfg,
                &photos(),
                Path::new("unused"),
                &Device::flex(),
                &dir.path().join(name),
                false,
                &mut |_| {},
            )
            .unwrap()
        };
        // Stability against real distortions: a positive, finite stability term.
        let s = run(EmbedTrainConfig { perturb: Some(mix.clone()), ..tiny(0.1) }, "stab");
        assert!(s.history.iter().all(|h| h.stability > 0.0 && h.loss.is_finite()), "{:?}", s.history);
        // Augmentation: the triplet loss on x' only, no stability term; its config round-trips.
        let a = run(EmbedTrainConfig { objective: Objective::Augment, perturb: Some(mix.clone()), ..tiny(0.0) }, "aug");
        assert!(a.history.iter().all(|h| h.stability == 0.0 && h.triplet.is_finite()));
        let cfg: EmbedTrainConfig =
            serde_json::from_slice(&std::fs::read(dir.path().join("aug/config.json")).unwrap()).unwrap();
        assert_eq!((cfg.objective, cfg.perturb), (Objective::Augment, Some(mix.clone())));
        for bad in [
            EmbedTrainConfig { objective: Objective::Jsd, ..tiny(0.1) },
            EmbedTrainConfig { objective: Objective::Augment, ..tiny(0.1) },
            EmbedTrainConfig { perturb: Some("crop:0-40".parse().unwrap()), ..tiny(0.1) },
            EmbedTrainConfig { sigma: 0.0, ..tiny(0.1) },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
