//! Crops, triplets and the train/test split of the photo pool (the embedding experiments).
//!
//! **Rule.** A photo is usable when its short side is ≥ [`MIN_SIDE`] px. It goes to the test
//! split when the first byte of `sha256(file name)` is below `256 · test_fraction` (a fixed rule,
//! the same for every seed, so test photos are never seen in training). All crops are squares.
//!
//! **Twins.** Some photos of the pool are the same picture twice: consecutive frames of one
//! sequence (opencv-doc's `rubberwhale1`/`rubberwhale2`, `basketball1`/`basketball2`). With
//! [`split`]'s `twin_bits`, photos whose pHashes are that close count as one picture: a training
//! photo that is a twin of a held-out one is dropped (so no near-copy of a held-out photo is
//! trained on), and of twins on the same side only the first by name is kept (so a picture is
//! never its own negative, nor a "distinct" pair in an evaluation). Held-out photos are never
//! dropped for a training twin, so the held-out set is the file-name rule's less its own twins
//! (the pool has none: its 33 held-out photos are the same with and without the check).
//!
//! **Validation.** [`Split::with_validation`] moves a share of the training photos (by
//! `sha256("validation/" + file name)`, independent of the test rule) to `val`: photos a run never
//! trains on, so that choices made after training (the fusion rule, a design) see distances the
//! model was not fitted to, and never touch the held-out photos. A model fitted to a photo is far
//! more invariant on it than on a new one (trim:25 recall at precision 0.99, fused with pHash:
//! 0.998 on training photos, 0.881 held out), so choices made on training photos do not carry over.
//! - query q: side `u · short`, `u ~ U[0.5, 0.8]`, at a uniformly random position;
//! - positive p: the same photo, side `q.side · U[0.8, 1.25]` (≤ short side), its centre moved
//!   by at most `q.side / 4` in x and y from q's (then clamped inside the photo), so q and p
//!   always overlap, on at least about half of each side;
//! - negative n: a query-style crop of a different photo.
//!
//! Evaluation images are [`EVAL_CROPS`] fixed, distinct crops per test photo, at four scales: the
//! four corner squares and the centre square of side `0.45`, `0.6` and `0.8 · short`, and the
//! centred square of the whole short side (16 crops; 33 held-out photos give 528 images).

use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::image::Image;
use crate::image::hash::{HashKind, PerceptualHash};
use crate::image::resize::{Filter, resize, resize_region};

/// Photos with a shorter side below this are not used (CIFAR thumbnails, icons).
pub const MIN_SIDE: u32 = 160;
/// Distinct evaluation crops per test photo.
pub const EVAL_CROPS: usize = 16;
/// Sides (share of the short side) of the corner and centre evaluation crops.
pub const EVAL_SCALES: [f64; 3] = [0.45, 0.6, 0.8];

/// A square crop in photo pixels.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Crop {
    pub x: f64,
    pub y: f64,
    pub side: f64,
}

/// A named photo, shrunk once so its short side is at most `work_side` (crops are then cheap).
#[derive(Clone, Debug)]
pub struct Photo {
    pub name: String,
    pub image: Image,
}

impl Photo {
    /// Keeps `img` (as RGB) if its short side is ≥ [`MIN_SIDE`], shrunk to a short side of
    /// `work_side` when larger.
    pub fn prepare(name: &str, img: &Image, work_side: u32) -> Result<Option<Photo>> {
        let (w, h) = (img.width(), img.height());
        let short = w.min(h);
        if short < MIN_SIDE {
            return Ok(None);
        }
        let rgb = img.to_rgb();
        let image = if short > work_side {
            let s = work_side as f64 / short as f64;
            let (nw, nh) = (((w as f64 * s).round() as u32).max(1), ((h as f64 * s).round() as u32).max(1));
            resize(&rgb, nw, nh, Filter::Bicubic)?
        } else {
            rgb
        };
        Ok(Some(Photo { name: name.to_string(), image }))
    }

