//! Drawing: line panels and grouped bars as SVG with `plotters`, PNG copies with `resvg` (text
//! in the embedded DejaVu Sans, so no system fonts are needed), and the α/σ frontier.

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::eval::sweep::{SweepPoint, pareto_front};
use crate::image::Image;

/// Figure size in SVG/PNG pixels.
pub(crate) const W: u32 = 900;
pub(crate) const H: u32 = 420;
pub(crate) const BLUE: RGBColor = RGBColor(31, 119, 180);
pub(crate) const ORANGE: RGBColor = RGBColor(214, 39, 40);
pub(crate) const GREY: RGBColor = RGBColor(120, 120, 120);
pub(crate) const HASH_COLOURS: [RGBColor; 4] =
    [RGBColor(44, 160, 44), RGBColor(148, 103, 189), RGBColor(140, 86, 75), RGBColor(227, 119, 194)];

/// One line of a chart.
pub struct Series {
    pub label: String,
    pub colour: RGBColor,
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

/// A figure: its id (file name), caption and SVG.
pub struct Figure {
    pub id: String,
    pub caption: String,
    pub svg: String,
}

pub(crate) fn plot_err<E: std::fmt::Debug>(e: E) -> Error {
    Error::Invalid(format!("plotting: {e:?}"))
}

/// Width in px of one legend entry (line and label).
const LEGEND_SLOT: usize = 220;

/// Small-multiple line charts: one panel per `(title, series)`, sharing axes and the legend.
pub fn line_panels(
    panels: &[(String, Vec<Series>)],
    x_label: &str,
    y_label: &str,
    x_range: (f64, f64),
    y_range: (f64, f64),
    columns: usize,
) -> Result<String> {
    let columns = columns.max(1).min(panels.len().max(1));
    let rows = panels.len().div_ceil(columns).max(1);
    // The legend wraps: at most LEGEND_SLOT px per entry, a row of 24 px per line of entries.
    let entries = panels.first().map_or(1, |(_, s)| s.len().max(1));
    let per_row = ((W as usize - 20) / LEGEND_SLOT).clamp(1, entries);
    let legend_h = 36 + 24 * (entries.div_ceil(per_row) as u32 - 1);
    let (w, h) = (W, (H / 2 + 40) * rows as u32 + legend_h);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (body, legend) = root.split_vertically(h - legend_h);
        let areas = body.split_evenly((rows, columns));
        for ((title, series), area) in panels.iter().zip(areas.iter()) {
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(36)
                .y_label_area_size(48)
                .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .x_labels(6)
                .y_labels(5)
                .label_style(("sans-serif", 12))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(plot_err)?;
            for s in series {
                let style = ShapeStyle::from(&s.colour).stroke_width(2);
                if s.dashed {
                    chart.draw_series(DashedLineSeries::new(s.points.clone(), 6, 4, style)).map_err(plot_err)?;
                } else {
                    chart.draw_series(LineSeries::new(s.points.clone(), style)).map_err(plot_err)?;
                }
            }
        }
        // One shared legend under the panels.
        if let Some((_, series)) = panels.first() {
            let slot = (w as i32 - 20) / per_row as i32;
            for (i, s) in series.iter().enumerate() {
                let x = 10 + (i % per_row) as i32 * slot;
                let y = 24 * (i / per_row) as i32;
                let style = ShapeStyle::from(&s.colour).stroke_width(3);
                if s.dashed {
                    for k in 0..3 {
                        legend
                            .draw(&PathElement::new(vec![(x + k * 10, y + 18), (x + k * 10 + 6, y + 18)], style))
                            .map_err(plot_err)?;
                    }
                } else {
                    legend.draw(&PathElement::new(vec![(x, y + 18), (x + 26, y + 18)], style)).map_err(plot_err)?;
                }
                legend.draw(&Text::new(s.label.clone(), (x + 32, y + 12), ("sans-serif", 13))).map_err(plot_err)?;
            }
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// Grouped bars: `groups` along x (labels), one bar per series in each group.
pub fn grouped_bars(groups: &[String], series: &[(String, RGBColor, Vec<f64>)], y_label: &str) -> Result<String> {
    let y_max = series.iter().flat_map(|s| s.2.iter().copied()).fold(0.0f64, f64::max).max(1e-6) * 1.15;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let n = groups.len();
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..n as f64, 0f64..y_max)
            .map_err(plot_err)?;
        let labels = groups.to_vec();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - i as f64 - 0.5).abs() < 0.26 && i < labels.len() { labels[i].clone() } else { String::new() }
            })
            .y_desc(y_label)
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(plot_err)?;
        let k = series.len().max(1) as f64;
        for (si, (label, colour, values)) in series.iter().enumerate() {
            let c = *colour;
            chart
                .draw_series(values.iter().enumerate().map(|(g, &v)| {
                    let x0 = g as f64 + 0.1 + 0.8 * si as f64 / k;
                    Rectangle::new([(x0, 0.0), (x0 + 0.8 / k - 0.02, v)], c.filled())
                }))
                .map_err(plot_err)?
                .label(label.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// Renders an SVG to PNG bytes with the embedded DejaVu Sans for text.
pub fn svg_to_png(svg: &str) -> Result<Vec<u8>> {
    let mut opt = resvg::usvg::Options::default();
    let db = opt.fontdb_mut();
    db.load_font_data(dejavu::sans::regular().to_vec());
    db.set_sans_serif_family("DejaVu Sans");
    let tree = resvg::usvg::Tree::from_str(svg, &opt).map_err(|e| Error::Invalid(format!("svg: {e}")))?;
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| Error::Invalid("svg: empty size".into()))?;
    pixmap.fill(resvg::tiny_skia::Color::WHITE);
    resvg::render(&tree, resvg::tiny_skia::Transform::identity(), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| Error::Invalid(format!("png: {e}")))
}

/// `|a − b| × gain`, clamped: the "amplified difference" image of the examples.
pub fn amplified_difference(a: &Image, b: &Image, gain: f64) -> Result<Image> {
    if (a.width(), a.height(), a.channels()) != (b.width(), b.height(), b.channels()) {
        return Err(Error::Invalid("difference of images of different shapes".into()));
    }
    let data =
        a.data().iter().zip(b.data()).map(|(&x, &y)| ((x as f64 - y as f64).abs() * gain).min(255.0) as u8).collect();
    Image::new(a.width(), a.height(), a.channels(), data)
}

/// The frontier figure: every point (clean top-1 % against mean flip rate %), labelled α/σ, the
/// baseline (α = 0) in red, and the Pareto front as a line. SVG.
pub fn frontier_svg(points: &[SweepPoint]) -> Result<String> {
    if points.is_empty() {
        return Err(Error::Invalid("no sweep points to plot".into()));
    }
    let xs: Vec<f64> = points.iter().map(|p| p.mean_flip_rate * 100.0).collect();
    let ys: Vec<f64> = points.iter().map(|p| p.clean_top1 * 100.0).collect();
    let pad = |lo: f64, hi: f64| {
        let m = ((hi - lo) * 0.12).max(0.5);
        (lo - m, hi + m)
    };
    let (x0, x1) = pad(xs.iter().copied().fold(f64::MAX, f64::min), xs.iter().copied().fold(f64::MIN, f64::max));
    let x1 = x1 + (x1 - x0) * 0.08; // room for the labels right of the points
    let (y0, y1) = pad(ys.iter().copied().fold(f64::MAX, f64::min), ys.iter().copied().fold(f64::MIN, f64::max));
    let err = |e: &dyn std::fmt::Debug| Error::Invalid(format!("plotting: {e:?}"));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption("α/σ sweep: clean accuracy against stability", ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(x0.max(0.0)..x1, y0..y1.min(100.0))
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("mean flip rate under the distortions (%)")
            .y_desc("clean top-1 (%)")
            .label_style(("sans-serif", 12))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| err(&e))?;
        let front: Vec<(f64, f64)> = pareto_front(points).iter().map(|&i| (xs[i], ys[i])).collect();
        chart
            .draw_series(LineSeries::new(front, ShapeStyle::from(&RGBColor(120, 120, 120)).stroke_width(1)))
            .map_err(|e| err(&e))?;
        for (i, p) in points.iter().enumerate() {
            let colour = if p.alpha == 0.0 { RGBColor(214, 39, 40) } else { RGBColor(31, 119, 180) };
            let label = if p.alpha == 0.0 { "baseline".to_string() } else { format!("α {} σ {}", p.alpha, p.sigma) };
            chart.draw_series(std::iter::once(Circle::new((xs[i], ys[i]), 4, colour.filled()))).map_err(|e| err(&e))?;
            chart
                .draw_series(std::iter::once(Text::new(label, (xs[i], ys[i]), ("sans-serif", 10))))
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}
