//! The self-contained HTML report: the paper's figures from run folders' `eval.json` files.
//!
//! Framework-free: it reads the JSON the evaluation commands write (only the fields it needs),
//! draws the figures with `plotters` as inline SVG, and renders PNG copies with `resvg` (text in
//! the embedded DejaVu Sans, so no system fonts are needed). The HTML embeds everything (SVG
//! inline, example images as data URIs): it opens from disk without a network.
//!
//! A run is a baseline when its `config.json` has `alpha == 0`; it is paired with the stabilized
//! runs of the same kind.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::eval::ClassifyEval;
use crate::eval::embed::{Disagreement, DistortionResult, EmbedEval};
use crate::eval::imagenet::ImagenetEval;
use crate::fsutil::write_atomic;
use crate::image::{Channels, Image};
use crate::run_files;

mod figures;
mod plot;
pub mod verdict;

use figures::{classifier_figures, embed_figures};
pub use plot::{Figure, Series, amplified_difference, frontier_svg, grouped_bars, line_panels, svg_to_png};

/// What a run folder holds.
#[derive(Clone, Debug)]
pub enum RunKind {
    Classify(ClassifyEval),
    /// A stabilized ImageNet network evaluated beside the original one (`eval classify` on a
    /// `--dataset photos` run).
    Imagenet(ImagenetEval),
    Embed {
        eval: Box<EmbedEval>,
        examples: Vec<(String, Vec<Disagreement>)>,
    },
}

/// A run folder read for the report.
#[derive(Clone, Debug)]
pub struct Run {
    pub dir: PathBuf,
    pub name: String,
    pub alpha: f64,
    pub sigma: f64,
    pub seed: u64,
    /// `config.json` as written by training.
    pub config: serde_json::Value,
    /// Training wall time (`metrics.json` `seconds`), if known.
    pub train_seconds: Option<f64>,
    /// `run.json` written by `stabilize reproduce`: the command line and its wall time.
    pub command: Option<String>,
    pub kind: RunKind,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
}

impl Run {
    /// Reads `config.json`, `eval.json` and (if present) `metrics.json`, `run.json` and
    /// `examples/examples.json` of a run folder.
    pub fn load(dir: &Path) -> Result<Run> {
        let config: serde_json::Value = read_json(&dir.join(run_files::CONFIG))?;
        let eval_path = dir.join(run_files::EVAL);
        if !eval_path.is_file() {
            return Err(Error::Invalid(format!("{}: no eval.json (run `stabilize eval` on it first)", dir.display())));
        }
        let eval: serde_json::Value = read_json(&eval_path)?;
        let invalid = |e: serde_json::Error| Error::Invalid(format!("{}: {e}", eval_path.display()));
        let kind = if eval.get("models").is_some() {
            RunKind::Imagenet(serde_json::from_value(eval).map_err(invalid)?)
        } else if eval.get("baselines").is_some() {
            let ex_path = dir.join(run_files::EXAMPLES);
            let examples = if ex_path.is_file() { read_json(&ex_path)? } else { Vec::new() };
            RunKind::Embed {
                eval: Box::new(
                    serde_json::from_value(eval)
                        .map_err(|e| Error::Invalid(format!("{}: {e}", eval_path.display())))?,
                ),
                examples,
            }
        } else {
            RunKind::Classify(
                serde_json::from_value(eval).map_err(|e| Error::Invalid(format!("{}: {e}", eval_path.display())))?,
            )
        };
        let metrics: Option<serde_json::Value> =
            if dir.join(run_files::METRICS).is_file() { Some(read_json(&dir.join(run_files::METRICS))?) } else { None };
        let run_json: Option<serde_json::Value> =
            if dir.join(run_files::RUN).is_file() { Some(read_json(&dir.join(run_files::RUN))?) } else { None };
        let num = |k: &str| config.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
        Ok(Run {
            dir: dir.to_path_buf(),
            name: dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            alpha: num("alpha"),
            sigma: num("sigma"),
            seed: config.get("seed").and_then(|v| v.as_u64()).unwrap_or(0),
            train_seconds: metrics.as_ref().and_then(|m| m.get("seconds")).and_then(|v| v.as_f64()),
            command: run_json.as_ref().and_then(|r| r.get("command")).and_then(|v| v.as_str()).map(String::from),
            config,
            kind,
        })
    }

    pub fn is_baseline(&self) -> bool {
        self.alpha == 0.0
    }

