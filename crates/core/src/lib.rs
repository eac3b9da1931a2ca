//! # stabilize-core
//!
//! The framework-free core of `stabilize`: images, the distortion suite of Zheng et al. (CVPR
//! 2016), datasets and loaders, assets fetched from package registries, and metrics. Nothing here
//! depends on burn, so it is quick to build and test alone.

pub mod assets;
pub mod corruptions;
pub mod crops;
pub mod distort;
pub mod dupes;
pub mod embed_eval;
pub mod error;
pub mod fashion_mnist;
pub mod fsutil;
pub mod hash;
pub mod idx;
pub mod image;
pub mod image_bench;
#[cfg(feature = "index")]
pub mod index;
#[cfg(feature = "index")]
pub mod index_bench;
pub mod jpeg;
pub mod load;
pub mod metrics;
pub mod npy;
pub mod perturb;
pub mod report;
pub mod resize;
pub mod retrieval;
pub mod sweep;

pub use distort::Distortion;
pub use error::{Error, Result};
pub use image::{Channels, Image};
