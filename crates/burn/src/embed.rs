//! The embedding network and its losses (the paper's near-duplicate / ranking experiment).
//!
//! `EmbedNet`: MobileNetV2 features → global average pool `[N, 1280]` → linear to `d` →
//! L2-normalise, so embeddings lie on the unit sphere and `D = ‖f(a) − f(b)‖₂ ∈ [0, 2]`.
//! The stem and the first `frozen_blocks` inverted-residual blocks are frozen (no gradients,
//! batch norm in inference mode), which keeps CPU fine-tuning practical.
//!
//! Losses, per triplet `(q, p, n)` and with `D(a, b) = sqrt(‖a − b‖² + ε)`:
//! - `L0 = max(0, g + D(q, p) − D(q, n))` (triplet hinge, margin `g`);
//! - `Lstab = D(f(q), f(q')) + D(f(p), f(p')) + D(f(n), f(n'))`, `x' = x + N(0, σ²)`;
//! - `L = mean over the batch of L0 + α · Lstab`.
//!
//! Or, anchored to the frozen pretrained network `t` (`--l0 distil`, [`distil_loss`]): the
//! projection starts as the identity on the pooled 1280-d features, so the student starts as the
//! pretrained descriptor, and with `t(x)` the teacher's unit features of the clean image,
//! - `L0 = mean ‖s(x) − t(x)‖` (keep what the pretrained network knows);
//! - `Lstab = mean ‖s(x') − t(x)‖` (the stability target is the teacher's f(x), so a constant map
//!   cannot win);
//! - `L = L0 + α · Lstab`.

use std::path::Path;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use crate::mobilenet::{BLOCKS, FEATURES, MobileNetV2, MobileNetV2Config, WeightsError};

/// Inside the square root of every distance, so the gradient at D = 0 is finite.
pub const DIST_EPS: f64 = 1e-8;

/// Configuration (data) of [`EmbedNet`]; saved with every run.
#[derive(Config, Debug, PartialEq)]
pub struct EmbedNetConfig {
    /// Embedding dimension d.
    #[config(default = 128)]
    pub dim: usize,
    /// Side of the square input in pixels.
    #[config(default = 128)]
    pub input_size: usize,
    /// Inverted-residual blocks (of 17) frozen after the stem, which is always frozen.
    #[config(default = 12)]
    pub frozen_blocks: usize,
}

/// The embedding network; see the module docs.
#[derive(Module, Debug)]
pub struct EmbedNet {
    pub backbone: MobileNetV2,
    pub proj: Linear,
    frozen_blocks: usize,
}

impl EmbedNetConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.dim == 0 {
            return Err("embedding dimension must be ≥ 1".into());
        }
        if self.frozen_blocks > BLOCKS {
            return Err(format!("frozen blocks must be ≤ {BLOCKS}, got {}", self.frozen_blocks));
        }
        if !(32..=1024).contains(&self.input_size) {
            return Err(format!("input size must be in 32..=1024 px, got {}", self.input_size));
        }
        Ok(())
    }

    /// Random backbone and projection (the shape to load a trained model into).
    pub fn init(&self, device: &Device) -> EmbedNet {
        EmbedNet {
            backbone: MobileNetV2Config::new().init(device),
            proj: LinearConfig::new(FEATURES, self.dim).init(device),
            frozen_blocks: self.frozen_blocks,
        }
    }

    /// The ImageNet backbone from torchvision weights and a fresh (seeded) projection.
    pub fn init_pretrained(&self, weights: &Path, device: &Device) -> Result<EmbedNet, WeightsError> {
        Ok(EmbedNet {
            backbone: MobileNetV2::load_torchvision(weights, device)?,
            proj: LinearConfig::new(FEATURES, self.dim).init(device),
            frozen_blocks: self.frozen_blocks,
        })
    }
}

impl EmbedNet {
    /// Marks the stem, the first `frozen_blocks` blocks and the unused ImageNet classifier as
    /// frozen (call after building or loading, before training).
    pub fn freeze_trunk(mut self) -> Self {
        self.backbone = self.backbone.freeze_first(self.frozen_blocks);
        self.backbone.classifier = self.backbone.classifier.freeze();
        self
    }

