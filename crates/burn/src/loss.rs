//! Stability losses (Zheng et al., CVPR 2016).
//!
//! Classification: `L = CE(f(x), y) + α · Lstab(f(x), f(x'))` where `x' = x + N(0, σ²)`. Both
//! branches go through the same weights and gradients flow through both (no stop-gradient).

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Int, Tensor};

/// Which divergence measures the change of the class distribution from `x` to `x'`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum StabilityForm {
    /// The paper's form: cross-entropy of `P(·|x')` under `P(·|x)`, `−Σ_j P(y_j|x) log P(y_j|x')`.
    #[default]
    Paper,
    /// `KL(P(·|x) ‖ P(·|x'))` = the paper's form minus the entropy of `P(·|x)`; zero when the two agree.
    Kl,
}

impl std::str::FromStr for StabilityForm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "paper" => Ok(StabilityForm::Paper),
            "kl" => Ok(StabilityForm::Kl),
            other => Err(format!("unknown stability loss '{other}' (known: paper, kl)")),
        }
    }
}

impl std::fmt::Display for StabilityForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StabilityForm::Paper => "paper",
            StabilityForm::Kl => "kl",
        })
    }
}

/// Classification stability loss, averaged over the batch.
///
/// - `clean_logits`: `[N, K]`, logits of the clean images `x`;
/// - `noisy_logits`: `[N, K]`, logits of the perturbed copies `x'`;
/// - returns a one-element tensor (nats).
pub fn classification_stability(clean_logits: Tensor<2>, noisy_logits: Tensor<2>, form: StabilityForm) -> Tensor<1> {
    let log_q = log_softmax(noisy_logits, 1);
    match form {
        StabilityForm::Paper => {
            let p = softmax(clean_logits, 1);
            (p * log_q).sum_dim(1).mean().neg()
        }
        StabilityForm::Kl => {
            let log_p = log_softmax(clean_logits, 1);
            let p = log_p.clone().exp();
            (p * (log_p - log_q)).sum_dim(1).mean()
        }
    }
}

/// Mean cross-entropy of `logits` `[N, K]` against integer `targets` `[N]` (nats).
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [n, _] = logits.dims();
    let log_p = log_softmax(logits, 1);
    log_p.gather(1, targets.reshape([n, 1])).mean().neg()
}

/// The parts of one classification step's loss.
#[derive(Clone, Debug)]
pub struct ClassificationLoss {
    /// `CE + α·Lstab`, what is differentiated.
    pub total: Tensor<1>,
    /// Cross-entropy on the clean copy.
    pub ce: Tensor<1>,
    /// The stability term (before the α weight); `None` when α = 0 and the noisy branch was not run.
    pub stability: Option<Tensor<1>>,
}

/// `CE(clean, y) + α · Lstab(clean, noisy)`. With `noisy_logits = None` (α = 0) it is exactly the
/// cross-entropy, so the baseline's step is the plain step.
pub fn classification_loss(
    clean_logits: Tensor<2>,
    noisy_logits: Option<Tensor<2>>,
    targets: Tensor<1, Int>,
    alpha: f64,
    form: StabilityForm,
) -> ClassificationLoss {
    let ce = cross_entropy(clean_logits.clone(), targets);
    match noisy_logits {
        Some(noisy) if alpha != 0.0 => {
            let stab = classification_stability(clean_logits, noisy, form);
            ClassificationLoss { total: ce.clone() + stab.clone().mul_scalar(alpha), ce, stability: Some(stab) }
        }
        _ => ClassificationLoss { total: ce.clone(), ce, stability: None },
    }
}

/// What the perturbed copy's prediction is pulled towards in a label-free stabilization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum StabTarget {
    /// The paper: the model's own prediction on the clean image, `Lstab(P(·|x), P(·|x'))`, with
    /// gradients through both branches.
    #[default]
    Student,
    /// The frozen original network's prediction on the clean image, `Lstab(P_t(·|x), P(·|x'))`
    /// (so a flat, "stable" prediction cannot win; the embedding's anchored design).
    Teacher,
    /// The frozen original network's top-1 class on the clean image as a hard label,
    /// `CE(P(·|x'), argmax P_t(·|x))`: the edited copy must keep the class the original gives the
    /// clean one, whatever the original's margin (pseudo-label consistency). The form (`kl`,
    /// `paper`) does not apply.
    Label,
}

