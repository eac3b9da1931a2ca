//! The edits near-duplicates meet in the wild, beside the paper's four distortions: a crop of part
//! of the side, a border, a small rotation, a mirror, a caption or watermark, brightness, contrast,
//! gamma, grayscale and blur. [`crate::Distortion`] parses and applies them; the functions here are
//! the operations.
//!
//! Like every distortion each keeps the image's size and channels (a crop or a border is resized
//! back, as a near-duplicate finder resizes every image anyway), is deterministic in
//! `(image, seed)` and re-quantises to 8 bits, rounding to nearest.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::distort::RESAMPLE_FILTER;
use crate::error::{Error, Result};
use crate::image::resize::{resize, resize_region};
use crate::image::{Channels, Image};
use crate::seeds::{CAPTION_STREAM, EDIT_STREAM, splitmix64};

/// The random stream of an edit's placement (trim window, border colour, caption).
fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(splitmix64(seed ^ EDIT_STREAM))
}

/// The window `(left, top, width, height)` in px that `trim:p` keeps of a `w×h` image: `p` % of
/// each side is cut off, split between the two ends at a seeded position (uniform), so the
/// window keeps the aspect ratio and is `(1 − p/100)·w × (1 − p/100)·h`.
pub fn trim_window(w: u32, h: u32, percent: f32, seed: u64) -> (f64, f64, f64, f64) {
    let keep = 1.0 - percent as f64 / 100.0;
    let (ww, wh) = (w as f64 * keep, h as f64 * keep);
    let mut r = rng(seed);
    let (u, v): (f64, f64) = (r.random(), r.random());
    (u * (w as f64 - ww), v * (h as f64 - wh), ww, wh)
}

/// `trim:p`: keeps the [`trim_window`] and resizes it back to `w×h` (bicubic).
pub fn trim(img: &Image, percent: f32, seed: u64) -> Result<Image> {
    if percent == 0.0 {
        return Ok(img.clone());
    }
    let window = trim_window(img.width(), img.height(), percent, seed);
    resize_region(img, Some(window), img.width(), img.height(), RESAMPLE_FILTER)
}

/// The border colours `pad:p` picks from by seed: black, white, mid-grey.
pub const BORDER_LEVELS: [u8; 3] = [0, 255, 128];

/// The border of `pad:p` on a `w×h` image: `(left, top, content width, content height)` in px.
/// The content is scaled to `(1 − p/100)` of each side (at least 1 px) and centred; the rest is
/// border, `p/2` % of the side at each end.
pub fn pad_layout(w: u32, h: u32, percent: f32) -> (u32, u32, u32, u32) {
    let keep = 1.0 - percent as f64 / 100.0;
    let cw = ((w as f64 * keep).round() as u32).clamp(1, w);
    let ch = ((h as f64 * keep).round() as u32).clamp(1, h);
    ((w - cw) / 2, (h - ch) / 2, cw, ch)
}

/// `pad:p`: a solid border (colour from [`BORDER_LEVELS`] by seed) around the image shrunk to
/// [`pad_layout`]'s content size (bicubic).
pub fn pad(img: &Image, percent: f32, seed: u64) -> Result<Image> {
    if percent == 0.0 {
        return Ok(img.clone());
    }
    let (w, h) = (img.width(), img.height());
    let (left, top, cw, ch) = pad_layout(w, h, percent);
    let level = BORDER_LEVELS[rng(seed).random_range(0..BORDER_LEVELS.len())];
    let content = resize(img, cw, ch, RESAMPLE_FILTER)?;
    let mut out = Image::filled(w, h, img.channels(), level)?;
    let n = img.channels().count();
    let row = cw as usize * n;
    for y in 0..ch as usize {
        let dst = ((top as usize + y) * w as usize + left as usize) * n;
        out.data_mut()[dst..dst + row].copy_from_slice(&content.data()[y * row..(y + 1) * row]);
    }
    Ok(out)
}

/// The zoom `rotate:d` needs so that the rotated image covers the whole `w×h` frame (no empty
/// corners): `max((w·cos θ + h·sin θ)/w, (w·sin θ + h·cos θ)/h)` with θ = |d|.
pub fn rotate_zoom(w: u32, h: u32, degrees: f32) -> f64 {
    let t = (degrees as f64).abs().to_radians();
    let (w, h) = (w as f64, h as f64);
    ((w * t.cos() + h * t.sin()) / w).max((w * t.sin() + h * t.cos()) / h)
}

