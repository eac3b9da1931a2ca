//! ReLU, ReLU6, 2-D convolution and max pooling as a burn backend extension, so that each backend
//! runs them, and computes their backward pass, with its own best kernels.
//!
//! burn 0.22's autodiff computes, through the `burn-backend` defaults that burn-tch does not
//! override, the ReLU gradient as a comparison plus a masked fill, ReLU6 as a clamp built from
//! comparisons and masked fills, and a convolution's weight and bias gradients as a convolution
//! over batch-and-channel-swapped tensors and a sum over a transposed copy; and libtorch's NCHW
//! max pooling does not vectorise. On libtorch each of these is several times slower than the
//! kernels PyTorch uses (`threshold_backward`, `hardtanh_backward`, `convolution_backward`,
//! channels-last pooling); together they were the difference between burn-tch and PyTorch on the
//! classifier's training step (docs/benchmarks.md). burn-flex pools through a generic 3-D kernel
//! and convolves through NHWC copies; [`flex`] runs convolutions and their gradients, the 2×2
//! pooling and ReLU6 on `stabilize-kernels` (NCHW, unfold + matrix product, direct depthwise loops).
//!
//! [`relu`], [`relu6`], [`conv2d`] and [`max_pool2d`] route through the [`LayerOps`] extension.
//! Under autodiff, the backward step asks the concrete backend's [`LayerGrads`] for the gradients:
//! libtorch answers with its native kernels (the convolution's through libtorch's own autograd,
//! whose graph keeps the convolution's inputs in place of burn's checkpoint, and its output, which
//! the consumer usually keeps anyway), flex with its own convolution, 2×2 pooling and ReLU6
//! kernels and burn's defaults for the rest, every other backend with burn's defaults, unchanged. Without
//! autodiff they are the backend's plain kernels, except the pooling on libtorch (channels-last)
//! and the convolution and pooling on flex. The functions are the
//! same on every backend; the tests compare values and gradients with burn's own layers.

// burn-tch's `LibTorch` is deprecated upstream, and still the fastest CPU backend here.
#![allow(deprecated)]

use std::fmt::Debug;

use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, Backend, Dispatch, TensorMetadata, backend_extension, get_or_init_device_settings};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::tensor::Tensor;
use burn::tensor::ops::ConvOptions;

/// The layers whose backward pass a backend may compute itself; see the module docs.
#[backend_extension(
    Autodiff,
    Flex: cfg(feature = "flex"),
    LibTorch: cfg(feature = "tch"),
    Cube: cfg(any(feature = "wgpu", feature = "cuda"))
)]
pub trait LayerOps: Backend {
    /// `max(x, 0)`, any shape.
    fn layer_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::relu(x)
    }

    /// `min(max(x, 0), 6)` (MobileNetV2's activation), any shape.
    fn layer_relu6(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_clamp(x, 0.0.into(), 6.0.into())
    }

    /// 2-D convolution with bias: x `[N, C_in, H, W]`, weight `[C_out, C_in / groups, kH, kW]`,
    /// bias `[C_out]` → `[N, C_out, H', W']`.
    fn layer_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, Some(bias), options)
    }

    /// 2-D max pooling: x `[N, C, H, W]` → `[N, C, H', W']`.
    fn layer_max_pool2d(x: FloatTensor<Self>, options: PoolOptions) -> FloatTensor<Self> {
        let PoolOptions { kernel_size, stride, padding, dilation, ceil_mode } = options;
        Self::max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode)
    }
}

/// Settings of a 2-D max pooling (symmetric padding), as burn's `max_pool2d` takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolOptions {
    /// Window `[kH, kW]`.
    pub kernel_size: [usize; 2],
    /// Step `[sH, sW]`.
    pub stride: [usize; 2],
    /// Padding on each side `[pH, pW]`.
    pub padding: [usize; 2],
    /// Spacing of the window's elements.
    pub dilation: [usize; 2],
    /// Output size rounded up instead of down.
    pub ceil_mode: bool,
}

/// How a concrete backend computes the gradients of [`LayerOps`] under autodiff.
pub trait LayerGrads: LayerOps {
    /// What a tracked convolution keeps from its forward pass for its backward pass.
    type ConvSaved: Clone + Send + Debug + 'static;

