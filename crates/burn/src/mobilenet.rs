//! MobileNetV2 (Sandler et al. 2018) exactly as torchvision builds it (`width_mult = 1.0`), and a
//! loader for torchvision's ImageNet weights (`mobilenet_v2-b0353104.pth`, a legacy non-zip torch
//! pickle, read in Rust by burn-store's `pytorch-reader`; no Python at run time).
//!
//! Layout: `stem` (conv3×3/2 3→32, BN, ReLU6) → 17 inverted-residual `blocks` → `last`
//! (conv1×1 320→1280, BN, ReLU6) → global average pool → `classifier` (dropout, linear 1280→1000).
//! Inputs are `[N, 3, H, W]` RGB on the [0,1] scale; the model applies the ImageNet mean/std
//! normalisation itself, so perturbations are always on the [0,1] scale.
//!
//! Batch norm always runs in inference mode (running statistics, affine parameters still
//! trainable): fine-tuning uses small triplet batches in which the clean and the perturbed copies
//! travel together, and batch statistics would let one branch change the other's features.

use std::collections::HashMap;
use std::path::Path;

use burn::module::{Module, Param, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;

use crate::export::StateTensor;
use crate::layers::{conv2d_with, relu6};
use burn::store::pytorch_reader::{DType, PytorchReader};

/// ImageNet channel means on [0,1] (torchvision's `Normalize`).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations on [0,1].
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// Channels of the pooled feature vector.
pub const FEATURES: usize = 1280;
/// Number of inverted-residual blocks.
pub const BLOCKS: usize = 17;

/// torchvision's inverted-residual settings: expansion t, output channels c, repeats n, first stride s.
const SETTINGS: [(usize, usize, usize, usize); 7] =
    [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)];

/// Configuration of [`MobileNetV2`].
#[derive(Config, Debug, PartialEq)]
pub struct MobileNetV2Config {
    /// Classes of the classifier head (ImageNet: 1000).
    #[config(default = 1000)]
    pub num_classes: usize,
}

/// Convolution → batch norm (inference mode) → optional ReLU6.
#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm,
    relu6: bool,
}

impl ConvBn {
    fn new(device: &Device, cin: usize, cout: usize, kernel: usize, stride: usize, groups: usize, relu6: bool) -> Self {
        let p = (kernel - 1) / 2;
        let conv = Conv2dConfig::new([cin, cout], [kernel, kernel])
            .with_stride([stride, stride])
            .with_groups(groups)
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .with_bias(false)
            .init(device);
        let mut bn = BatchNormConfig::new(cout).init(device);
        bn.training = Param::from_bool(false);
        Self { conv, bn, relu6 }
    }

    /// `[N, Cin, H, W]` → `[N, Cout, H/stride, W/stride]`.
    ///
    /// The batch norm (inference mode, see the module docs) is folded into the convolution:
    /// `γ·(conv(x, w) + b − μ)/√(σ² + ε) + β = conv(x, w·k) + (b − μ)·k + β` with
    /// `k = γ/√(σ² + ε)` per output channel, one pass over the activations instead of the
    /// normalisation's several; `w`, `b`, `γ`, `β` keep their gradients through the folding.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // Through `layers`: libtorch gets its native convolution gradients and a vectorised ReLU6
        // backward instead of burn's masked fills.
        let (weight, bias) = self.folded();
        let x = conv2d_with(&self.conv, x, weight, bias);
        if self.relu6 { relu6(x) } else { x }
    }

    /// The convolution's weight `[Cout, Cin / groups, k, k]` and bias `[Cout]` with the batch norm
    /// folded in: burn's `BatchNorm` in inference mode (running statistics), which is how this
    /// network always runs it (`ConvBn::new` turns training mode off; nothing turns it on).
    pub fn folded(&self) -> (Tensor<4>, Tensor<1>) {
        let bn = &self.bn;
        let weight = self.conv.weight.val();
        let device = weight.device();
        let mean = bn.running_mean.value().to_device(&device);
        let var = bn.running_var.value().to_device(&device);
        let k = bn.gamma.val() / var.add_scalar(bn.epsilon).sqrt();
        let c = k.dims()[0];
        let shifted = match self.conv.bias.as_ref() {
            Some(b) => b.val() - mean,
            None => mean.neg(),
        };
        let bias = shifted * k.clone() + bn.beta.val();
        (weight * k.reshape([c, 1, 1, 1]), bias)
    }
}