    fn label(&self) -> String {
        if self.is_baseline() {
            "baseline (α = 0)".into()
        } else {
            format!("stabilized (α = {}, σ = {})", self.alpha, self.sigma)
        }
    }
}

fn png_data_uri(img: &Image) -> Result<String> {
    let mut bytes = Vec::new();
    let color = match img.channels() {
        Channels::Gray => image::ExtendedColorType::L8,
        Channels::Rgb => image::ExtendedColorType::Rgb8,
    };
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut bytes),
        img.data(),
        img.width(),
        img.height(),
        color,
    )
    .map_err(|e| Error::Invalid(format!("png: {e}")))?;
    Ok(format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn pct(v: f64) -> String {
    format!("{:.2}", v * 100.0)
}

/// Numeric part of a spec (`jpeg:30` → 30).
fn spec_value(spec: &str) -> Option<(String, f64)> {
    let (name, v) = spec.split_once(':')?;
    Some((name.to_string(), v.parse().ok()?))
}

/// Everything a report needs besides the runs.
pub struct ReportMeta {
    pub title: String,
    pub generated: String,
    pub version: String,
    /// Extra provenance lines (commands, wall times) shown verbatim.
    pub notes: Vec<String>,
    /// An α/σ sweep (`stabilize sweep`) to show as the frontier figure and its table.
    pub sweep: Option<crate::eval::sweep::Sweep>,
}

/// The rendered report: the HTML and the figures (for PNG copies).
pub struct Report {
    pub html: String,
    pub figures: Vec<Figure>,
}

/// Renders the report from runs; example-pair images are read from the stabilized embedding run's
/// `examples/` folder.
pub fn render(runs: &[Run], meta: &ReportMeta) -> Result<Report> {
    let mut figures = Vec::new();
    let mut body = String::new();
    let mut claims = Vec::new();
    let classify: Vec<&Run> = runs.iter().filter(|r| matches!(r.kind, RunKind::Classify(_))).collect();
    let embed: Vec<&Run> = runs.iter().filter(|r| matches!(r.kind, RunKind::Embed { .. })).collect();
    if runs.is_empty() {
        return Err(Error::Invalid("no runs to report".into()));
    }

    // --- Embeddings.
    let eb = embed.iter().find(|r| r.is_baseline());
    let es = embed.iter().find(|r| !r.is_baseline());
    if let (Some(b), Some(s)) = (eb, es) {
        let (RunKind::Embed { eval: be, .. }, RunKind::Embed { eval: se, examples }) = (&b.kind, &s.kind) else {
            unreachable!()
        };
        if be.seed != se.seed || be.eval_images != se.eval_images || be.borders_stripped != se.borders_stripped {
            return Err(Error::Invalid(format!(
                "{} and {} were evaluated on different images (seed, count or borders); re-evaluate both with the same `stabilize eval embed` options",
                b.dir.display(),
                s.dir.display()
            )));
        }
        let _ = writeln!(body, "<h2>Near-duplicate detection and ranking (embeddings)</h2>");
        let _ = writeln!(
            body,
            "<p>{} held-out photos, {} evaluation crops, {} ranking triplets. Baseline: <code>{}</code>; stabilized: <code>{}</code>.</p>",
            se.test_photos,
            se.eval_images,
            se.ranking_triplets,
            esc(&b.dir.display().to_string()),
            esc(&s.dir.display().to_string())
        );
        claims.extend(verdict::embedding_claims(be, se));
        let figs = embed_figures(be, se)?;
        for f in figs {
            push_figure(&mut body, &f);
            figures.push(f);
        }
        body.push_str(&embed_table(be, se));
        if !examples.is_empty() {
            body.push_str(&examples_html(s, examples)?);
        }
    } else if !embed.is_empty() {
        let _ = writeln!(
            body,
            "<p class=warn>Embedding runs need one baseline (α = 0) and one stabilized run for the figures.</p>"
        );
    }

    // --- Classifier.
    let cb = classify.iter().find(|r| r.is_baseline());
    let cs: Vec<&Run> = classify.iter().filter(|r| !r.is_baseline()).copied().collect();
    if let Some(b) = cb {
        if let (RunKind::Classify(be), Some(RunKind::Classify(se))) = (&b.kind, cs.first().map(|r| &r.kind)) {
            claims.extend(verdict::classifier_claims(be, se));
        }
        let _ = writeln!(body, "<h2>Classifier robustness</h2>");
        for f in classifier_figures(b, &cs)? {
            push_figure(&mut body, &f);
            figures.push(f);
        }
        body.push_str(&classify_table(b, &cs));
    } else if !classify.is_empty() {
        let _ = writeln!(body, "<p class=warn>Classifier runs need a baseline (α = 0) for the figures.</p>");
    }

    // --- The ImageNet network stabilized on photos.
    for r in runs {
        if let RunKind::Imagenet(e) = &r.kind {
            let _ = writeln!(body, "<h2>The ImageNet network on held-out photos: original against stabilized</h2>");
            let f = imagenet_figure(&r.name, e)?;
            push_figure(&mut body, &f);
            figures.push(f);
            body.push_str(&imagenet_table(e));
        }
    }

    // --- Provenance.
    let _ = writeln!(
        body,
        "<h2>Runs</h2><table><tr><th>run</th><th>kind</th><th>α</th><th>σ</th><th>seed</th><th>training time</th><th>command</th></tr>"
    );
    for r in runs {
        let kind = match r.kind {
            RunKind::Embed { .. } => "embedding",
            RunKind::Classify(_) => "classifier",
            RunKind::Imagenet(_) => "ImageNet classifier",
        };
        let _ = writeln!(
            body,
            "<tr><td><code>{}</code></td><td>{kind}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td style=\"text-align:left\"><code>{}</code></td></tr>",
            esc(&r.dir.display().to_string()),
            r.alpha,
            r.sigma,
            r.seed,
            r.train_seconds.map(|s| format!("{:.0} s", s)).unwrap_or_else(|| "–".into()),
            esc(r.command.as_deref().unwrap_or("–"))
        );
    }
    body.push_str("</table>");
    for r in runs {
        let _ = writeln!(
            body,
            "<details><summary>config of <code>{}</code></summary><pre>{}</pre></details>",
            esc(&r.name),
            esc(&serde_json::to_string_pretty(&r.config).unwrap_or_default())
        );
    }
    if let Some(sweep) = &meta.sweep {
        let _ = writeln!(body, "<h2>α/σ sweep: the accuracy–stability frontier</h2>");
        let f = Figure {
            id: "sweep-frontier".into(),
            caption: format!(
                "Clean top-1 against the mean flip rate over {} for every grid point; the grey line joins the Pareto-optimal points (no other point is both more accurate and more stable).",
                sweep.distortions.join(", ")
            ),
            svg: frontier_svg(&sweep.points)?,
        };
        push_figure(&mut body, &f);
        figures.push(f);
        body.push_str("<table><tr><th>α</th><th>σ</th><th>clean top-1</th><th>mean distorted top-1</th><th>mean flip rate</th><th>training s</th><th>frontier</th></tr>");
        for (i, p) in sweep.points.iter().enumerate() {
            let mark = if sweep.frontier.contains(&i) { "✓" } else { "" };
            let _ = write!(body, "<tr><td>{}</td><td>{mark}</td></tr>", p.cells().join("</td><td>"));
        }
        body.push_str("</table>");
    }
    if !meta.notes.is_empty() {
        let _ = writeln!(body, "<pre>{}</pre>", esc(&meta.notes.join("\n")));
    }
    if !claims.is_empty() {
        body.insert_str(0, &verdict::html(&claims, esc));
    }
    let html = format!(
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>{title}</title>\n<style>{CSS}</style></head>\n<body>\n<h1>{title}</h1>\n<p class=meta>stabilize {version} · generated {generated} · stability training (Zheng et al., CVPR 2016): baseline (α = 0) against stabilized, same data, same seed.</p>\n{body}\n</body></html>\n",
        title = esc(&meta.title),
        version = esc(&meta.version),
        generated = esc(&meta.generated),
    );
    Ok(Report { html, figures })
}

const CSS: &str = "body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;max-width:1000px;margin:2em auto;color:#222}\
figure{margin:1.5em 0}figcaption{font-size:.9em;color:#444}table{border-collapse:collapse;margin:1em 0;font-size:.85em}\
table{display:block;overflow-x:auto;max-width:100%}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}td code{white-space:normal}th{background:#f3f3f3}td:first-child{text-align:left}\
.better{background:#e3f4e3}.worse{background:#fbe4e4}.meta{color:#666}.warn{color:#a00}img{image-rendering:pixelated}\
.examples td{text-align:center}";

fn push_figure(body: &mut String, f: &Figure) {
    let _ = writeln!(body, "<figure id=\"{}\">{}<figcaption>{}</figcaption></figure>", f.id, f.svg, esc(&f.caption));
}

fn embed_table(b: &EmbedEval, s: &EmbedEval) -> String {
    let mut t = String::from("<h3>Detection and ranking, per distortion</h3><table><tr><th>method</th>");
    let specs: Vec<&str> = s.distortions.iter().map(|r| r.spec.as_str()).chain(["pooled"]).collect();
    for sp in &specs {
        let _ = write!(t, "<th>{sp}<br>AP</th>");
    }
    for sp in &specs[..specs.len() - 1] {
        let _ = write!(t, "<th>{sp}<br>ranking</th>");
    }
    t.push_str("</tr>");
    let mut row = |name: &str,
                   rows: &[DistortionResult],
                   pooled: &DistortionResult,
                   cmp: Option<(&[DistortionResult], &DistortionResult)>| {
        let _ = write!(t, "<tr><td>{}</td>", esc(name));
        for (i, r) in rows.iter().chain([pooled]).enumerate() {
            let class = cmp.map_or("", |(c, cp)| {
                let other = if i < c.len() { c[i].detection.ap } else { cp.detection.ap };
                if r.detection.ap > other + 1e-9 {
                    "better"
                } else if r.detection.ap < other - 1e-9 {
                    "worse"
                } else {
                    ""
                }
            });
            let _ = write!(t, "<td class=\"{class}\">{:.3}</td>", r.detection.ap);
        }
        for r in rows {
            let _ = write!(t, "<td>{}</td>", r.ranking_accuracy.map(|a| format!("{a:.3}")).unwrap_or_default());
        }
        t.push_str("</tr>");
    };
    row("stabilized", &s.distortions, &s.pooled, Some((&b.distortions, &b.pooled)));
    row("baseline", &b.distortions, &b.pooled, None);
    for m in &s.baselines {
        row(&m.name, &m.distortions, &m.pooled, None);
    }
    t.push_str("</table><p>Green: the stabilized AP is above the baseline's; red: below.</p>");
    t
}

fn examples_html(stab: &Run, examples: &[(String, Vec<Disagreement>)]) -> Result<String> {
    let mut t = String::from(
        "<h3>Fig. 6: near-duplicate pairs where baseline and stabilized disagree most</h3><p>Each row: the held-out crop, its distorted copy, their difference amplified ×8, and the distance D under both models: the pairs where, relative to each model's median distinct-pair distance, the baseline puts the copy farthest from its original compared with the stabilized model.</p><table class=examples>",
    );
    for (spec, rows) in examples {
        let dir = stab.dir.join("examples").join(spec.replace(':', "-"));
        let _ = write!(t, "<tr><th colspan=8>{}</th></tr><tr>", esc(spec));
        for (r, ex) in rows.iter().enumerate().take(4) {
            let clean = crate::image::load::load_image(&dir.join(format!("{r}-clean.png")))?;
            let dist = crate::image::load::load_image(&dir.join(format!("{r}-distorted.png")))?;
            let diff = amplified_difference(&clean, &dist, 8.0)?;
            let _ = write!(
                t,
                "<td><img width=96 src=\"{}\"><img width=96 src=\"{}\"><img width=96 src=\"{}\"><br>D baseline {:.3} · stabilized {:.3}</td>",
                png_data_uri(&clean)?,
                png_data_uri(&dist)?,
                png_data_uri(&diff)?,
                ex.baseline_distance,
                ex.stabilized_distance
            );
        }
        t.push_str("</tr>");
    }
    t.push_str("</table>");
    Ok(t)
}

fn classify_table(b: &Run, stab: &[&Run]) -> String {
    let RunKind::Classify(be) = &b.kind else { return String::new() };
    let mut t = String::from("<h3>Top-1 (%) and flip rate (%), per distortion</h3><table><tr><th>distortion</th>");
    let runs: Vec<(&Run, &ClassifyEval)> = std::iter::once((b, be))
        .chain(stab.iter().filter_map(|r| if let RunKind::Classify(e) = &r.kind { Some((*r, e)) } else { None }))
        .collect();
    for (r, _) in &runs {
        let _ = write!(t, "<th>{}<br>top-1</th><th>flip</th>", esc(&r.label()));
    }
    t.push_str("</tr><tr><td>clean</td>");
    for (_, e) in &runs {
        let _ = write!(t, "<td>{}</td><td></td>", pct(e.clean.top1));
    }
    t.push_str("</tr>");
    for row in &be.distortions {
        let _ = write!(t, "<tr><td>{}</td>", esc(&row.spec));
        for (_, e) in &runs {
            match e.distortions.iter().find(|r| r.spec == row.spec) {
                Some(r) => {
                    let _ = write!(t, "<td>{}</td><td>{}</td>", pct(r.top1), pct(r.flip_rate));
                }
                None => t.push_str("<td>–</td><td>–</td>"),
            }
        }
        t.push_str("</tr>");
    }
    t.push_str("</table>");
    t
}

/// Flip rates of every network of an ImageNet evaluation per distortion (`run` names the figure).
fn imagenet_figure(run: &str, e: &ImagenetEval) -> Result<Figure> {
    let specs: Vec<String> = e.models[0].distortions.iter().map(|d| d.spec.clone()).collect();
    let colours = [plot::GREY, plot::BLUE, plot::ORANGE];
    let series: Vec<(String, plotters::prelude::RGBColor, Vec<f64>)> = e
        .models
        .iter()
        .zip(colours.iter().cycle())
        .map(|(m, c)| (m.model.clone(), *c, m.distortions.iter().map(|d| d.flip_rate * 100.0).collect()))
        .collect();
    Ok(Figure {
        id: format!("imagenet-flip-{}", run.replace(|c: char| !c.is_ascii_alphanumeric(), "-")),
        caption: format!(
            "Flip rate of the ImageNet top-1 under each distortion, on {} crops of {} held-out photos at {} px (lower is more stable).",
            e.images, e.photos, e.input_size
        ),
        svg: grouped_bars(&specs, &series, "flip rate (%)")?,
    })
}

/// Per network: clean agreement with the original and with its consensus, labelled top-1/top-5,
/// and per distortion the flip rate, the top-5 agreement and the agreement with the original on
/// the distorted crops.
fn imagenet_table(e: &ImagenetEval) -> String {
    let mut t = String::from(
        "<table><tr><th>network</th><th>clean agreement with the original</th><th>agreement with the original's consensus</th><th>labelled top-1</th><th>labelled top-5</th><th>mean flip</th></tr>",
    );
    for m in &e.models {
        let _ = write!(
            t,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&m.model),
            pct(m.clean_agreement),
            m.consensus_agreement.map_or_else(|| "–".to_string(), pct),
            pct(m.labelled.top1),
            pct(m.labelled.top5),
            pct(m.mean_flip_rate)
        );
    }
    t.push_str("</table><table><tr><th>distortion</th>");
    for m in &e.models {
        let _ = write!(
            t,
            "<th><code>{}</code><br>flip</th><th>top-5 agreement</th><th>agreement with the original</th>",
            esc(&m.model)
        );
    }
    t.push_str("</tr>");
    for (k, d) in e.models[0].distortions.iter().enumerate() {
        let _ = write!(t, "<tr><td>{}</td>", esc(&d.spec));
        for m in &e.models {
            let r = &m.distortions[k];
            let agreement = r.agreement.map_or_else(|| "–".to_string(), pct);
            let _ = write!(t, "<td>{}</td><td>{}</td><td>{agreement}</td>", pct(r.flip_rate), pct(r.top5_agreement));
        }
        t.push_str("</tr>");
    }
    t.push_str("</table>");
    t
}