    /// The convolution's output and what its backward pass needs.
    fn conv2d_saving(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> (FloatTensor<Self>, Self::ConvSaved);

    /// Gradients of the loss for `[x, weight, bias]` from the output's gradient `grad`, each only
    /// where `needed` says so (`None` elsewhere).
    fn conv2d_grads(
        saved: Self::ConvSaved,
        grad: FloatTensor<Self>,
        needed: [bool; 3],
    ) -> [Option<FloatTensor<Self>>; 3];

    /// What a tracked max pooling keeps from its forward pass for its backward pass.
    type PoolSaved: Clone + Send + Debug + 'static;

    /// The pooling's output and what its backward pass needs.
    fn max_pool2d_saving(x: FloatTensor<Self>, options: PoolOptions) -> (FloatTensor<Self>, Self::PoolSaved);

    /// The pooling's input gradient from the output's gradient.
    fn max_pool2d_grad(saved: Self::PoolSaved, grad: FloatTensor<Self>) -> FloatTensor<Self>;

    /// The ReLU's input gradient from its output and the output's gradient.
    fn relu_grad(output: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::relu_backward(output, grad)
    }

    /// ReLU6's input gradient from its output and the output's gradient: `grad` where
    /// 0 < output < 6, zero elsewhere (PyTorch's `hardtanh` convention at the two kinks).
    fn relu6_grad(output: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let bool_dtype = get_or_init_device_settings::<Self>(&output.device()).bool_dtype;
        let low = Self::float_lower_equal_elem(output.clone(), 0.0.into(), bool_dtype);
        let high = Self::float_greater_equal_elem(output, 6.0.into(), bool_dtype);
        let grad = Self::float_mask_fill(grad, low, 0.0.into());
        Self::float_mask_fill(grad, high, 0.0.into())
    }
}

/// burn's own convolution backward: the inputs kept, the gradients from `burn-backend`'s
/// `conv2d_{x,weight,bias}_backward`.
#[derive(Clone, Debug)]
pub struct BurnConvSaved<B: Backend> {
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
    options: ConvOptions<2>,
}

impl<B: Backend> BurnConvSaved<B> {
    fn forward(
        x: FloatTensor<B>,
        weight: FloatTensor<B>,
        bias: FloatTensor<B>,
        options: ConvOptions<2>,
    ) -> (FloatTensor<B>, Self) {
        let out = B::conv2d(x.clone(), weight.clone(), Some(bias.clone()), options.clone());
        (out, Self { x, weight, bias, options })
    }

    fn grads(self, grad: FloatTensor<B>, needed: [bool; 3]) -> [Option<FloatTensor<B>>; 3] {
        let Self { x, weight, bias, options } = self;
        let gx = needed[0].then(|| B::conv2d_x_backward(x.clone(), weight.clone(), grad.clone(), options.clone()));
        let gw = needed[1].then(|| B::conv2d_weight_backward(x.clone(), weight, grad.clone(), options));
        let gb = needed[2].then(|| B::conv2d_bias_backward(x, bias, grad));
        [gx, gw, gb]
    }
}

/// burn's own max-pooling backward: the input and the arg-max indices kept.
#[derive(Clone, Debug)]
pub struct BurnPoolSaved<B: Backend> {
    x: FloatTensor<B>,
    indices: IntTensor<B>,
    options: PoolOptions,
}

impl<B: Backend> BurnPoolSaved<B> {
    fn forward(x: FloatTensor<B>, options: PoolOptions) -> (FloatTensor<B>, Self) {
        let PoolOptions { kernel_size, stride, padding, dilation, ceil_mode } = options;
        let int_dtype = get_or_init_device_settings::<B>(&x.device()).int_dtype;
        let pooled =
            B::max_pool2d_with_indices(x.clone(), kernel_size, stride, padding, dilation, ceil_mode, int_dtype);
        (pooled.output, Self { x, indices: pooled.indices, options })
    }

