//! flex: the convolutions (forward and gradients) on `stabilize-kernels`, and the 2×2, stride-2
//! max pooling of the classifier CNN; burn's defaults for everything else.
//!
//! **Convolutions.** burn-flex converts NCHW to NHWC and back around each forward convolution,
//! and burn's default backward computes the weight gradient as a convolution over swapped copies
//! and the input gradient as a transposed convolution. `stabilize_kernels::conv` stays in NCHW:
//! unfold + one matrix product per image for dense convolutions (none for 1×1), direct loops for
//! depthwise ones. f32 convolutions with `groups == 1` or depthwise go there; anything else
//! (other dtypes, other groupings) keeps burn's path.
//!
//! **Pooling.** burn-flex pools through its generic 3-D kernel, one window element at a time with
//! bounds checks (`max_pool3d_with_indices`, 22 % of the flex training step), and its backward
//! scatters through the same machinery. `stabilize_kernels::pool` does the common 2×2 / stride 2 / no padding case over
//! two input rows at a time, keeps the arg-max as one byte per output (its position in the window),
//! and writes the input gradient window by window. Same semantics as burn-flex: the first maximum
//! in window order wins, a NaN always wins (the last one). Every other pooling keeps burn's path.

use std::sync::Arc;

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{FloatTensorOps, ModuleOps};
use burn::tensor::{DType, TensorData};
use stabilize_kernels::{ConvGeometry, conv as kernels};

use super::*;

/// A tracked max pooling on flex.
#[derive(Clone, Debug)]
pub enum FlexPoolSaved {
    /// The 2×2 kernel's arg-max positions (0..4 in window order, one per output) and the input
    /// shape `[N, C, H, W]`.
    Window2 {
        positions: Arc<Vec<u8>>,
        input: [usize; 4],
    },
    Burn(Box<BurnPoolSaved<Flex>>),
}

/// `[N, C, H, W]` of an f32 flex tensor that the 2×2 kernel can pool (any layout), or `None`.
fn window2_shape(x: &FlexTensor, options: &PoolOptions) -> Option<[usize; 4]> {
    let plain =
        PoolOptions { kernel_size: [2, 2], stride: [2, 2], padding: [0, 0], dilation: [1, 1], ceil_mode: false };
    let dims: [usize; 4] = x.layout().shape().dims();
    let even = dims[2].is_multiple_of(2) && dims[3].is_multiple_of(2);
    let fits = *options == plain || (*options == PoolOptions { ceil_mode: true, ..plain } && even);
    (fits && x.dtype() == DType::F32 && dims[2] >= 2 && dims[3] >= 2).then_some(dims)
}

/// The values of a contiguous f32 tensor, in order.
fn f32_values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// Max of each 2×2 window of `x` `[N, C, H, W]` → `[N, C, H/2, W/2]`, and the winners' positions.
fn pool2(x: &FlexTensor, [n, c, h, w]: [usize; 4]) -> (FlexTensor, Vec<u8>) {
    let x = contiguous(x.clone());
    let mut out = vec![0f32; n * c * (h / 2) * (w / 2)];
    let mut positions = vec![0u8; out.len()];
    stabilize_kernels::pool::max_pool2x2(f32_values(&x), [n, c, h, w], &mut out, &mut positions);
    (FlexTensor::from_data(TensorData::new(out, [n, c, h / 2, w / 2])), positions)
}

/// The input gradient `[N, C, H, W]`: each output's gradient at its window's winner, zero elsewhere.
fn unpool2(grad: FlexTensor, positions: &[u8], shape: [usize; 4]) -> FlexTensor {
    let grad = contiguous(grad);
    new_f32(shape, |dx| stabilize_kernels::pool::max_unpool2x2(f32_values(&grad), positions, shape, dx))
}

/// A tracked convolution on flex.
#[derive(Clone, Debug)]
pub enum FlexConvSaved {
    /// The kernels' path: the input and weight (contiguous) and the shape (boxed, as burn's).
    Kernel(Box<(FlexTensor, FlexTensor, ConvGeometry)>),
    Burn(Box<BurnConvSaved<Flex>>),
}

