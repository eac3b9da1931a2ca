//! Is one picture a softened copy of another of the same framing? Per-tile luminance statistics
//! ([`TileDetail`]) and their comparison ([`fine_ratio`]).
//!
//! A blurred copy or an upscaled thumbnail (the paper's THUMB) of a picture keeps its layout and
//! its coarse structure and loses the finest detail. A measure of one file alone cannot always
//! tell: on a smooth picture (a water drop on a plain ground) the fine detail lives in a few
//! percent of the picture, and a caption bar added to a copy brings more sharp edges than the
//! whole original has. Comparing two files of the same size tile by tile can: over the tiles
//! where they show the same thing (the same mean, the same coarse structure within a factor
//! [`COARSE_MATCH`]), a softened copy has clearly less fine detail than its source wherever there
//! is structure, while a captioned copy differs only where its bar is, and those tiles do not
//! match; and added noise, which raises the fine energy of every tile alike, is told apart by
//! comparing differences between tiles ([`fine_ratio`]).
//!
//! Measured (a numpy copy of [`fine_ratio`], outside the project) on the planted held-out copies
//! (33 photos; `thumb:30`, `blur:1.5`, `noise`, `text`, `gray`, `crop`, `trim` … copies, README):
//! every `thumb:30` copy had at most 0.59 of its original's fine detail, every `blur:1.5` copy at
//! most 0.53; the original at least 0.90 of every other same-size copy it could be compared with
//! and at least 0.86 of its noisy copies (up to `noise:0.1`, σ 25 grey levels), except a JPEG
//! q 50 saved as PNG (0.61 at worst: the block edges are fine detail; such a copy drops out
//! earlier, by its encoding). [`SOFTER`] is set between.

use crate::Image;

/// Side of a tile, pixels. A picture's right and bottom remainders (under a tile) are left out.
pub const TILE: usize = 16;

/// Tiles whose mean luminance differ by more than this (grey levels) show different things.
pub const ALIGN_TOLERANCE: f32 = 3.0;

/// Coarse-structure energies (grey levels squared) under this count as flat: the tile tells
/// nothing about sharpness.
pub const STRUCTURE_FLOOR: f32 = 1.0;

/// Tiles whose coarse-structure energies differ by more than this factor show different things
/// (a caption's glyphs over a plain ground). A blur of 1.5 px takes more than that off the top of
/// the band (a Gaussian of σ 1.5 keeps a quarter of the energy at an eighth of a cycle per pixel),
/// so some of a blurred copy's tiles leave the comparison: on the planted copies a blurred copy
/// still matched 0.26 or more of the structured tiles ([`MIN_MATCHED_SHARE`]).
pub const COARSE_MATCH: f32 = 2.0;

/// Tiles whose 4×4 block means differ by more than this share of their coarse structure (mean
/// squares, the smaller file's) show it shifted: a copy cropped by a few pixels and resized back
/// aligns in mean where a picture is smooth, not block by block.
pub const SHIFT_TOLERANCE: f32 = 0.5;

/// Two files are compared only when at least this share of their tiles align (same mean).
pub const MIN_ALIGNED: f64 = 0.5;

/// … and at least this many tiles have matching structure (an upscaled thumbnail of a 640 px
/// picture matched 140 or more; a few tiles of a zoomed copy can match by chance).
pub const MIN_TILES: usize = 32;

/// … and those at least this share of the tiles with structure in either file. A copy cropped
/// by a few pixels and resized back can match in a smooth sky, block by block, in a few tiles
/// (on the planted copies at most 0.16 of the structured tiles, where an upscaled thumbnail or
/// a blurred copy matched 0.26 or more), and its fine detail there says nothing.
pub const MIN_MATCHED_SHARE: f64 = 0.2;

/// A file whose [`fine_ratio`] against another is under this is a softened copy of it.
pub const SOFTER: f64 = 0.75;

