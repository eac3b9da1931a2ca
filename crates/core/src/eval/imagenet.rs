//! The schema of an ImageNet classifier's stability evaluation on unlabelled photos (`eval
//! classify` on a `--dataset photos` run), and its metrics from logits.
//!
//! Every network is judged on the same images: the evaluation crops of the held-out photos
//! (`data::crops`), clean and under each distortion, and the labelled ImageNet photos of the pool.
//! Per network and distortion: the **flip rate** (top-1 of the distorted copy ≠ top-1 of the clean
//! one), the **top-5 agreement** (the clean top-1 is among the distorted copy's top 5) and the
//! **agreement** with the original network on the distorted copy (the same top-1 as the original's
//! on that copy). On the clean crops, the **agreement** of each network's top-1 with the original
//! network's.
//!
//! The agreements bound the flip rate from below: a crop that the original flips and this network
//! does not is one on which it disagrees with the original on the clean crop or on the copy, so
//! `flip ≥ flip_original − (1 − clean agreement) − (1 − agreement on the copy)`
//! ([`ImagenetDistortionEval::flip_floor`]). Where a copy looks like any other photo (a few pixels
//! cropped, a mirror image), a network cannot agree with the original more often on the clean
//! crops than on the copies, so a high clean agreement caps how far it can lower flips there.
//! The **consensus agreement** asks instead that the clean top-1 be the original's most frequent
//! top-1 over the clean crop and all its copies ([`Reference::consensus`]): a network stable where
//! the original is not can agree with that on every copy at once.

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
    /// Share of distorted crops on which its top-1 is the original network's on the same distorted
    /// crop (`None` in files written before it was measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<f64>,
}

impl ImagenetDistortionEval {
    /// The least flip rate a network can have under this distortion given its agreement with the
    /// original (`clean_agreement` on the clean crops, `agreement` on the copies) and the
    /// original's flip rate `original_flip`: every crop the original flips and it does not is a
    /// disagreement on one side or the other.
    pub fn flip_floor(original_flip: f64, clean_agreement: f64, agreement: f64) -> f64 {
        (original_flip - (1.0 - clean_agreement) - (1.0 - agreement)).max(0.0)
    }
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
    /// Share of clean crops on which its top-1 is the original's consensus over the crop and its
    /// copies (`None` in files written before it was measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consensus_agreement: Option<f64>,
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

/// The original network's top-1 per crop: on the clean crops and on each distorted set.
pub struct Reference {
    pub clean: Vec<usize>,
    pub distorted: Vec<Vec<usize>>,
}

impl Reference {
    /// From the original network's logits.
    pub fn from_logits(logits: &NetworkLogits) -> Self {
        Reference {
            clean: predictions(logits.clean, CLASSES),
            distorted: logits.distorted.iter().map(|d| predictions(d, CLASSES)).collect(),
        }
    }