/// The shape of a convolution that `stabilize_kernels` covers (f32, `groups == 1` or depthwise),
/// or `None`.
fn conv_geometry(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> Option<ConvGeometry> {
    if x.dtype() != DType::F32 || weight.dtype() != DType::F32 {
        return None;
    }
    let [batch, c_in, h, w]: [usize; 4] = x.layout().shape().dims();
    let [c_out, per_group, kh, kw]: [usize; 4] = weight.layout().shape().dims();
    let geometry = ConvGeometry {
        batch,
        c_in,
        h,
        w,
        c_out,
        kh,
        kw,
        stride: options.stride,
        pad_begin: options.padding_begin(),
        pad_end: options.padding_end(),
        dilation: options.dilation,
        groups: options.groups,
    };
    (per_group * options.groups == c_in && geometry.kind().is_some()).then_some(geometry)
}

/// `t` as a contiguous tensor (itself when it already is one).
fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() { t } else { t.to_contiguous() }
}

/// A new f32 tensor of `shape`, its values written by `fill`.
fn new_f32(shape: [usize; 4], fill: impl FnOnce(&mut [f32])) -> FlexTensor {
    let mut v = vec![0f32; shape.iter().product()];
    fill(&mut v);
    FlexTensor::from_data(TensorData::new(v, shape))
}

/// The convolution's output on the kernels' path.
fn conv_forward(g: &ConvGeometry, x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor) -> FlexTensor {
    let bias = contiguous(bias.clone());
    let shape = [g.batch, g.c_out, g.out_h().unwrap(), g.out_w().unwrap()];
    new_f32(shape, |out| kernels::forward(g, f32_values(x), f32_values(weight), f32_values(&bias), out))
}

/// `t` as a uniquely held, contiguous tensor whose storage is exactly its values, so that
/// `storage_mut` writes in place: `t` itself when it already is one (`into_data` hands the buffer
/// over without copying), a copy otherwise.
fn owned_f32(t: FlexTensor) -> FlexTensor {
    FlexTensor::from_data(t.into_data())
}

impl LayerOps for Flex {
    fn layer_relu6(x: FlexTensor) -> FlexTensor {
        if x.dtype() != DType::F32 {
            return Self::float_clamp(x, 0.0.into(), 6.0.into());
        }
        let mut x = owned_f32(x);
        stabilize_kernels::activation::relu6_in_place(x.storage_mut::<f32>());
        x
    }

    fn layer_conv2d(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        match conv_geometry(&x, &weight, &options) {
            Some(g) => conv_forward(&g, &contiguous(x), &contiguous(weight), &bias),
            None => Self::conv2d(x, weight, Some(bias), options),
        }
    }

    fn layer_max_pool2d(x: FlexTensor, options: PoolOptions) -> FlexTensor {
        match window2_shape(&x, &options) {
            Some(dims) => pool2(&x, dims).0,
            None => {
                let PoolOptions { kernel_size, stride, padding, dilation, ceil_mode } = options;
                Self::max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode)
            }
        }
    }
}

impl LayerGrads for Flex {
    type ConvSaved = FlexConvSaved;
    type PoolSaved = FlexPoolSaved;

    fn conv2d_saving(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        options: ConvOptions<2>,
    ) -> (FlexTensor, Self::ConvSaved) {
        match conv_geometry(&x, &weight, &options) {
            Some(geometry) => {
                let (x, weight) = (contiguous(x), contiguous(weight));
                let out = conv_forward(&geometry, &x, &weight, &bias);
                (out, FlexConvSaved::Kernel(Box::new((x, weight, geometry))))
            }
            None => {
                let (out, saved) = BurnConvSaved::forward(x, weight, bias, options);
                (out, FlexConvSaved::Burn(Box::new(saved)))
            }
        }
    }

