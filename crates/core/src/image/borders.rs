//! Solid borders (letterbox bars, a frame added in an editor) found and cut off before an image is
//! described, as `perception`'s `unletterbox` does: a copy with a border is the same picture, and
//! no descriptor here (hash or network) is invariant to one by itself.
//!
//! A side's outermost line (row or column) is a border when nearly all its pixels lie within
//! [`BORDER_TOLERANCE`] of the line's mean colour; further lines inward belong to the border while
//! they match that colour the same way. Borders are cut in pairs — top and bottom, left and right,
//! both of one colour — as bars and frames come, so a one-sided plain region (a sky, a caption
//! bar) stays. At most [`MAX_BORDER_SHARE`] of each axis is cut, so a nearly blank image is left
//! whole.

use crate::error::Result;
use crate::image::Image;
use crate::image::resize::{Filter, resize};

/// Largest difference (0–255, any channel) from the border colour a border pixel may have: JPEG
/// ringing and resampling blur the bars a little.
pub const BORDER_TOLERANCE: u8 = 24;
/// Share of a line's pixels that must match the border colour.
pub const BORDER_MATCH: f64 = 0.98;
/// The most of an axis (both ends together) that is cut.
pub const MAX_BORDER_SHARE: f64 = 0.75;

/// The window `(left, top, width, height)` in px left after cutting solid borders off `img`, or
/// `None` when it has none (or cutting would leave less than `1 − MAX_BORDER_SHARE` of an axis).
pub fn content_window(img: &Image) -> Option<(u32, u32, u32, u32)> {
    content_window_within(img, BORDER_TOLERANCE)
}

/// [`content_window`] with border pixels within `tolerance` (0–255, any channel) of the border
/// colour: a small one finds only flat bars (an added letterbox, even JPEG-saved), not the
/// low-contrast edges of a smooth texture that [`BORDER_TOLERANCE`] also cuts.
pub fn content_window_within(img: &Image, tolerance: u8) -> Option<(u32, u32, u32, u32)> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w < 4 || h < 4 {
        return None;
    }
    let c = img.channels().count();
    let data = img.data();
    let px = |x: usize, y: usize| &data[(y * w + x) * c..(y * w + x + 1) * c];
    // Pixels of line `i` of a side: rows from the top/bottom, columns from the left/right,
    // within the window already kept on the other axis.
    let line = |side: usize, i: usize, lo: usize, hi: usize| -> Vec<&[u8]> {
        match side {
            0 => (lo..hi).map(|x| px(x, i)).collect(),
            1 => (lo..hi).map(|x| px(x, h - 1 - i)).collect(),
            2 => (lo..hi).map(|y| px(i, y)).collect(),
            _ => (lo..hi).map(|y| px(w - 1 - i, y)).collect(),
        }
    };
    let matches = |pixels: &[&[u8]], colour: &[f64]| {
        let ok = pixels
            .iter()
            .filter(|p| p.iter().zip(colour).all(|(&v, &m)| (v as f64 - m).abs() <= tolerance as f64))
            .count();
        ok as f64 >= BORDER_MATCH * pixels.len() as f64
    };
    // How many lines of `side` are border, and the border's colour (the outermost line's mean).
    let depth = |side: usize, lo: usize, hi: usize, len: usize| -> (usize, Vec<f64>) {
        let first = line(side, 0, lo, hi);
        let mut colour = vec![0f64; c];
        for p in &first {
            for (m, &v) in colour.iter_mut().zip(p.iter()) {
                *m += v as f64;
            }
        }
        colour.iter_mut().for_each(|m| *m /= first.len() as f64);
        if !matches(&first, &colour) {
            return (0, colour);
        }
        let mut d = 1;
        while d < len && matches(&line(side, d, lo, hi), &colour) {
            d += 1;
        }
        (d, colour)
    };
    // Both ends of an axis, cut only as a pair of the same colour (bars, a frame); at most
    // MAX_BORDER_SHARE of the axis.
    let pair = |a: usize, b: usize, lo: usize, hi: usize, len: usize| -> (usize, usize) {
        let ((da, ca), (db, cb)) = (depth(a, lo, hi, len), depth(b, lo, hi, len));
        let same = ca.iter().zip(&cb).all(|(x, y)| (x - y).abs() <= tolerance as f64);
        let max_cut = (len as f64 * MAX_BORDER_SHARE).floor() as usize;
        if da > 0 && db > 0 && same && da + db <= max_cut { (da, db) } else { (0, 0) }
    };
    // Rows first over the full width, then columns over the rows kept.
    let (top, bottom) = pair(0, 1, 0, w, h);
    let (y0, y1) = (top, h - bottom);
    let (left, right) = pair(2, 3, y0, y1, w);
    if top + bottom + left + right == 0 {
        return None;
    }
    Some((left as u32, top as u32, (w - left - right) as u32, (y1 - y0) as u32))
}

/// `img` without its solid borders ([`content_window`]), at its own resolution; `img` itself
/// (no copy) when it has none.
pub fn into_content(img: Image) -> Result<Image> {
    match content_window(&img) {
        None => Ok(img),
        Some(window) => crop(&img, window),
    }
}

/// `img` without its solid borders, resized (bicubic) to `width×height`: what every descriptor
/// is given. An image without borders is only resized (or copied when it has that size).
pub fn strip_borders_to(img: &Image, width: u32, height: u32) -> Result<Image> {
    resize(&into_content(img.clone())?, width, height, Filter::Bicubic)
}