impl StabTarget {
    pub fn is_student(&self) -> bool {
        *self == StabTarget::Student
    }
}

impl std::fmt::Display for StabTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StabTarget::Student => "student",
            StabTarget::Teacher => "teacher",
            StabTarget::Label => "label",
        })
    }
}

/// Label-free stabilization of a pretrained classifier `t` (frozen): `L0 = KL(P_t(·|x) ‖ P(·|x))`
/// (distillation to the original network's prediction on the clean image) `+ α · Lstab` between
/// the `target`'s clean prediction and the model's perturbed one (for [`StabTarget::Label`], the
/// cross-entropy of the perturbed one against the teacher's top-1). `teacher_logits` `[N, K]` is
/// detached here; `ce` of the result holds the distillation term. With `noisy_logits = None`
/// (α = 0) it is the distillation alone.
pub fn distillation_loss(
    clean_logits: Tensor<2>,
    noisy_logits: Option<Tensor<2>>,
    teacher_logits: Tensor<2>,
    alpha: f64,
    form: StabilityForm,
    target: StabTarget,
) -> ClassificationLoss {
    let teacher_logits = teacher_logits.detach();
    let l0 = classification_stability(teacher_logits.clone(), clean_logits.clone(), StabilityForm::Kl);
    match noisy_logits {
        Some(noisy) if alpha != 0.0 => {
            let stab = match target {
                StabTarget::Student => classification_stability(clean_logits, noisy, form),
                StabTarget::Teacher => classification_stability(teacher_logits, noisy, form),
                StabTarget::Label => {
                    let [n, _] = teacher_logits.dims();
                    cross_entropy(noisy, teacher_logits.argmax(1).reshape([n]))
                }
            };
            ClassificationLoss { total: l0.clone() + stab.clone().mul_scalar(alpha), ce: l0, stability: Some(stab) }
        }
        _ => ClassificationLoss { total: l0.clone(), ce: l0, stability: None },
    }
}

/// What a classifier is trained on (`--objective`); all use the same data, budget and `x'` draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Stability training: `CE(x) + α·Lstab(x, x')` (the paper; α = 0 is the baseline).
    #[default]
    Stability,
    /// Data augmentation: `CE(x')` only (the clean copy is not used).
    Augment,
    /// AugMix-style consistency: `CE(x) + α·JS(P(·|x), P(·|x'₁), P(·|x'₂))` with two independent
    /// draws `x'₁`, `x'₂` (AugMix's λ = α; its reference value is 12).
    Jsd,
}

impl Objective {
    /// Perturbed copies per image the step needs (the stabilized baseline α = 0 needs none).
    pub fn views(self, alpha: f64) -> usize {
        match self {
            Objective::Stability => usize::from(alpha > 0.0),
            Objective::Augment => 1,
            Objective::Jsd => 2,
        }
    }
}

impl std::str::FromStr for Objective {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "stability" => Ok(Objective::Stability),
            "augment" => Ok(Objective::Augment),
            "jsd" => Ok(Objective::Jsd),
            other => Err(format!("unknown objective '{other}' (known: stability, augment, jsd)")),
        }
    }
}

impl std::fmt::Display for Objective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Objective::Stability => "stability",
            Objective::Augment => "augment",
            Objective::Jsd => "jsd",
        })
    }
}