    /// Pooled backbone features `[N, 1280]` of `[N, 3, S, S]` on [0,1].
    pub fn pooled(&self, x: Tensor<4>) -> Tensor<2> {
        let k = self.frozen_blocks;
        let h = self.backbone.trunk(x, k);
        self.backbone.rest_pooled(h, k)
    }

    /// Embeddings `[N, d]`, unit L2 norm, of `[N, 3, S, S]` on [0,1].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        l2_normalize(self.proj.forward(self.pooled(x)))
    }

    /// Embeddings `[N·R, d]` (unit L2 norm; image `i`'s windows in rows `i·R..(i+1)·R`) of
    /// `[N, 3, S, S]` on [0,1], each pooled from the last feature map `[N, 1280, h, w]` with one
    /// row of `weights(h, w)` (`[R, h·w]` row-major, cell weights of a window such as
    /// [`map_window_weights`](stabilize_core::image::regions::map_window_weights) gives, rows
    /// summing to 1) instead of the global average. A row of `1/(h·w)` is [`forward`](Self::forward).
    ///
    /// Panics when the weights are not a whole number of rows of `h·w` cells.
    pub fn forward_windows(&self, x: Tensor<4>, weights: impl FnOnce(usize, usize) -> Vec<f32>) -> Tensor<2> {
        let k = self.frozen_blocks;
        let map = self.backbone.rest_map(self.backbone.trunk(x, k), k);
        let [n, c, h, w] = map.dims();
        let weights = weights(h, w);
        assert!(h * w > 0 && weights.len().is_multiple_of(h * w), "{} weights for a {h}×{w} map", weights.len());
        let r = weights.len() / (h * w);
        let device = map.device();
        // [R, hw] → [hw, R]; the map as [N·C, hw] · [hw, R] = [N·C, R] → [N, R, C] → [N·R, C].
        let wt = Tensor::<2>::from_data(TensorData::new(weights, [r, h * w]), &device).transpose();
        let pooled = map.reshape([n * c, h * w]).matmul(wt).reshape([n, c, r]).swap_dims(1, 2).reshape([n * r, c]);
        l2_normalize(self.proj.forward(pooled))
    }

    /// Embeddings `[N, d]` from the activation after the frozen trunk (`[N, C, h, w]`, what
    /// `backbone.trunk(x, frozen_blocks)` gives): the trainable rest, the projection, L2.
    pub fn forward_from_trunk(&self, h: Tensor<4>) -> Tensor<2> {
        l2_normalize(self.proj.forward(self.backbone.rest_pooled(h, self.frozen_blocks)))
    }

    /// Blocks frozen after the stem.
    pub fn frozen_blocks(&self) -> usize {
        self.frozen_blocks
    }

    /// Sets the projection to the identity with zero bias (needs `d = 1280`), so the embedding
    /// is the L2-normalised pooled features: the pretrained descriptor when the backbone is.
    pub fn with_identity_projection(mut self) -> Result<Self, String> {
        let [i, o] = self.proj.weight.dims();
        if i != o {
            return Err(format!("an identity projection needs dim = {FEATURES}, got {o}"));
        }
        let device = self.proj.weight.device();
        let eye = Tensor::<2>::eye(i, &device);
        self.proj.weight = self.proj.weight.map(|_| eye);
        self.proj.bias = self.proj.bias.map(|b| b.map(|t| t.zeros_like()));
        Ok(self)
    }
}

/// The anchored loss's parts: `L0 = mean_i ‖s(x_i) − t(x_i)‖`, `Lstab = mean_i ‖s(x'_i) − t(x_i)‖`,
/// total `L0 + α·Lstab` (one-element tensors; `stability` is `None` without `noisy` or with α = 0).
///
/// `student`: `[N, d]` unit embeddings of the clean images; `noisy`: `[N, d]` of their perturbed
/// copies; `teacher`: `[N, d]` the frozen network's unit features of the clean images (no
/// gradient flows into it).
pub fn distil_loss(student: Tensor<2>, noisy: Option<Tensor<2>>, teacher: Tensor<2>, alpha: f64) -> EmbedLoss {
    let teacher = teacher.detach();
    let l0 = pair_distance(student, teacher.clone()).mean();
    match noisy {
        Some(noisy) if alpha > 0.0 => {
            let stab = pair_distance(noisy, teacher).mean();
            EmbedLoss { total: l0.clone() + stab.clone().mul_scalar(alpha), triplet: l0, stability: Some(stab) }
        }
        _ => EmbedLoss { total: l0.clone(), triplet: l0, stability: None },
    }
}