/// Per-tile luminance statistics of one picture ([`TILE`] × [`TILE`] tiles, row-major).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TileDetail {
    /// Picture size, pixels.
    pub width: u32,
    pub height: u32,
    /// Mean luminance per tile, grey levels.
    pub mean: Vec<f32>,
    /// Fine-detail energy per tile: the mean squared difference between each pixel and its 2×2
    /// block's mean (frequencies above half the Nyquist rate), grey levels squared.
    pub fine: Vec<f32>,
    /// Coarse-structure energy per tile: the mean squared difference between each 4×4 block's
    /// mean and its 8×8 block's mean (an eighth to a quarter of the Nyquist rate, what an
    /// upscaled 30 % thumbnail still has), grey levels squared.
    pub coarse: Vec<f32>,
    /// The 4×4 block means of each tile (16 per tile, row-major within it, tiles in order),
    /// grey levels: whether two tiles show the same thing where they are, not shifted.
    pub blocks: Vec<f32>,
}

impl TileDetail {
    /// The statistics of `img`'s luminance (Pillow's L). Empty for a picture under one tile.
    pub fn of(img: &Image) -> TileDetail {
        let g = img.as_gray();
        let (w, h) = (g.width() as usize, g.height() as usize);
        let (tw, th) = (w / TILE, h / TILE);
        let px = g.data();
        let n = tw * th;
        let (mut mean, mut fine, mut coarse) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        let mut blocks = Vec::with_capacity(n * (TILE / 4) * (TILE / 4));
        for ty in 0..th {
            for tx in 0..tw {
                let (x0, y0) = (tx * TILE, ty * TILE);
                // 2×2 block sums and the fine energy around them.
                let mut b2 = [[0f32; TILE / 2]; TILE / 2];
                let mut e = 0f32;
                for by in 0..TILE / 2 {
                    for bx in 0..TILE / 2 {
                        let at = |dx: usize, dy: usize| px[(y0 + 2 * by + dy) * w + x0 + 2 * bx + dx] as f32;
                        let q = [at(0, 0), at(1, 0), at(0, 1), at(1, 1)];
                        let m = q.iter().sum::<f32>() / 4.0;
                        e += q.iter().map(|v| (v - m) * (v - m)).sum::<f32>();
                        b2[by][bx] = m;
                    }
                }
                // 4×4 block means, then each against its 8×8 block's mean.
                let mut b4 = [[0f32; TILE / 4]; TILE / 4];
                for (y, row) in b4.iter_mut().enumerate() {
                    for (x, v) in row.iter_mut().enumerate() {
                        *v =
                            (b2[2 * y][2 * x] + b2[2 * y][2 * x + 1] + b2[2 * y + 1][2 * x] + b2[2 * y + 1][2 * x + 1])
                                / 4.0;
                    }
                }
                let mut c = 0f32;
                for y8 in 0..TILE / 8 {
                    for x8 in 0..TILE / 8 {
                        let quad = [
                            b4[2 * y8][2 * x8],
                            b4[2 * y8][2 * x8 + 1],
                            b4[2 * y8 + 1][2 * x8],
                            b4[2 * y8 + 1][2 * x8 + 1],
                        ];
                        let m8 = quad.iter().sum::<f32>() / 4.0;
                        c += quad.iter().map(|v| (v - m8) * (v - m8)).sum::<f32>();
                    }
                }
                mean.push(b4.iter().flatten().sum::<f32>() / (TILE * TILE / 16) as f32);
                blocks.extend(b4.iter().flatten());
                fine.push(e / (TILE * TILE) as f32);
                coarse.push(c / (TILE * TILE / 16) as f32);
            }
        }
        TileDetail { width: w as u32, height: h as u32, mean, fine, coarse, blocks }
    }
}

