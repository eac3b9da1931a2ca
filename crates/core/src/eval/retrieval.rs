//! Near-duplicate detection metrics: "a pair is a duplicate iff D < t", swept over t.
//!
//! Inputs are distances of known near-duplicate pairs and of known distinct pairs (any unit:
//! L2 between embeddings, Hamming bits between hashes). Lower means "more alike".

use serde::{Deserialize, Serialize};

/// One operating point of the detector "duplicate iff D ≤ threshold".
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrPoint {
    pub threshold: f64,
    pub precision: f64,
    pub recall: f64,
}

/// The precision–recall curve over every distinct threshold, in increasing threshold (and
/// recall) order. Ties between a duplicate and a distinct distance are decided together, as a
/// threshold cannot separate them. Empty when there are no duplicate pairs.
pub fn pr_curve(dup: &[f64], distinct: &[f64]) -> Vec<PrPoint> {
    if dup.is_empty() {
        return Vec::new();
    }
    let mut all: Vec<(f64, bool)> = dup
        .iter()
        .map(|&d| (d, true))
        .chain(distinct.iter().map(|&d| (d, false)))
        .filter(|(d, _)| !d.is_nan())
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut curve = Vec::new();
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < all.len() {
        let t = all[i].0;
        while i < all.len() && all[i].0 == t {
            if all[i].1 {
                tp += 1
            } else {
                fp += 1
            }
            i += 1;
        }
        curve.push(PrPoint {
            threshold: t,
            precision: tp as f64 / (tp + fp) as f64,
            recall: tp as f64 / dup.len() as f64,
        });
    }
    curve
}

/// Average precision: `Σ (R_i − R_{i−1}) · P_i` over the curve (the step-wise area, as
/// scikit-learn's `average_precision_score`). 1 when every duplicate is closer than every
/// distinct pair.
pub fn average_precision(curve: &[PrPoint]) -> f64 {
    let mut prev = 0.0;
    let mut ap = 0.0;
    for p in curve {
        ap += (p.recall - prev) * p.precision;
        prev = p.recall;
    }
    ap
}

/// The best precision among thresholds that reach recall ≥ `recall` (0 if none does).
pub fn precision_at_recall(curve: &[PrPoint], recall: f64) -> f64 {
    curve.iter().filter(|p| p.recall >= recall - 1e-12).map(|p| p.precision).fold(0.0, f64::max)
}

/// The operating point with the largest recall whose precision is ≥ `precision`, if any.
pub fn point_at_precision(curve: &[PrPoint], precision: f64) -> Option<PrPoint> {
    curve.iter().filter(|p| p.precision >= precision - 1e-12).max_by(|a, b| a.recall.total_cmp(&b.recall)).copied()
}

/// The best recall among thresholds with precision ≥ `precision` (0 if none).
pub fn recall_at_precision(curve: &[PrPoint], precision: f64) -> f64 {
    point_at_precision(curve, precision).map_or(0.0, |p| p.recall)
}

/// The summary numbers of one detection experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub ap: f64,
    #[serde(rename = "precision_at_recall_0.9")]
    pub precision_at_recall_0_9: f64,
    #[serde(rename = "recall_at_precision_0.99")]
    pub recall_at_precision_0_99: f64,
    /// The largest threshold that keeps precision ≥ 0.99 (`null` if no threshold does).
    #[serde(rename = "threshold_at_precision_0.99")]
    pub threshold_at_precision_0_99: Option<f64>,
}

/// AP, precision at recall 0.9 and recall at precision 0.99 of duplicate vs distinct distances.
pub fn detection(dup: &[f64], distinct: &[f64]) -> Detection {
    let curve = pr_curve(dup, distinct);
    let p99 = point_at_precision(&curve, 0.99);
    Detection {
        ap: average_precision(&curve),
        precision_at_recall_0_9: precision_at_recall(&curve, 0.9),
        recall_at_precision_0_99: p99.map_or(0.0, |p| p.recall),
        threshold_at_precision_0_99: p99.map(|p| p.threshold),
    }
}

/// At most `max` points of a curve, evenly spaced in index, always keeping the last (for plots).
pub fn thin<T: Copy>(points: &[T], max: usize) -> Vec<T> {
    if points.len() <= max || max < 2 {
        return points.to_vec();
    }
    let step = (points.len() - 1) as f64 / (max - 1) as f64;
    (0..max).map(|i| points[((i as f64 * step).round() as usize).min(points.len() - 1)]).collect()
}

/// The empirical CDF of `values` evaluated at each of `grid`: the share of values ≤ g.
pub fn ecdf(values: &[f64], grid: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    grid.iter().map(|g| v.partition_point(|x| x <= g) as f64 / v.len().max(1) as f64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_separation_gives_ap_one() {
        let c = pr_curve(&[0.1, 0.2], &[0.5, 0.6, 0.7]);
        assert_eq!(c.len(), 5);
        assert_eq!(average_precision(&c), 1.0);
        let d = detection(&[0.1, 0.2], &[0.5, 0.6, 0.7]);
        assert_eq!((d.precision_at_recall_0_9, d.recall_at_precision_0_99), (1.0, 1.0));
        assert_eq!(d.threshold_at_precision_0_99, Some(0.2));
    }

    #[test]
    fn interleaved_known_answer() {
        // Sorted: dup .1, distinct .2, dup .3, distinct .4 → points (P,R): (1,.5) (.5,.5) (2/3,1) (.5,1)
        let c = pr_curve(&[0.1, 0.3], &[0.2, 0.4]);
        let pr: Vec<(f64, f64)> = c.iter().map(|p| (p.precision, p.recall)).collect();
        assert_eq!(pr, vec![(1.0, 0.5), (0.5, 0.5), (2.0 / 3.0, 1.0), (0.5, 1.0)]);
        // AP = 0.5·1 + 0.5·(2/3) = 0.8333 (scikit-learn gives the same).
        assert!((average_precision(&c) - 5.0 / 6.0).abs() < 1e-12);
        assert!((precision_at_recall(&c, 0.9) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(recall_at_precision(&c, 0.99), 0.5);
        assert_eq!(recall_at_precision(&c, 0.7), 0.5);
    }

    #[test]
    fn ties_are_decided_together_and_edge_cases() {
        // A duplicate and a distinct pair at the same distance: one point with P = 1/2.
        let c = pr_curve(&[1.0], &[1.0]);
        assert_eq!(c, vec![PrPoint { threshold: 1.0, precision: 0.5, recall: 1.0 }]);
        assert!(pr_curve(&[], &[1.0]).is_empty());
        assert_eq!(detection(&[], &[1.0]).ap, 0.0);
        assert_eq!(detection(&[0.5], &[0.1]).threshold_at_precision_0_99, None);
        // Hamming-style integer distances with many ties.
        let d = detection(&[0.0, 0.0, 2.0, 9.0], &[2.0, 20.0, 30.0]);
        assert!((d.ap - (0.5 + 0.25 * 0.75 + 0.25 * 0.8)).abs() < 1e-12, "{d:?}");
    }

    #[test]
    fn ecdf_and_thin() {
        assert_eq!(ecdf(&[0.3, 0.1, 0.2, 0.2], &[0.0, 0.2, 1.0]), vec![0.0, 0.75, 1.0]);
        let t = thin(&(0..101).collect::<Vec<_>>(), 11);
        assert_eq!(t, (0..=100).step_by(10).collect::<Vec<_>>());
        assert_eq!(thin(&[1, 2], 10), vec![1, 2]);
    }
}