/// Expand (1×1, ReLU6; absent when t = 1) → depthwise 3×3 (ReLU6) → project (1×1, linear), with a
/// residual connection when the stride is 1 and the channel count is unchanged.
#[derive(Module, Debug)]
pub struct InvertedResidual {
    pub expand: Option<ConvBn>,
    pub depthwise: ConvBn,
    pub project: ConvBn,
    residual: bool,
}

impl InvertedResidual {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = x.clone();
        if let Some(e) = &self.expand {
            h = e.forward(h);
        }
        let h = self.project.forward(self.depthwise.forward(h));
        if self.residual { h + x } else { h }
    }
}

/// The network; see the module docs.
#[derive(Module, Debug)]
pub struct MobileNetV2 {
    pub stem: ConvBn,
    pub blocks: Vec<InvertedResidual>,
    pub last: ConvBn,
    pub classifier: Linear,
}

impl MobileNetV2Config {
    /// Builds the network with random weights (use [`MobileNetV2::load_torchvision`] for ImageNet's).
    pub fn init(&self, device: &Device) -> MobileNetV2 {
        let stem = ConvBn::new(device, 3, 32, 3, 2, 1, true);
        let mut blocks = Vec::with_capacity(BLOCKS);
        let mut cin = 32;
        for (t, c, n, s) in SETTINGS {
            for i in 0..n {
                let stride = if i == 0 { s } else { 1 };
                let hidden = cin * t;
                blocks.push(InvertedResidual {
                    expand: (t != 1).then(|| ConvBn::new(device, cin, hidden, 1, 1, 1, true)),
                    depthwise: ConvBn::new(device, hidden, hidden, 3, stride, hidden, true),
                    project: ConvBn::new(device, hidden, c, 1, 1, 1, false),
                    residual: stride == 1 && cin == c,
                });
                cin = c;
            }
        }
        let last = ConvBn::new(device, cin, FEATURES, 1, 1, 1, true);
        let classifier = LinearConfig::new(FEATURES, self.num_classes).init(device);
        MobileNetV2 { stem, blocks, last, classifier }
    }
}

/// Why a weight file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{path}: not a readable torch checkpoint: {message}")]
    Read { path: String, message: String },
    #[error("{path}: tensor `{name}` is missing")]
    Missing { path: String, name: String },
    #[error("{path}: tensor `{name}` has shape {found:?} ({dtype}), expected {expected:?} (f32)")]
    Shape { path: String, name: String, found: Vec<usize>, expected: Vec<usize>, dtype: String },
    #[error("{path}: tensor `{name}` holds a non-finite value")]
    NonFinite { path: String, name: String },
}

/// The tensors of a torch checkpoint, read on demand and checked against the expected shapes.
struct Checkpoint {
    path: String,
    tensors: HashMap<String, burn::store::pytorch_reader::Tensor>,
}

impl Checkpoint {
    fn open(path: &Path) -> Result<Self, WeightsError> {
        let p = path.display().to_string();
        let reader =
            PytorchReader::new(path).map_err(|e| WeightsError::Read { path: p.clone(), message: e.to_string() })?;
        Ok(Self { path: p, tensors: reader.into_tensors() })
    }

    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, WeightsError> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| WeightsError::Missing { path: self.path.clone(), name: name.into() })?;
        if t.shape() != shape || t.dtype() != DType::F32 {
            return Err(WeightsError::Shape {
                path: self.path.clone(),
                name: name.into(),
                found: t.shape().to_vec(),
                expected: shape.to_vec(),
                dtype: format!("{:?}", t.dtype()),
            });
        }
        let bytes = t.read().map_err(|e| WeightsError::Read { path: self.path.clone(), message: e.to_string() })?;
        let v: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]])).collect();
        if v.iter().any(|x| !x.is_finite()) {
            return Err(WeightsError::NonFinite { path: self.path.clone(), name: name.into() });
        }
        Ok(v)
    }

    fn tensor<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        device: &Device,
    ) -> Result<Tensor<D>, WeightsError> {
        Ok(Tensor::from_data(TensorData::new(self.get(name, &shape)?, shape), device))
    }

    /// torchvision `Conv2dNormActivation` / bare conv + BN at `conv` and `bn` prefixes.
    fn conv_bn(&self, m: &mut ConvBn, conv: &str, bn: &str, device: &Device) -> Result<(), WeightsError> {
        let w = m.conv.weight.shape().dims::<4>();
        m.conv.weight = Param::from_tensor(self.tensor(&format!("{conv}.weight"), w, device)?);
        let c = w[0];
        m.bn.gamma = Param::from_tensor(self.tensor(&format!("{bn}.weight"), [c], device)?);
        m.bn.beta = Param::from_tensor(self.tensor(&format!("{bn}.bias"), [c], device)?);
        m.bn.running_mean = RunningState::new(self.tensor(&format!("{bn}.running_mean"), [c], device)?);
        m.bn.running_var = RunningState::new(self.tensor(&format!("{bn}.running_var"), [c], device)?);
        Ok(())
    }
}