/// How much of `b`'s fine detail `a` has, over the tiles where the two show the same thing (mean
/// within [`ALIGN_TOLERANCE`]; coarse structure above [`STRUCTURE_FLOOR`] in both and within
/// [`COARSE_MATCH`], 4×4 block means within [`SHIFT_TOLERANCE`]): those tiles split in halves by
/// coarse structure, the fine energy `a` has more in its structured half than in its plainer
/// half, over the same difference in `b`. A
/// softened copy loses fine energy in proportion to the structure (the ratio is the share it
/// keeps); added noise raises every tile's fine energy by about the same amount, which cancels
/// (the ratio stays near 1: on the planted held-out copies, an original against its noisy copy
/// 0.86 or more, where the plain ratio of sums was as low as 0.04).
///
/// `None` when they cannot be compared: different sizes, under [`MIN_ALIGNED`] of the tiles
/// aligned (a mirrored, cropped or rotated copy), under [`MIN_TILES`] matching tiles or under
/// [`MIN_MATCHED_SHARE`] of the structured ones (a flat picture, a shifted or zoomed copy), or
/// no more fine detail where the structure is than where it is not, in either.
/// `fine_ratio(a, b) · fine_ratio(b, a) = 1` wherever both are defined.
pub fn fine_ratio(a: &TileDetail, b: &TileDetail) -> Option<f64> {
    if (a.width, a.height) != (b.width, b.height) || a.mean.is_empty() {
        return None;
    }
    let n = a.mean.len();
    let aligned: Vec<usize> = (0..n).filter(|&i| (a.mean[i] - b.mean[i]).abs() <= ALIGN_TOLERANCE).collect();
    if (aligned.len() as f64) < MIN_ALIGNED * n as f64 {
        return None;
    }
    let mut matched: Vec<usize> = aligned
        .into_iter()
        .filter(|&i| {
            let (ca, cb) = (a.coarse[i], b.coarse[i]);
            let k = TILE / 4 * (TILE / 4);
            let shift = a.blocks[i * k..(i + 1) * k]
                .iter()
                .zip(&b.blocks[i * k..(i + 1) * k])
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f32>()
                / k as f32;
            ca >= STRUCTURE_FLOOR
                && cb >= STRUCTURE_FLOOR
                && ca <= COARSE_MATCH * cb
                && cb <= COARSE_MATCH * ca
                && shift <= SHIFT_TOLERANCE * ca.min(cb)
        })
        .collect();
    let structured = (0..n).filter(|&i| a.coarse[i] >= STRUCTURE_FLOOR || b.coarse[i] >= STRUCTURE_FLOOR).count();
    if matched.len() < MIN_TILES || (matched.len() as f64) < MIN_MATCHED_SHARE * structured as f64 {
        return None;
    }
    matched.sort_by(|&i, &j| (a.coarse[i] + b.coarse[i]).total_cmp(&(a.coarse[j] + b.coarse[j])));
    let half = matched.len() / 2;
    let (plain, structured) = (&matched[..half], &matched[matched.len() - half..]);
    let excess = |fine: &[f32]| -> f64 {
        structured.iter().map(|&i| fine[i] as f64).sum::<f64>() - plain.iter().map(|&i| fine[i] as f64).sum::<f64>()
    };
    let (da, db) = (excess(&a.fine), excess(&b.fine));
    (da > 0.0 && db > 0.0).then(|| da / db)
}