/// The pixels of `window = (left, top, width, height)` of `img`, copied exactly.
pub fn crop(img: &Image, (left, top, width, height): (u32, u32, u32, u32)) -> Result<Image> {
    let c = img.channels().count();
    let w = img.width() as usize;
    let mut data = Vec::with_capacity(width as usize * height as usize * c);
    for y in top as usize..(top + height) as usize {
        let start = (y * w + left as usize) * c;
        data.extend_from_slice(&img.data()[start..start + width as usize * c]);
    }
    Image::new(width, height, img.channels(), data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distort::edits::pad;
    use crate::image::Channels;

    /// A textured RGB image: no row or column is uniform.
    fn textured(w: u32, h: u32) -> Image {
        let data = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                [(x * 7 + y * 13) % 256, (x * x + y * 3) % 256, ((x * 5) ^ (y * 11)) % 256].map(|v| v as u8)
            })
            .collect();
        Image::new(w, h, Channels::Rgb, data).unwrap()
    }

    #[test]
    fn a_picture_without_borders_is_left_whole() {
        let img = textured(40, 30);
        assert_eq!(content_window(&img), None);
        assert!(into_content(img.clone()).unwrap() == img);
    }

    #[test]
    fn drawn_bars_of_any_colour_are_cut_exactly() {
        let inner = textured(20, 10);
        for level in [0u8, 255, 128] {
            // 3 rows on top, 5 below, 2 columns left, 4 right.
            let mut img = Image::filled(26, 18, Channels::Rgb, level).unwrap();
            for y in 0..10 {
                for x in 0..20 {
                    for ch in 0..3 {
                        let v = inner.get(x, y, ch);
                        let i = (((y + 3) * 26 + x + 2) * 3) as usize + ch;
                        img.data_mut()[i] = v;
                    }
                }
            }
            assert_eq!(content_window(&img), Some((2, 3, 20, 10)), "level {level}");
            assert!(into_content(img).unwrap() == inner);
        }
    }

    #[test]
    fn the_pad_edit_is_undone_to_within_the_blurred_edge() {
        // pad:20 on 128 px: content 102 px centred at 13 px; bicubic leaves at most a line or two
        // of the edge blended, which is kept.
        let img = textured(128, 128);
        for seed in 0..3 {
            let padded = pad(&img, 20.0, seed).unwrap();
            let (l, t, w, h) = content_window(&padded).expect("a border");
            assert!((11..=13).contains(&l) && (11..=13).contains(&t), "{l} {t}");
            assert!((102..=106).contains(&w) && (102..=106).contains(&h), "{w} {h}");
            // Its bars are flat: a tolerance of 8 finds them to within a line.
            let (l8, t8, w8, h8) = content_window_within(&padded, 8).expect("a flat border");
            assert!(l8.abs_diff(l) <= 1 && t8.abs_diff(t) <= 1 && w8.abs_diff(w) <= 2 && h8.abs_diff(h) <= 2);
        }
    }

    #[test]
    fn strip_to_a_size_resizes_only_the_content() {
        let inner = textured(16, 16);
        let mut img = Image::filled(24, 24, Channels::Rgb, 0).unwrap();
        for y in 0..16u32 {
            for x in 0..16u32 {
                for ch in 0..3 {
                    img.data_mut()[(((y + 4) * 24 + x + 4) * 3) as usize + ch] = inner.get(x, y, ch);
                }
            }
        }
        // Cut to the 16-px content, which already has the size asked for: the content exactly.
        assert!(strip_borders_to(&img, 16, 16).unwrap() == inner);
        // Without borders, at its own size: unchanged.
        assert!(strip_borders_to(&inner, 16, 16).unwrap() == inner);
        // Larger: the content resized, no black bar blended into its edge.
        let big = strip_borders_to(&img, 32, 32).unwrap();
        assert!(big == resize(&inner, 32, 32, Filter::Bicubic).unwrap());
    }

    #[test]
    fn a_blank_or_mostly_blank_image_is_left_whole() {
        let blank = Image::filled(30, 30, Channels::Rgb, 200).unwrap();
        assert_eq!(content_window(&blank), None);
        // A 4-px picture in a 30-px frame: cutting would leave under a quarter of each axis.
        let mut img = blank.clone();
        for i in 0..4u32 {
            let p = ((13 + i) * 30 + 13 + i) as usize * 3;
            img.data_mut()[p] = 0;
        }
        assert_eq!(content_window(&img), None);
    }

    #[test]
    fn noisy_bars_still_count_within_the_tolerance() {
        let mut img = textured(30, 30);
        for x in 0..30u32 {
            for y in (0..4u32).chain(27..30) {
                for ch in 0..3 {
                    img.data_mut()[((y * 30 + x) * 3) as usize + ch] = ((x * 7 + y) % 20) as u8;
                }
            }
        }
        assert_eq!(content_window(&img), Some((0, 4, 30, 23)));
        // Lines that vary by ±10 are no flat bar at a tolerance of 8.
        assert_eq!(content_window_within(&img, 8), None);
    }

    #[test]
    fn a_plain_region_on_one_side_or_bars_of_two_colours_stay() {
        // A white band on top only (a sky, a caption bar): not a border.
        let mut img = textured(30, 30);
        img.data_mut()[..30 * 5 * 3].fill(255);
        assert_eq!(content_window(&img), None);
        // White on top, black below: not one frame.
        img.data_mut()[30 * 26 * 3..].fill(0);
        assert_eq!(content_window(&img), None);
        // Black on both: bars.
        img.data_mut()[..30 * 5 * 3].fill(0);
        assert_eq!(content_window(&img), Some((0, 5, 30, 21)));
    }
}