    fn dims(&self) -> (f64, f64) {
        (self.image.width() as f64, self.image.height() as f64)
    }

    /// `crop` resampled to `size × size` RGB.
    pub fn render(&self, crop: Crop, size: u32) -> Result<Image> {
        resize_region(&self.image, Some((crop.x, crop.y, crop.side, crop.side)), size, size, Filter::Bicubic)
    }

    /// A query-style crop (see the module docs).
    pub fn random_crop<R: Rng>(&self, rng: &mut R) -> Crop {
        self.random_crop_in((0.5, 0.8), rng)
    }

    /// A square crop of side `u · short`, `u ~ U[lo, hi)` (`0 < lo < hi ≤ 1`), at a uniformly
    /// random position.
    pub fn random_crop_in<R: Rng>(&self, (lo, hi): (f64, f64), rng: &mut R) -> Crop {
        let (w, h) = self.dims();
        let side = w.min(h) * rng.random_range(lo..hi);
        Crop { x: rng.random_range(0.0..=w - side), y: rng.random_range(0.0..=h - side), side }
    }

    /// A crop overlapping `q` (see the module docs).
    pub fn overlapping_crop<R: Rng>(&self, q: Crop, rng: &mut R) -> Crop {
        let (w, h) = self.dims();
        let side = (q.side * rng.random_range(0.8..1.25)).min(w.min(h));
        let shift = q.side / 4.0;
        let cx = q.x + q.side / 2.0 + rng.random_range(-shift..=shift);
        let cy = q.y + q.side / 2.0 + rng.random_range(-shift..=shift);
        Crop { x: (cx - side / 2.0).clamp(0.0, w - side), y: (cy - side / 2.0).clamp(0.0, h - side), side }
    }

    /// The [`EVAL_CROPS`] fixed evaluation crops: for each of [`EVAL_SCALES`] the four corners
    /// then the centre, then the centred square of the whole short side.
    pub fn eval_crops(&self) -> [Crop; EVAL_CROPS] {
        let (w, h) = self.dims();
        let short = w.min(h);
        let mut out = [Crop { x: 0.0, y: 0.0, side: short }; EVAL_CROPS];
        for (k, s) in EVAL_SCALES.iter().enumerate() {
            let side = s * short;
            let (r, b) = (w - side, h - side);
            let at = [(0.0, 0.0), (r, 0.0), (0.0, b), (r, b), (r / 2.0, b / 2.0)];
            for (j, (x, y)) in at.into_iter().enumerate() {
                out[5 * k + j] = Crop { x, y, side };
            }
        }
        out[EVAL_CROPS - 1] = Crop { x: (w - short) / 2.0, y: (h - short) / 2.0, side: short };
        out
    }
}

/// The usable photo pool under `dir` (recursively), in file-name order, each prepared with
/// [`Photo::prepare`]; returns the pool, the files that could not be loaded (with reasons), and
/// how many were too small.
pub fn load_pool(
    dir: &std::path::Path,
    work_side: u32,
) -> Result<(Vec<Photo>, Vec<crate::image::load::Skipped>, usize)> {
    let loaded = crate::image::load::load_all(&[dir.to_path_buf()], &crate::image::load::LoadOptions::default());
    let prepared: Vec<Result<Option<Photo>>> = {
        use rayon::prelude::*;
        loaded
            .images
            .par_iter()
            .map(|(p, img)| {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                Photo::prepare(&name, img, work_side)
            })
            .collect()
    };
    let mut photos = Vec::new();
    let mut small = 0;
    for r in prepared {
        match r? {
            Some(p) => photos.push(p),
            None => small += 1,
        }
    }
    photos.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((photos, loaded.skipped, small))
}