/// The batch-contrastive term (InfoNCE, as SSCD and SimCLR use it) of the anchored design: each
/// perturbed copy must be nearer its own image's teacher features than every other key's,
/// `−mean_i log softmax_j(⟨x'_i, k_j⟩ / τ)[i]` over the keys `j` of other photos (and `i` itself:
/// crops of one photo are not each other's negatives).
///
/// `noisy`: `[N, d]` unit embeddings of the perturbed copies; `keys`: `[K ≥ N, d]` the frozen
/// network's unit features, the first N of the step's clean images (row i's positive is key i),
/// then any more (a bank of other crops); no gradient flows into them. `rows`: the photo of each
/// of the N rows; `key_photos`: of each key. `tau`: the temperature (SSCD: 0.05).
pub fn contrastive_loss(noisy: Tensor<2>, keys: Tensor<2>, rows: &[i64], key_photos: &[i64], tau: f64) -> Tensor<1> {
    let (n, k) = (rows.len(), key_photos.len());
    let device = noisy.device();
    // Logits are at most 1/τ: a −1e9 offset removes a pair from the softmax.
    let mask: Vec<f32> = (0..n * k)
        .map(|e| {
            let (i, j) = (e / k, e % k);
            if i != j && rows[i] == key_photos[j] { -1e9 } else { 0.0 }
        })
        .collect();
    let mask = Tensor::<2>::from_data(TensorData::new(mask, [n, k]), &device);
    let logits = noisy.matmul(keys.detach().transpose()).div_scalar(tau) + mask;
    let log_p = burn::tensor::activation::log_softmax(logits, 1);
    // Row i's positive is key i: the diagonal of the first N columns.
    (log_p.slice([0..n, 0..n]) * Tensor::<2>::eye(n, &device)).sum().neg().div_scalar(n as f64).reshape([1])
}

/// Rows scaled to unit L2 norm (`‖x‖ + 1e-12` in the denominator).
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().add_scalar(1e-12);
    x / norm
}

/// Row-wise distance `sqrt(‖a − b‖² + ε)`: `[N, d] × [N, d] → [N]`.
pub fn pair_distance(a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
    let n = a.dims()[0];
    (a - b).powi_scalar(2).sum_dim(1).add_scalar(DIST_EPS).sqrt().reshape([n])
}

/// The parts of one embedding step's loss (each a one-element tensor).
pub struct EmbedLoss {
    pub total: Tensor<1>,
    /// The mean L0: the triplet hinge, or the distillation distance for [`distil_loss`].
    pub triplet: Tensor<1>,
    /// Mean over triplets of the summed stability distances (before α); `None` when α = 0.
    pub stability: Option<Tensor<1>>,
}

