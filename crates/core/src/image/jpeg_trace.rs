//! Traces of an earlier JPEG compression in decoded pixels.
//!
//! A JPEG stores each 8 × 8 block of luminance as DCT coefficients rounded to multiples of its
//! quantisation table's steps. Decoded and saved losslessly (a PNG copy of a JPEG), the pixels keep
//! that lattice: the DCT of the blocks, aligned as the encoder saw them, gives coefficients within
//! rounding error of multiples of the steps. [`quality_from_pixels`] tries libjpeg's luminance
//! tables from the coarsest and reports the first quality whose steps the coefficients sit on. A
//! resize, a rotation, or a crop or mirror that shifts the 8-pixel grid destroys the lattice, and
//! then nothing is found: no trace means "not found", not "never compressed".

use std::f64::consts::PI;

use crate::image::Image;

/// The IJG (libjpeg) standard luminance quantisation table at quality 50, natural (row-major)
/// order: entry `v · 8 + u` is the step of vertical frequency v, horizontal frequency u.
pub const STD_LUMA: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51,
    87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
];

/// libjpeg's luminance table at `quality` (clamped to 1–100; natural order): [`STD_LUMA`] scaled by
/// `5000 / q` % under 50 and `200 − 2q` % from 50, rounded, clamped to 1..=255 (baseline), as
/// `jpeg_set_quality` does.
pub fn luma_table(quality: u8) -> [u16; 64] {
    let q = quality.clamp(1, 100) as u32;
    let scale = if q < 50 { 5000 / q } else { 200 - 2 * q };
    STD_LUMA.map(|s| ((s as u32 * scale + 50) / 100).clamp(1, 255) as u16)
}

/// The frequencies scored (natural-order indices): DC and the nine lowest AC frequencies in
/// zig-zag order, where the steps are small enough that most blocks have coefficients off zero.
const POSITIONS: [usize; 10] = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24];

/// Steps under this are not scored: rounding the decoded pixels to integers moves a coefficient
/// by about 0.3 (σ, the DCT being orthonormal), which steps of 1 or 2 cannot be told from.
const MIN_STEP: u16 = 3;

/// Coefficients needed (over the scored positions) before a quality can count as found. For
/// pixels off any lattice the mean of r² (below) over n coefficients is 1/12 with a spread of
/// 0.075/√n: at 60, [`FIT`] sits 5 spreads away. (It was 200, which left every 32 × 32 picture
/// without a trace: a q 50 copy of one has 80–150. A numpy copy of the estimate, outside the
/// project, on the whole planted pool: the 40 CIFAR images' `jpeg:50` copies found in 38 at 60, none
/// at 200; of the 492 files that never were a JPEG at q ≤ 60, the same one traced at both — an
/// upscaled thumbnail, at q 3.)
pub const MIN_COEFFICIENTS: usize = 60;

/// How closely the coefficients must sit on the steps: with `r = c/step − round(c/step)` (in
/// [−½, ½]) over the coefficients at least half a step from zero, the fit `1 − 12·mean(r²)` is 1 on
/// an exact lattice, about `1 − 12σ²/step²` ≥ 0.85 with the pixels' rounding (σ ≈ 0.3, step ≥ 3),
/// and near 0 for pixels that never were a JPEG at these steps (r uniform: mean r² = 1/12).
pub const FIT: f64 = 0.6;

/// The highest quality tried: above it most scored steps are under 3, too fine to be scored.
pub const MAX_QUALITY: u8 = 90;

/// Blocks sampled at most (evenly spaced), so a 24-megapixel photo costs what a 1-megapixel one does.
const MAX_BLOCKS: usize = 4_096;