/// The ImageNet class of a labelled photo of the pool, from its file name: foolbox's
/// `imagenet_NN_CLASS.jpg` samples (fetched as `foolbox__imagenet_NN_CLASS.jpg`). Such photos are
/// the labelled check of an ImageNet classifier and are kept out of its training.
pub fn imagenet_label(name: &str) -> Option<usize> {
    let stem = name.strip_prefix("foolbox__imagenet_")?.strip_suffix(".jpg")?;
    let (_, class) = stem.split_once('_')?;
    class.parse().ok().filter(|&c: &usize| c < 1000)
}

/// Whether a photo (by file name) is in the test split.
pub fn is_test(name: &str, test_fraction: f64) -> bool {
    let first = Sha256::digest(name.as_bytes())[0];
    (first as f64) < 256.0 * test_fraction
}

/// Whether a training photo (by file name) goes to the validation share `fraction`
/// ([`Split::with_validation`]): the first byte of `sha256("validation/" + name)`, a draw
/// independent of [`is_test`]'s.
pub fn is_validation(name: &str, fraction: f64) -> bool {
    let mut h = Sha256::new();
    h.update(b"validation/");
    h.update(name.as_bytes());
    (h.finalize()[0] as f64) < 256.0 * fraction
}

/// pHash distance (bits of 64) at or under which two photos of a pool count as one picture
/// (see the module docs): what `stabilize dupes --hash phash` calls a duplicate. The pool's two
/// pairs of consecutive frames are 2 bits apart, and every other pair is above it (the real-data
/// test `the_pool_split_leaves_out_twins` checks).
pub const TWIN_BITS: u32 = 10;

/// A photo left out of a split because it is another photo's twin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Twin {
    /// The photo left out.
    pub photo: usize,
    /// The kept photo it repeats (held out, or earlier by name on the same side).
    pub of: usize,
    /// Their pHash distance in bits.
    pub bits: u32,
}

/// A train/validation/test split of a photo pool: indices into it, each in index order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    /// Photos of the training side that are not trained on ([`Split::with_validation`]); empty
    /// unless asked for.
    pub val: Vec<usize>,
    pub test: Vec<usize>,
    /// Photos in neither, as twins of a kept one.
    pub twins: Vec<Twin>,
}

impl Split {
    /// Moves the training photos that [`is_validation`] picks for `fraction` to `val` (`None`: none,
    /// as runs made before 2026-12-04 did). Twins were left out before, so a validation photo is
    /// never a twin of a training or held-out one.
    pub fn with_validation(mut self, photos: &[Photo], fraction: Option<f64>) -> Split {
        if let Some(f) = fraction {
            let (val, train) = self.train.iter().partition(|&&i| is_validation(&photos[i].name, f));
            (self.train, self.val) = (train, val);
        }
        self
    }

    /// The twins left out, as `name (twin of NAME, N bits)` (for summaries and logs).
    pub fn describe_twins(&self, photos: &[Photo]) -> Vec<String> {
        self.twins
            .iter()
            .map(|t| format!("{} (twin of {}, {} bits)", photos[t.photo].name, photos[t.of].name, t.bits))
            .collect()
    }
}

