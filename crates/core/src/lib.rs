//! # stabilize-core
//!
//! The framework-free core of `stabilize`: images and codecs, distortions and perturbations,
//! datasets and assets, evaluation protocols and metrics, near-duplicate search and the index,
//! and the HTML report. Nothing here depends on burn, so it is quick to build and test alone.
//!
//! | module | what is in it |
//! |---|---|
//! | [`image`] | [`Image`], JPEG (libjpeg-turbo), resampling, loading, perceptual hashes, codec bench |
//! | [`distort`] | [`Distortion`] (jpeg/thumb/crop/noise), [`Perturbation`] (how training draws x'), corruptions |
//! | [`data`] | IDX and Fashion-MNIST, photo crops/triplets/split, assets (feature `fetch`), `.npy` |
//! | [`eval`] | metrics, retrieval (PR, AP, CDF), the classifier and embedding evaluations, the sweep |
//! | [`dedup`] | pairs and clusters, the embedding cache, the HNSW index (feature `index`) |
//! | [`report`] | the self-contained HTML report and its figures (feature `report`) |
//! | [`seeds`] | every seeded stream's salt, and `item_seed` |
//! | [`run_files`] | the file names of a run folder |
//! | [`fsutil`], [`error`] | atomic writes, free-space checks, hashes of files; the error type |
//!
//! Features (all default): `fetch` (zip, tar), `report` (plotters, resvg, the DejaVu font,
//! base64), `index` (usearch), `bench` (throughput measurements). Without them the core builds
//! lean: `cargo check -p stabilize-core --no-default-features`.

pub mod data;
pub mod dedup;
pub mod distort;
pub mod error;
pub mod eval;
pub mod fsutil;
pub mod image;
#[cfg(feature = "report")]
pub mod report;
pub mod run_files;
pub mod seeds;

pub use data::crops::Photo;
pub use distort::Distortion;
pub use distort::perturb::Perturbation;
pub use error::{Error, Result};
pub use eval::{ClassifyEval, EmbedEval};
pub use image::hash::HashKind;
pub use image::{Channels, Image};