/// AugMix's Jensen–Shannon consistency of three predictions, each logits `[N, K]`:
/// `(KL(p₀‖M) + KL(p₁‖M) + KL(p₂‖M)) / 3` with `M = (p₀ + p₁ + p₂)/3` (clamped to ≥ 1e-7 before
/// the log, as AugMix does), averaged over the batch; nats, one-element tensor.
pub fn jensen_shannon(a: Tensor<2>, b: Tensor<2>, c: Tensor<2>) -> Tensor<1> {
    let (la, lb, lc) = (log_softmax(a, 1), log_softmax(b, 1), log_softmax(c, 1));
    let (pa, pb, pc) = (la.clone().exp(), lb.clone().exp(), lc.clone().exp());
    let log_m = ((pa.clone() + pb.clone() + pc.clone()).div_scalar(3.0)).clamp(1e-7, 1.0).log();
    let kl = |p: Tensor<2>, lp: Tensor<2>| (p * (lp - log_m.clone())).sum_dim(1).mean();
    (kl(pa, la) + kl(pb, lb) + kl(pc, lc)).div_scalar(3.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData, Tolerance};

    fn t2(v: [[f32; 2]; 1], device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::from(v), device)
    }

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_scalar::<f32>()
    }

    // Hand-computed case: clean logits [0, ln 3] -> p = [1/4, 3/4]; noisy logits [ln 3, 0] ->
    // q = [3/4, 1/4].
    //   paper = −(¼ ln ¾ + ¾ ln ¼)                  = 1.1116413
    //   kl    = paper + (¼ ln ¼ + ¾ ln ¾)          = 0.5493061
    //   ∂/∂noisy  = q − p                          = [0.5, −0.5] (both forms)
    //   ∂paper/∂clean_k = −p_k (ln q_k − Σ p ln q) = [−0.2059899, 0.2059899]
    //   ∂kl/∂clean_k    = ∂paper/∂clean_k + p_k (ln p_k − Σ p ln p) = [−0.4119798, 0.4119798]
    #[test]
    fn stability_value_and_gradients_match_hand_computation() {
        let device = Device::flex().autodiff();
        let ln3 = 3f32.ln();
        for (form, value, grad_clean) in [
            (StabilityForm::Paper, 1.1116413f32, [-0.2059899f32, 0.2059899]),
            (StabilityForm::Kl, 0.5493061, [-0.4119798, 0.4119798]),
        ] {
            let clean = t2([[0.0, ln3]], &device).require_grad();
            let noisy = t2([[ln3, 0.0]], &device).require_grad();
            let loss = classification_stability(clean.clone(), noisy.clone(), form);
            assert!((scalar(loss.clone()) - value).abs() < 1e-5, "{form}");
            let grads = loss.backward();
            let tol = Tolerance::absolute(1e-5);
            noisy.grad(&grads).unwrap().to_data().assert_approx_eq::<f32>(&TensorData::from([[0.5f32, -0.5]]), tol);
            clean.grad(&grads).unwrap().to_data().assert_approx_eq::<f32>(&TensorData::from([grad_clean]), tol);
        }
    }

    #[test]
    fn kl_is_zero_for_equal_predictions_and_paper_is_the_entropy() {
        let device = Device::flex();
        let z = Tensor::<2>::from_data(TensorData::from([[1.0f32, 2.0, 0.5], [0.0, 0.0, 3.0]]), &device);
        let kl = scalar(classification_stability(z.clone(), z.clone(), StabilityForm::Kl));
        assert!(kl.abs() < 1e-6, "{kl}");
        let paper = scalar(classification_stability(z.clone(), z.clone(), StabilityForm::Paper));
        let p = softmax(z, 1);
        let entropy = scalar((p.clone() * p.log()).sum_dim(1).mean().neg());
        assert!((paper - entropy).abs() < 1e-6, "{paper} vs {entropy}");
    }

    #[test]
    fn jensen_shannon_known_answer() {
        // p = [¼, ¾], q = [¾, ¼], r = [½, ½]: M = [½, ½]; KL(p‖M) = KL(q‖M) = ¼ ln ½ + ¾ ln (3/2)
        // = 0.1308120, KL(r‖M) = 0; JS = 2·0.1308120/3 = 0.0872080. Equal inputs give 0.
        let device = Device::flex();
        let ln3 = 3f32.ln();
        let js = jensen_shannon(t2([[0.0, ln3]], &device), t2([[ln3, 0.0]], &device), t2([[0.0, 0.0]], &device));
        assert!((scalar(js) - 0.0872080).abs() < 1e-5);
        let z = t2([[0.3, -2.0]], &device);
        assert!(scalar(jensen_shannon(z.clone(), z.clone(), z)).abs() < 1e-6);
        assert_eq!(Objective::Stability.views(0.0), 0);
        assert_eq!(Objective::Jsd.views(12.0), 2);
        assert_eq!("JSD".parse::<Objective>().unwrap(), Objective::Jsd);
        assert!("mixup".parse::<Objective>().is_err());
    }

    #[test]
    fn cross_entropy_known_answer() {
        // logits [0, ln 3] with target 1: −ln ¾ = 0.2876821; target 0: −ln ¼ = 1.3862944; mean 0.8369882.
        let device = Device::flex();
        let z = Tensor::<2>::from_data(TensorData::from([[0.0f32, 3f32.ln()], [0.0, 3f32.ln()]]), &device);
        let y = Tensor::<1, Int>::from_data(TensorData::from([1i64, 0]), &device);
        assert!((scalar(cross_entropy(z, y)) - 0.8369882).abs() < 1e-5);
    }

    /// Teacher [0, ln 3] (p = [¼, ¾]), student clean [ln 3, 0] (q = [¾, ¼]): L0 = KL(p‖q) =
    /// 0.5493061 with gradient q − p = [0.5, −0.5] on the student and none on the teacher; the
    /// student's noisy copy equal to its clean one adds a zero KL.
    #[test]
    fn distillation_is_kl_to_the_frozen_teacher_plus_the_students_own_stability() {
        let device = Device::flex().autodiff();
        let ln3 = 3f32.ln();
        let teacher = t2([[0.0, ln3]], &device).require_grad();
        let clean = t2([[ln3, 0.0]], &device).require_grad();
        let with = |noisy: &Tensor<2>, target| {
            distillation_loss(clean.clone(), Some(noisy.clone()), teacher.clone(), 2.0, StabilityForm::Kl, target)
        };
        let l = with(&clean, StabTarget::Student);
        assert!((scalar(l.ce.clone()) - 0.5493061).abs() < 1e-5);
        assert!(scalar(l.stability.clone().unwrap()).abs() < 1e-6);
        let grads = l.total.backward();
        let tol = Tolerance::absolute(1e-5);
        clean.grad(&grads).unwrap().to_data().assert_approx_eq::<f32>(&TensorData::from([[0.5f32, -0.5]]), tol);
        assert!(teacher.grad(&grads).is_none());
        // Anchored to the teacher, the same copy is 0.5493061 away, with gradient α·(q − p) on it.
        let noisy = t2([[ln3, 0.0]], &device).require_grad();
        let l = with(&noisy, StabTarget::Teacher);
        assert!((scalar(l.stability.clone().unwrap()) - 0.5493061).abs() < 1e-5);
        let grads = l.total.backward();
        noisy.grad(&grads).unwrap().to_data().assert_approx_eq::<f32>(&TensorData::from([[1.0f32, -1.0]]), tol);
        // Against the teacher's top-1 (class 1) as a label: −ln ¼ = 1.3862944, gradient α·(q − e₁).
        let l = with(&noisy, StabTarget::Label);
        assert!((scalar(l.stability.clone().unwrap()) - 1.3862944).abs() < 1e-5);
        assert!((scalar(l.total.clone()) - (0.5493061 + 2.0 * 1.3862944)).abs() < 1e-5);
        let grads = l.total.backward();
        noisy.grad(&grads).unwrap().to_data().assert_approx_eq::<f32>(&TensorData::from([[1.5f32, -1.5]]), tol);
        assert!(teacher.grad(&grads).is_none());
        // α = 0: the distillation alone.
        let l = distillation_loss(clean.clone(), Some(clean), teacher, 0.0, StabilityForm::Kl, StabTarget::Teacher);
        assert!(l.stability.is_none());
    }

    #[test]
    fn alpha_zero_is_exactly_cross_entropy_with_the_same_gradient() {
        let device = Device::flex().autodiff();
        let data = TensorData::from([[0.3f32, -1.2, 2.0], [1.0, 0.1, -0.4]]);
        let y = Tensor::<1, Int>::from_data(TensorData::from([2i64, 0]), &device);
        let plain_in = Tensor::<2>::from_data(data.clone(), &device).require_grad();
        let plain = cross_entropy(plain_in.clone(), y.clone());
        let g_plain = plain_in.grad(&plain.clone().backward()).unwrap();

        let z = Tensor::<2>::from_data(data, &device).require_grad();
        let noisy = z.clone().add_scalar(0.5);
        let l = classification_loss(z.clone(), None, y.clone(), 0.0, StabilityForm::Paper);
        assert!(l.stability.is_none());
        assert_eq!(scalar(l.total.clone()), scalar(plain));
        let g = z.grad(&l.total.backward()).unwrap();
        assert_eq!(g.to_data(), g_plain.to_data());
        // With α > 0 the stability term is added with weight α.
        let l = classification_loss(z.clone(), Some(noisy), y, 0.25, StabilityForm::Kl);
        let (total, ce, stab) = (scalar(l.total), scalar(l.ce), scalar(l.stability.unwrap()));
        assert!((total - (ce + 0.25 * stab)).abs() < 1e-6);
    }
}