    /// Per crop, the class the original gives most often over the clean crop and its distorted
    /// copies; a tie goes to the clean crop's class when it is among the tied, else to the
    /// smallest class index.
    pub fn consensus(&self) -> Vec<usize> {
        (0..self.clean.len())
            .map(|i| {
                let mut votes: Vec<usize> = self.distorted.iter().map(|d| d[i]).collect();
                votes.push(self.clean[i]);
                votes.sort_unstable();
                // Runs of equal classes, the clean crop's first among the longest.
                let runs = votes.chunk_by(|a, b| a == b);
                let most = runs.clone().map(<[usize]>::len).max().unwrap_or(0);
                runs.filter(|run| run.len() == most)
                    .min_by_key(|run| run[0] != self.clean[i])
                    .map_or(self.clean[i], |run| run[0])
            })
            .collect()
    }
}

impl ImagenetModelEval {
    /// The metrics of one network: `reference` is the original network's top-1 per crop, clean
    /// and under each distortion, `labels` the classes of the labelled photos, `specs` the
    /// distortions in order.
    pub fn from_logits(
        model: &str,
        logits: &NetworkLogits,
        reference: &Reference,
        labels: &[usize],
        specs: &[String],
    ) -> Self {
        assert_eq!(logits.distorted.len(), specs.len(), "one logit set per distortion");
        assert_eq!(reference.distorted.len(), specs.len(), "one reference per distortion");
        let clean = predictions(logits.clean, CLASSES);
        let distortions: Vec<ImagenetDistortionEval> = specs
            .iter()
            .zip(logits.distorted)
            .zip(&reference.distorted)
            .map(|((spec, d), original)| {
                let top1 = predictions(d, CLASSES);
                ImagenetDistortionEval {
                    spec: spec.clone(),
                    flip_rate: flip_rate(&clean, &top1),
                    top5_agreement: top_k_agreement(d, CLASSES, &clean, 5),
                    agreement: Some(1.0 - flip_rate(original, &top1)),
                }
            })
            .collect();
        let mean_flip_rate = distortions.iter().map(|d| d.flip_rate).sum::<f64>() / distortions.len().max(1) as f64;
        ImagenetModelEval {
            model: model.to_string(),
            clean_agreement: 1.0 - flip_rate(&reference.clean, &clean),
            consensus_agreement: Some(1.0 - flip_rate(&reference.consensus(), &clean)),
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
        // The original: clean [1, 2, 3, 5], under A [1, 2, 9, 5], under hflip [1, 2, 3, 5] (it
        // answers [1, 2, 3, 4] there).
        let reference = Reference { clean: vec![1, 2, 3, 5], distorted: vec![vec![1, 2, 9, 5], vec![1, 2, 3, 5]] };
        let e = ImagenetModelEval::from_logits("m", &logits, &reference, &[7, 9], &specs);
        assert_eq!(e.distortions[0].flip_rate, 0.5);
        // Under A it answers [1, 3, 9, 4]: the original's on crops 0 and 2.
        assert_eq!(e.distortions[0].agreement, Some(0.5));
        assert_eq!(e.distortions[1].agreement, Some(0.75));
        assert_eq!(e.distortions[0].top5_agreement, 0.75);
        assert_eq!((e.distortions[1].flip_rate, e.distortions[1].top5_agreement), (0.0, 1.0));
        assert_eq!(e.mean_flip_rate, 0.25);
        assert_eq!(e.clean_agreement, 0.75);
        // Consensus per crop over (clean, A, hflip): [1, 2, 3 (tie 3/9/3), 5]; it answers [1, 2, 3, 4].
        assert_eq!(reference.consensus(), [1, 2, 3, 5]);
        assert_eq!(e.consensus_agreement, Some(0.75));
        // Label 9 is the second row's runner-up: in the top 5, not the top 1.
        assert_eq!((e.labelled.images, e.labelled.top1, e.labelled.top5), (2, 0.5, 1.0));
    }

    #[test]
    fn the_consensus_is_the_most_frequent_class_and_a_tie_keeps_the_clean_one() {
        let reference =
            Reference { clean: vec![4, 4, 4], distorted: vec![vec![7, 7, 8], vec![7, 4, 9], vec![2, 2, 2]] };
        // Crop 0: 7 twice beats 4 once; crop 1: 4, 7, 4, 2 → 4; crop 2: 4, 8, 9, 2 all once → 4.
        assert_eq!(reference.consensus(), [7, 4, 4]);
        let tie = Reference { clean: vec![5], distorted: vec![vec![3], vec![1], vec![3], vec![1]] };
        assert_eq!(tie.consensus(), [1]);
    }

    #[test]
    fn the_flip_floor_counts_disagreements_on_either_side() {
        // The original flips 24 %; agreeing on 97 % of clean crops and 97 % of copies leaves ≥ 18 %.
        assert!((ImagenetDistortionEval::flip_floor(0.24, 0.97, 0.97) - 0.18).abs() < 1e-12);
        assert_eq!(ImagenetDistortionEval::flip_floor(0.10, 0.90, 0.95), 0.0);
        // The original itself: its own flip rate.
        assert_eq!(ImagenetDistortionEval::flip_floor(0.3, 1.0, 1.0), 0.3);
    }
}
