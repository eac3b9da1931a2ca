//! The schema of an ImageNet classifier's stability evaluation on unlabelled photos (`eval
//! classify` on a `--dataset photos` run), and its metrics from logits.
//!
//! Every network is judged on the same images: the evaluation crops of the held-out photos
//! (`data::crops`), clean and under each distortion, and the labelled ImageNet photos of the pool.
//! Per network and distortion: the **flip rate** (top-1 of the distorted copy ≠ top-1 of the clean
//! one) and the **top-5 agreement** (the clean top-1 is among the distorted copy's top 5). On the
//! clean crops, the **agreement** of each network's top-1 with the original network's.

use serde::{Deserialize, Serialize};

use super::metrics::classify::{flip_rate, predictions, top_k_agreement};

/// ImageNet classes.
pub const CLASSES: usize = 1000;

/// One network under one distortion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImagenetDistortionEval {
    pub spec: String,
    /// Share of crops whose top-1 changes.
    pub flip_rate: f64,
    /// Share of crops whose clean top-1 stays in the top 5.
    pub top5_agreement: f64,
}

/// Top-1 / top-5 against the labels of the labelled photos.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelledEval {
    pub images: usize,
    pub top1: f64,
    pub top5: f64,
}

/// One network's results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImagenetModelEval {
    /// `pretrained`, or the run folder.
    pub model: String,
    /// Share of clean crops on which its top-1 is the original network's.
    pub clean_agreement: f64,
    pub labelled: LabelledEval,
    pub distortions: Vec<ImagenetDistortionEval>,
    /// Mean flip rate over the distortions.
    pub mean_flip_rate: f64,
}

/// The whole evaluation (`eval.json` of the run): the original network first, then the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImagenetEval {
    /// Held-out photos and their evaluation crops.
    pub photos: usize,
    pub images: usize,
    /// Side of the crops the networks see (px).
    pub input_size: usize,
    pub seed: u64,
    pub models: Vec<ImagenetModelEval>,
    pub seconds: f64,
}

/// Logits (`n × 1000`, row-major) of one network on the clean crops, on each distorted set, and on
/// the labelled photos.
pub struct NetworkLogits<'a> {
    pub clean: &'a [f32],
    pub distorted: &'a [Vec<f32>],
    pub labelled: &'a [f32],
}

impl ImagenetModelEval {
    /// The metrics of one network: `reference` is the original network's clean top-1 per crop,
    /// `labels` the classes of the labelled photos, `specs` the distortions in order.
    pub fn from_logits(
        model: &str,
        logits: &NetworkLogits,
        reference: &[usize],
        labels: &[usize],
        specs: &[String],
    ) -> Self {
        assert_eq!(logits.distorted.len(), specs.len(), "one logit set per distortion");
        let clean = predictions(logits.clean, CLASSES);
        let distortions: Vec<ImagenetDistortionEval> = specs
            .iter()
            .zip(logits.distorted)
            .map(|(spec, d)| ImagenetDistortionEval {
                spec: spec.clone(),
                flip_rate: flip_rate(&clean, &predictions(d, CLASSES)),
                top5_agreement: top_k_agreement(d, CLASSES, &clean, 5),
            })
            .collect();
        let mean_flip_rate = distortions.iter().map(|d| d.flip_rate).sum::<f64>() / distortions.len().max(1) as f64;
        ImagenetModelEval {
            model: model.to_string(),
            clean_agreement: 1.0 - flip_rate(reference, &clean),
            labelled: LabelledEval {
                images: labels.len(),
                top1: top_k_agreement(logits.labelled, CLASSES, labels, 1),
                top5: top_k_agreement(logits.labelled, CLASSES, labels, 5),
            },
            distortions,
            mean_flip_rate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` rows of 1000 logits with the given top classes (then the runner-up at class + 1).
    fn rows(top: &[usize]) -> Vec<f32> {
        let mut v = vec![0.0f32; top.len() * CLASSES];
        for (i, &c) in top.iter().enumerate() {
            v[i * CLASSES + c] = 5.0;
            v[i * CLASSES + (c + 1) % CLASSES] = 4.0;
        }
        v
    }

    #[test]
    fn flips_agreement_and_labels_known_answers() {
        let clean = rows(&[1, 2, 3, 4]);
        // Distortion A: crop 2 flips to its runner-up (clean top-1 still in the top 5); crop 3
        // flips to a far class (clean top-1 out of the top 5: only two non-zero logits).
        let mut a = rows(&[1, 3, 9, 4]);
        a[CLASSES + 2] = 4.5; // crop 2's clean class 2 is second
        let distorted = vec![a, clean.clone()];
        let labelled = rows(&[7, 8]);
        let specs = vec!["jpeg:10".to_string(), "hflip".to_string()];
        let logits = NetworkLogits { clean: &clean, distorted: &distorted, labelled: &labelled };
        let e = ImagenetModelEval::from_logits("m", &logits, &[1, 2, 3, 5], &[7, 9], &specs);
        assert_eq!(e.distortions[0].flip_rate, 0.5);
        assert_eq!(e.distortions[0].top5_agreement, 0.75);
        assert_eq!((e.distortions[1].flip_rate, e.distortions[1].top5_agreement), (0.0, 1.0));
        assert_eq!(e.mean_flip_rate, 0.25);
        assert_eq!(e.clean_agreement, 0.75);
        // Label 9 is the second row's runner-up: in the top 5, not the top 1.
        assert_eq!((e.labelled.images, e.labelled.top1, e.labelled.top5), (2, 0.5, 1.0));
    }
}
