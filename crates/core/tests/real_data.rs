//! Loaders and distortions on the real assets (`stabilize fetch all`).
//!
//! The data dir is `$STABILIZE_DATA`, else `<workspace>/data`. When the assets are missing these
//! tests print a note and return, unless `STABILIZE_REQUIRE_DATA=1` (as in `scripts/test.sh` and
//! CI), where a missing asset fails the test.

use std::path::PathBuf;

use stabilize_core::data::assets::{self, FileState};
use stabilize_core::data::crops::{TWIN_BITS, split};
use stabilize_core::data::dirs;
use stabilize_core::data::fashion_mnist::{CLASSES, FashionMnist};
use stabilize_core::eval::metrics::psnr;
use stabilize_core::image::load::{LoadOptions, load_all};
use stabilize_core::{Channels, Distortion};

fn data_dir() -> PathBuf {
    std::env::var_os("STABILIZE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data"))
}

/// The asset's folder if every file verifies; `None` (test skipped) if absent and not required.
fn asset(name: &str) -> Option<PathBuf> {
    let m = assets::manifest(name).unwrap();
    let states = assets::verify(&m, &data_dir()).unwrap();
    let bad: Vec<_> =
        states.iter().filter(|(_, s)| *s != FileState::Ok).map(|(f, s)| format!("{} {s:?}", f.name)).collect();
    if bad.is_empty() {
        return Some(dirs::asset_dir(&data_dir(), name));
    }
    if std::env::var("STABILIZE_REQUIRE_DATA").is_ok_and(|v| v == "1") {
        panic!("asset {name} is not complete in {}: {bad:?}; run `stabilize fetch {name}`", data_dir().display());
    }
    eprintln!("skipping: asset {name} not fetched ({} files not ok)", bad.len());
    None
}

#[test]
fn fashion_mnist_loads_with_its_known_statistics() {
    let Some(dir) = asset("fashion-mnist") else {
        return;
    };
    let fm = FashionMnist::load(&dir).unwrap();
    assert_eq!((fm.train.len(), fm.test.len()), (60_000, 10_000));
    // Balanced: 6,000 and 1,000 images per class.
    for (split, per_class) in [(&fm.train, 6000), (&fm.test, 1000)] {
        let mut counts = [0usize; 10];
        split.labels.iter().for_each(|&l| counts[l as usize] += 1);
        assert_eq!(counts, [per_class; 10]);
    }
    // The published training-set pixel mean and std on [0,1]: 0.2860 and 0.3530.
    let n = fm.train.images.len() as f64;
    let mean = fm.train.images.iter().map(|&v| v as f64).sum::<f64>() / n / 255.0;
    let var = fm.train.images.iter().map(|&v| (v as f64 / 255.0 - mean).powi(2)).sum::<f64>() / n;
    assert!((mean - 0.2860).abs() < 5e-4, "mean {mean}");
    assert!((var.sqrt() - 0.3530).abs() < 5e-4, "std {}", var.sqrt());
    assert_eq!(CLASSES[fm.train.labels[0] as usize], "Ankle boot", "first training label is 9");
    let img = fm.test.image(0);
    assert_eq!((img.width(), img.height(), img.channels()), (28, 28, Channels::Gray));
}

#[test]
fn every_photo_loads_as_rgb_with_its_manifest_size() {
    let Some(dir) = asset("photos") else { return };
    let m = assets::manifest("photos").unwrap();
    let loaded = load_all(&[dir], &LoadOptions::default());
    assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);
    assert_eq!(loaded.images.len(), m.files.len());
    for (path, img) in &loaded.images {
        let name = path.file_name().unwrap().to_str().unwrap();
        let entry = m.files.iter().find(|f| f.name == name).expect("file is in the manifest");
        let w = entry.extra["width"].as_u64().unwrap() as u32;
        let h = entry.extra["height"].as_u64().unwrap() as u32;
        assert_eq!((img.width(), img.height()), (w, h), "{name}");
        assert_eq!(img.channels(), Channels::Rgb, "{name}");
    }
}

