//! The stability settings every training task shares — α, σ, the Lstab form, the objective and how
//! `x'` is drawn — their one validation, and the drawing of `x'` on the host.
//!
//! `x'` is drawn per step from streams keyed by the run's seed and the step
//! ([`stabilize_core::seeds`]), so a resumed run draws exactly what an uninterrupted one would.

use std::borrow::Cow;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution as _, Normal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use stabilize_core::Image;
use stabilize_core::distort::perturb::Perturbation;
use stabilize_core::seeds::{PERTURB_STREAM, VIEW_STRIDE, item_seed};

use crate::loss::{Objective, StabilityForm};
use crate::tensor::planar_pixels;

/// What a training setting got wrong; the message names the setting (one line).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("{setting} must be {rule}, got {value}")]
    OutOfRange { setting: &'static str, rule: &'static str, value: f64 },
    #[error("sigma is on the [0,1] pixel scale: 0 ≤ σ ≤ 1, got {0}")]
    Sigma(f64),
    #[error("{0} must be ≥ 1")]
    Zero(&'static str),
    /// An objective that does not fit the other settings or the task.
    #[error("{0}")]
    Objective(String),
    /// A `--perturb` that does not fit the input size.
    #[error("{0}")]
    Perturb(String),
    /// The model's own settings.
    #[error("{0}")]
    Model(String),
    /// An unknown dataset or initialisation, or too little data.
    #[error("{0}")]
    Data(String),
}

/// Which kind of network a stability setting trains; it decides which objectives and Lstab forms
/// apply and how `L0` is named in messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Class distributions: `L0` = cross-entropy, Lstab = a divergence ([`StabilityForm`]).
    Classifier,
    /// Unit embeddings: `L0` = the triplet hinge, Lstab = `Σ ‖f(x) − f(x')‖₂` (one form).
    Embedding,
}

impl Target {
    fn l0(self) -> &'static str {
        match self {
            Target::Classifier => "CE",
            Target::Embedding => "the triplet loss",
        }
    }
}

/// The stability part of a training run: `L = L0(x) + α·Lstab(x, x')`. Flattened into each task's
/// config (`alpha`, `sigma`, `form`, `objective`, `perturb` at the top of `config.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StabilityConfig {
    /// Weight α of the stability term; 0 trains the baseline.
    pub alpha: f64,
    /// σ of the paper's Gaussian perturbation, on the [0,1] pixel scale.
    pub sigma: f64,
    /// The classifier's Lstab (the paper's cross-entropy form or KL). Embeddings have one form,
    /// `‖f(x) − f(x')‖₂`, and leave it unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<StabilityForm>,
    /// What the step minimises (stability, augmentation or JSD consistency).
    #[serde(default)]
    pub objective: Objective,
    /// How `x'` is drawn; `None` is the paper's `noise:σ` with `sigma` above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perturb: Option<Perturbation>,
}

impl StabilityConfig {
    /// The baseline (α = 0) with the paper's noise of standard deviation `sigma`.
    pub fn new(sigma: f64) -> Self {
        Self { alpha: 0.0, sigma, form: None, objective: Objective::Stability, perturb: None }
    }

    /// How `x'` is drawn: `perturb`, else the paper's noise with `sigma`.
    pub fn perturbation(&self) -> Perturbation {
        self.perturb.clone().unwrap_or(Perturbation::Noise { sigma: self.sigma })
    }

    /// Perturbed copies per image a step needs (none for the baseline).
    pub fn views(&self) -> usize {
        self.objective.views(self.alpha)
    }

    /// Sets `x'` from a `--perturb` spec: a single `noise:σ` is the paper's noise and sets σ (so
    /// the config reads as before); a mix of distortions is kept as the perturbation.
    pub fn set_perturb(&mut self, p: Perturbation) {
        match p.paper_sigma() {
            Some(s) => self.sigma = s,
            None => self.perturb = Some(p),
        }
    }

