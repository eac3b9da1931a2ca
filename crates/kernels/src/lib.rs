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
//! - **depthwise** (`groups == C_in == C_out`, MobileNetV2's 3×3 layers): direct loops over rows
//!   of a padded copy of each plane whose rows are split by column modulo the stride, so that every
//!   tap reads (or, for the input gradient, writes) one contiguous run with no bounds to check.
//!
//! Every function takes the tensors as contiguous slices in NCHW order (weights
//! `[C_out, C_in / groups, kH, kW]`) and writes a caller-allocated output. Work is spread over
//! rayon's pool, by image (dense) or by channel plane (depthwise).

/// Defines a function whose body is compiled twice: for the build's target and, on x86-64, with
/// AVX2 and FMA enabled, which it runs when the CPU has them (checked at each call; the check is
/// a cached load). The hot loops here are plain iterator code; without this the default target
/// (x86-64 v1) gives them 4-wide SSE. Results do not depend on the path: no operation is fused.
#[macro_export]
#[doc(hidden)]
macro_rules! multiversion {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                if $crate::simd_allowed()
                    && ::std::is_x86_feature_detected!("avx2")
                    && ::std::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has the features `avx2` is compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

/// Tests force the plain copies of [`multiversion!`]'s functions with this (a process-wide count;
/// both copies give the same values, so other tests running meanwhile are unaffected).
static PLAIN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Whether [`multiversion!`] may pick its AVX2 copies (always, unless a test forces the plain ones).
#[doc(hidden)]
#[inline]
pub fn simd_allowed() -> bool {
    PLAIN.load(std::sync::atomic::Ordering::Relaxed) == 0
}

/// While held, [`multiversion!`]'s functions run their plain copies (tests only).
#[cfg(test)]
struct PlainPath;

#[cfg(test)]
impl PlainPath {
    fn force() -> Self {
        PLAIN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        PlainPath
    }
}

#[cfg(test)]
impl Drop for PlainPath {
    fn drop(&mut self) {
        PLAIN.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

pub mod activation;
pub mod conv;
pub mod pool;

pub use conv::{ConvGeometry, ConvKind};
