//! The paper's figures from run folders: classifier accuracy and flip rates against distortion
//! strength; embedding distance CDFs (Fig. 4) and PR curves (Fig. 5) per distortion.

use plotters::prelude::RGBColor;

use super::plot::{BLUE, Figure, GREY, HASH_COLOURS, ORANGE, Series, grouped_bars, line_panels};
use super::{Run, RunKind, spec_value};
use crate::error::Result;
use crate::eval::ClassifyEval;
use crate::eval::embed::{DistortionResult, EmbedEval, FUSED_METHOD, PRETRAINED_MIRROR_METHOD};
use crate::eval::retrieval::ecdf;

/// The classifier figures: top-1 against JPEG quality and against thumbnail scale, flip rates.
pub(super) fn classifier_figures(base: &Run, stab: &[&Run]) -> Result<Vec<Figure>> {
    let RunKind::Classify(b) = &base.kind else { return Ok(Vec::new()) };
    let mut runs: Vec<(&Run, &ClassifyEval)> = vec![(base, b)];
    for s in stab {
        if let RunKind::Classify(e) = &s.kind {
            runs.push((s, e));
        }
    }
    let colours = [BLUE, ORANGE, RGBColor(44, 160, 44), RGBColor(148, 103, 189)];
    let mut figures = Vec::new();
    for (family, x_label, id) in
        [("jpeg", "JPEG quality q", "classify-jpeg"), ("thumb", "thumbnail scale s (%)", "classify-thumb")]
    {
        let mut series = Vec::new();
        for (i, (run, ev)) in runs.iter().enumerate() {
            let mut pts: Vec<(f64, f64)> = ev
                .distortions
                .iter()
                .filter_map(|r| spec_value(&r.spec).filter(|(n, _)| n == family).map(|(_, v)| (v, r.top1 * 100.0)))
                .collect();
            if pts.is_empty() {
                continue;
            }
            pts.push((100.0, ev.clean.top1 * 100.0));
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            series.push(Series { label: run.label(), colour: colours[i % 4], dashed: false, points: pts });
        }
        if series.is_empty() {
            continue;
        }
        let lo = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(f64::INFINITY, f64::min);
        let hi = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0f64, f64::max);
        let svg = line_panels(
            &[(format!("top-1 accuracy under {family} (100 = clean)"), series)],
            x_label,
            "top-1 accuracy (%)",
            (0.0, 100.0),
            ((lo - 2.0).max(0.0), (hi + 1.0).min(100.0)),
            1,
        )?;
        figures.push(Figure {
            id: id.into(),
            caption: format!("Classifier top-1 accuracy against {x_label}; the point at 100 is the clean test set."),
            svg,
        });
    }
    let specs: Vec<String> = b.distortions.iter().map(|r| r.spec.clone()).collect();
    let bars: Vec<(String, RGBColor, Vec<f64>)> = runs
        .iter()
        .enumerate()
        .map(|(i, (run, ev))| {
            let v = specs
                .iter()
                .map(|s| ev.distortions.iter().find(|r| &r.spec == s).map_or(0.0, |r| r.flip_rate * 100.0))
                .collect();
            (run.label(), colours[i % 4], v)
        })
        .collect();
    figures.push(Figure {
        id: "classify-flip".into(),
        caption: "Flip rate: share of test images whose prediction on the distorted copy differs from the clean one (lower is more stable).".into(),
        svg: grouped_bars(&specs, &bars, "flip rate (%)")?,
    });
    Ok(figures)
}

/// The stabilized model fused with pHash in the PR panels (solid black: neither a hash nor a
/// model alone).
const FUSED_COLOUR: RGBColor = RGBColor(0, 0, 0);

