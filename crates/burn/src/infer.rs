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

/// Makes each image's whole-image descriptor mirror-invariant: in `data`, `[N, per, d]`
/// row-major (each image's whole in row `k·per`, then `per − 1` region rows, left as they
/// are), row `k·per` becomes the unit-length mean of itself and the model's embedding of the
/// left–right mirror of `wholes[k]` (one more forward pass per image). An image and its mirror
/// copy then get the same whole descriptor, and each whole is the mean of two views of it.
/// With `per = 1` every row is a "whole": the cut-out regions are mirror-averaged so, each a view
/// of its own ([`crate::eval::embed::embed_with_regions`], `Embedder::describe_views`).
///
/// Panics unless `data` holds `wholes.len() · per` rows of the model's width.
pub fn mirror_wholes(model: &EmbedNet, wholes: &[Image], data: &mut [f32], per: usize, batch: usize, device: &Device) {
    mirror_rows(model, wholes, data, per, batch, device, |m, x| m.forward(x));
}

/// [`mirror_wholes`] for any descriptor `f` of the model (unit-length rows).
fn mirror_rows(
    model: &EmbedNet,
    wholes: &[Image],
    data: &mut [f32],
    per: usize,
    batch: usize,
    device: &Device,
    f: impl Fn(&EmbedNet, Tensor<4>) -> Tensor<2>,
) {
    let mirrored = batched(model, wholes, batch, device, |m, x| f(m, x.flip([3])));
    let dim = if wholes.is_empty() { 0 } else { mirrored.len() / wholes.len() };
    assert_eq!(
        data.len(),
        wholes.len() * per * dim,
        "{} values for {} images × {per} rows × {dim}",
        data.len(),
        wholes.len()
    );
    merge_mirrored(data, &mirrored, per, dim);
}

