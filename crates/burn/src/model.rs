//! The small classifier CNN for Fashion-MNIST-sized inputs (28×28×1, or 32×32×3).
//!
//! `conv3×3(C→w) → maxpool 2 → ReLU → conv3×3(w→2w) → maxpool 2 → ReLU → linear(2w·(S/4)²→F) → ReLU`
//! (pool and ReLU commute; pooling first does the activation on a quarter of the values)
//! gives the penultimate features `[N, F]`; a last linear layer gives the logits `[N, K]`. Inputs
//! are `[N, C, S, S]` on the [0,1] scale; the model standardises them with the dataset's mean and
//! standard deviation itself, so noise and distortions are always expressed on the [0,1] scale.
//! No batch norm and no dropout: both branches of a stability step see the same function.

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;

use crate::export::StateTensor;
use crate::layers::{conv2d, max_pool2d, relu};

/// Configuration (data) of [`SmallCnn`]; saved with every run as JSON.
#[derive(Config, Debug, PartialEq)]
pub struct SmallCnnConfig {
    /// Input channels (1 for grayscale, 3 for RGB).
    #[config(default = 1)]
    pub in_channels: usize,
    /// Input side in pixels (divisible by 4).
    #[config(default = 28)]
    pub input_size: usize,
    /// Number of classes.
    #[config(default = 10)]
    pub num_classes: usize,
    /// Channels of the first convolution (the second has twice as many).
    #[config(default = 16)]
    pub width: usize,
    /// Size of the penultimate feature vector.
    #[config(default = 128)]
    pub features: usize,
    /// Per-channel mean of the training pixels on [0,1] (Fashion-MNIST: 0.2860).
    #[config(default = 0.2860)]
    pub pixel_mean: f64,
    /// Per-channel standard deviation of the training pixels on [0,1] (Fashion-MNIST: 0.3530).
    #[config(default = 0.3530)]
    pub pixel_std: f64,
}

/// The classifier; see the module docs for the layout.
#[derive(Module, Debug)]
pub struct SmallCnn {
    conv1: Conv2d,
    conv2: Conv2d,
    pool: MaxPool2d,
    fc1: Linear,
    fc2: Linear,
    pixel_mean: f64,
    pixel_std: f64,
}

impl SmallCnnConfig {
    /// Builds the model on `device` with freshly initialised (Kaiming-uniform) weights.
    /// Call `device.seed(k)` first for reproducible weights; see [`materialize`].
    pub fn init(&self, device: &Device) -> SmallCnn {
        assert!(self.input_size.is_multiple_of(4), "input size must be divisible by 4");
        let w = self.width;
        let side = self.input_size / 4;
        let same = PaddingConfig2d::Explicit(1, 1, 1, 1);
        SmallCnn {
            conv1: Conv2dConfig::new([self.in_channels, w], [3, 3]).with_padding(same.clone()).init(device),
            conv2: Conv2dConfig::new([w, 2 * w], [3, 3]).with_padding(same).init(device),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            fc1: LinearConfig::new(2 * w * side * side, self.features).init(device),
            fc2: LinearConfig::new(self.features, self.num_classes).init(device),
            pixel_mean: self.pixel_mean,
            pixel_std: self.pixel_std,
        }
    }
}

impl SmallCnn {
    /// Penultimate features `[N, F]` (after ReLU) of inputs `[N, C, S, S]` on [0,1].
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let x = x.sub_scalar(self.pixel_mean).div_scalar(self.pixel_std);
        // ReLU after the pool: max-pooling and ReLU commute (ReLU is monotonic), so this is the
        // same function, with the activation and its backward on a quarter of the values.
        // Convolution, pooling and ReLU go through `layers`, which uses each backend's fastest
        // kernels where burn's defaults are slow (libtorch).
        let x = relu(max_pool2d(&self.pool, conv2d(&self.conv1, x)));
        let x = relu(max_pool2d(&self.pool, conv2d(&self.conv2, x)));
        let x: Tensor<2> = x.flatten(1, 3);
        relu(self.fc1.forward(x))
    }

    /// Logits `[N, K]` from penultimate features `[N, F]`.
    pub fn head(&self, features: Tensor<2>) -> Tensor<2> {
        self.fc2.forward(features)
    }

    /// The state dict of the same network as a plain torch `nn.Sequential(Conv2d(C, w, 3,
    /// padding=1), MaxPool2d(2), ReLU(), Conv2d(w, 2w, 3, padding=1), MaxPool2d(2), ReLU(),
    /// Flatten(), Linear(2w·(S/4)², F), ReLU(), Linear(F, K))`: keys `0.*`, `3.*`, `7.*`, `9.*`,
    /// linear weights in torch's `[out, in]`. Its input is the standardised image
    /// `(x − pixel_mean) / pixel_std`.
    pub fn sequential_state(&self) -> Vec<StateTensor> {
        let mut v = Vec::new();
        for (i, conv) in [(0, &self.conv1), (3, &self.conv2)] {
            v.push(StateTensor::of(format!("{i}.weight"), conv.weight.val()));
            v.push(StateTensor::of(format!("{i}.bias"), conv.bias.as_ref().expect("convolutions have a bias").val()));
        }
        v.extend(StateTensor::linear("7", &self.fc1));
        v.extend(StateTensor::linear("9", &self.fc2));
        v
    }

    /// Logits `[N, K]` of inputs `[N, C, S, S]` on [0,1].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.head(self.features(x))
    }
}

/// Forces the lazy parameter initialisation now, in field order, so the initial weights depend
/// only on the device seed and not on what else draws random numbers before the first forward.
pub fn materialize<M: Module>(model: &M) {
    struct Touch;
    impl ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let _ = p.val();
        }
    }
    model.visit(&mut Touch);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_parameter_count() {
        let _guard = crate::test_rng_lock();
        let device = Device::flex();
        let cfg = SmallCnnConfig::new();
        let m = cfg.init(&device);
        let x = Tensor::<4>::zeros([3, 1, 28, 28], &device);
        assert_eq!(m.features(x.clone()).dims(), [3, 128]);
        assert_eq!(m.forward(x).dims(), [3, 10]);
        // conv1 1·16·9+16, conv2 16·32·9+32, fc1 1568·128+128, fc2 128·10+10.
        assert_eq!(m.num_params(), 160 + 4_640 + 200_832 + 1_290);
        let rgb = SmallCnnConfig::new().with_in_channels(3).with_input_size(32).init(&device);
        assert_eq!(rgb.forward(Tensor::<4>::zeros([2, 3, 32, 32], &device)).dims(), [2, 10]);
    }

    #[test]
    fn same_seed_same_weights() {
        let _guard = crate::test_rng_lock();
        let device = Device::flex();
        let out = |seed| {
            device.seed(seed);
            let m = SmallCnnConfig::new().init(&device);
            materialize(&m);
            m.forward(Tensor::<4>::ones([1, 1, 28, 28], &device)).into_data()
        };
        let (a, b, c) = (out(5), out(5), out(6));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn config_round_trips_as_json() {
        let cfg = SmallCnnConfig::new().with_width(16);
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<SmallCnnConfig>(&json).unwrap(), cfg);
    }
}