/// Writes `out` (HTML) and `<out stem>-figures/<id>.png|.svg` beside it; returns the figure paths.
pub fn write(report: &Report, out: &Path) -> Result<Vec<PathBuf>> {
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "report".into());
    let dir = out.parent().unwrap_or(Path::new(".")).join(format!("{stem}-figures"));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut written = Vec::new();
    for f in &report.figures {
        let png = dir.join(format!("{}.png", f.id));
        write_atomic(&png, &svg_to_png(&f.svg)?)?;
        let svg = dir.join(format!("{}.svg", f.id));
        write_atomic(&svg, f.svg.as_bytes())?;
        written.push(png);
    }
    write_atomic(out, report.html.as_bytes())?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::plot::{BLUE, H, ORANGE, W};
    use super::*;

    #[test]
    fn charts_render_to_svg_and_png() {
        let s = vec![
            Series { label: "a".into(), colour: BLUE, dashed: false, points: vec![(0.0, 0.0), (1.0, 1.0)] },
            Series { label: "b".into(), colour: ORANGE, dashed: true, points: vec![(0.0, 1.0), (1.0, 0.0)] },
        ];
        let svg = line_panels(&[("p1".into(), s)], "x (px)", "y", (0.0, 1.0), (0.0, 1.0), 1).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("x (px)") && svg.contains("polyline"), "{}", &svg[..200]);
        let png = svg_to_png(&svg).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        // One panel and a legend of one row.
        assert_eq!(img.dimensions(), (W, H / 2 + 40 + 36));
        // Nine entries wrap into rows of four: three rows.
        let many: Vec<Series> = (0..9)
            .map(|i| Series { label: format!("s{i}"), colour: BLUE, dashed: false, points: vec![(0.0, 0.0)] })
            .collect();
        let svg = line_panels(&[("p".into(), many)], "x", "y", (0.0, 1.0), (0.0, 1.0), 1).unwrap();
        assert!(svg.contains(&format!("height=\"{}\"", H / 2 + 40 + 36 + 48)), "{}", &svg[..200]);
        // Not blank: some pixels are far from white.
        assert!(img.pixels().filter(|p| p.0.iter().any(|&c| c < 128)).count() > 500);
        let bars =
            grouped_bars(&["jpeg:10".into(), "noise:0.1".into()], &[("base".into(), BLUE, vec![5.0, 3.0])], "flip (%)")
                .unwrap();
        assert!(bars.contains("jpeg:10") && bars.contains("<rect"));
    }

    /// An ImageNet run folder loads as such and renders both networks side by side.
    #[test]
    fn an_imagenet_run_is_reported_beside_the_original_network() {
        use crate::eval::imagenet::{ImagenetDistortionEval, ImagenetModelEval, LabelledEval};
        let model = |name: &str, flip: f64| ImagenetModelEval {
            model: name.into(),
            clean_agreement: if name == "pretrained" { 1.0 } else { 0.97 },
            consensus_agreement: Some(if name == "pretrained" { 0.84375 } else { 0.6875 }),
            labelled: LabelledEval { images: 20, top1: 0.9, top5: 1.0 },
            distortions: vec![ImagenetDistortionEval {
                spec: "jpeg:10".into(),
                flip_rate: flip,
                top5_agreement: 0.8,
                agreement: Some(if name == "pretrained" { 1.0 } else { 0.8125 }),
            }],
            mean_flip_rate: flip,
        };
        let eval = ImagenetEval {
            photos: 33,
            images: 528,
            input_size: 224,
            seed: 0,
            models: vec![model("pretrained", 0.65), model("runs/inet", 0.3125)],
            seconds: 1.0,
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(run_files::CONFIG), r#"{"dataset":"photos","alpha":1.0,"sigma":0.1,"seed":0}"#)
            .unwrap();
        std::fs::write(dir.path().join(run_files::EVAL), serde_json::to_vec(&eval).unwrap()).unwrap();
        let run = Run::load(dir.path()).unwrap();
        assert!(matches!(&run.kind, RunKind::Imagenet(e) if *e == eval));
        let meta = ReportMeta {
            title: "t".into(),
            generated: "now".into(),
            version: "0".into(),
            notes: Vec::new(),
            sweep: None,
        };
        let report = render(&[run], &meta).unwrap();
        assert_eq!(report.figures.len(), 1);
        let wants = [
            "ImageNet classifier",
            "runs/inet",
            "31.25",
            "65.00",
            "97.00",
            "81.25",
            "68.75",
            "528 crops of 33 held-out photos",
        ];
        for want in wants {
            assert!(report.html.contains(want), "{want} missing");
        }
    }

    #[test]
    fn amplified_difference_known_answer() {
        let a = Image::new(2, 1, Channels::Gray, vec![10, 200]).unwrap();
        let b = Image::new(2, 1, Channels::Gray, vec![13, 100]).unwrap();
        assert_eq!(amplified_difference(&a, &b, 8.0).unwrap().data(), &[24, 255]);
        assert!(png_data_uri(&a).unwrap().starts_with("data:image/png;base64,iVBOR"));
        assert_eq!(spec_value("jpeg:30"), Some(("jpeg".into(), 30.0)));
        assert_eq!(esc("<a&\">"), "&lt;a&amp;&quot;&gt;");
    }
}