/// The embedding figures: distance CDFs (Fig. 4) and PR curves (Fig. 5) per distortion.
pub(super) fn embed_figures(base: &EmbedEval, stab: &EmbedEval) -> Result<Vec<Figure>> {
    // The pretrained features share the L2 axis (the hashes' Hamming bits do not).
    let pretrained = stab.baselines.iter().find(|m| m.name == "pretrained");
    let max_d = base
        .distortions
        .iter()
        .chain(&stab.distortions)
        .chain(pretrained.iter().flat_map(|m| &m.distortions))
        .flat_map(|r| r.near_dup_distances.iter().chain(&r.distinct_distances))
        .copied()
        .fold(0.0f64, f64::max)
        .max(1e-6);
    let grid: Vec<f64> = (0..=200).map(|i| max_d * i as f64 / 200.0).collect();
    let cdf = |v: &[f64]| grid.iter().copied().zip(ecdf(v, &grid)).collect::<Vec<_>>();
    let panels: Vec<(String, Vec<Series>)> = base
        .distortions
        .iter()
        .zip(&stab.distortions)
        .enumerate()
        .map(|(k, (b, s))| {
            let mut series = Vec::new();
            let pretrained_row = pretrained.and_then(|m| m.distortions.get(k));
            for (who, colour, r) in
                [("baseline", BLUE, Some(b)), ("stabilized", ORANGE, Some(s)), ("pretrained", GREY, pretrained_row)]
            {
                let Some(r) = r else { continue };
                for (kind, dashed, v) in
                    [("near-duplicates", false, &r.near_dup_distances), ("distinct", true, &r.distinct_distances)]
                {
                    series.push(Series { label: format!("{who}: {kind}"), colour, dashed, points: cdf(v) });
                }
            }
            (b.spec.clone(), series)
        })
        .collect();
    let cdf_svg =
        line_panels(&panels, "L2 distance between embeddings", "cumulative share", (0.0, max_d), (0.0, 1.0), 3)?;
    let pr = |r: &DistortionResult| r.pr_curve.iter().map(|p| (p.recall, p.precision)).collect::<Vec<_>>();
    let panels: Vec<(String, Vec<Series>)> = base
        .distortions
        .iter()
        .enumerate()
        .map(|(k, b)| {
            let s = &stab.distortions[k];
            let mut series = vec![
                Series { label: "stabilized".into(), colour: ORANGE, dashed: false, points: pr(s) },
                Series { label: "baseline".into(), colour: BLUE, dashed: false, points: pr(b) },
            ];
            for (i, m) in stab.baselines.iter().enumerate() {
                let (colour, dashed) = match m.name.as_str() {
                    "pretrained" => (GREY, false),
                    PRETRAINED_MIRROR_METHOD => (GREY, true),
                    FUSED_METHOD => (FUSED_COLOUR, false),
                    _ => (HASH_COLOURS[(i + 3) % 4], true),
                };
                series.push(Series { label: m.name.clone(), colour, dashed, points: pr(&m.distortions[k]) });
            }
            (b.spec.clone(), series)
        })
        .collect();
    let pr_svg = line_panels(&panels, "recall", "precision", (0.0, 1.0), (0.0, 1.02), 3)?;
    Ok(vec![
        Figure {
            id: "embed-cdf".into(),
            caption: "Fig. 4: cumulative distribution of the embedding distance D(f(x), f(x')) for near-duplicate pairs (solid) and for distinct pairs (dashed), baseline (blue), stabilized (red) and the pretrained ImageNet features (grey; the hashes' Hamming distances are on another scale and appear in Fig. 5 only). Stability training has worked when the red solid curve rises earlier than the blue one while the red dashed curve stays as far right as the blue dashed one: AP depends on how much the two curves of one model overlap.".into(),
            svg: cdf_svg,
        },
        Figure {
            id: "embed-pr".into(),
            caption: "Fig. 5: precision–recall of near-duplicate detection by thresholding the distance, per distortion: stabilized and baseline embeddings, the pretrained ImageNet features, perceptual hashes (Hamming distance), and the stabilized embedding fused with pHash (model+phash: the nearer of the L2 distance and the hash bits scaled by the run's fitted rule, `fusion.json`; what `dupes` uses).".into(),
            svg: pr_svg,
        },
    ])
}
