//! Evaluation of a classifier under distortions: accuracy, flip rate, feature distances.

use burn::tensor::Device;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use stabilize_core::Distortion;
use stabilize_core::distort::item_seed;
use stabilize_core::fashion_mnist::{SIDE, Split};
use stabilize_core::metrics::classify::{flip_rate, mean, predictions, quantile, row_distances, top_k_accuracy};

use crate::model::SmallCnn;
use crate::train::{INFER_BATCH, infer};

/// The distortions `eval classify` uses when none are given.
pub const DEFAULT_DISTORTIONS: &str = "jpeg:10,jpeg:30,jpeg:50,thumb:30,thumb:50,crop:2,crop:4,noise:0.05,noise:0.1";

/// Accuracy on clean images.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CleanEval {
    pub top1: f64,
    pub top5: f64,
}

/// Results under one distortion.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DistortionEval {
    pub spec: String,
    pub top1: f64,
    pub top5: f64,
    /// Share of test images whose predicted class on the distorted copy differs from the clean one.
    pub flip_rate: f64,
    /// Mean L2 distance between penultimate features of clean and distorted copies.
    pub feature_distance_mean: f64,
    /// 90th percentile of that distance.
    pub feature_distance_p90: f64,
}

/// The whole evaluation (`eval.json`; `--json` prints it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClassifyEval {
    pub model: String,
    pub images: usize,
    pub seed: u64,
    pub clean: CleanEval,
    pub distortions: Vec<DistortionEval>,
}

/// Evaluates `model` on `test`: clean, then each distortion applied to the 8-bit test images
/// (decode → distort → re-quantise to 8 bits). `on_progress(i, total)` is called per distortion.
pub fn evaluate_classifier(
    name: &str,
    model: &SmallCnn,
    test: &Split,
    distortions: &[Distortion],
    seed: u64,
    device: &Device,
    on_progress: &mut dyn FnMut(usize, usize),
) -> Result<ClassifyEval, stabilize_core::Error> {
    let batch = INFER_BATCH;
    let clean_px: Vec<&[u8]> = (0..test.len()).map(|i| test.pixels(i)).collect();
    let (logits, features) = infer(model, &clean_px, 1, SIDE, batch, device);
    let dim = features.len() / test.len().max(1);
    let clean_pred = predictions(&logits, 10);
    let clean = CleanEval {
        top1: top_k_accuracy(&logits, 10, &test.labels, 1),
        top5: top_k_accuracy(&logits, 10, &test.labels, 5),
    };
    let mut out = Vec::new();
    for (k, d) in distortions.iter().enumerate() {
        on_progress(k, distortions.len());
        let distorted: Vec<Vec<u8>> = (0..test.len())
            .into_par_iter()
            .map(|i| d.apply(&test.image(i), item_seed(seed, i as u64)).map(|img| img.into_data()))
            .collect::<Result<_, _>>()?;
        let px: Vec<&[u8]> = distorted.iter().map(Vec::as_slice).collect();
        let (dl, df) = infer(model, &px, 1, SIDE, batch, device);
        let distances = row_distances(&features, &df, dim);
        out.push(DistortionEval {
            spec: d.to_string(),
            top1: top_k_accuracy(&dl, 10, &test.labels, 1),
            top5: top_k_accuracy(&dl, 10, &test.labels, 5),
            flip_rate: flip_rate(&clean_pred, &predictions(&dl, 10)),
            feature_distance_mean: mean(&distances),
            feature_distance_p90: quantile(&distances, 0.9),
        });
    }
    on_progress(distortions.len(), distortions.len());
    Ok(ClassifyEval { model: name.to_string(), images: test.len(), seed, clean, distortions: out })
}
