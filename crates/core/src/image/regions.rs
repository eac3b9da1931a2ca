//! Sub-regions of an image, described beside the whole so that a copy cut down to part of the
//! picture (a crop of a fraction of each side, `trim:p`) can be matched to the region it came
//! from.
//!
//! A copy that keeps 75 % of each side and is enlarged back to the full size shows the scene at
//! 1.33× the scale of the original: the original's global descriptor and the copy's differ by
//! what was cut away *and* by the zoom. The same part of the original, cut out and resized to the
//! model's input, shows it at the copy's scale. [`regions`] gives those parts: the four corners
//! and the centre at [`REGION_SCALE`] of each side; a trimmed copy's window lies within an eighth
//! of the side of one of them.
//!
//! The distance between two images described this way is the smallest of whole-to-whole,
//! whole-to-region and region-to-whole ([`crate::eval::embed::Descriptors::Regions`]); regions are
//! never compared with regions (two different parts of two photos matching is what a distinct
//! pair should not do).

use crate::Result;
use crate::image::Image;
use crate::image::resize::{Filter, resize_region};

/// Share of each side a region keeps: the strongest trim of the evaluation (`trim:25`).
pub const REGION_SCALE: f64 = 0.75;

/// Regions per image: four corners and the centre.
pub const REGION_COUNT: usize = 5;

/// The [`REGION_COUNT`] windows `(left, top, width, height)` (px, fractional) of a `w×h` image at
/// `scale` of each side: top-left, top-right, bottom-left, bottom-right, centre.
pub fn region_windows(w: u32, h: u32, scale: f64) -> [(f64, f64, f64, f64); REGION_COUNT] {
    let (rw, rh) = (w as f64 * scale, h as f64 * scale);
    let (dx, dy) = (w as f64 - rw, h as f64 - rh);
    [(0.0, 0.0, rw, rh), (dx, 0.0, rw, rh), (0.0, dy, rw, rh), (dx, dy, rw, rh), (dx / 2.0, dy / 2.0, rw, rh)]
}

/// The [`region_windows`] of `img` at `scale`, each resized (bicubic) to `width×height`, in that
/// order.
pub fn regions(img: &Image, scale: f64, width: u32, height: u32) -> Result<Vec<Image>> {
    region_windows(img.width(), img.height(), scale)
        .into_iter()
        .map(|win| resize_region(img, Some(win), width, height, Filter::Bicubic))
        .collect()
}

/// Where a region's descriptor comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegionSource {
    /// Each region cut out of the image and resized to the model's input ([`regions`]): the
    /// copy's scale exactly, at `1 + REGION_COUNT` forward passes per image.
    #[default]
    Crops,
    /// Each region pooled from the cells of the model's last feature map that its window covers
    /// ([`map_window_weights`]): one forward pass per image; the cells see past the window's
    /// edge and the scale is the whole's.
    Map,
    /// Each region pooled, as for [`Map`](Self::Map), from the feature map of the image
    /// enlarged by `1/scale` ([`zoomed_side`]), where a region's window covers the model's input
    /// side: the copy's scale, at two forward passes per image (the whole, and the enlarged
    /// image's `1/scale²` of the pixels).
    Zoom,
}

impl RegionSource {
    /// The name on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            RegionSource::Crops => "crops",
            RegionSource::Map => "map",
            RegionSource::Zoom => "zoom",
        }
    }

    /// The model's forward passes per image to describe it and its regions.
    pub fn passes(self) -> usize {
        match self {
            RegionSource::Crops => 1 + REGION_COUNT,
            RegionSource::Map => 1,
            RegionSource::Zoom => 2,
        }
    }
}

/// The side an image of `side` px is enlarged to for [`RegionSource::Zoom`]: `side / scale`,
/// rounded, so that a region at `scale` of it is `side` px across.
pub fn zoomed_side(side: u32, scale: f64) -> u32 {
    (side as f64 / scale).round() as u32
}

/// Pooling weights `[1 + REGION_COUNT, h·w]` (row-major) over an `h×w` feature map: row 0 the
/// whole (every cell `1/(h·w)`, global average pooling), then the [`region_windows`] at `scale`
/// in cell units, each cell weighted by the area of it the window covers, rows summing to 1.
pub fn map_window_weights(h: usize, w: usize, scale: f64) -> Vec<f32> {
    let cells = h * w;
    let mut out = vec![1.0 / cells as f32; cells];
    // Length of [a, a + len) ∩ [i, i + 1).
    let overlap = |a: f64, len: f64, i: usize| ((a + len).min(i as f64 + 1.0) - a.max(i as f64)).max(0.0);
    for (left, top, rw, rh) in region_windows(w as u32, h as u32, scale) {
        let area = rw * rh;
        for y in 0..h {
            for x in 0..w {
                out.push((overlap(left, rw, x) * overlap(top, rh, y) / area) as f32);
            }
        }
    }
    out
}