/// The split of `photos` ([`is_test`] by file name), with twins under `twin_bits` left out as
/// the module docs say; `None` keeps every photo (the rule of runs made before twins were
/// checked).
pub fn split(photos: &[Photo], test_fraction: f64, twin_bits: Option<u32>) -> Split {
    let (train, test): (Vec<usize>, Vec<usize>) =
        (0..photos.len()).partition(|&i| !is_test(&photos[i].name, test_fraction));
    let Some(bits) = twin_bits else {
        return Split { train, val: Vec::new(), test, twins: Vec::new() };
    };
    let hasher = HashKind::Phash.hasher();
    let hashes: Vec<PerceptualHash> = {
        use rayon::prelude::*;
        photos.par_iter().map(|p| PerceptualHash::of(&hasher, &p.image)).collect()
    };
    let by_name = |mut v: Vec<usize>| {
        v.sort_by(|&a, &b| photos[a].name.cmp(&photos[b].name).then(a.cmp(&b)));
        v
    };
    let mut twins = Vec::new();
    // Held-out photos first, against earlier held-out ones only.
    let mut kept_test: Vec<usize> = Vec::new();
    for i in by_name(test) {
        match kept_test.iter().map(|&j| (j, hashes[i].distance(&hashes[j]))).find(|&(_, d)| d <= bits) {
            Some((of, bits)) => twins.push(Twin { photo: i, of, bits }),
            None => kept_test.push(i),
        }
    }
    // Training photos against every kept held-out photo, then against earlier training ones.
    let mut kept_train: Vec<usize> = Vec::new();
    for i in by_name(train) {
        let twin =
            kept_test.iter().chain(&kept_train).map(|&j| (j, hashes[i].distance(&hashes[j]))).find(|&(_, d)| d <= bits);
        match twin {
            Some((of, bits)) => twins.push(Twin { photo: i, of, bits }),
            None => kept_train.push(i),
        }
    }
    kept_train.sort_unstable();
    kept_test.sort_unstable();
    twins.sort_by_key(|t| t.photo);
    Split { train: kept_train, val: Vec::new(), test: kept_test, twins }
}

/// Photo indices of a triplet and its three crops.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Triplet {
    pub photo: usize,
    pub other: usize,
    pub q: Crop,
    pub p: Crop,
    pub n: Crop,
}

/// Draws a triplet over the photos whose indices are in `pool` (≥ 2 of them).
pub fn sample_triplet<R: Rng>(photos: &[Photo], pool: &[usize], rng: &mut R) -> Triplet {
    assert!(pool.len() >= 2, "triplets need at least two photos");
    let a = pool[rng.random_range(0..pool.len())];
    let mut b = pool[rng.random_range(0..pool.len() - 1)];
    if b == a {
        b = pool[pool.len() - 1];
    }
    let q = photos[a].random_crop(rng);
    let p = photos[a].overlapping_crop(q, rng);
    let n = photos[b].random_crop(rng);
    Triplet { photo: a, other: b, q, p, n }
}