/// `rotate:d`: rotates the content by `d` degrees about the centre, counter-clockwise on screen
/// for `d > 0`, zoomed by [`rotate_zoom`] so that no corner is empty (as a photo editor's
/// "straighten" does), sampled bilinearly.
pub fn rotate(img: &Image, degrees: f32) -> Result<Image> {
    if degrees == 0.0 {
        return Ok(img.clone());
    }
    let (w, h, n) = (img.width() as usize, img.height() as usize, img.channels().count());
    let s = rotate_zoom(img.width(), img.height(), degrees);
    let (sin, cos) = (degrees as f64).to_radians().sin_cos();
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    let src = img.data();
    let at = |x: usize, y: usize, c: usize| src[(y * w + x) * n + c] as f64;
    let mut out = vec![0u8; w * h * n];
    for y in 0..h {
        for x in 0..w {
            // Output pixel centre relative to the centre; invert the on-screen counter-clockwise
            // rotation (y points down) and the zoom.
            let (u, v) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
            let sx = (u * cos - v * sin) / s + cx - 0.5;
            let sy = (u * sin + v * cos) / s + cy - 0.5;
            let (sx, sy) = (sx.clamp(0.0, (w - 1) as f64), sy.clamp(0.0, (h - 1) as f64));
            let (x0, y0) = (sx.floor() as usize, sy.floor() as usize);
            let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
            let (fx, fy) = (sx - x0 as f64, sy - y0 as f64);
            for c in 0..n {
                let top = at(x0, y0, c) * (1.0 - fx) + at(x1, y0, c) * fx;
                let bottom = at(x0, y1, c) * (1.0 - fx) + at(x1, y1, c) * fx;
                out[(y * w + x) * n + c] = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Image::new(img.width(), img.height(), img.channels(), out)
}

/// `hflip`: the mirror image (left and right swapped).
pub fn hflip(img: &Image) -> Image {
    let (w, n) = (img.width() as usize, img.channels().count());
    let mut out = img.clone();
    for (dst, src) in out.data_mut().chunks_exact_mut(w * n).zip(img.data().chunks_exact(w * n)) {
        for x in 0..w {
            dst[x * n..(x + 1) * n].copy_from_slice(&src[(w - 1 - x) * n..(w - x) * n]);
        }
    }
    out
}

/// How much of the picture a caption bar keeps: its pixels become `BAR_KEEP · v` under the bar.
pub const BAR_KEEP: f32 = 0.4;

/// The caption `text:p` writes for a seed: a camera date stamp (`2019-07-14 18:32`) or a
/// watermark (`© Studio Nord 2021`).
pub fn caption(seed: u64) -> String {
    const NAMES: [&str; 8] =
        ["Studio Nord", "PhotoArchive", "J. Moreau", "stockimg.net", "Lumen", "K. Tanaka", "Foto Berg", "wildlens"];
    let mut r = rng(seed ^ CAPTION_STREAM);
    let year = r.random_range(1998..=2026);
    if r.random_bool(0.5) {
        let (mo, d, hh, mm) =
            (r.random_range(1..=12), r.random_range(1..=28), r.random_range(0..24), r.random_range(0..60));
        format!("{year}-{mo:02}-{d:02} {hh:02}:{mm:02}")
    } else {
        format!("© {} {year}", NAMES[r.random_range(0..NAMES.len())])
    }
}

/// `text:p`: a caption bar of `p` % of the image height across the top or the bottom (by seed)
/// that darkens what is under it to [`BAR_KEEP`] of its value, with the seed's [`caption`] in
/// white DejaVu Sans Bold at 70 % of the bar's height, from a left margin of half that height
/// (clipped at the right edge).
pub fn text(img: &Image, percent: f32, seed: u64) -> Result<Image> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let bar = ((h as f64 * percent as f64 / 100.0).round() as usize).clamp(1, h);
    let at_top = rng(seed).random_bool(0.5);
    let top = if at_top { 0 } else { h - bar };
    let n = img.channels().count();
    let mut out = img.clone();
    let data = out.data_mut();
    for v in &mut data[top * w * n..(top + bar) * w * n] {
        *v = (*v as f32 * BAR_KEEP).round() as u8;
    }
    let font =
        FontRef::try_from_slice(dejavu::sans::bold()).map_err(|e| Error::Invalid(format!("caption font: {e}")))?;
    let px = (bar as f32 * 0.7).max(1.0);
    let scale = PxScale::from(px);
    let scaled = font.as_scaled(scale);
    let baseline = top as f32 + (bar as f32 - (scaled.ascent() - scaled.descent())) / 2.0 + scaled.ascent();
    let mut x = bar as f32 * 0.35;
    for ch in caption(seed).chars() {
        let id = scaled.glyph_id(ch);
        let glyph = id.with_scale_and_position(scale, point(x, baseline));
        x += scaled.h_advance(id);
        let Some(outline) = font.outline_glyph(glyph) else { continue };
        let b = outline.px_bounds();
        outline.draw(|gx, gy, coverage| {
            let (px, py) = (b.min.x as i64 + gx as i64, b.min.y as i64 + gy as i64);
            if px < 0 || py < top as i64 || px >= w as i64 || py >= (top + bar) as i64 {
                return;
            }
            let i = (py as usize * w + px as usize) * n;
            for v in &mut data[i..i + n] {
                let c = coverage.clamp(0.0, 1.0);
                *v = (*v as f32 * (1.0 - c) + 255.0 * c).round() as u8;
            }
        });
    }
    Ok(out)
}

/// Applies `f` to every sample on the [0,255] scale, rounding and clamping back to 8 bits.
fn map_levels(img: &Image, f: impl Fn(f32) -> f32) -> Image {
    let table: Vec<u8> = (0..=255).map(|v| f(v as f32).round().clamp(0.0, 255.0) as u8).collect();
    let mut out = img.clone();
    out.data_mut().iter_mut().for_each(|v| *v = table[*v as usize]);
    out
}

/// `bright:f`: every sample times `f` (Pillow's `ImageEnhance.Brightness`, a blend with black).
pub fn brightness(img: &Image, factor: f32) -> Image {
    map_levels(img, |v| v * factor)
}

/// `contrast:f`: every sample moved to `m + f·(v − m)`, `m` the mean gray level (luma, ITU-R 601)
/// rounded to an integer (Pillow's `ImageEnhance.Contrast`, a blend with the mean).
pub fn contrast(img: &Image, factor: f32) -> Image {
    let gray = img.to_gray();
    let mean = (gray.data().iter().map(|&v| v as f64).sum::<f64>() / gray.data().len().max(1) as f64).round() as f32;
    map_levels(img, |v| mean + factor * (v - mean))
}

/// `gamma:g`: `255·(v/255)^g` (g > 1 darkens the mid-tones, g < 1 lightens them).
pub fn gamma(img: &Image, g: f32) -> Image {
    map_levels(img, |v| 255.0 * (v / 255.0).powf(g))
}

/// `gray`: the ITU-R 601 luma ([`Image::to_gray`]) in every channel.
pub fn grayscale(img: &Image) -> Image {
    match img.channels() {
        Channels::Gray => img.clone(),
        Channels::Rgb => img.to_gray().to_rgb(),
    }
}

/// `blur:σ`: a Gaussian blur of standard deviation σ px (the `image` crate's separable
/// `imageops::blur`; edges clamp).
pub fn blur(img: &Image, sigma: f32) -> Result<Image> {
    if sigma == 0.0 {
        return Ok(img.clone());
    }
    let (w, h) = (img.width(), img.height());
    let data = match img.channels() {
        Channels::Gray => {
            let buf = image::GrayImage::from_raw(w, h, img.data().to_vec()).expect("size matches");
            image::imageops::blur(&buf, sigma).into_raw()
        }
        Channels::Rgb => {
            let buf = image::RgbImage::from_raw(w, h, img.data().to_vec()).expect("size matches");
            image::imageops::blur(&buf, sigma).into_raw()
        }
    };
    Image::new(w, h, img.channels(), data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: u32, h: u32) -> Image {
        Image::new(w, h, Channels::Gray, (0..h).flat_map(|_| (0..w).map(|x| (4 * x) as u8)).collect()).unwrap()
    }

    #[test]
    fn trim_keeps_a_seeded_window_of_the_requested_share() {
        // trim:25 of 64 px keeps 48 px; on the ramp v = 4x the first output column is ≈ 4·left
        // and the last ≈ 4·(left + 47).
        let img = ramp(64, 64);
        let mut lefts = Vec::new();
        for seed in 0..16 {
            let (l, t, ww, wh) = trim_window(64, 64, 25.0, seed);
            assert_eq!((ww, wh), (48.0, 48.0));
            assert!((0.0..=16.0).contains(&l) && (0.0..=16.0).contains(&t), "{l} {t}");
            let out = trim(&img, 25.0, seed).unwrap();
            let first = out.get(0, 30, 0) as f64;
            let last = out.get(63, 30, 0) as f64;
            assert!((first - 4.0 * (l + 0.375)).abs() <= 3.0, "seed {seed}: left {l}, first {first}");
            assert!((last - 4.0 * (l + 47.625)).abs() <= 3.0, "seed {seed}: left {l}, last {last}");
            lefts.push(l);
        }
        assert!(
            lefts.iter().cloned().fold(f64::MAX, f64::min) < 4.0 && lefts.iter().cloned().fold(0.0, f64::max) > 12.0
        );
        assert_eq!(trim(&img, 0.0, 3).unwrap(), img);
    }

    #[test]
    fn pad_draws_a_border_of_the_requested_share_around_the_shrunk_image() {
        let img = Image::filled(100, 80, Channels::Rgb, 200).unwrap();
        assert_eq!(pad_layout(100, 80, 20.0), (10, 8, 80, 64));
        let mut levels = std::collections::HashSet::new();
        for seed in 0..12 {
            let out = pad(&img, 20.0, seed).unwrap();
            let border = out.get(0, 0, 0);
            assert!(BORDER_LEVELS.contains(&border));
            levels.insert(border);
            for (x, y) in [(9, 40), (90, 40), (50, 7), (50, 72), (99, 79)] {
                assert_eq!(out.get(x, y, 1), border, "({x},{y}) is border");
            }
            for (x, y) in [(10, 8), (50, 40), (89, 71)] {
                assert_eq!(out.get(x, y, 2), 200, "({x},{y}) is content");
            }
        }
        assert_eq!(levels.len(), 3, "every border colour occurs over 12 seeds");
    }

    #[test]
    fn rotate_turns_content_counter_clockwise_and_fills_the_frame() {
        // A bright blob 20 px right of the centre of a 101×101 frame. After rotate:30 it sits at
        // s·(20·cos 30°, −20·sin 30°) from the centre (up is −y), s = cos 30° + sin 30°.
        let (w, h) = (101u32, 101u32);
        let c = 50.5f64;
        let mut data = vec![0u8; (w * h) as usize];
        for y in 49..52 {
            for x in 69..72 {
                data[y * w as usize + x] = 255;
            }
        }
        let img = Image::new(w, h, Channels::Gray, data).unwrap();
        let s = rotate_zoom(w, h, 30.0);
        assert!((s - (30f64.to_radians().cos() + 30f64.to_radians().sin())).abs() < 1e-12);
        let out = rotate(&img, 30.0).unwrap();
        let (mut sx, mut sy, mut m) = (0.0, 0.0, 0.0);
        for y in 0..h {
            for x in 0..w {
                let v = out.get(x, y, 0) as f64;
                sx += v * (x as f64 + 0.5);
                sy += v * (y as f64 + 0.5);
                m += v;
            }
        }
        let (ex, ey) = (c + s * 20.0 * 30f64.to_radians().cos(), c - s * 20.0 * 30f64.to_radians().sin());
        assert!(
            (sx / m - ex).abs() < 0.6 && (sy / m - ey).abs() < 0.6,
            "centroid ({}, {}), expected ({ex}, {ey})",
            sx / m,
            sy / m
        );
        // A constant image stays constant: no corner is left empty.
        let flat = Image::filled(64, 40, Channels::Rgb, 90).unwrap();
        assert!(rotate(&flat, -7.0).unwrap().data().iter().all(|&v| v == 90));
        assert_eq!(rotate(&img, 0.0).unwrap(), img);
    }

    #[test]
    fn hflip_mirrors_and_is_its_own_inverse() {
        let img = Image::new(3, 2, Channels::Rgb, (0..18).collect()).unwrap();
        let f = hflip(&img);
        assert_eq!(&f.data()[0..9], &[6, 7, 8, 3, 4, 5, 0, 1, 2]);
        assert_eq!(hflip(&f), img);
    }

    #[test]
    fn text_darkens_one_bar_and_writes_white_glyphs_in_it() {
        let img = Image::filled(200, 100, Channels::Gray, 200).unwrap();
        for seed in 0..6 {
            let out = text(&img, 20.0, seed).unwrap();
            let rows: Vec<u32> = (0..100).filter(|&y| (0..200).any(|x| out.get(x, y, 0) != 200)).collect();
            // The bar is 20 rows, at the top (0..20) or the bottom (80..100); nothing else moves.
            assert!(
                rows == (0..20).collect::<Vec<_>>() || rows == (80..100).collect::<Vec<_>>(),
                "seed {seed}: {rows:?}"
            );
            let bar: Vec<u8> =
                rows.iter().flat_map(|&y| (0..200).map(move |x| (x, y))).map(|(x, y)| out.get(x, y, 0)).collect();
            let dark = bar.iter().filter(|&&v| v == 80).count();
            let white = bar.iter().filter(|&&v| v >= 250).count();
            assert!(dark > bar.len() / 2, "seed {seed}: the bar keeps 0.4 of 200 = 80 where there is no glyph");
            assert!(white > 40, "seed {seed}: '{}' left {white} white pixels", caption(seed));
        }
        assert!(caption(1) != caption(2) || caption(2) != caption(3));
    }

    #[test]
    fn tone_edits_give_their_formulas() {
        let img = Image::new(4, 1, Channels::Gray, vec![0, 100, 128, 200]).unwrap();
        assert_eq!(brightness(&img, 1.5).data(), &[0, 150, 192, 255]);
        assert_eq!(brightness(&img, 0.5).data(), &[0, 50, 64, 100]);
        // Mean 107: 107 + 0.5·(v − 107).
        assert_eq!(contrast(&img, 0.5).data(), &[54, 104, 118, 154]);
        // 255·(128/255)² = 64.25.
        assert_eq!(gamma(&img, 2.0).data(), &[0, 39, 64, 157]);
        assert_eq!(gamma(&img, 1.0), img);
        let rgb = Image::new(2, 1, Channels::Rgb, vec![255, 0, 0, 10, 200, 30]).unwrap();
        // 0.299·255 = 76.2; 0.299·10 + 0.587·200 + 0.114·30 = 123.8.
        assert_eq!(grayscale(&rgb).data(), &[76, 76, 76, 124, 124, 124]);
    }

    #[test]
    fn blur_spreads_an_edge_by_sigma_and_keeps_constants() {
        // A vertical step 0 → 255 at x = 30: the blurred row is 255·Φ((x − 29.5)/σ), so its
        // differences are a Gaussian of variance σ² = 4 centred on the edge (between pixels 29 and 30).
        let img = Image::new(
            61,
            9,
            Channels::Gray,
            (0..9).flat_map(|_| (0..61).map(|x| if x < 30 { 0 } else { 255 })).collect(),
        )
        .unwrap();
        let out = blur(&img, 2.0).unwrap();
        let row: Vec<f64> = (0..61).map(|x| out.get(x, 4, 0) as f64).collect();
        let d: Vec<f64> = row.windows(2).map(|p| p[1] - p[0]).collect();
        let m: f64 = d.iter().sum();
        let mean = d.iter().enumerate().map(|(i, v)| v * (i as f64 + 0.5)).sum::<f64>() / m;
        let var = d.iter().enumerate().map(|(i, v)| v * (i as f64 + 0.5 - mean).powi(2)).sum::<f64>() / m;
        assert!((m - 255.0).abs() < 1e-9 && (mean - 29.5).abs() < 0.1, "{m} {mean}");
        assert!((var - 4.0).abs() < 0.3, "variance {var}");
        let flat = Image::filled(20, 20, Channels::Rgb, 77).unwrap();
        assert!(blur(&flat, 3.0).unwrap().data().iter().all(|&v| v == 77));
    }
}