    fn grad(self, grad: FloatTensor<B>) -> FloatTensor<B> {
        let PoolOptions { kernel_size, stride, padding, dilation, ceil_mode } = self.options;
        B::max_pool2d_with_indices_backward(
            self.x,
            kernel_size,
            stride,
            padding,
            dilation,
            ceil_mode,
            grad,
            self.indices,
        )
        .x_grad
    }
}

#[cfg(feature = "flex")]
mod flex;

/// The CubeCL backends (wgpu, cuda): burn's default kernels and gradients.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod cube {
    use super::*;
    use burn::backend::Cube;

    impl LayerOps for Cube {}

    impl LayerGrads for Cube {
        type ConvSaved = BurnConvSaved<Cube>;
        type PoolSaved = BurnPoolSaved<Cube>;

        fn conv2d_saving(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            bias: FloatTensor<Self>,
            options: ConvOptions<2>,
        ) -> (FloatTensor<Self>, Self::ConvSaved) {
            BurnConvSaved::forward(x, weight, bias, options)
        }

        fn conv2d_grads(
            saved: Self::ConvSaved,
            grad: FloatTensor<Self>,
            needed: [bool; 3],
        ) -> [Option<FloatTensor<Self>>; 3] {
            saved.grads(grad, needed)
        }

        fn max_pool2d_saving(x: FloatTensor<Self>, options: PoolOptions) -> (FloatTensor<Self>, Self::PoolSaved) {
            BurnPoolSaved::forward(x, options)
        }

        fn max_pool2d_grad(saved: Self::PoolSaved, grad: FloatTensor<Self>) -> FloatTensor<Self> {
            saved.grad(grad)
        }
    }
}

#[cfg(feature = "tch")]
mod libtorch;

/// The element-wise activations of [`LayerOps`], whose gradients need only their output.
#[derive(Clone, Copy, Debug)]
enum Activation {
    Relu,
    Relu6,
}

impl Activation {
    fn forward<B: LayerGrads>(self, x: FloatTensor<B>) -> FloatTensor<B> {
        match self {
            Activation::Relu => B::layer_relu(x),
            Activation::Relu6 => B::layer_relu6(x),
        }
    }

    fn grad<B: LayerGrads>(self, output: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
        match self {
            Activation::Relu => B::relu_grad(output, grad),
            Activation::Relu6 => B::relu6_grad(output, grad),
        }
    }
}

/// An activation under autodiff: the concrete backend's forward; its output kept for
/// [`Activation::grad`].
fn activation<B: LayerGrads, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    act: Activation,
) -> FloatTensor<Autodiff<B, C>> {
    #[derive(Debug)]
    struct ActivationStep(Activation);

    impl<B: LayerGrads> Backward<B, 1> for ActivationStep {
        type State = FloatTensor<B>;

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let output = ops.state;
            unary::<B, _>(ops.parents, ops.node, grads, |grad| self.0.grad::<B>(output, grad));
        }
    }

    let (x, node) = x.into_parts();
    match ActivationStep(act).prepare::<C>([node]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let output = act.forward::<B>(x);
            prep.finish(output.clone(), output)
        }
        OpsKind::UnTracked(prep) => prep.finish(act.forward::<B>(x)),
    }
}

impl<B: LayerGrads, C: CheckpointStrategy> LayerOps for Autodiff<B, C> {
    fn layer_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        activation::<B, C>(x, Activation::Relu)
    }

    fn layer_relu6(x: FloatTensor<Self>) -> FloatTensor<Self> {
        activation::<B, C>(x, Activation::Relu6)
    }

    fn layer_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct ConvStep;

        impl<B: LayerGrads> Backward<B, 3> for ConvStep {
            type State = B::ConvSaved;

            fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
                let grad = grads.consume::<B>(&ops.node);
                let [px, pw, pb] = ops.parents;
                let needed = [px.is_some(), pw.is_some(), pb.is_some()];
                let computed = B::conv2d_grads(ops.state, grad, needed);
                for (parent, g) in [px, pw, pb].into_iter().zip(computed) {
                    if let (Some(parent), Some(g)) = (parent, g) {
                        grads.register::<B>(parent.id, g);
                    }
                }
            }
        }

        let (x, nx) = x.into_parts();
        let (weight, nw) = weight.into_parts();
        let (bias, nb) = bias.into_parts();
        match ConvStep.prepare::<C>([nx, nw, nb]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (output, saved) = B::conv2d_saving(x, weight, bias, options);
                prep.finish(saved, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::layer_conv2d(x, weight, bias, options)),
        }
    }

    fn layer_max_pool2d(x: FloatTensor<Self>, options: PoolOptions) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct PoolStep;

        impl<B: LayerGrads> Backward<B, 1> for PoolStep {
            type State = B::PoolSaved;

            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                let saved = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |grad| B::max_pool2d_grad(saved, grad));
            }
        }

        let (x, node) = x.into_parts();
        match PoolStep.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (output, saved) = B::max_pool2d_saving(x, options);
                prep.finish(saved, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::layer_max_pool2d(x, options)),
        }
    }
}