    /// Checks the ranges and the combinations for a `target` network with inputs of `side` px.
    pub fn validate(&self, target: Target, side: u32) -> Result<(), ConfigError> {
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err(ConfigError::OutOfRange { setting: "alpha", rule: "≥ 0", value: self.alpha });
        }
        if !(self.sigma.is_finite() && (0.0..=1.0).contains(&self.sigma)) {
            return Err(ConfigError::Sigma(self.sigma));
        }
        if self.views() > 0 && self.perturbation().paper_sigma() == Some(0.0) {
            return Err(ConfigError::Objective(format!(
                "the {} objective needs sigma > 0 or a --perturb (with σ = 0 the copies are identical)",
                self.objective
            )));
        }
        match (self.objective, target) {
            (Objective::Augment, _) if self.alpha != 0.0 => {
                return Err(ConfigError::Objective(format!(
                    "the augment objective is {} on x' alone; --alpha does not apply (leave it 0)",
                    target.l0()
                )));
            }
            (Objective::Jsd, Target::Embedding) => {
                return Err(ConfigError::Objective(
                    "the jsd objective needs class probabilities; embeddings train with stability or augment".into(),
                ));
            }
            (Objective::Jsd, Target::Classifier) if self.alpha <= 0.0 => {
                return Err(ConfigError::Objective(
                    "the jsd objective needs --alpha > 0 (AugMix's λ; its reference value is 12)".into(),
                ));
            }
            _ => {}
        }
        if target == Target::Embedding && self.form.is_some() {
            return Err(ConfigError::Objective(
                "embeddings have one stability form (‖f(x) − f(x')‖₂); leave the loss form unset".into(),
            ));
        }
        if let Some(p) = &self.perturb {
            p.check_side(side).map_err(|e| ConfigError::Perturb(e.to_string()))?;
        }
        Ok(())
    }
}

/// Draws the perturbed copies `x'` of a batch on the host (the prefetch thread).
pub struct PerturbSampler {
    perturb: Perturbation,
    noise: Normal<f32>,
}

impl PerturbSampler {
    pub fn new(stability: &StabilityConfig) -> Self {
        let perturb = stability.perturbation();
        let sigma = perturb.paper_sigma().unwrap_or(stability.sigma).max(f64::MIN_POSITIVE);
        Self { noise: Normal::new(0.0f32, sigma as f32).expect("valid sigma"), perturb }
    }

    /// The seed of perturbed view `view` (0, 1, …) of step `step` of a run seeded `run_seed`.
    pub fn view_seed(run_seed: u64, view: usize, step: usize) -> u64 {
        item_seed(run_seed ^ PERTURB_STREAM ^ (view as u64 * VIEW_STRIDE), step as u64)
    }