impl MobileNetV2 {
    /// torchvision's state-dict prefixes of each [`ConvBn`] (its convolution's, its batch norm's),
    /// in the order of [`conv_bns`](Self::conv_bns): `features.0.*` is the stem, `features.{i+1}`
    /// block i (`conv.0` expand, `conv.1` depthwise, `conv.2`/`conv.3` project; one fewer index
    /// without an expansion), `features.18` the last convolution. The one naming that loading and
    /// [`torchvision_state`](Self::torchvision_state) share.
    fn torchvision_prefixes(&self) -> Vec<(String, String)> {
        let mut v = vec![("features.0.0".to_string(), "features.0.1".to_string())];
        for (i, b) in self.blocks.iter().enumerate() {
            let f = format!("features.{}.conv", i + 1);
            let (dw, pc, pb) = if b.expand.is_some() {
                v.push((format!("{f}.0.0"), format!("{f}.0.1")));
                (1, 2, 3)
            } else {
                (0, 1, 2)
            };
            v.push((format!("{f}.{dw}.0"), format!("{f}.{dw}.1")));
            v.push((format!("{f}.{pc}"), format!("{f}.{pb}")));
        }
        v.push(("features.18.0".into(), "features.18.1".into()));
        v
    }

    /// Every convolution + batch norm, stem first, then each block's expand, depthwise and
    /// project, then the last convolution.
    fn conv_bns(&self) -> Vec<&ConvBn> {
        let blocks = self.blocks.iter().flat_map(|b| b.expand.iter().chain([&b.depthwise, &b.project]));
        std::iter::once(&self.stem).chain(blocks).chain([&self.last]).collect()
    }

    /// [`conv_bns`](Self::conv_bns), mutable.
    fn conv_bns_mut(&mut self) -> Vec<&mut ConvBn> {
        let blocks = self.blocks.iter_mut().flat_map(|b| b.expand.iter_mut().chain([&mut b.depthwise, &mut b.project]));
        std::iter::once(&mut self.stem).chain(blocks).chain([&mut self.last]).collect()
    }

    /// torchvision's ImageNet weights from a `.pth` state dict (legacy or zip format). Every
    /// tensor is checked for name, shape, dtype and finiteness; the error names the first bad one.
    pub fn load_torchvision(path: &Path, device: &Device) -> Result<Self, WeightsError> {
        let ck = Checkpoint::open(path)?;
        let mut m = MobileNetV2Config::new().init(device);
        let prefixes = m.torchvision_prefixes();
        for (cb, (conv, bn)) in m.conv_bns_mut().into_iter().zip(&prefixes) {
            ck.conv_bn(cb, conv, bn, device)?;
        }
        let w: Tensor<2> = ck.tensor("classifier.1.weight", [1000, FEATURES], device)?;
        m.classifier.weight = Param::from_tensor(w.transpose());
        m.classifier.bias = Some(Param::from_tensor(ck.tensor("classifier.1.bias", [1000], device)?));
        Ok(m)
    }