/// The quality (1–`up_to`, at most [`MAX_QUALITY`]) of the libjpeg table whose luminance steps
/// `img`'s pixels sit on, the coarsest that fits (several qualities round to the same steps, so
/// this is at or a few points under the quality the JPEG was saved at), or `None` when no table up
/// to `up_to` fits: never a JPEG, a JPEG saved at a higher quality (above about 90 none is found),
/// or its 8-pixel grid moved or destroyed since. Blocks of one flat value are left out (a flat
/// block's DC is a multiple of 8 whether or not it was compressed). A caller that acts only on
/// heavy compression passes a low `up_to` and skips the finer tables.
pub fn quality_from_pixels(img: &Image, up_to: u8) -> Option<u8> {
    let coeffs = block_coefficients(img);
    (1..=up_to.min(MAX_QUALITY)).find(|&q| fit(&coeffs, &luma_table(q)).is_some_and(|f| f >= FIT))
}

/// The coefficients at [`POSITIONS`] of the level-shifted luminance (JFIF: 0.299 R + 0.587 G +
/// 0.114 B − 128, unrounded; the encoder's DCT is orthonormal) of the 8 × 8 blocks aligned at the
/// top left, flat blocks left out, at most [`MAX_BLOCKS`] of them.
fn block_coefficients(img: &Image) -> Vec<[f64; POSITIONS.len()]> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (bw, bh) = (w / 8, h / 8);
    let total = bw * bh;
    if total == 0 {
        return Vec::new();
    }
    // basis[u][x] = C(u)/2 · cos((2x + 1)uπ/16), C(0) = 1/√2, else 1.
    let mut basis = [[0.0f64; 8]; 8];
    for (u, row) in basis.iter_mut().enumerate() {
        let c = if u == 0 { std::f64::consts::FRAC_1_SQRT_2 } else { 1.0 };
        for (x, b) in row.iter_mut().enumerate() {
            *b = c / 2.0 * ((2 * x + 1) as f64 * u as f64 * PI / 16.0).cos();
        }
    }
    let (data, ch) = (img.data(), img.channels().count());
    let luma = |x: usize, y: usize| -> f64 {
        let i = (y * w + x) * ch;
        if ch == 1 {
            data[i] as f64
        } else {
            0.299 * data[i] as f64 + 0.587 * data[i + 1] as f64 + 0.114 * data[i + 2] as f64
        }
    };
    (0..total)
        .step_by(total.div_ceil(MAX_BLOCKS))
        .filter_map(|b| {
            let (bx, by) = (b % bw * 8, b / bw * 8);
            let mut px = [[0.0f64; 8]; 8];
            let (mut lo, mut hi) = (f64::MAX, f64::MIN);
            for (y, row) in px.iter_mut().enumerate() {
                for (x, p) in row.iter_mut().enumerate() {
                    *p = luma(bx + x, by + y) - 128.0;
                    lo = lo.min(*p);
                    hi = hi.max(*p);
                }
            }
            if hi - lo < 0.5 {
                return None;
            }
            let mut out = [0.0; POSITIONS.len()];
            for (o, &k) in out.iter_mut().zip(&POSITIONS) {
                let (v, u) = (k / 8, k % 8);
                *o = px
                    .iter()
                    .zip(&basis[v])
                    .map(|(row, bv)| bv * row.iter().zip(&basis[u]).map(|(p, bu)| p * bu).sum::<f64>())
                    .sum();
            }
            Some(out)
        })
        .collect()
}