/// `max(x, 0)` through [`LayerOps`]; the same function as `burn::tensor::activation::relu`.
pub fn relu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as LayerOps>::layer_relu(x.into_dispatch()))
}

/// `x.clamp(0, 6)` through [`LayerOps`], with PyTorch's gradient convention at 0 and 6 (zero).
pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as LayerOps>::layer_relu6(x.into_dispatch()))
}

/// `pool.forward(x)` (x `[N, C, H, W]`) through [`LayerOps`] when its padding is explicit and
/// symmetric, or none; burn's own forward otherwise.
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match pool.padding {
        PaddingConfig2d::Valid => [0, 0],
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => [top, left],
        _ => return pool.forward(x),
    };
    let options = PoolOptions {
        kernel_size: pool.kernel_size,
        stride: pool.stride,
        padding,
        dilation: pool.dilation,
        ceil_mode: pool.ceil_mode,
    };
    Tensor::from_dispatch(<Dispatch as LayerOps>::layer_max_pool2d(x.into_dispatch(), options))
}

/// `conv.forward(x)` (x `[N, C_in, H, W]` → `[N, C_out, H', W']`) through [`LayerOps`] when the
/// padding is explicit or none (a layer without bias gets a constant zero bias, which nothing
/// differentiates); burn's own forward otherwise.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    if matches!(conv.padding, PaddingConfig2d::Same) {
        return conv.forward(x);
    }
    let weight = conv.weight.val();
    let bias = match conv.bias.as_ref() {
        Some(bias) => bias.val(),
        None => Tensor::zeros([weight.dims()[0]], &weight.device()),
    };
    conv2d_with(conv, x, weight, bias)
}

