//! The libtorch side of [`super::LayerOps`] and [`super::LayerGrads`]: libtorch's native kernels
//! and gradients (`threshold_backward`, `hardtanh_backward`, its own autograd for
//! `convolution_backward`, channels-last pooling). Built with the `tch` feature.

use super::*;
use burn::backend::LibTorch;
use burn::backend::libtorch::TchTensor;

/// A tracked convolution on libtorch: the output with libtorch's autograd graph, whose leaves
/// are detached aliases of the inputs (no copy), so that the backward pass runs libtorch's
/// `convolution_backward`. Asymmetric padding keeps burn's path.
#[derive(Clone, Debug)]
pub enum TorchConvSaved {
    Graph { output: TchTensor, leaves: [TchTensor; 3] },
    Burn(BurnConvSaved<LibTorch>),
}

/// A tracked max pooling on libtorch: the input and libtorch's arg-max indices (int64,
/// NCHW-contiguous), for `max_pool2d_with_indices_backward`.
#[derive(Clone, Debug)]
pub struct TorchPoolSaved {
    x: TchTensor,
    indices: TchTensor,
    options: PoolOptions,
}

fn ints(v: [usize; 2]) -> [i64; 2] {
    v.map(|v| v as i64)
}

/// `x` `[N, C, H, W]` with channels-last strides (NHWC in memory): libtorch's CPU max pooling
/// vectorises over channels in that layout, and its NCHW kernel does not; measured 3–4×
/// faster here even with the two layout copies (docs/benchmarks.md).
fn channels_last(x: &tch::Tensor) -> tch::Tensor {
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

impl LayerOps for LibTorch {
    fn layer_max_pool2d(x: TchTensor, options: PoolOptions) -> TchTensor {
        let PoolOptions { kernel_size, stride, padding, dilation, ceil_mode } = options;
        let out = channels_last(&x.tensor).max_pool2d(
            ints(kernel_size),
            ints(stride),
            ints(padding),
            ints(dilation),
            ceil_mode,
        );
        TchTensor::new(out.contiguous())
    }
}

impl LayerGrads for LibTorch {
    type ConvSaved = TorchConvSaved;
    type PoolSaved = TorchPoolSaved;

    fn max_pool2d_saving(x: TchTensor, options: PoolOptions) -> (TchTensor, TorchPoolSaved) {
        let PoolOptions { kernel_size, stride, padding, dilation, ceil_mode } = options;
        let (out, indices) = channels_last(&x.tensor).max_pool2d_with_indices(
            ints(kernel_size),
            ints(stride),
            ints(padding),
            ints(dilation),
            ceil_mode,
        );
        let saved = TorchPoolSaved { x, indices: TchTensor::new(indices.contiguous()), options };
        (TchTensor::new(out.contiguous()), saved)
    }

    fn max_pool2d_grad(saved: TorchPoolSaved, grad: TchTensor) -> TchTensor {
        let PoolOptions { kernel_size, stride, padding, dilation, ceil_mode } = saved.options;
        TchTensor::new(saved.x.tensor.max_pool2d_with_indices_backward(
            &grad.tensor,
            ints(kernel_size),
            ints(stride),
            ints(padding),
            ints(dilation),
            ceil_mode,
            &saved.indices.tensor,
        ))
    }

    fn conv2d_saving(
        x: TchTensor,
        weight: TchTensor,
        bias: TchTensor,
        options: ConvOptions<2>,
    ) -> (TchTensor, TorchConvSaved) {
        if options.is_asymmetric() {
            let (out, saved) = BurnConvSaved::forward(x, weight, bias, options);
            return (out, TorchConvSaved::Burn(saved));
        }
        tch::with_grad(|| {
            // The leaves alias the inputs and share burn-tch's ownership count of their
            // storage, so burn never updates an input in place while libtorch's graph holds it.
            let leaves = [x, weight, bias]
                .map(|t| TchTensor::from_existing(t.tensor.detach().requires_grad_(true), t.storage.clone()));
            let output = tch::Tensor::conv2d(
                &leaves[0].tensor,
                &leaves[1].tensor,
                Some(&leaves[2].tensor),
                ints(options.stride),
                ints(options.padding_begin()),
                ints(options.dilation),
                options.groups as i64,
            );
            // burn gets a graph-free alias, so nothing downstream is recorded by libtorch. It
            // may update that alias in place: the convolution's backward does not read its
            // output, and the seed below only needs its shape and graph.
            let out = TchTensor::new(output.detach());
            (out, TorchConvSaved::Graph { output: TchTensor::new(output), leaves })
        })
    }

    fn conv2d_grads(saved: TorchConvSaved, grad: TchTensor, needed: [bool; 3]) -> [Option<TchTensor>; 3] {
        let (output, leaves) = match saved {
            TorchConvSaved::Burn(saved) => return saved.grads(grad, needed),
            TorchConvSaved::Graph { output, leaves } => (output, leaves),
        };
        let wanted: Vec<usize> = (0..3).filter(|&i| needed[i]).collect();
        if wanted.is_empty() {
            return [None, None, None];
        }
        // d(Σ output·grad)/d(input) is the convolution's vector-Jacobian product with `grad`:
        // libtorch's autograd runs its convolution_backward for exactly the wanted inputs.
        let mut computed = tch::with_grad(|| {
            let seed = output.tensor.reshape([-1]).dot(&grad.tensor.reshape([-1]));
            let inputs: Vec<&tch::Tensor> = wanted.iter().map(|&i| &leaves[i].tensor).collect();
            tch::Tensor::run_backward(&[seed], &inputs, false, false)
        })
        .into_iter();
        let mut result = [None, None, None];
        for i in wanted {
            result[i] = computed.next().map(TchTensor::new);
        }
        result
    }

    fn relu_grad(output: TchTensor, grad: TchTensor) -> TchTensor {
        TchTensor::new(output.tensor.threshold_backward(&grad.tensor, 0.0))
    }

    fn relu6_grad(output: TchTensor, grad: TchTensor) -> TchTensor {
        // PyTorch's ReLU6 backward; on the output it selects the same elements (0 < y < 6
        // exactly where 0 < x < 6).
        TchTensor::new(output.tensor.hardtanh_backward(&grad.tensor, 0.0, 6.0))
    }
}