/// The three rendered images of a triplet, `size × size` RGB each.
pub fn render_triplet(photos: &[Photo], t: &Triplet, size: u32) -> Result<[Image; 3]> {
    Ok([photos[t.photo].render(t.q, size)?, photos[t.photo].render(t.p, size)?, photos[t.other].render(t.n, size)?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Channels;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn imagenet_labels_come_from_foolbox_names_only() {
        assert_eq!(imagenet_label("foolbox__imagenet_00_243.jpg"), Some(243));
        assert_eq!(imagenet_label("foolbox__imagenet_19_305.jpg"), Some(305));
        for other in [
            "foolbox__cifar10_00_3.png",
            "foolbox__imagenet_00.jpg",
            "foolbox__imagenet_01_1000.jpg",
            "imagenet_00_1.jpg",
        ] {
            assert_eq!(imagenet_label(other), None, "{other}");
        }
    }

    fn photo(name: &str, w: u32, h: u32) -> Photo {
        let data = (0..w * h * 3).map(|i| (i % 251) as u8).collect();
        Photo::prepare(name, &Image::new(w, h, Channels::Rgb, data).unwrap(), 256).unwrap().unwrap()
    }

    fn overlap_1d(a0: f64, a1: f64, b0: f64, b1: f64) -> f64 {
        (a1.min(b1) - a0.max(b0)).max(0.0)
    }

    #[test]
    fn crops_stay_inside_and_positives_overlap() {
        let ph = photo("a.jpg", 600, 400);
        assert_eq!((ph.image.width(), ph.image.height()), (384, 256));
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..500 {
            let q = ph.random_crop(&mut rng);
            let p = ph.overlapping_crop(q, &mut rng);
            for c in [q, p] {
                assert!(c.x >= 0.0 && c.y >= 0.0 && c.x + c.side <= 384.0 + 1e-9 && c.y + c.side <= 256.0 + 1e-9);
            }
            assert!(q.side >= 128.0 - 1e-9 && q.side <= 204.8 + 1e-9);
            let ox = overlap_1d(q.x, q.x + q.side, p.x, p.x + p.side);
            let oy = overlap_1d(q.y, q.y + q.side, p.y, p.y + p.side);
            // The centre moves ≤ side/4 and p ≥ 0.8·side, so ≥ 0.4·side overlaps on each axis.
            assert!(ox >= 0.39 * q.side && oy >= 0.39 * q.side, "{q:?} {p:?}");
        }
        let r = ph.render(ph.random_crop(&mut rng), 64).unwrap();
        assert_eq!((r.width(), r.height(), r.channels()), (64, 64, Channels::Rgb));
    }

    #[test]
    fn small_photos_are_dropped_and_eval_crops_are_the_corners() {
        let tiny = Image::new(32, 32, Channels::Rgb, vec![0; 32 * 32 * 3]).unwrap();
        assert!(Photo::prepare("cifar.png", &tiny, 256).unwrap().is_none());
        let ph = photo("b.jpg", 200, 180);
        let c = ph.eval_crops();
        // Scale 0.45: side 81; corners, then the centre.
        assert_eq!(c[0], Crop { x: 0.0, y: 0.0, side: 81.0 });
        assert_eq!(c[4], Crop { x: 59.5, y: 49.5, side: 81.0 });
        // Scale 0.6: side 108, the bottom-right corner.
        assert_eq!(c[8], Crop { x: 92.0, y: 72.0, side: 108.0 });
        // The whole short side, centred.
        assert_eq!(c[15], Crop { x: 10.0, y: 0.0, side: 180.0 });
        // All distinct and inside the photo.
        for (i, a) in c.iter().enumerate() {
            assert!(a.x >= 0.0 && a.y >= 0.0 && a.x + a.side <= 200.0 && a.y + a.side <= 180.0, "{a:?}");
            assert!(c[..i].iter().all(|b| b != a), "{a:?} repeated");
        }
    }

    /// A smooth picture (a few sinusoids with phases from `seed`), `w × h` RGB, each sample plus `lift`.
    fn picture(name: &str, seed: u64, lift: u8, w: u32, h: u32) -> Photo {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let waves: Vec<(f64, f64, f64)> = (0..6)
            .map(|_| (rng.random_range(1.0..5.0), rng.random_range(1.0..5.0), rng.random_range(0.0..6.3)))
            .collect();
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let (u, v) = (x as f64 / w as f64, y as f64 / h as f64);
                let s: f64 = waves.iter().map(|&(a, b, p)| (a * u * 6.3 + b * v * 6.3 + p).sin()).sum();
                let g = (128.0 + 18.0 * s).clamp(0.0, 250.0) as u8;
                data.extend([g.saturating_add(lift), g / 2 + lift, 255 - g]);
            }
        }
        Photo::prepare(name, &Image::new(w, h, Channels::Rgb, data).unwrap(), 256).unwrap().unwrap()
    }

    #[test]
    fn twins_leave_training_and_the_held_out_set_stays() {
        let names: Vec<String> = (0..64).map(|i| format!("frame{i:02}.png")).collect();
        let held: Vec<&String> = names.iter().filter(|n| is_test(n, 0.25)).take(2).collect();
        let train: Vec<&String> = names.iter().filter(|n| !is_test(n, 0.25)).take(4).collect();
        // Seeds: 1 = held[0] and its twin train[1]; 2 = train[0] and its twin train[3], the
        // later by name but the earlier by index; 3 = held[1] alone; 4 = train[2] alone.
        let photos = vec![
            picture(held[0], 1, 0, 240, 200),
            picture(train[1], 1, 3, 240, 200),
            picture(train[3], 2, 2, 220, 220),
            picture(train[0], 2, 0, 220, 220),
            picture(held[1], 3, 0, 200, 240),
            picture(train[2], 4, 0, 240, 200),
        ];
        let kind = HashKind::Phash.hasher();
        let h: Vec<PerceptualHash> = photos.iter().map(|p| PerceptualHash::of(&kind, &p.image)).collect();
        assert!(h[0].distance(&h[1]) <= 2 && h[2].distance(&h[3]) <= 2, "twins hash alike");
        for (a, b) in [(0, 2), (0, 4), (0, 5), (2, 4), (2, 5), (4, 5)] {
            assert!(h[a].distance(&h[b]) > TWIN_BITS, "distinct pictures {a} {b}: {}", h[a].distance(&h[b]));
        }
        let s = split(&photos, 0.25, Some(TWIN_BITS));
        assert_eq!(s.test, vec![0, 4], "a training twin never displaces a held-out photo");
        assert_eq!(s.train, vec![3, 5]);
        let left: Vec<(usize, usize)> = s.twins.iter().map(|t| (t.photo, t.of)).collect();
        assert_eq!(left, vec![(1, 0), (2, 3)], "the held-out photo's twin and the later training twin by name go");
        assert_eq!(
            s.describe_twins(&photos)[1],
            format!("{} (twin of {}, {} bits)", train[3], train[0], s.twins[1].bits)
        );
        // Without the check every photo is kept, as before.
        let all = split(&photos, 0.25, None);
        assert_eq!((all.train, all.test, all.twins.len()), (vec![1, 2, 3, 5], vec![0, 4], 0));
        // With every photo a twin of every other, the first held-out photo by name stays and
        // nothing else: no training photo displaces a held-out one.
        let s = split(&photos, 0.25, Some(64));
        assert_eq!((s.test, s.train, s.twins.len()), (vec![0], vec![], 5));
    }

    #[test]
    fn validation_takes_its_share_of_training_photos_only() {
        let photos: Vec<Photo> = (0..200).map(|i| photo(&format!("photo{i}.jpg"), 180, 170)).collect();
        let s = split(&photos, 0.25, None);
        let v = s.clone().with_validation(&photos, Some(0.2));
        assert_eq!(v.test, s.test, "the held-out photos do not move");
        assert!(v.val.iter().all(|i| s.train.contains(i) && !v.train.contains(i)));
        assert_eq!(v.train.len() + v.val.len(), s.train.len());
        // About a fifth of the training photos, a fixed draw by name; none without a fraction.
        assert!((15..45).contains(&v.val.len()), "{}", v.val.len());
        assert_eq!(v, s.clone().with_validation(&photos, Some(0.2)));
        assert!(v.val.iter().all(|&i| is_validation(&photos[i].name, 0.2)));
        assert_eq!(s.clone().with_validation(&photos, None), s);
        // Independent of the test rule: held-out photos would split about as often.
        let both = s.test.iter().filter(|&&i| is_validation(&photos[i].name, 0.2)).count();
        assert!(both > 0 && both < s.test.len() / 2, "{both} of {}", s.test.len());
    }

    #[test]
    fn split_is_fixed_and_triplets_use_two_photos() {
        let names: Vec<String> = (0..400).map(|i| format!("photo{i}.jpg")).collect();
        let test = names.iter().filter(|n| is_test(n, 0.25)).count();
        assert!((70..130).contains(&test), "{test}");
        assert_eq!(is_test("photo1.jpg", 0.25), is_test("photo1.jpg", 0.25));
        let photos = vec![photo("a", 200, 200), photo("b", 300, 200), photo("c", 200, 300)];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..100 {
            let t = sample_triplet(&photos, &[0, 2], &mut rng);
            assert_ne!(t.photo, t.other);
            assert!([0, 2].contains(&t.photo) && [0, 2].contains(&t.other));
        }
        let t = sample_triplet(&photos, &[0, 1, 2], &mut rng);
        assert_eq!(render_triplet(&photos, &t, 32).unwrap().len(), 3);
    }
}