/// `conv`'s convolution (its stride, explicit or no padding, dilation and groups) with another
/// `weight` `[C_out, C_in / groups, kH, kW]` and `bias` `[C_out]` (a batch norm folded into them),
/// through [`LayerOps`].
///
/// # Panics
/// With `PaddingConfig2d::Same`, whose padding burn computes privately; the models here pad
/// explicitly.
pub(crate) fn conv2d_with(conv: &Conv2d, x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>) -> Tensor<4> {
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [(0, 0), (0, 0)],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        PaddingConfig2d::Same => panic!("conv2d_with: `Same` padding is not supported; pad explicitly"),
    };
    let options = ConvOptions::new_with_padding(conv.stride, padding, conv.dilation, conv.groups);
    Tensor::from_dispatch(<Dispatch as LayerOps>::layer_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        options,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::{Module, Param};
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::{Device, Distribution, TensorData, Tolerance, activation};

    fn data4(v: Vec<f32>, shape: [usize; 4], device: &Device) -> Tensor<4> {
        Tensor::from_data(TensorData::new(v, shape), device)
    }

    /// Hand-computed: a 1×1 convolution with weight 2 and bias 1 on [1, 2, 3, 4] gives
    /// [3, 5, 7, 9]; the gradients of Σ relu(y − 6) are ∂x = 2·[0, 0, 1, 1], ∂w = 3 + 4 = 7,
    /// ∂b = 2.
    fn hand_computed(device: Device) {
        let x = data4(vec![1., 2., 3., 4.], [1, 1, 2, 2], &device).require_grad();
        let mut conv = Conv2dConfig::new([1, 1], [1, 1]).init(&device);
        conv.weight = Param::from_tensor(Tensor::full([1, 1, 1, 1], 2.0, &device));
        conv.bias = Some(Param::from_tensor(Tensor::full([1], 1.0, &device)));
        let y = conv2d(&conv, x.clone());
        y.to_data()
            .assert_approx_eq::<f32>(&TensorData::new(vec![3f32, 5., 7., 9.], [1, 1, 2, 2]), Tolerance::absolute(1e-6));
        let grads = relu(y.sub_scalar(6.0)).sum().backward();
        let tol = Tolerance::absolute(1e-6);
        x.grad(&grads)
            .unwrap()
            .to_data()
            .assert_approx_eq::<f32>(&TensorData::new(vec![0f32, 0., 2., 2.], [1, 1, 2, 2]), tol);
        conv.weight
            .val()
            .grad(&grads)
            .unwrap()
            .to_data()
            .assert_approx_eq::<f32>(&TensorData::new(vec![7f32], [1, 1, 1, 1]), tol);
        let bias = conv.bias.as_ref().unwrap().val();
        bias.grad(&grads).unwrap().to_data().assert_approx_eq::<f32>(&TensorData::from([2f32]), tol);
    }

    /// Values and every gradient equal burn's own `Conv2d::forward` and `activation::relu`, for
    /// strides, groups and symmetric and asymmetric padding, with and without autodiff.
    fn same_as_burn(device: Device) {
        let plain = device.clone();
        let device = device.autodiff();
        let tol = Tolerance::absolute(2e-4);
        let pool2 = MaxPool2dConfig::new([2, 2]).init();
        let pool3 = MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init();
        for (channels, stride, groups, padding, pool) in [
            ([3, 4], [1, 1], 1, PaddingConfig2d::Explicit(1, 1, 1, 1), &pool2),
            ([4, 6], [2, 1], 2, PaddingConfig2d::Explicit(1, 1, 1, 1), &pool3),
            ([3, 5], [1, 2], 1, PaddingConfig2d::Valid, &pool3),
            ([2, 3], [1, 1], 1, PaddingConfig2d::Explicit(1, 0, 0, 1), &pool2),
        ] {
            let case =
                format!("{channels:?} stride {stride:?} groups {groups} {padding:?} pool {:?}", pool.kernel_size);
            let conv = Conv2dConfig::new(channels, [3, 3])
                .with_stride(stride)
                .with_groups(groups)
                .with_padding(padding)
                .init(&device);
            let x = Tensor::<4>::random([2, channels[0], 7, 6], Distribution::Normal(0.0, 1.0), &device);
            let run = |ours: bool| {
                let x = x.clone().detach().require_grad();
                let y = if ours {
                    relu(max_pool2d(pool, conv2d(&conv, x.clone())))
                } else {
                    activation::relu(pool.forward(conv.forward(x.clone())))
                };
                let weights = y.random_like(Distribution::Normal(0.0, 1.0));
                (x, y, weights)
            };
            let (x_ours, y_ours, r) = run(true);
            let (x_burn, y_burn, _) = run(false);
            y_ours.to_data().assert_approx_eq::<f32>(&y_burn.to_data(), tol);
            assert!(!y_ours.clone().lower_elem(0.0).any().into_scalar::<bool>(), "{case}: relu output < 0");
            let g_ours = (y_ours * r.clone()).sum().backward();
            let g_burn = (y_burn * r).sum().backward();
            let grad = |t: &Tensor<4>, g| t.grad(g).expect("tracked");
            grad(&x_ours, &g_ours).to_data().assert_approx_eq::<f32>(&grad(&x_burn, &g_burn).to_data(), tol);
            let w = conv.weight.val();
            w.grad(&g_ours).unwrap().to_data().assert_approx_eq::<f32>(&w.grad(&g_burn).unwrap().to_data(), tol);
            let b = conv.bias.as_ref().unwrap().val();
            b.grad(&g_ours).unwrap().to_data().assert_approx_eq::<f32>(&b.grad(&g_burn).unwrap().to_data(), tol);

            // Without autodiff: the backend's plain convolution.
            let conv = conv.valid();
            let x = x.clone().detach().to_device(&plain);
            let ours = max_pool2d(pool, conv2d(&conv, x.clone()));
            ours.to_data().assert_approx_eq::<f32>(&pool.forward(conv.forward(x)).to_data(), tol);
        }
    }

    /// ReLU6 after a convolution without bias (MobileNetV2's pattern): values and gradients equal
    /// burn's `Conv2d::forward` followed by `clamp(0, 6)` (inputs spread over [−3, 9], so both
    /// kinks are crossed; none sits exactly on one).
    fn relu6_and_bias_free_conv(device: Device) {
        let device = device.autodiff();
        let tol = Tolerance::absolute(2e-4);
        let conv = Conv2dConfig::new([4, 4], [3, 3])
            .with_groups(4)
            .with_bias(false)
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        let x = Tensor::<4>::random([2, 4, 6, 6], Distribution::Uniform(-3.0, 9.0), &device);
        let r = Tensor::<4>::random([2, 4, 6, 6], Distribution::Normal(0.0, 1.0), &device);
        let run = |ours: bool| {
            let x = x.clone().detach().require_grad();
            let y = if ours { relu6(conv2d(&conv, x.clone())) } else { conv.forward(x.clone()).clamp(0.0, 6.0) };
            let grads = (y.clone() * r.clone()).sum().backward();
            (y, x.grad(&grads).unwrap(), conv.weight.val().grad(&grads).unwrap())
        };
        let (y, gx, gw) = run(true);
        let (y_ref, gx_ref, gw_ref) = run(false);
        y.to_data().assert_approx_eq::<f32>(&y_ref.to_data(), tol);
        gx.to_data().assert_approx_eq::<f32>(&gx_ref.to_data(), tol);
        gw.to_data().assert_approx_eq::<f32>(&gw_ref.to_data(), tol);
        // The identity part alone: gradient 1 strictly inside (0, 6), 0 outside.
        let v = Tensor::<1>::from_floats([-1.0, 0.5, 5.5, 7.0], &device).require_grad();
        let grads = relu6(v.clone()).sum().backward();
        v.grad(&grads).unwrap().to_data().assert_approx_eq::<f32>(&TensorData::from([0f32, 1., 1., 0.]), tol);
    }

    /// A convolution's input used again after it (`conv(x)` and `relu(x)`): burn must not update
    /// the input in place while the convolution's backward still needs it.
    fn input_reused_after_conv(device: Device) {
        let device = device.autodiff();
        let conv = Conv2dConfig::new([2, 3], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(&device);
        let x = Tensor::<4>::random([2, 2, 5, 5], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let run = |ours: bool| {
            let x = x.clone().detach().require_grad();
            // An intermediate (not a leaf), whose last handle goes to the ReLU after the conv.
            let h = x.clone().mul_scalar(2.0);
            let (y, z) = if ours {
                let y = conv2d(&conv, h.clone());
                (y, relu(h))
            } else {
                let y = conv.forward(h.clone());
                (y, activation::relu(h))
            };
            let grads = (y.sum() + z.sum()).backward();
            (x.grad(&grads).unwrap(), conv.weight.val().grad(&grads).unwrap())
        };
        let (gx, gw) = run(true);
        let (gx_ref, gw_ref) = run(false);
        let tol = Tolerance::absolute(2e-4);
        gx.to_data().assert_approx_eq::<f32>(&gx_ref.to_data(), tol);
        gw.to_data().assert_approx_eq::<f32>(&gw_ref.to_data(), tol);
    }

    /// Only the gradients that something asks for are computed: a frozen input gets none.
    fn untracked_input(device: Device) {
        let device = device.autodiff();
        let conv = Conv2dConfig::new([2, 3], [3, 3]).init(&device);
        let x = Tensor::<4>::random([1, 2, 5, 5], Distribution::Default, &device);
        let grads = relu(conv2d(&conv, x.clone())).sum().backward();
        assert!(x.grad(&grads).is_none());
        assert!(conv.weight.val().grad(&grads).is_some());
    }

    /// Every check above, on one backend.
    fn all_checks(device: Device) {
        device.seed(3);
        hand_computed(device.clone().autodiff());
        same_as_burn(device.clone());
        relu6_and_bias_free_conv(device.clone());
        input_reused_after_conv(device.clone());
        untracked_input(device);
    }

    #[test]
    fn flex_matches_hand_computation_and_burn() {
        let _guard = crate::test_rng_lock();
        all_checks(Device::flex());
    }

    #[cfg(feature = "tch")]
    #[test]
    fn libtorch_matches_hand_computation_and_burn() {
        all_checks(Device::libtorch());
    }
}