/// `1 − 12·mean(r²)` ([`FIT`]) over the coefficients at least half a step from zero, at the
/// positions whose step is at least [`MIN_STEP`]; `None` when fewer than [`MIN_COEFFICIENTS`].
fn fit(coeffs: &[[f64; POSITIONS.len()]], table: &[u16; 64]) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for (i, &k) in POSITIONS.iter().enumerate() {
        if table[k] < MIN_STEP {
            continue;
        }
        let step = table[k] as f64;
        for c in coeffs.iter().map(|c| c[i]).filter(|c| c.abs() >= step / 2.0) {
            let r = c / step - (c / step).round();
            sum += r * r;
            n += 1;
        }
    }
    (n >= MIN_COEFFICIENTS).then(|| 1.0 - 12.0 * sum / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::jpeg::round_trip;
    use crate::{Channels, Image};

    /// A 256 × 192 colour picture with texture at every scale: smooth gradients, edges and a
    /// deterministic grain (no two blocks alike), never JPEG-compressed.
    fn picture() -> Image {
        let (w, h) = (256u32, 192u32);
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        for y in 0..h {
            for x in 0..w {
                let (fx, fy) = (x as f64, y as f64);
                let base = 120.0
                    + 60.0 * (fx / 23.0).sin() * (fy / 17.0).cos()
                    + if (x / 40 + y / 30) % 2 == 0 { 30.0 } else { -30.0 };
                for c in 0..3 {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    let grain = (s % 21) as f64 - 10.0;
                    data.push((base + 15.0 * c as f64 + grain).clamp(0.0, 255.0) as u8);
                }
            }
        }
        Image::new(w, h, Channels::Rgb, data).unwrap()
    }

    #[test]
    fn libjpeg_tables() {
        assert_eq!(luma_table(50), STD_LUMA);
        // q 75: scale 50 %; (16·50 + 50)/100 = 8, (11·50 + 50)/100 = 6.
        assert_eq!(luma_table(75)[..2], [8, 6]);
        // q 10: scale 500 %, clamped at 255 for baseline.
        assert_eq!(luma_table(10)[0], 80);
        assert_eq!(luma_table(10)[63], 255);
        assert!(luma_table(100).iter().all(|&s| s == 1));
    }

    #[test]
    fn finds_the_quality_of_a_decoded_jpeg_and_none_in_a_picture_that_never_was_one() {
        let img = picture();
        assert_eq!(quality_from_pixels(&img, MAX_QUALITY), None);
        for q in [10u8, 30, 50, 60, 75, 85] {
            let found = quality_from_pixels(&round_trip(&img, q).unwrap(), MAX_QUALITY);
            let found = found.unwrap_or_else(|| panic!("q {q}: no trace found"));
            assert!(found <= q && found + 8 >= q, "saved at q {q}, found {found}");
        }
        // A thumbnail-sized picture (32 × 32: 16 blocks) still shows it.
        let small: Vec<u8> = img.data().chunks_exact(256 * 3).take(32).flat_map(|row| row[..32 * 3].to_vec()).collect();
        let small = Image::new(32, 32, Channels::Rgb, small).unwrap();
        assert_eq!(quality_from_pixels(&small, MAX_QUALITY), None);
        let found = quality_from_pixels(&round_trip(&small, 50).unwrap(), MAX_QUALITY);
        assert!(found.is_some_and(|f| f <= 50 && f + 8 >= 50), "{found:?}");
        // Grey: the same lattice in the one channel.
        let grey = round_trip(&img.to_gray(), 40).unwrap();
        assert!(quality_from_pixels(&grey, MAX_QUALITY).is_some_and(|f| f <= 40 && f + 8 >= 40));
    }

    #[test]
    fn a_moved_grid_or_flat_blocks_leave_no_trace() {
        let img = round_trip(&picture(), 50).unwrap();
        // Cut 3 columns and 5 rows off the top left: the blocks no longer align.
        let (w, h) = (img.width() - 3, img.height() - 5);
        let mut data = Vec::new();
        for y in 5..img.height() {
            for x in 3..img.width() {
                for c in 0..3 {
                    data.push(img.get(x, y, c));
                }
            }
        }
        assert_eq!(quality_from_pixels(&Image::new(w, h, Channels::Rgb, data).unwrap(), MAX_QUALITY), None);
        // Flat 8 × 8 blocks of integer levels: DCs on multiples of 8, not a JPEG.
        let blocks: Vec<u8> = (0..64 * 64).map(|i| ((i % 64 / 8) * 29 + (i / 64 / 8) * 13) as u8).collect();
        assert_eq!(quality_from_pixels(&Image::new(64, 64, Channels::Gray, blocks).unwrap(), MAX_QUALITY), None);
        assert_eq!(quality_from_pixels(&Image::filled(4, 4, Channels::Rgb, 9).unwrap(), MAX_QUALITY), None);
    }
}