    /// The network as torchvision's `mobilenet_v2()` state dict: every tensor
    /// `torchvision.models.mobilenet_v2(num_classes=K).load_state_dict(…, strict=True)` expects,
    /// under its name, in torch's layouts (linear weights `[out, in]`), with each batch norm's
    /// `num_batches_tracked` as 0 (unused in inference).
    pub fn torchvision_state(&self) -> Vec<StateTensor> {
        let mut out = Vec::new();
        for (cb, (conv, bn)) in self.conv_bns().into_iter().zip(self.torchvision_prefixes()) {
            out.push(StateTensor::of(format!("{conv}.weight"), cb.conv.weight.val()));
            out.push(StateTensor::of(format!("{bn}.weight"), cb.bn.gamma.val()));
            out.push(StateTensor::of(format!("{bn}.bias"), cb.bn.beta.val()));
            out.push(StateTensor::of(format!("{bn}.running_mean"), cb.bn.running_mean.value()));
            out.push(StateTensor::of(format!("{bn}.running_var"), cb.bn.running_var.value()));
            out.push(StateTensor::counter(format!("{bn}.num_batches_tracked")));
        }
        out.extend(StateTensor::linear("classifier.1", &self.classifier));
        out
    }

    /// ImageNet normalisation of `[N, 3, H, W]` on [0,1].
    pub fn normalize(x: Tensor<4>) -> Tensor<4> {
        let device = x.device();
        let mean = Tensor::<1>::from_data(TensorData::new(IMAGENET_MEAN.to_vec(), [3]), &device).reshape([1, 3, 1, 1]);
        let std = Tensor::<1>::from_data(TensorData::new(IMAGENET_STD.to_vec(), [3]), &device).reshape([1, 3, 1, 1]);
        (x - mean) / std
    }

    /// Stem and the first `k` blocks: `[N, 3, H, W]` on [0,1] → the activation after block `k`.
    pub fn trunk(&self, x: Tensor<4>, k: usize) -> Tensor<4> {
        let mut h = self.stem.forward(Self::normalize(x));
        for b in &self.blocks[..k] {
            h = b.forward(h);
        }
        h
    }

    /// Blocks `k..` and the last conv after [`trunk`](Self::trunk): the last feature map
    /// `[N, 1280, H/32, W/32]`.
    pub fn rest_map(&self, h: Tensor<4>, k: usize) -> Tensor<4> {
        let mut h = h;
        for b in &self.blocks[k..] {
            h = b.forward(h);
        }
        self.last.forward(h)
    }

    /// Blocks `k..` and the last conv after [`trunk`](Self::trunk), pooled: `[N, 1280]`.
    pub fn rest_pooled(&self, h: Tensor<4>, k: usize) -> Tensor<2> {
        let h = self.rest_map(h, k);
        let [n, c, _, _] = h.dims();
        h.mean_dim(3).mean_dim(2).reshape([n, c])
    }

    /// Logits `[N, classes]` from the activation after [`trunk`](Self::trunk)`(x, k)`.
    pub fn logits_from_trunk(&self, h: Tensor<4>, k: usize) -> Tensor<2> {
        self.classifier.forward(self.rest_pooled(h, k))
    }

    /// Marks the stem and the first `k` blocks as frozen (no gradients); the rest, the last conv
    /// and the classifier train. Call after building or loading, before training.
    pub fn freeze_first(mut self, k: usize) -> Self {
        self.stem = self.stem.freeze();
        self.blocks = self.blocks.into_iter().enumerate().map(|(i, b)| if i < k { b.freeze() } else { b }).collect();
        self
    }

    /// Marks blocks `j..`, the last conv and the classifier as frozen: with
    /// [`freeze_first`](Self::freeze_first)`(k)`, only blocks `k..j` train, and the gradients
    /// reach them through the frozen layers above.
    pub fn freeze_from(mut self, j: usize) -> Self {
        self.blocks = self.blocks.into_iter().enumerate().map(|(i, b)| if i >= j { b.freeze() } else { b }).collect();
        self.last = self.last.freeze();
        self.classifier = self.classifier.freeze();
        self
    }

    /// Global-average-pooled features `[N, 1280]` of inputs `[N, 3, H, W]` on [0,1].
    pub fn pooled(&self, x: Tensor<4>) -> Tensor<2> {
        self.rest_pooled(self.trunk(x, 0), 0)
    }

