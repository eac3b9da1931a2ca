//! f32 2-D convolution, 2×2 max-pooling and ReLU6 kernels on NCHW slices, for stabilize's pure-Rust
//! backend (burn-flex). A crate of its own so that its loops are optimised in every profile (the
//! workspace's dev profile builds its own crates at `opt-level = 1`).
//!
//! burn-flex 0.22 convolves by converting NCHW to NHWC, unfolding and multiplying, then converting
//! back; and under autodiff burn computes a convolution's weight gradient as another convolution
//! over batch-and-channel-swapped copies and its input gradient as a transposed convolution. On
//! the classifier's training step those copies and generic loops were most of the time
//! (docs/benchmarks.md). The kernels here stay in NCHW and do each of the four passes directly:
//!
//! - **dense** (`groups == 1`): per image, the input unfolded into a `[C_in·kH·kW, H'·W']` matrix
//!   (none for a 1×1, stride-1 convolution: the image is that matrix) and one matrix product
//!   ([`gemm`], the crate burn-flex uses); the input gradient is the transposed product folded
//!   back, the weight gradient the product of the output gradient with the unfolded input, summed
//!   over the images each thread holds;
//! - **depthwise** (`groups == C_in == C_out`, MobileNetV2's 3×3 layers): direct loops over rows,
//!   the inner one contiguous for stride 1, with the padding bounds computed once per kernel tap.
//!
//! Every function takes the tensors as contiguous slices in NCHW order (weights
//! `[C_out, C_in / groups, kH, kW]`) and writes a caller-allocated output. Work is spread over
//! rayon's pool, by image (dense) or by channel plane (depthwise).

pub mod activation;
pub mod conv;
pub mod pool;

pub use conv::{ConvGeometry, ConvKind};
