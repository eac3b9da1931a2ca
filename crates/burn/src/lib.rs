//! # stabilize-burn
//!
//! The burn layer of `stabilize`: backend/device selection, image ↔ tensor conversion, and (in
//! later modules) models, stability losses, training loops and feature extraction. Model code is
//! written against burn 0.22's runtime [`burn::tensor::Device`], so it runs unchanged on every
//! backend this build has (see [`device::BackendKind`]).

pub mod bench;
pub mod device;
pub mod embed;
pub mod embed_train;
pub mod eval;
pub mod imagenet;
pub mod layers;
pub mod loss;
pub mod mobilenet;
pub mod model;
pub mod tensor;
pub mod train;

pub use burn::tensor::Device;
pub use device::BackendKind;

/// burn's flex backend has one process-wide RNG: tests that seed it and draw from it hold this
/// lock so parallel tests do not interleave their draws.
#[cfg(test)]
pub(crate) fn test_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