/// `img` (resized to `width×height`) followed by its [`regions`]: the `1 + REGION_COUNT` images
/// that describe it.
pub fn with_regions(img: &Image, scale: f64, width: u32, height: u32) -> Result<Vec<Image>> {
    let mut all = vec![crate::image::resize::resize(img, width, height, Filter::Bicubic)?];
    all.extend(regions(img, scale, width, height)?);
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Channels;
    use crate::distort::edits::{trim, trim_window};

    #[test]
    fn map_weights_cover_each_window() {
        // A 4×4 map at 0.75: the corners are 3×3 cells of weight 1/9; the centre covers the
        // middle 2×2 cells whole, the edge cells by half and the corner cells by a quarter.
        let w = map_window_weights(4, 4, 0.75);
        assert_eq!(w.len(), (1 + REGION_COUNT) * 16);
        for row in w.chunks(16) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        assert!(w[..16].iter().all(|&v| v == 1.0 / 16.0));
        let top_left = &w[16..32];
        for (i, &v) in top_left.iter().enumerate() {
            let (y, x) = (i / 4, i % 4);
            let want = if x < 3 && y < 3 { 1.0 / 9.0 } else { 0.0 };
            assert!((v - want).abs() < 1e-6, "cell {y},{x}: {v}");
        }
        let bottom_right = &w[64..80];
        assert!((bottom_right[15] - 1.0 / 9.0).abs() < 1e-6 && bottom_right[0] == 0.0);
        let centre = &w[80..96];
        let per_axis = [0.5, 1.0, 1.0, 0.5];
        for (i, &v) in centre.iter().enumerate() {
            let want = per_axis[i / 4] * per_axis[i % 4] / 9.0;
            assert!((v - want).abs() < 1e-6, "cell {i}: {v} vs {want}");
        }
        assert_eq!(zoomed_side(128, 0.75), 171);
        assert_eq!(zoomed_side(96, 0.75), 128);
        // Scale 1: every row is the whole.
        let one = map_window_weights(2, 3, 1.0);
        assert!(one.chunks(6).all(|r| r.iter().all(|&v| (v - 1.0 / 6.0).abs() < 1e-6)));
    }

    #[test]
    fn the_windows_are_the_corners_and_the_centre() {
        let w = region_windows(200, 100, 0.75);
        assert_eq!(w[0], (0.0, 0.0, 150.0, 75.0));
        assert_eq!(w[1], (50.0, 0.0, 150.0, 75.0));
        assert_eq!(w[2], (0.0, 25.0, 150.0, 75.0));
        assert_eq!(w[3], (50.0, 25.0, 150.0, 75.0));
        assert_eq!(w[4], (25.0, 12.5, 150.0, 75.0));
        // Scale 1: every window is the whole image.
        assert!(region_windows(64, 48, 1.0).iter().all(|&x| x == (0.0, 0.0, 64.0, 48.0)));
    }

    /// A horizontal ramp (value = x), so a region's content says where it was cut.
    fn ramp(w: u32, h: u32) -> Image {
        let data = (0..h).flat_map(|_| (0..w).flat_map(|x| [(x * 255 / (w - 1)) as u8; 3])).collect();
        Image::new(w, h, Channels::Rgb, data).unwrap()
    }

    #[test]
    fn regions_show_their_part_of_the_picture() {
        let img = ramp(256, 256);
        let r = regions(&img, 0.75, 64, 64).unwrap();
        assert_eq!(r.len(), REGION_COUNT);
        assert!(r.iter().all(|x| (x.width(), x.height()) == (64, 64)));
        // Left regions start at black, right ones end at white; the centre's middle is mid-grey.
        assert!(r[0].get(0, 32, 0) <= 3, "{}", r[0].get(0, 32, 0));
        assert!((r[0].get(63, 32, 0) as i32 - 191).abs() <= 4, "{}", r[0].get(63, 32, 0));
        assert!((r[1].get(0, 32, 0) as i32 - 64).abs() <= 4, "{}", r[1].get(0, 32, 0));
        assert!(r[1].get(63, 32, 0) >= 252, "{}", r[1].get(63, 32, 0));
        assert_eq!(r[0].data(), r[2].data(), "a horizontal ramp is the same at the top and the bottom");
        assert!((r[4].get(32, 32, 0) as i32 - 128).abs() <= 4, "{}", r[4].get(32, 32, 0));
        let all = with_regions(&img, 0.75, 64, 64).unwrap();
        assert_eq!(all.len(), 1 + REGION_COUNT);
        assert_eq!(all[1].data(), r[0].data());
    }

    #[test]
    fn a_quarter_trim_is_closer_to_one_region_than_to_the_whole() {
        // On a ramp, the trimmed copy's left edge is the value where its window starts; the best
        // region is the one whose window starts nearest.
        let img = ramp(128, 128);
        for seed in 0..8 {
            let copy = trim(&img, 25.0, seed).unwrap();
            let (left, ..) = trim_window(128, 128, 25.0, seed);
            let all = with_regions(&img, REGION_SCALE, 128, 128).unwrap();
            let mad = |a: &Image| {
                a.data().iter().zip(copy.data()).map(|(&x, &y)| (x as f64 - y as f64).abs()).sum::<f64>()
                    / a.data().len() as f64
            };
            let scores: Vec<f64> = all[1..].iter().map(mad).collect();
            let best = (0..REGION_COUNT).min_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap();
            assert!(
                scores[best] < mad(&all[0]),
                "seed {seed} (left {left:.1}): region {scores:?}, whole {:.2}",
                mad(&all[0])
            );
            // The best-matching region is one whose window starts nearest the trimmed copy's.
            let windows = region_windows(128, 128, REGION_SCALE);
            let off = |k: usize| (windows[k].0 - left).abs();
            let nearest = (0..REGION_COUNT).map(off).fold(f64::INFINITY, f64::min);
            assert!(
                off(best) - nearest < 1e-9,
                "seed {seed}: region {best} starts {:.1} px off, nearest {nearest:.1}",
                off(best)
            );
        }
    }
}
