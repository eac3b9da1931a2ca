//! Throughput of the classifier: the plain training step against the stabilized step (same model
//! and batch), inference, and one end-to-end epoch on Fashion-MNIST; of MobileNetV2, the network
//! behind every embedding: ImageNet inference at 224 px and the embedding fine-tuning step at 128 px.
//!
//! `scripts/bench_pytorch.py` is the same models, losses, optimiser and batches in PyTorch;
//! `stabilize bench` runs both side by side.

use std::path::Path;
use std::time::Instant;

use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use serde::Serialize;

use crate::loss::{StabilityForm, classification_loss};
use crate::model::{SmallCnnConfig, materialize};

/// Images per second of each step kind (every image counted once).
#[derive(Clone, Debug, Serialize)]
pub struct StepThroughput {
    pub batch_size: usize,
    pub steps: usize,
    pub plain_img_per_s: f64,
    pub stabilized_img_per_s: f64,
}

/// Times `steps` training steps (after 3 warm-up steps) of the Fashion-MNIST CNN on random
/// inputs: plain cross-entropy, then cross-entropy + 0.01·Lstab with σ = 0.04 noise (drawn ahead of
/// the timed steps, as training draws it on its batch-preparation thread).
pub fn train_step_throughput(
    model: &SmallCnnConfig,
    device: &Device,
    batch_size: usize,
    steps: usize,
) -> StepThroughput {
    let dev = device.clone().autodiff();
    device.seed(0);
    let x = Tensor::<4>::random([batch_size, 1, 28, 28], burn::tensor::Distribution::Default, &dev);
    let y = Tensor::<1, Int>::from_data(
        TensorData::new((0..batch_size as i64).map(|i| i % 10).collect::<Vec<_>>(), [batch_size]),
        &dev,
    );
    let rate = |stabilized: bool| {
        let model = model.init(&dev);
        materialize(&model);
        let mut optim = AdamWConfig::new().init();
        // x' noise drawn before the timed steps: the training loops draw it on their
        // batch-preparation thread (`train::prefetch`), off the training thread. The PyTorch
        // reference does the same.
        let mut noises = (0..if stabilized { steps + 3 } else { 0 })
            .map(|_| Tensor::<4>::random(x.dims(), burn::tensor::Distribution::Normal(0.0, 0.04), &dev))
            .collect::<Vec<_>>();
        let run = |model: crate::model::SmallCnn| {
            // As in training: the clean and the noisy batch through the same weights as two
            // forward passes (one [2N] batch measured slower on tch and no faster on flex).
            let clean = model.forward(x.clone());
            let noisy = stabilized.then(|| {
                let noise = noises.pop().expect("one noise draw per step");
                model.forward(x.clone() + noise)
            });
            let loss =
                classification_loss(clean, noisy, y.clone(), if stabilized { 0.01 } else { 0.0 }, StabilityForm::Paper);
            let _: f32 = loss.total.clone().into_scalar::<f32>();
            let grads = GradientsParams::from_grads(loss.total.backward(), &model);
            optim.step(1e-3, model, grads)
        };
        (batch_size * steps) as f64 / timed_steps(model, 3, steps, run)
    };
    let plain = rate(false);
    let stabilized = rate(true);
    StepThroughput { batch_size, steps, plain_img_per_s: plain, stabilized_img_per_s: stabilized }
}

/// Inference images per second of the Fashion-MNIST CNN on `device` (no autodiff): `steps`
/// batches of `batch_size` random images after 3 warm-up batches, logits read back to the host
/// each batch (as evaluation does).
pub fn infer_throughput(model: &SmallCnnConfig, device: &Device, batch_size: usize, steps: usize) -> f64 {
    device.seed(0);
    let m = model.init(device);
    materialize(&m);
    let x = Tensor::<4>::random([batch_size, 1, 28, 28], burn::tensor::Distribution::Default, device);
    images_per_s(batch_size, 3, steps, || m.forward(x.clone()))
}

/// Images per second of `forward` over `steps` batches of `batch` images after `warmup` ones,
/// the output read back to the host each batch (as evaluation does).
fn images_per_s(batch: usize, warmup: usize, steps: usize, forward: impl Fn() -> Tensor<2>) -> f64 {
    let run = || {
        let out: Vec<f32> = forward().try_into_vec_as::<f32>().expect("float output");
        std::hint::black_box(out);
    };
    for _ in 0..warmup {
        run();
    }
    let started = Instant::now();
    for _ in 0..steps {
        run();
    }
    (batch * steps) as f64 / started.elapsed().as_secs_f64()
}

