//! The classifier evaluation's schema (`eval classify` → `eval.json`, `--suite corruptions` →
//! `eval-corruptions.json`): accuracy clean and under each distortion, flip rates, feature
//! distances, and the corruption suite's summary. Written by `stabilize-burn`'s evaluation, read
//! by `compare`, the sweep and the report.

use serde::{Deserialize, Serialize};

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
    #[serde(default)]
    pub feature_distance_mean: f64,
    /// 90th percentile of that distance.
    #[serde(default)]
    pub feature_distance_p90: f64,
}

/// The whole evaluation (`eval.json`; `--json` prints it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClassifyEval {
    /// The run it evaluates (readers need only `clean` and `distortions`; the rest defaults).
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub images: usize,
    #[serde(default)]
    pub seed: u64,
    pub clean: CleanEval,
    pub distortions: Vec<DistortionEval>,
    /// With `--suite corruptions`: the per-corruption summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corruptions: Option<CorruptionSummary>,
}

/// One corruption family over its five severities.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CorruptionRow {
    pub corruption: String,
    /// Top-1 error at severities 1..5.
    pub error: Vec<f64>,
    pub mean_error: f64,
    /// Mean flip rate over the severities.
    pub mean_flip_rate: f64,
}

/// The corruption suite's summary. The mean corruption error is **unnormalised**: the plain mean
/// of top-1 error over all corruptions and severities (ImageNet-C divides each by AlexNet's error;
/// there is no such reference model for Fashion-MNIST).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CorruptionSummary {
    pub rows: Vec<CorruptionRow>,
    pub mean_corruption_error: f64,
    pub mean_flip_rate: f64,
}

impl CorruptionSummary {
    /// Groups `name:severity` results (in suite order) by name.
    pub fn from_results(results: &[DistortionEval]) -> Self {
        let mut rows: Vec<CorruptionRow> = Vec::new();
        for r in results {
            let name = r.spec.split(':').next().unwrap_or(&r.spec).to_string();
            if rows.last().is_none_or(|row| row.corruption != name) {
                rows.push(CorruptionRow { corruption: name, error: Vec::new(), mean_error: 0.0, mean_flip_rate: 0.0 });
            }
            let row = rows.last_mut().expect("pushed");
            row.error.push(1.0 - r.top1);
            row.mean_flip_rate += r.flip_rate;
        }
        for row in &mut rows {
            let n = row.error.len().max(1) as f64;
            row.mean_error = row.error.iter().sum::<f64>() / n;
            row.mean_flip_rate /= n;
        }
        let n = rows.len().max(1) as f64;
        CorruptionSummary {
            mean_corruption_error: rows.iter().map(|r| r.mean_error).sum::<f64>() / n,
            mean_flip_rate: rows.iter().map(|r| r.mean_flip_rate).sum::<f64>() / n,
            rows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(spec: &str, top1: f64, flip: f64) -> DistortionEval {
        DistortionEval {
            spec: spec.into(),
            top1,
            top5: 1.0,
            flip_rate: flip,
            feature_distance_mean: 0.0,
            feature_distance_p90: 0.0,
        }
    }

    #[test]
    fn corruption_summary_groups_by_family_and_averages_unnormalised() {
        let results = vec![
            row("contrast:1", 0.9, 0.1),
            row("contrast:2", 0.7, 0.3),
            row("jpeg:1", 0.8, 0.0),
            row("jpeg:2", 0.8, 0.2),
        ];
        let s = CorruptionSummary::from_results(&results);
        assert_eq!(s.rows.len(), 2);
        assert_eq!(s.rows[0].corruption, "contrast");
        assert!((s.rows[0].error[1] - 0.3).abs() < 1e-12);
        assert!((s.rows[0].mean_error - 0.2).abs() < 1e-12);
        assert!((s.rows[1].mean_flip_rate - 0.1).abs() < 1e-12);
        assert!((s.mean_corruption_error - 0.2).abs() < 1e-12); // (0.2 + 0.2) / 2
        assert!((s.mean_flip_rate - 0.15).abs() < 1e-12); // (0.2 + 0.1) / 2
    }
}
