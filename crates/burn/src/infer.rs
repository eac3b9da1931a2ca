//! Inference without autodiff: classifier logits and features, embeddings, and the pretrained
//! features, in batches on any device.

use burn::module::Module;
use burn::prelude::*;
use rayon::prelude::*;
use stabilize_core::Image;
use stabilize_core::data::fashion_mnist::{SIDE, Split};
use stabilize_core::eval::metrics::classify::top_k_accuracy;
use stabilize_core::image::regions::{REGION_COUNT, map_window_weights, zoomed_side};
use stabilize_core::image::resize::{Filter, resize};

use crate::embed::{EmbedNet, l2_normalize};
use crate::mobilenet::MobileNetV2;
use crate::model::SmallCnn;
use crate::tensor::images_to_tensor;

/// Images per classifier inference batch: large enough to keep the cores busy, small enough that
/// the convolutions' im2col buffers stay in cache-friendly sizes.
pub const INFER_BATCH: usize = 256;

/// Images per embedding inference batch.
pub const EMBED_BATCH: usize = 64;

/// Logits `[N·K]` and penultimate features `[N·F]` (row-major) of `images`, `batch` at a time,
/// on `device`. Each item is `channels × side × side` pixel bytes, channel-planar.
pub fn infer(
    model: &SmallCnn,
    images: &[&[u8]],
    channels: usize,
    side: usize,
    batch: usize,
    device: &Device,
) -> (Vec<f32>, Vec<f32>) {
    let model = model.valid();
    let mut logits = Vec::new();
    let mut features = Vec::new();
    for chunk in images.chunks(batch) {
        let x: Vec<f32> = chunk.iter().flat_map(|img| img.iter().map(|&v| v as f32 / 255.0)).collect();
        let x = Tensor::<4>::from_data(TensorData::new(x, [chunk.len(), channels, side, side]), device);
        let f = model.features(x);
        let l = model.head(f.clone());
        features.extend(f.try_into_vec_as::<f32>().expect("float features"));
        logits.extend(l.try_into_vec_as::<f32>().expect("float logits"));
    }
    (logits, features)
}

/// Top-1 accuracy of `model` on a Fashion-MNIST split.
pub fn split_accuracy(model: &SmallCnn, split: &Split, device: &Device) -> f64 {
    let images: Vec<&[u8]> = (0..split.len()).map(|i| split.pixels(i)).collect();
    let (logits, _) = infer(model, &images, 1, SIDE, INFER_BATCH, device);
    top_k_accuracy(&logits, 10, &split.labels, 1)
}

/// `f` of same-sized RGB images, `batch` at a time, without autodiff, row-major on the host.
fn batched<M: Module>(
    model: &M,
    images: &[Image],
    batch: usize,
    device: &Device,
    f: impl Fn(&M, Tensor<4>) -> Tensor<2>,
) -> Vec<f32> {
    let model = model.valid();
    let mut out = Vec::new();
    for chunk in images.chunks(batch.max(1)) {
        let refs: Vec<&Image> = chunk.iter().collect();
        out.extend(f(&model, images_to_tensor(&refs, device)).try_into_vec_as::<f32>().expect("float"));
    }
    out
}

/// Embeddings `[N·d]` (row-major) of same-sized RGB images, `batch` at a time.
pub fn embed_images(model: &EmbedNet, images: &[Image], batch: usize, device: &Device) -> Vec<f32> {
    batched(model, images, batch, device, |m, x| m.forward(x))
}

/// Embeddings `[N·(1 + REGION_COUNT)·d]` (row-major) of same-sized RGB images, `batch` at a
/// time: each image's whole, then its regions at `scale` pooled from the last feature map
/// ([`map_window_weights`]; one forward pass per image).
pub fn embed_map_regions(model: &EmbedNet, images: &[Image], scale: f64, batch: usize, device: &Device) -> Vec<f32> {
    batched(model, images, batch, device, |m, x| m.forward_windows(x, |h, w| map_window_weights(h, w, scale)))
}

/// Embeddings `[N·(1 + REGION_COUNT)·d]` (row-major) of same-sized RGB images, `batch` at a
/// time: each image's whole, then its regions at `scale` pooled from the last feature map of the
/// image enlarged (bicubic) to [`zoomed_side`] (two forward passes per image; each region seen at
/// about the scale a copy cut down to it and enlarged back shows).
pub fn embed_zoomed_map_regions(
    model: &EmbedNet,
    images: &[Image],
    scale: f64,
    batch: usize,
    device: &Device,
) -> Result<Vec<f32>, stabilize_core::Error> {
    let Some(first) = images.first() else { return Ok(Vec::new()) };
    let side = zoomed_side(first.width(), scale);
    let enlarged: Vec<Image> =
        images.par_iter().map(|img| resize(img, side, side, Filter::Bicubic)).collect::<Result<_, _>>()?;
    let wholes = embed_images(model, images, batch, device);
    let regions = batched(model, &enlarged, batch, device, |m, x| {
        m.forward_windows(x, |h, w| map_window_weights(h, w, scale)[h * w..].to_vec())
    });
    let d = wholes.len() / images.len();
    Ok(wholes.chunks(d).zip(regions.chunks(REGION_COUNT * d)).flat_map(|(w, r)| [w, r].concat()).collect())
}

/// L2-normalised pooled ImageNet features `[N·1280]` of the backbone (the "pretrained, not
/// fine-tuned" baseline), `batch` at a time.
pub fn pretrained_features(model: &EmbedNet, images: &[Image], batch: usize, device: &Device) -> Vec<f32> {
    batched(model, images, batch, device, |m, x| l2_normalize(m.pooled(x)))
}

/// ImageNet logits `[N·1000]` (row-major) of same-sized RGB images on [0,1] scale, `batch` at a
/// time.
pub fn imagenet_logits(model: &MobileNetV2, images: &[Image], batch: usize, device: &Device) -> Vec<f32> {
    batched(model, images, batch, device, |m, x| m.forward(x))
}