/// Whether `a` is a softened copy of `b`: [`fine_ratio`] under [`SOFTER`].
pub fn softer_copy(a: &TileDetail, b: &TileDetail) -> bool {
    fine_ratio(a, b).is_some_and(|r| r < SOFTER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Channels;

    /// A smooth picture with its detail in one quarter: a plain ramp, and over the top-left
    /// quarter waves of 12 px (what an upscaled 30 % thumbnail keeps) under stripes of 3 px, both
    /// fading in from left to right (as in a photo, more structure comes with more fine detail).
    fn smooth_with_a_detailed_corner() -> Image {
        let (w, h) = (512u32, 384u32);
        let data = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                let mut v = 60.0 + x as f32 / 16.0 + y as f32 / 32.0;
                if x < 256 && y < 192 {
                    let wave = |t: u32| (t as f32 * std::f32::consts::TAU / 12.0).sin();
                    let fade = x as f32 / 256.0;
                    v += 30.0 + fade * (25.0 * (wave(x) + wave(y)) + [0.0, 20.0, -10.0][(x % 3) as usize]);
                }
                [v.round() as u8; 3]
            })
            .collect();
        Image::new(w, h, Channels::Rgb, data).unwrap()
    }

    #[test]
    fn the_statistics_of_known_tiles() {
        // A flat grey picture: every tile's mean is its level, no fine or coarse energy.
        let flat = TileDetail::of(&Image::new(40, 33, Channels::Gray, vec![90; 40 * 33]).unwrap());
        assert_eq!((flat.width, flat.height, flat.mean.len()), (40, 33, 4), "2 × 2 whole tiles");
        assert!(flat.mean.iter().all(|&m| m == 90.0) && flat.fine.iter().chain(&flat.coarse).all(|&e| e == 0.0));
        // A 1-px checkerboard of 100/140: every 2×2 block's mean is 120, each pixel 20 away, so
        // fine energy 400 and no coarse structure.
        let board: Vec<u8> = (0..32 * 16).map(|i| if (i % 32 + i / 32) % 2 == 0 { 100 } else { 140 }).collect();
        let t = TileDetail::of(&Image::new(32, 16, Channels::Gray, board).unwrap());
        assert_eq!((t.mean.clone(), t.fine.clone(), t.coarse.clone()), (vec![120.0; 2], vec![400.0; 2], vec![0.0; 2]));
        // Vertical bands of 4 px alternating 100/140: no fine energy, each 4×4 block 20 from its
        // 8×8 block's mean, so coarse energy 400.
        let bands: Vec<u8> = (0..16 * 16).map(|i| if (i % 16) / 4 % 2 == 0 { 100 } else { 140 }).collect();
        let t = TileDetail::of(&Image::new(16, 16, Channels::Gray, bands).unwrap());
        assert_eq!((t.fine[0], t.coarse[0]), (0.0, 400.0));
        assert!(TileDetail::of(&Image::new(15, 40, Channels::Gray, vec![0; 600]).unwrap()).mean.is_empty());
    }

    #[test]
    fn softened_copies_are_found_and_a_caption_or_a_grey_copy_is_not() {
        let img = smooth_with_a_detailed_corner();
        let of = |spec: &str| TileDetail::of(&spec.parse::<crate::Distortion>().unwrap().apply(&img, 3).unwrap());
        let orig = TileDetail::of(&img);
        for spec in ["thumb:30", "blur:1.5"] {
            let soft = of(spec);
            let r = fine_ratio(&soft, &orig).unwrap();
            assert!(r < 0.5 * SOFTER, "{spec}: {r}");
            assert!(softer_copy(&soft, &orig) && !softer_copy(&orig, &soft));
            assert!((fine_ratio(&orig, &soft).unwrap() * r - 1.0).abs() < 1e-9);
        }
        // Added noise is not sharpness: the original is not the softer one.
        for spec in ["noise:0.02", "noise:0.05"] {
            let r = fine_ratio(&orig, &of(spec)).unwrap();
            assert!(r > SOFTER, "{spec}: {r}");
        }
        // A caption bar (12 % of the height, white glyphs) adds sharp edges where the original is
        // plain: those tiles do not match, and the original is not the softer one.
        let text = of("text:12");
        let r = fine_ratio(&orig, &text).unwrap();
        assert!((0.95..1.05).contains(&r), "{r}");
        assert!(!softer_copy(&orig, &text) && !softer_copy(&text, &orig));
        // The grey copy has the same luminance; a mirrored copy cannot be compared, nor can
        // pictures of different sizes; the original is never the softer one beside a zoomed
        // crop (`trim`, `crop`: shifted, so few tiles match, and those are upscaled).
        assert_eq!(fine_ratio(&of("gray"), &orig), Some(1.0));
        assert_eq!(fine_ratio(&of("hflip"), &orig), None);
        assert!(!softer_copy(&orig, &of("trim:15")) && !softer_copy(&orig, &of("crop:10")));
        let half = TileDetail::of(
            &crate::image::resize::resize(&img, 256, 192, crate::image::resize::Filter::Bicubic).unwrap(),
        );
        assert_eq!(fine_ratio(&half, &orig), None);
    }
}