/// `mean(max(0, g + D(q,p) − D(q,n))) + α · mean(Σ_{x∈q,p,n} D(f(x), f(x')))`.
///
/// `clean` is `[3B, d]` (the B queries, then the B positives, then the B negatives); `noisy` the
/// same rows for the perturbed copies (ignored, and may be `None`, when α = 0).
pub fn embed_loss(clean: Tensor<2>, noisy: Option<Tensor<2>>, margin: f64, alpha: f64) -> EmbedLoss {
    let b = clean.dims()[0] / 3;
    let q = clean.clone().narrow(0, 0, b);
    let p = clean.clone().narrow(0, b, b);
    let n = clean.clone().narrow(0, 2 * b, b);
    let hinge = (pair_distance(q.clone(), p) - pair_distance(q, n)).add_scalar(margin).clamp_min(0.0);
    let triplet = hinge.mean();
    match noisy {
        Some(noisy) if alpha > 0.0 => {
            // Σ over the three images of each triplet, then the mean over triplets: sum / B.
            let stability = pair_distance(clean, noisy).sum().div_scalar(b as f64);
            EmbedLoss {
                total: triplet.clone() + stability.clone().mul_scalar(alpha),
                triplet,
                stability: Some(stability),
            }
        }
        _ => EmbedLoss { total: triplet.clone(), triplet, stability: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Tolerance;

    fn t2(v: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v, [rows, cols]), device)
    }

    #[test]
    fn loss_value_known_answer() {
        let device = Device::flex();
        // One triplet in 2-D: q = (0,0), p = (3,4) → D = 5; n = (1,0) → D = 1. Margin 0.5:
        // hinge = 0.5 + 5 − 1 = 4.5. Noisy copies shifted by (0, 1), (0, 2), (2, 0): Lstab = 1 + 2 + 2 = 5.
        let clean = t2(vec![0., 0., 3., 4., 1., 0.], 3, 2, &device);
        let noisy = t2(vec![0., 1., 3., 6., 3., 0.], 3, 2, &device);
        let l = embed_loss(clean.clone(), Some(noisy.clone()), 0.5, 0.1);
        let v = |t: Tensor<1>| t.into_scalar::<f32>();
        assert!((v(l.triplet) - 4.5).abs() < 1e-5);
        assert!((v(l.stability.unwrap()) - 5.0).abs() < 1e-5);
        assert!((v(l.total) - 5.0).abs() < 1e-5);
        // α = 0 ignores the noisy rows; an easy triplet costs nothing.
        let l0 = embed_loss(clean, Some(noisy), 0.5, 0.0);
        assert!(l0.stability.is_none());
        let easy = t2(vec![0., 0., 1., 0., 5., 0.], 3, 2, &device);
        assert_eq!(v(embed_loss(easy, None, 0.5, 0.0).total), 0.0);
    }

    #[test]
    fn loss_gradient_matches_hand_computation() {
        let device = Device::flex().autodiff();
        let clean = t2(vec![0., 0., 3., 4., 1., 0.], 3, 2, &device).require_grad();
        let noisy = t2(vec![0., 1., 3., 6., 3., 0.], 3, 2, &device).require_grad();
        let l = embed_loss(clean.clone(), Some(noisy.clone()), 0.5, 0.1);
        let g = l.total.backward();
        // ∂hinge/∂q = (q − p)/D(q,p) − (q − n)/D(q,n) = (−0.6, −0.8) − (−1, 0) = (0.4, −0.8);
        // ∂Lstab/∂q = (q − q')/D = (0, −1), times α = 0.1 → (0.4, −0.9).
        // ∂/∂p = (p − q)/5 = (0.6, 0.8), + 0.1·(0, −1) → (0.6, 0.7).
        // ∂/∂n = −(n − q)/1 = (−1, 0), + 0.1·(−1, 0) → (−1.1, 0).
        let expect = TensorData::new(vec![0.4f32, -0.9, 0.6, 0.7, -1.1, 0.0], [3, 2]);
        clean.grad(&g).unwrap().to_data().assert_approx_eq::<f32>(&expect, Tolerance::absolute(1e-5));
        // The noisy branch gets the opposite of the stability part: gradients flow through both.
        let expect_noisy = TensorData::new(vec![0.0f32, 0.1, 0.0, 0.1, 0.1, 0.0], [3, 2]);
        noisy.grad(&g).unwrap().to_data().assert_approx_eq::<f32>(&expect_noisy, Tolerance::absolute(1e-5));
        // At D = 0 the ε keeps the gradient finite (0, not NaN).
        let same = t2(vec![1., 0., 1., 0., 0., 1.], 3, 2, &device).require_grad();
        let g = embed_loss(same.clone(), Some(same.clone().detach()), 0.5, 1.0).total.backward();
        assert!(same.grad(&g).unwrap().into_data().iter::<f32>().all(f32::is_finite));
    }

    #[test]
    fn distil_loss_known_answer_and_no_gradient_into_the_teacher() {
        let device = Device::flex().autodiff();
        // Student (1,0) and (0,1); teacher (1,0) and (0.6,0.8); noisy (0,1) and (0,1).
        // L0 = (0 + ‖(−0.6, 0.2)‖)/2 = √0.4/2; Lstab = (√2 + ‖(−0.6, 0.2)‖)/2.
        let s = t2(vec![1., 0., 0., 1.], 2, 2, &device).require_grad();
        let n = t2(vec![0., 1., 0., 1.], 2, 2, &device).require_grad();
        let t = t2(vec![1., 0., 0.6, 0.8], 2, 2, &device).require_grad();
        let l = distil_loss(s.clone(), Some(n.clone()), t.clone(), 2.0);
        let v = |t: Tensor<1>| t.into_scalar::<f32>();
        let d = 0.4f32.sqrt();
        assert!((v(l.triplet.clone()) - d / 2.0).abs() < 1e-4);
        assert!((v(l.stability.clone().unwrap()) - (2f32.sqrt() + d) / 2.0).abs() < 1e-4);
        assert!((v(l.total.clone()) - (d / 2.0 + (2f32.sqrt() + d))).abs() < 1e-4);
        let g = l.total.backward();
        assert!(t.grad(&g).is_none(), "the teacher is a target, not a parameter");
        // ∂L0/∂s₂ = (s₂ − t₂)/(2·‖s₂ − t₂‖) = (−0.6, 0.2)/(2√0.4).
        let gs: Vec<f32> = s.grad(&g).unwrap().try_into_vec_as::<f32>().unwrap();
        assert!((gs[2] + 0.6 / (2.0 * d)).abs() < 1e-4 && (gs[3] - 0.2 / (2.0 * d)).abs() < 1e-4, "{gs:?}");
        assert!(n.grad(&g).is_some());
        // α = 0: L0 alone.
        assert!(distil_loss(s.clone(), Some(n), t.clone(), 0.0).stability.is_none());
    }

    #[test]
    fn identity_projection_gives_the_pooled_features() {
        let _guard = crate::test_rng_lock();
        let device = Device::flex();
        let m = EmbedNetConfig::new().with_dim(FEATURES).with_input_size(32).init(&device);
        let m = m.with_identity_projection().unwrap();
        let x = Tensor::<4>::random([2, 3, 32, 32], burn::tensor::Distribution::Default, &device);
        let direct = l2_normalize(m.pooled(x.clone()));
        let h = m.backbone.trunk(x.clone(), m.frozen_blocks());
        direct.clone().into_data().assert_approx_eq::<f32>(&m.forward(x).into_data(), Tolerance::absolute(1e-5));
        direct.into_data().assert_approx_eq::<f32>(&m.forward_from_trunk(h).into_data(), Tolerance::absolute(1e-5));
        let small = EmbedNetConfig::new().with_dim(8).with_input_size(32).init(&device);
        assert!(small.with_identity_projection().unwrap_err().contains("1280"));
    }

    #[test]
    fn windows_pool_the_cells_they_weight() {
        let _guard = crate::test_rng_lock();
        let device = Device::flex();
        // 64 px → a 2×2 last map; rows: the whole, cell (row 1, col 0) alone, the top row.
        let m = EmbedNetConfig::new().with_dim(8).with_input_size(64).with_frozen_blocks(14).init(&device);
        let x = Tensor::<4>::random([2, 3, 64, 64], burn::tensor::Distribution::Default, &device);
        let weights = [0.25, 0.25, 0.25, 0.25, 0.0, 0.0, 1.0, 0.0, 0.5, 0.5, 0.0, 0.0];
        let e = m.forward_windows(x.clone(), |h, w| {
            assert_eq!((h, w), (2, 2));
            weights.to_vec()
        });
        assert_eq!(e.dims(), [6, 8]);
        let rows = |t: Tensor<2>, r: usize| t.reshape([2, 3, 8]).narrow(1, r, 1).reshape([2, 8]);
        let tol = Tolerance::absolute(1e-5);
        rows(e.clone(), 0).into_data().assert_approx_eq::<f32>(&m.forward(x.clone()).into_data(), tol);
        let map = m.backbone.rest_map(m.backbone.trunk(x, 14), 14);
        assert_eq!(map.dims(), [2, FEATURES, 2, 2]);
        let cell = map.clone().narrow(2, 1, 1).narrow(3, 0, 1).reshape([2, FEATURES]);
        rows(e.clone(), 1).into_data().assert_approx_eq::<f32>(&l2_normalize(m.proj.forward(cell)).into_data(), tol);
        let top = map.narrow(2, 0, 1).mean_dim(3).reshape([2, FEATURES]);
        rows(e, 2).into_data().assert_approx_eq::<f32>(&l2_normalize(m.proj.forward(top)).into_data(), tol);
    }

    #[test]
    fn embeddings_are_unit_norm_and_frozen_blocks_get_no_gradient() {
        let _guard = crate::test_rng_lock();
        let device = Device::flex().autodiff();
        let cfg = EmbedNetConfig::new().with_dim(8).with_input_size(32).with_frozen_blocks(15);
        let m = cfg.init(&device).freeze_trunk();
        let x = Tensor::<4>::random([3, 3, 32, 32], burn::tensor::Distribution::Default, &device);
        let e = m.forward(x);
        assert_eq!(e.dims(), [3, 8]);
        let norms: Vec<f32> = e.clone().powi_scalar(2).sum_dim(1).try_into_vec_as().unwrap();
        assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-4), "{norms:?}");
        let grads = burn::optim::GradientsParams::from_grads(e.sum().backward(), &m);
        assert!(grads.get::<4>(m.backbone.blocks[16].project.conv.weight.id).is_some());
        assert!(grads.get::<4>(m.backbone.blocks[3].project.conv.weight.id).is_none());
        assert!(grads.get::<4>(m.backbone.stem.conv.weight.id).is_none());
        assert!(cfg.with_frozen_blocks(18).validate().is_err());
    }
    #[test]
    fn contrastive_loss_known_answer_masks_same_photo_rows_and_spares_the_teacher() {
        let device = Device::flex().autodiff();
        // Three rows in 2-D; rows 0 and 1 are crops of one photo. τ = 1.
        // Row 0: logits to t = (1, 0.6, 0) with row 1 masked → −log(e¹ / (e¹ + e⁰)).
        // Row 1: (0.6, 0.8)·t = (0.6, 1, 0.8) with row 0 masked → −log(e¹ / (e¹ + e^0.8)).
        // Row 2: (0, 1)·t = (0, 0.8, 1), nothing masked → −log(e¹ / (e⁰ + e^0.8 + e¹)).
        let t = t2(vec![1., 0., 0.6, 0.8, 0., 1.], 3, 2, &device).require_grad();
        let x = t2(vec![1., 0., 0.6, 0.8, 0., 1.], 3, 2, &device).require_grad();
        let l = contrastive_loss(x.clone(), t.clone(), &[7, 7, 3], &[7, 7, 3], 1.0);
        let e = std::f64::consts::E;
        let want =
            ((1.0 + 1.0 / e).ln() + (1.0 + (0.8f64 - 1.0).exp()).ln() + (1.0 + (-1f64).exp() + (-0.2f64).exp()).ln())
                / 3.0;
        let got = l.clone().into_scalar::<f32>() as f64;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        let g = l.backward();
        assert!(t.grad(&g).is_none(), "the teacher is a target");
        assert!(x.grad(&g).is_some());
        // Unmasked, row 0 sees row 1 as a negative: a larger loss.
        let unmasked = contrastive_loss(x.clone(), t.clone(), &[1, 2, 3], &[1, 2, 3], 1.0).into_scalar::<f32>() as f64;
        assert!(unmasked > got + 0.05, "{unmasked} vs {got}");
        // A bank key is a negative for the rows of other photos and masked for its own photo's:
        // key (0, 1) of photo 3 adds e⁰ to row 0's softmax and e^0.8 to row 1's; row 2 (photo 3)
        // does not see it.
        let keys = t2(vec![1., 0., 0.6, 0.8, 0., 1., 0., 1.], 4, 2, &device);
        let banked =
            contrastive_loss(x.clone(), keys.clone(), &[7, 7, 3], &[7, 7, 3, 3], 1.0).into_scalar::<f32>() as f64;
        let want_b = ((1.0 + 1.0 / e + 1.0 / e).ln()
            + (1.0 + 2.0 * (0.8f64 - 1.0).exp()).ln()
            + (1.0 + (-1f64).exp() + (-0.2f64).exp()).ln())
            / 3.0;
        assert!((banked - want_b).abs() < 1e-5, "{banked} vs {want_b}");
    }
}