/// MobileNetV2 ImageNet inference, images per second at `side` px (224: ImageNet's) on `device`
/// without autodiff: `steps` batches of `batch_size` random images after one warm-up batch, logits
/// read back each batch. Random weights: the time does not depend on them.
pub fn mobilenet_infer_throughput(device: &Device, batch_size: usize, steps: usize, side: usize) -> f64 {
    device.seed(0);
    let m = crate::mobilenet::MobileNetV2Config::new().init(device);
    materialize(&m);
    let x = Tensor::<4>::random([batch_size, 3, side, side], burn::tensor::Distribution::Default, device);
    images_per_s(batch_size, 1, steps, || m.forward(x.clone()))
}

/// The embedding fine-tuning step (`train embed`'s defaults: MobileNetV2 → pool → linear 1280→128
/// → L2, 128 px, the stem and the first 12 blocks frozen): `triplets` triplets = `3·triplets` clean
/// crops and their noisy copies (σ 0.04, drawn before the timed steps) through the same weights,
/// triplet hinge (margin 1) + 0.1·Σ‖f(x) − f(x')‖, AdamW lr 1e-4; clean crops per second after one
/// warm-up step (each crop counted once, as the classifier's images are).
pub fn embed_step_throughput(device: &Device, triplets: usize, steps: usize) -> f64 {
    use crate::embed::{EmbedNetConfig, embed_loss};
    let dev = device.clone().autodiff();
    device.seed(0);
    let config = EmbedNetConfig::new();
    let side = config.input_size;
    let n = 3 * triplets;
    let model = config.init(&dev).freeze_trunk();
    materialize(&model);
    let mut optim = AdamWConfig::new().init();
    let x = Tensor::<4>::random([n, 3, side, side], burn::tensor::Distribution::Default, &dev);
    let mut noisy = (0..=steps)
        .map(|_| x.clone() + Tensor::<4>::random(x.dims(), burn::tensor::Distribution::Normal(0.0, 0.04), &dev))
        .collect::<Vec<_>>();
    let run = |model: crate::embed::EmbedNet| {
        let clean = model.forward(x.clone());
        let other = model.forward(noisy.pop().expect("one noisy batch per step"));
        let loss = embed_loss(clean, Some(other), 1.0, 0.1);
        let _: f32 = loss.total.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.total.backward(), &model);
        optim.step(1e-4, model, grads)
    };
    (n * steps) as f64 / timed_steps(model, 1, steps, run)
}

/// Seconds that `steps` training steps take after `warmup` untimed ones; each step takes the model
/// and returns the updated one (and reads its loss back, so the step's work is done when it
/// returns).
fn timed_steps<M>(mut model: M, warmup: usize, steps: usize, mut step: impl FnMut(M) -> M) -> f64 {
    for _ in 0..warmup {
        model = step(model);
    }
    let started = Instant::now();
    for _ in 0..steps {
        model = step(model);
    }
    started.elapsed().as_secs_f64()
}

/// One end-to-end stabilized epoch (α 0.01, σ 0.04, the paper's loss, batch `batch_size`) over the
/// first `images` Fashion-MNIST training images in `fashion_mnist_dir`, on `device`: reading and
/// decoding the IDX files, batching, noise, training, the test-set evaluation and the checkpoint
/// write all included. Returns (seconds, test top-1).
pub fn epoch_seconds(
    fashion_mnist_dir: &Path,
    device: &Device,
    batch_size: usize,
    images: usize,
    scratch: &Path,
) -> Result<(f64, f64), crate::train::TrainError> {
    use crate::train::{ClassifyTask, ClassifyTrainConfig, run};
    let started = Instant::now();
    let data = stabilize_core::data::fashion_mnist::FashionMnist::load(fashion_mnist_dir)?;
    let mut config = ClassifyTrainConfig {
        epochs: 1,
        batch_size,
        seed: 1,
        train_subset: Some(images),
        ..ClassifyTrainConfig::new()
    };
    config.stability.alpha = 0.01;
    config.stability.sigma = 0.04;
    let summary = run(&ClassifyTask::new(&config, &data.train, &data.test)?, device, scratch, false, &mut |_| {})?;
    Ok((started.elapsed().as_secs_f64(), summary.test_top1))
}
