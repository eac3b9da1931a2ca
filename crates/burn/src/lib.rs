//! # stabilize-burn
//!
//! The burn layer of `stabilize`: backend/device selection, image ↔ tensor conversion, and (in
//! later modules) models, stability losses, training loops and feature extraction. Model code is
//! written against burn 0.22's runtime [`burn::tensor::Device`], so it runs unchanged on every
//! backend this build has (see [`device::BackendKind`]).

pub mod device;
pub mod loss;
pub mod tensor;

pub use device::BackendKind;