#[test]
fn mobilenet_weights_are_a_legacy_torch_pickle() {
    let Some(dir) = asset("mobilenet-v2") else {
        return;
    };
    let bytes = std::fs::read(dir.join("mobilenet_v2-b0353104.pth")).unwrap();
    // Legacy torch.save: a pickle (protocol 2: 0x80 0x02) whose first object is the magic number
    // 0x1950a86a20f9469cfc6c as a LONG1 (opcode 0x8a, 10 bytes, little-endian).
    assert_eq!(&bytes[..2], &[0x80, 0x02]);
    assert_eq!(&bytes[2..4], &[0x8a, 0x0a]);
    assert_eq!(&bytes[4..14], &[0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);
}

#[test]
fn distortions_on_real_photos_behave() {
    let Some(dir) = asset("photos") else { return };
    let loaded = load_all(&[dir], &LoadOptions::default());
    // A spread of real photos: large wallpapers, small CIFAR, grayscale scenes.
    let picks: Vec<_> = loaded.images.iter().step_by(loaded.images.len() / 12).take(12).collect();
    for (path, img) in picks {
        let specs: Vec<Distortion> =
            stabilize_core::distort::parse_list("jpeg:10,jpeg:50,jpeg:90,thumb:30,thumb:50,crop:2,noise:0.05").unwrap();
        let outs: Vec<_> = specs.iter().map(|d| d.apply(img, 11).unwrap()).collect();
        for (d, out) in specs.iter().zip(&outs) {
            assert_eq!(
                (out.width(), out.height(), out.channels()),
                (img.width(), img.height(), img.channels()),
                "{d} {path:?}"
            );
            assert_eq!(out, &d.apply(img, 11).unwrap(), "{d} deterministic on {path:?}");
        }
        let p: Vec<f64> = outs.iter().map(|o| psnr(img, o).unwrap()).collect();
        assert!(p[0] < p[1] && p[1] < p[2], "JPEG PSNR must rise with quality on {path:?}: {p:?}");
        assert!(p[3] < p[4], "thumb:30 must be harsher than thumb:50 on {path:?}: {p:?}");
        // Noise σ = 0.05 gives PSNR ≈ 20·log10(1/0.05) = 26 dB before clamping and rounding.
        assert!((p[6] - 26.0).abs() < 2.5, "noise:0.05 PSNR {} on {path:?}", p[6]);
    }
}

/// The pool's split: the 33 held-out photos of the file-name rule, and of its two pairs of
/// consecutive frames, the training twin of the held-out `rubberwhale1` and the second of
/// `basketball1`/`basketball2` are left out (no near-copy of a held-out photo is trained on).
#[test]
fn the_pool_split_leaves_out_twins() {
    let Some(_) = asset("photos") else {
        return;
    };
    let (pool, skipped) = dirs::photo_pool(&data_dir(), 128).unwrap();
    assert!(skipped.is_empty());
    let rule = split(&pool, 0.25, None);
    let s = split(&pool, 0.25, Some(TWIN_BITS));
    assert_eq!((rule.test.len(), rule.train.len()), (33, 90));
    assert_eq!(s.test, rule.test, "the held-out set is the file-name rule's");
    let left: Vec<(&str, &str)> =
        s.twins.iter().map(|t| (pool[t.photo].name.as_str(), pool[t.of].name.as_str())).collect();
    assert_eq!(
        left,
        vec![
            ("opencv-doc__basketball2.png", "opencv-doc__basketball1.png"),
            ("opencv-doc__rubberwhale2.png", "opencv-doc__rubberwhale1.png"),
        ]
    );
    assert!(s.twins.iter().all(|t| t.bits <= 4), "{:?}", s.twins);
    assert_eq!(s.train.len(), 88);
}