    /// ImageNet logits `[N, 1000]` (dropout is the identity at inference).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.classifier.forward(self.pooled(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torchvision_shapes_and_parameter_count() {
        let _guard = crate::test_rng_lock();
        let device = Device::flex();
        let m = MobileNetV2Config::new().init(&device);
        assert_eq!(m.blocks.len(), BLOCKS);
        // torchvision's mobilenet_v2() has 3,504,872 parameters; burn also counts the BN running
        // mean and variance (2 × 17,056 over the 52 batch norms), which torch keeps as buffers.
        assert_eq!(m.num_params(), 3_504_872 + 2 * 17_056);
        let x = Tensor::<4>::zeros([2, 3, 64, 64], &device);
        assert_eq!(m.trunk(x.clone(), 3).dims(), [2, 24, 16, 16]);
        assert_eq!(m.forward(x).dims(), [2, 1000]);
        // Residual blocks: stride 1 and same channels.
        let residual: Vec<bool> = m.blocks.iter().map(|b| b.residual).collect();
        let expect = [
            false, false, true, false, true, true, false, true, true, true, false, true, true, false, true, true, false,
        ];
        assert_eq!(residual, expect);
    }

    /// The folded batch norm gives what convolution then batch norm give, values and gradients
    /// (random statistics, a depthwise and a dense layer, with and without a conv bias).
    #[test]
    fn folded_batch_norm_equals_conv_then_batch_norm() {
        use burn::tensor::{Distribution, Tolerance};
        let _guard = crate::test_rng_lock();
        let device = Device::flex().autodiff();
        device.seed(7);
        for (cin, cout, groups, stride, bias) in [(4, 6, 1, 1, false), (5, 5, 5, 2, false), (3, 4, 1, 2, true)] {
            let mut layer = ConvBn::new(&device, cin, cout, 3, stride, groups, false);
            let stat = |lo: f64, hi: f64| Tensor::<1>::random([cout], Distribution::Uniform(lo, hi), &device);
            layer.bn.running_mean = RunningState::new(stat(-1.0, 1.0));
            layer.bn.running_var = RunningState::new(stat(0.1, 3.0));
            layer.bn.gamma = Param::from_tensor(stat(0.5, 2.0));
            layer.bn.beta = Param::from_tensor(stat(-1.0, 1.0));
            if bias {
                layer.conv.bias = Some(Param::from_tensor(stat(-1.0, 1.0)));
            }
            let x = Tensor::<4>::random([2, cin, 7, 6], Distribution::Normal(0.0, 1.0), &device).require_grad();
            let r = Tensor::<4>::random(layer.forward(x.clone()).dims(), Distribution::Normal(0.0, 1.0), &device);
            let folded = layer.forward(x.clone());
            let plain = layer.bn.forward(layer.conv.forward(x.clone()));
            let tol = Tolerance::absolute(1e-4);
            folded.to_data().assert_approx_eq::<f32>(&plain.to_data(), tol);
            let g1 = (folded * r.clone()).sum().backward();
            let g2 = (plain * r).sum().backward();
            let same = |a: Tensor<4>, b: Tensor<4>| a.to_data().assert_approx_eq::<f32>(&b.to_data(), tol);
            same(x.grad(&g1).unwrap(), x.grad(&g2).unwrap());
            let w = layer.conv.weight.val();
            same(w.grad(&g1).unwrap(), w.grad(&g2).unwrap());
            let (gamma, beta) = (layer.bn.gamma.val(), layer.bn.beta.val());
            for (t, what) in [(gamma, "gamma"), (beta, "beta")] {
                let (a, b) = (t.grad(&g1).unwrap(), t.grad(&g2).unwrap());
                assert!(a.to_data().try_to_vec::<f32>().unwrap().iter().any(|v| *v != 0.0), "{what}");
                a.to_data().assert_approx_eq::<f32>(&b.to_data(), tol);
            }
        }
    }

    #[test]
    fn missing_or_corrupt_weights_are_errors() {
        let _guard = crate::test_rng_lock();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.pth");
        std::fs::write(&p, b"not a pickle at all").unwrap();
        let e = MobileNetV2::load_torchvision(&p, &Device::flex()).unwrap_err();
        assert!(e.to_string().contains("bad.pth"), "{e}");
        let e = MobileNetV2::load_torchvision(&dir.path().join("absent.pth"), &Device::flex()).unwrap_err();
        assert!(matches!(e, WeightsError::Read { .. }), "{e}");
    }
}
