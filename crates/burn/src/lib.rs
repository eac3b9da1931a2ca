//! # stabilize-burn
//!
//! The burn layer of `stabilize`. Model code is written against burn 0.22's runtime
//! [`burn::tensor::Device`], so it runs unchanged on every backend this build has (see
//! [`device::BackendKind`]).
//!
//! | module | what is in it |
//! |---|---|
//! | [`device`], [`tensor`] | backend/device choice; images ↔ tensors |
//! | [`layers`] | ReLU, ReLU6, conv2d, max-pool as a backend extension (libtorch gradients, a flex pooling kernel) |
//! | [`model`], [`mobilenet`], [`embed`], [`imagenet`] | the Fashion-MNIST CNN; MobileNetV2 and its torchvision weights; the embedding net and its loss; the ImageNet transform |
//! | [`loss`], [`stability`] | stability losses and objectives; the shared stability settings, their validation and the drawing of x' |
//! | [`train`] | the one training loop (run folders, checkpoints, resume, schedule, NaN stop) and its tasks: [`train::classify`], [`train::embed`] |
//! | [`infer`], [`eval`] | batched inference and feature extraction; classifier and embedding evaluation |
//! | [`collection`], [`dupes`] | embedding image collections from disk with a trained model (cache, calibration); the near-duplicate search with its parameters and report |
//! | [`average`] | weight averaging of runs of one recipe (a model soup) |
//! | [`export`] | a run's weights out to PyTorch (safetensors under torchvision's / `nn.Sequential`'s names) |
//! | [`bench`], [`flops`] | training and inference throughput; FLOPs per image from the models' shapes |

pub mod average;
pub mod bench;
pub mod collection;
pub mod device;
pub mod dupes;
pub mod embed;
pub mod eval;
pub mod export;
pub mod flops;
pub mod imagenet;
pub mod infer;
pub mod layers;
pub mod loss;
pub mod mobilenet;
pub mod model;
pub mod stability;
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

/// Textured 200×170 px "photos" named `names`, each with its own pattern (for task tests).
#[cfg(test)]
pub(crate) fn test_photos(names: &[String]) -> Vec<stabilize_core::Photo> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let k = i as u32 + 3;
            let (w, h) = (200u32, 170u32);
            let data = (0..w * h * 3)
                .map(|i| {
                    let (p, c) = (i / 3, i % 3);
                    let (x, y) = (p % w, p / w);
                    ((x * (k + 1) + y * (2 * k + 3) + c * 40 + (x / (k + 5)) * 17) % 256) as u8
                })
                .collect();
            let img = stabilize_core::Image::new(w, h, stabilize_core::Channels::Rgb, data).unwrap();
            stabilize_core::Photo::prepare(name, &img, 256).unwrap().unwrap()
        })
        .collect()
}
