//! The α/σ sweep: one classifier per grid point, each summarised by its clean top-1 and its mean
//! flip rate under the distortions, and the frontier between the two (higher accuracy and fewer
//! flips are both better).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// One trained and evaluated grid point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    pub alpha: f64,
    pub sigma: f64,
    /// Run folder name inside the sweep folder.
    pub run: String,
    /// Top-1 on the clean test set, in [0, 1].
    pub clean_top1: f64,
    /// Mean over the distortions of the share of test images whose prediction changes, in [0, 1].
    pub mean_flip_rate: f64,
    /// Mean top-1 over the distortions, in [0, 1].
    pub mean_distorted_top1: f64,
    /// Training wall time, seconds. (σ is unused when α = 0: the baseline has no x'.)
    pub train_seconds: f64,
}

/// The sweep's summary (`sweep.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sweep {
    pub distortions: Vec<String>,
    pub points: Vec<SweepPoint>,
    /// Indices into `points` of the Pareto-optimal ones, by increasing flip rate.
    pub frontier: Vec<usize>,
}

/// Indices of the points no other point beats on both axes (higher `clean_top1` and lower
/// `mean_flip_rate`, at least one strictly), sorted by flip rate.
pub fn pareto_front(points: &[SweepPoint]) -> Vec<usize> {
    let dominated = |i: usize| {
        let p = &points[i];
        points.iter().any(|q| {
            q.clean_top1 >= p.clean_top1
                && q.mean_flip_rate <= p.mean_flip_rate
                && (q.clean_top1 > p.clean_top1 || q.mean_flip_rate < p.mean_flip_rate)
        })
    };
    let mut front: Vec<usize> = (0..points.len()).filter(|&i| !dominated(i)).collect();
    front.sort_by(|&a, &b| points[a].mean_flip_rate.total_cmp(&points[b].mean_flip_rate));
    front
}

impl SweepPoint {
    /// The table cells: α, σ (– for the baseline, which has no x'), clean top-1, mean distorted
    /// top-1, mean flip rate, training seconds.
    pub fn cells(&self) -> [String; 6] {
        [
            self.alpha.to_string(),
            if self.alpha == 0.0 { "–".to_string() } else { self.sigma.to_string() },
            format!("{:.2} %", self.clean_top1 * 100.0),
            format!("{:.2} %", self.mean_distorted_top1 * 100.0),
            format!("{:.2} %", self.mean_flip_rate * 100.0),
            format!("{:.0}", self.train_seconds),
        ]
    }
}

/// A Markdown table of the points, frontier points marked with `*`.
pub fn markdown_table(sweep: &Sweep) -> String {
    let mut s = String::from(
        "| α | σ | clean top-1 | mean distorted top-1 | mean flip rate | train s | frontier |\n|---:|---:|---:|---:|---:|---:|:---:|\n",
    );
    for (i, p) in sweep.points.iter().enumerate() {
        let mark = if sweep.frontier.contains(&i) { "*" } else { "" };
        let _ = writeln!(s, "| {} | {mark} |", p.cells().join(" | "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(alpha: f64, top1: f64, flip: f64) -> SweepPoint {
        SweepPoint {
            alpha,
            sigma: 0.1,
            run: format!("a{alpha}"),
            clean_top1: top1,
            mean_flip_rate: flip,
            mean_distorted_top1: top1 - 0.05,
            train_seconds: 1.0,
        }
    }

    #[test]
    fn pareto_front_keeps_only_undominated_points_sorted_by_flip_rate() {
        let pts =
            vec![p(0.0, 0.90, 0.10), p(0.1, 0.89, 0.05), p(1.0, 0.85, 0.06), p(2.0, 0.80, 0.02), p(3.0, 0.90, 0.10)];
        // (0.85, 0.06) is beaten by (0.89, 0.05); the two identical points both stay.
        assert_eq!(pareto_front(&pts), vec![3, 1, 0, 4]);
        assert!(pareto_front(&[]).is_empty());
    }

    #[cfg(feature = "report")]
    #[test]
    fn figure_and_table_render() {
        use crate::report::frontier_svg;
        let pts = vec![p(0.0, 0.9, 0.1), p(0.1, 0.89, 0.05)];
        let svg = frontier_svg(&pts).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("baseline") && svg.contains("α 0.1 σ 0.1"));
        let sweep = Sweep { distortions: vec!["jpeg:10".into()], frontier: pareto_front(&pts), points: pts };
        let t = markdown_table(&sweep);
        assert_eq!(t.lines().count(), 4);
        assert!(t.contains("| 0.1 | 0.1 | 89.00 % | 84.00 % | 5.00 % | 1 | * |"), "{t}");
        assert!(frontier_svg(&[]).is_err());
    }
}
