//! Evaluation of a classifier under distortions: accuracy, flip rate, feature distances (the
//! schema, [`ClassifyEval`], is the core's).

use burn::tensor::Device;
use rayon::prelude::*;
use stabilize_core::Distortion;
use stabilize_core::data::fashion_mnist::{SIDE, Split};
use stabilize_core::distort::corruptions::ImageOp;
use stabilize_core::eval::classify::{ClassifyEval, CleanEval, CorruptionSummary, DistortionEval};
use stabilize_core::eval::metrics::classify::{flip_rate, mean, predictions, quantile, row_distances, top_k_accuracy};
use stabilize_core::seeds::item_seed;

use crate::infer::{INFER_BATCH, infer};
use crate::model::SmallCnn;

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
    let ops: Vec<&dyn ImageOp> = distortions.iter().map(|d| d as &dyn ImageOp).collect();
    evaluate_classifier_ops(name, model, test, &ops, seed, device, on_progress)
}

/// The corruption suite (45 corruptions × severities) as an evaluation, with its summary.
pub fn evaluate_corruptions(
    name: &str,
    model: &SmallCnn,
    test: &Split,
    seed: u64,
    device: &Device,
    on_progress: &mut dyn FnMut(usize, usize),
) -> Result<ClassifyEval, stabilize_core::Error> {
    let suite = stabilize_core::distort::corruptions::suite();
    let ops: Vec<&dyn ImageOp> = suite.iter().map(|c| c as &dyn ImageOp).collect();
    let mut eval = evaluate_classifier_ops(name, model, test, &ops, seed, device, on_progress)?;
    eval.corruptions = Some(CorruptionSummary::from_results(&eval.distortions));
    Ok(eval)
}

/// [`evaluate_classifier`] over any image operations.
pub fn evaluate_classifier_ops(
    name: &str,
    model: &SmallCnn,
    test: &Split,
    distortions: &[&dyn ImageOp],
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
            .map(|i| d.apply_op(&test.image(i), item_seed(seed, i as u64)).map(|img| img.into_data()))
            .collect::<Result<_, _>>()?;
        let px: Vec<&[u8]> = distorted.iter().map(Vec::as_slice).collect();
        let (dl, df) = infer(model, &px, 1, SIDE, batch, device);
        let distances = row_distances(&features, &df, dim);
        out.push(DistortionEval {
            spec: d.spec(),
            top1: top_k_accuracy(&dl, 10, &test.labels, 1),
            top5: top_k_accuracy(&dl, 10, &test.labels, 5),
            flip_rate: flip_rate(&clean_pred, &predictions(&dl, 10)),
            feature_distance_mean: mean(&distances),
            feature_distance_p90: quantile(&distances, 0.9),
        });
    }
    on_progress(distortions.len(), distortions.len());
    Ok(ClassifyEval { model: name.to_string(), images: test.len(), seed, clean, distortions: out, corruptions: None })
}