/// Row `k·per` of `data` (`[N, per, dim]`) becomes the unit-length sum of itself and row `k` of
/// `mirrored` (`[N, dim]`); the other rows stay.
fn merge_mirrored(data: &mut [f32], mirrored: &[f32], per: usize, dim: usize) {
    for (k, m) in mirrored.chunks_exact(dim).enumerate() {
        let whole = &mut data[k * per * dim..(k * per + 1) * dim];
        whole.iter_mut().zip(m).for_each(|(w, m)| *w += m);
        let norm = whole.iter().map(|w| w * w).sum::<f32>().sqrt().max(1e-12);
        whole.iter_mut().for_each(|w| *w /= norm);
    }
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

/// The [`pretrained_features`] of each image and of its left–right mirror, averaged and
/// L2-normalised `[N·1280]`: the baseline for a mirror-averaged model ([`mirror_wholes`]), the
/// same test-time view given to both.
pub fn pretrained_features_mirrored(model: &EmbedNet, images: &[Image], batch: usize, device: &Device) -> Vec<f32> {
    let mut data = pretrained_features(model, images, batch, device);
    mirror_rows(model, images, &mut data, 1, batch, device, |m, x| l2_normalize(m.pooled(x)));
    data
}

/// ImageNet logits `[N·1000]` (row-major) of same-sized RGB images on [0,1] scale, `batch` at a
/// time.
pub fn imagenet_logits(model: &MobileNetV2, images: &[Image], batch: usize, device: &Device) -> Vec<f32> {
    batched(model, images, batch, device, |m, x| m.forward(x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::EmbedNetConfig;
    use stabilize_core::Channels;
    use stabilize_core::distort::edits::hflip;

    /// `n` RGB images of `side`² px, each lit on its left and dark on its right in a different
    /// colour, so that its mirror image is another picture.
    fn lopsided(n: usize, side: usize) -> Vec<Image> {
        (0..n)
            .map(|k| {
                let data = (0..side * side)
                    .flat_map(|i| {
                        let x = i % side;
                        let lit = if x < side / 3 { 255 - (x * 3) as u8 } else { (k * 40) as u8 };
                        [lit, ((i / side) * 4 % 256) as u8, if (k + x).is_multiple_of(2) { lit } else { 0 }]
                    })
                    .collect();
                Image::new(side as u32, side as u32, Channels::Rgb, data).unwrap()
            })
            .collect()
    }

    /// The largest absolute difference between two vectors.
    fn max_gap(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    /// The ImageNet network at 64 px (an untrained one maps every input to about the same
    /// vector); `None` without the weights, unless data is required (then it fails).
    fn imagenet_net(device: &Device) -> Option<EmbedNet> {
        let data = std::env::var_os("STABILIZE_DATA")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"));
        let pth = data.join("mobilenet-v2/mobilenet_v2-b0353104.pth");
        if !pth.is_file() {
            assert!(std::env::var("STABILIZE_REQUIRE_DATA").as_deref() != Ok("1"), "{} missing", pth.display());
            return None;
        }
        Some(EmbedNetConfig::new().with_input_size(64).init_pretrained(&pth, device).unwrap())
    }

    #[test]
    fn mirrored_descriptors_are_the_same_for_an_image_and_its_mirror_and_regions_stay() {
        let device = Device::flex();
        let Some(model) = imagenet_net(&device) else { return };
        let imgs = lopsided(3, 64);
        let flipped: Vec<Image> = imgs.iter().map(hflip).collect();
        let (plain, plain_flipped) =
            (embed_images(&model, &imgs, 2, &device), embed_images(&model, &flipped, 2, &device));
        // The network alone tells an image from its mirror.
        let gap = max_gap(&plain, &plain_flipped);
        assert!(gap > 1e-3, "{gap}");
        // Two rows per image: the whole, and a stand-in region row that must not change.
        let d = plain.len() / 3;
        let region = vec![0.5; d];
        let layout =
            |wholes: &[f32]| -> Vec<f32> { wholes.chunks(d).flat_map(|w| [w, &region[..]].concat()).collect() };
        let (mut a, mut b) = (layout(&plain), layout(&plain_flipped));
        mirror_wholes(&model, &imgs, &mut a, 2, 2, &device);
        mirror_wholes(&model, &flipped, &mut b, 2, 2, &device);
        for k in 0..3 {
            let (wa, wb) = (&a[2 * k * d..(2 * k + 1) * d], &b[2 * k * d..(2 * k + 1) * d]);
            let apart = max_gap(wa, wb);
            assert!(apart < 1e-5, "image {k}: {apart}");
            assert!((wa.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5, "unit length");
            assert_eq!(&a[(2 * k + 1) * d..(2 * k + 2) * d], &region[..], "region row of image {k}");
        }
        // The pretrained features' baseline the same way: the same for an image and its mirror,
        // and not the plain features.
        let (pm, pm_flipped) = (
            pretrained_features_mirrored(&model, &imgs, 2, &device),
            pretrained_features_mirrored(&model, &flipped, 2, &device),
        );
        let apart = max_gap(&pm, &pm_flipped);
        assert!(apart < 1e-5, "{apart}");
        let plain_pre = pretrained_features(&model, &imgs, 2, &device);
        assert!(pm.iter().zip(&plain_pre).any(|(x, y)| (x - y).abs() > 1e-3));
    }

    #[test]
    fn mirrored_regions_match_the_mirror_images_regions_on_the_other_side() {
        use crate::eval::embed::embed_with_regions;
        let device = Device::flex();
        let Some(model) = imagenet_net(&device) else { return };
        let imgs = lopsided(2, 64);
        let flipped: Vec<Image> = imgs.iter().map(hflip).collect();
        let plain = embed_with_regions(&model, &imgs, 64, false, &device).unwrap();
        let per = 1 + REGION_COUNT;
        let dim = plain.len() / (2 * per);
        let row = |d: &[f32], k: usize, r: usize| d[(k * per + r) * dim..(k * per + r + 1) * dim].to_vec();
        let plain_flipped = embed_with_regions(&model, &flipped, 64, false, &device).unwrap();
        let a = embed_with_regions(&model, &imgs, 64, true, &device).unwrap();
        let b = embed_with_regions(&model, &flipped, 64, true, &device).unwrap();
        // Rows: the whole, then the regions in `region_windows`' order (top-left, top-right,
        // bottom-left, bottom-right, centre); the mirror image's top-right is the image's
        // top-left, mirrored.
        let other_side = [0, 2, 1, 4, 3, 5];
        for k in 0..2 {
            for (r, &m) in other_side.iter().enumerate() {
                // Without the mirror the network tells a view from its mirror image; with it, not.
                assert!(max_gap(&row(&plain, k, r), &row(&plain_flipped, k, m)) > 1e-3, "image {k} row {r}");
                let apart = max_gap(&row(&a, k, r), &row(&b, k, m));
                assert!(apart < 1e-5, "image {k} row {r}: {apart}");
            }
            // Each row is the unit mean of the view's and its mirror's vectors.
            let mean: Vec<f32> = row(&plain, k, 1).iter().zip(row(&plain_flipped, k, 2)).map(|(x, y)| x + y).collect();
            let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt();
            let unit: Vec<f32> = mean.iter().map(|v| v / norm).collect();
            assert!(max_gap(&row(&a, k, 1), &unit) < 1e-5, "image {k}");
        }
    }

    #[test]
    fn merging_with_the_mirror_is_the_unit_mean() {
        let mut data = vec![1.0, 0.0, 9.0, 9.0, 0.6, 0.8, 7.0, 7.0];
        merge_mirrored(&mut data, &[0.0, 1.0, 0.8, 0.6], 2, 2);
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let expected = [h, h, 9.0, 9.0, h, h, 7.0, 7.0];
        assert!(data.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6), "{data:?}");
    }
}