    fn conv2d_grads(saved: Self::ConvSaved, grad: FlexTensor, needed: [bool; 3]) -> [Option<FlexTensor>; 3] {
        let (x, weight, g) = match saved {
            FlexConvSaved::Kernel(saved) => *saved,
            FlexConvSaved::Burn(saved) => return saved.grads(grad, needed),
        };
        let dy = contiguous(grad);
        let dy = f32_values(&dy);
        let dx = needed[0]
            .then(|| new_f32([g.batch, g.c_in, g.h, g.w], |dx| kernels::input_grad(&g, f32_values(&weight), dy, dx)));
        let dw = needed[1].then(|| {
            let shape = weight.layout().shape().dims();
            new_f32(shape, |dw| kernels::weight_grad(&g, f32_values(&x), dy, dw))
        });
        let db = needed[2].then(|| {
            let mut db = vec![0f32; g.c_out];
            kernels::bias_grad(&g, dy, &mut db);
            FlexTensor::from_data(TensorData::new(db, [g.c_out]))
        });
        [dx, dw, db]
    }

    fn max_pool2d_saving(x: FlexTensor, options: PoolOptions) -> (FlexTensor, FlexPoolSaved) {
        match window2_shape(&x, &options) {
            Some(dims) => {
                let (out, positions) = pool2(&x, dims);
                (out, FlexPoolSaved::Window2 { positions: Arc::new(positions), input: dims })
            }
            None => {
                let (out, saved) = BurnPoolSaved::forward(x, options);
                (out, FlexPoolSaved::Burn(Box::new(saved)))
            }
        }
    }

    fn relu6_grad(output: FlexTensor, grad: FlexTensor) -> FlexTensor {
        if output.dtype() != DType::F32 || grad.dtype() != DType::F32 {
            let bool_dtype = get_or_init_device_settings::<Self>(&output.device()).bool_dtype;
            let low = Self::float_lower_equal_elem(output.clone(), 0.0.into(), bool_dtype);
            let high = Self::float_greater_equal_elem(output, 6.0.into(), bool_dtype);
            let grad = Self::float_mask_fill(grad, low, 0.0.into());
            return Self::float_mask_fill(grad, high, 0.0.into());
        }
        let output = contiguous(output);
        let mut grad = owned_f32(grad);
        stabilize_kernels::activation::relu6_grad_in_place(f32_values(&output), grad.storage_mut::<f32>());
        grad
    }

    fn max_pool2d_grad(saved: FlexPoolSaved, grad: FlexTensor) -> FlexTensor {
        match saved {
            FlexPoolSaved::Window2 { positions, input } => unpool2(grad, &positions, input),
            FlexPoolSaved::Burn(saved) => saved.grad(grad),
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::{Device, Tensor, TensorData};

    use crate::layers::max_pool2d;

    /// Ours and burn-flex's pooling on `values` `[1, 2, 4, 5]`: outputs (NaN-aware) and input
    /// gradients of Σ output·weights must be identical.
    fn same_as_burn_flex(values: Vec<f32>) {
        let device = Device::flex().autodiff();
        let pool = MaxPool2dConfig::new([2, 2]).init();
        let weights = Tensor::<4>::from_data(
            TensorData::new((1..=8).map(|v| v as f32).collect::<Vec<_>>(), [1, 2, 2, 2]),
            &device,
        );
        let run = |ours: bool| {
            let x = Tensor::<4>::from_data(TensorData::new(values.clone(), [1, 2, 4, 5]), &device).require_grad();
            let y = if ours { max_pool2d(&pool, x.clone()) } else { pool.forward(x.clone()) };
            let grads = (y.clone() * weights.clone()).sum().backward();
            let y: Vec<f32> = y.into_data().to_vec().unwrap();
            let g: Vec<f32> = x.grad(&grads).unwrap().into_data().to_vec().unwrap();
            (y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), g)
        };
        assert_eq!(run(true), run(false));
    }

    #[test]
    fn ties_and_nans_follow_burn_flex() {
        let _guard = crate::test_rng_lock();
        // Ties everywhere (a blank background): the first element of each window wins.
        same_as_burn_flex(vec![0.5; 40]);
        // NaNs win; with two in a window the last one does; -inf and ties around them.
        let mut v: Vec<f32> = (0..40).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        v[1] = f32::NAN;
        v[6] = f32::NAN;
        v[2] = f32::NEG_INFINITY;
        v[22] = 9.0;
        v[23] = 9.0;
        v[27] = 9.0;
        same_as_burn_flex(v);
    }
}