    /// One perturbed copy of a batch of `n` images, as `[n, C, H, W]` pixels on [0,1]:
    /// - the paper's noise: `clean + ε`, with `ε ~ N(0, σ²)` drawn in order from one ChaCha
    ///   stream seeded `seed` (no clamping: the network sees the Gaussian perturbation itself);
    /// - a mix of real distortions: `image(i)` distorted with seed `item_seed(seed, i)` (in
    ///   parallel; thread-count independent), then scaled to [0,1].
    ///
    /// `clean` holds the clean batch's pixels in the same layout.
    pub fn draw<'a>(
        &self,
        clean: &[f32],
        n: usize,
        image: impl Fn(usize) -> stabilize_core::Result<Cow<'a, Image>> + Sync,
        seed: u64,
    ) -> stabilize_core::Result<Vec<f32>> {
        match self.perturb.paper_sigma() {
            Some(_) => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                Ok(clean.iter().map(|&p| p + self.noise.sample(&mut rng)).collect())
            }
            None => {
                let perturbed: Vec<Image> = (0..n)
                    .into_par_iter()
                    .map(|i| self.perturb.apply(image(i)?.as_ref(), item_seed(seed, i as u64)))
                    .collect::<stabilize_core::Result<_>>()?;
                Ok(planar_pixels(&perturbed.iter().collect::<Vec<_>>()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stabilize_core::Channels;

    fn cfg(alpha: f64, sigma: f64, objective: Objective) -> StabilityConfig {
        StabilityConfig { alpha, objective, ..StabilityConfig::new(sigma) }
    }

    #[test]
    fn validation_names_the_setting() {
        let c = Target::Classifier;
        assert_eq!(
            cfg(-1.0, 0.1, Objective::Stability).validate(c, 28).unwrap_err().to_string(),
            "alpha must be ≥ 0, got -1"
        );
        assert!(cfg(0.0, 2.0, Objective::Stability).validate(c, 28).unwrap_err().to_string().contains("0 ≤ σ ≤ 1"));
        assert!(cfg(0.1, 0.0, Objective::Stability).validate(c, 28).unwrap_err().to_string().contains("sigma > 0"));
        // The baseline needs no copies, so σ = 0 is fine for it.
        assert!(cfg(0.0, 0.0, Objective::Stability).validate(c, 28).is_ok());
        assert!(cfg(0.1, 0.1, Objective::Augment).validate(c, 28).unwrap_err().to_string().contains("CE on x'"));
        assert!(cfg(0.0, 0.1, Objective::Jsd).validate(c, 28).is_err());
        assert!(cfg(12.0, 0.1, Objective::Jsd).validate(c, 28).is_ok());
        assert!(cfg(12.0, 0.1, Objective::Jsd).validate(Target::Embedding, 64).is_err());
        let with_form = StabilityConfig { form: Some(StabilityForm::Kl), ..cfg(0.1, 0.1, Objective::Stability) };
        assert!(with_form.validate(c, 28).is_ok());
        assert!(with_form.validate(Target::Embedding, 64).is_err());
        let big_crop =
            StabilityConfig { perturb: Some("crop:0-40".parse().unwrap()), ..cfg(0.1, 0.1, Objective::Stability) };
        assert!(matches!(big_crop.validate(c, 28), Err(ConfigError::Perturb(_))));
    }

    #[test]
    fn set_perturb_keeps_the_paper_noise_as_sigma() {
        let mut s = StabilityConfig::new(0.04);
        s.set_perturb("noise:0.2".parse().unwrap());
        assert_eq!((s.sigma, s.perturb.clone()), (0.2, None));
        let mix: Perturbation = "jpeg:10-90,noise:0-0.1".parse().unwrap();
        s.set_perturb(mix.clone());
        assert_eq!(s.perturb, Some(mix));
        // The flat JSON of a config: a classifier's form is written, an embedding's is not.
        let json = serde_json::to_value(StabilityConfig::new(0.2)).unwrap();
        assert!(json.get("form").is_none() && json.get("perturb").is_none(), "{json}");
    }

    #[test]
    fn draws_are_seeded_and_views_independent() {
        let s = PerturbSampler::new(&StabilityConfig::new(0.1));
        let clean = vec![0.5f32; 64];
        let none = |_| -> stabilize_core::Result<Cow<'static, Image>> { unreachable!("noise needs no images") };
        let a = s.draw(&clean, 1, none, PerturbSampler::view_seed(3, 0, 5)).unwrap();
        let b = s.draw(&clean, 1, none, PerturbSampler::view_seed(3, 0, 5)).unwrap();
        let c = s.draw(&clean, 1, none, PerturbSampler::view_seed(3, 1, 5)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mean = a.iter().map(|v| (v - 0.5) as f64).sum::<f64>() / 64.0;
        let sd = (a.iter().map(|v| ((v - 0.5) as f64).powi(2)).sum::<f64>() / 64.0).sqrt();
        assert!(mean.abs() < 0.05 && (sd - 0.1).abs() < 0.04, "mean {mean} sd {sd}");
        // A distortion mix distorts the images themselves: values stay on the 8-bit grid.
        let mix = StabilityConfig { perturb: Some("jpeg:10-20".parse().unwrap()), ..StabilityConfig::new(0.1) };
        let img = Image::new(8, 8, Channels::Gray, (0..64).map(|i| (i * 4) as u8).collect()).unwrap();
        let d = PerturbSampler::new(&mix).draw(&img.to_f32(), 1, |_| Ok(Cow::Borrowed(&img)), 9).unwrap();
        assert_eq!(d.len(), 64);
        assert!(d.iter().all(|v| ((v * 255.0).round() - v * 255.0).abs() < 1e-3));
        assert_ne!(d, img.to_f32());
    }
}
