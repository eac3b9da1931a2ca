//! The real torchvision MobileNetV2 weights (`stabilize fetch mobilenet-v2`) on foolbox's 20
//! labelled ImageNet photos (`stabilize fetch photos`). Skipped when the assets are absent, unless
//! `STABILIZE_REQUIRE_DATA=1` (CI), where that fails.

use std::path::PathBuf;

use stabilize_burn::Device;
use stabilize_burn::imagenet::{imagenet_input, top5};
use stabilize_burn::mobilenet::MobileNetV2;
use stabilize_core::data::assets::{self, FileState};
use stabilize_core::data::dirs;
use stabilize_core::image::load::load_image;

fn data_dir() -> PathBuf {
    std::env::var_os("STABILIZE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data"))
}

fn asset(name: &str) -> Option<PathBuf> {
    let m = assets::manifest(name).unwrap();
    let ok = assets::verify(&m, &data_dir()).unwrap().iter().all(|(_, s)| *s == FileState::Ok);
    if ok {
        return Some(dirs::asset_dir(&data_dir(), name));
    }
    if std::env::var("STABILIZE_REQUIRE_DATA").is_ok_and(|v| v == "1") {
        panic!("asset {name} is not complete in {}; run `stabilize fetch {name}`", data_dir().display());
    }
    eprintln!("skipping: asset {name} not fetched");
    None
}

#[test]
fn pretrained_mobilenet_v2_classifies_the_foolbox_imagenet_photos() {
    let (Some(weights), Some(photos)) = (asset("mobilenet-v2"), asset("photos")) else { return };
    let device = Device::flex();
    let model = MobileNetV2::load_torchvision(&weights.join("mobilenet_v2-b0353104.pth"), &device).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&photos)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("foolbox__imagenet_"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 20);
    let images: Vec<_> = files.iter().map(|p| load_image(p).unwrap()).collect();
    let x = imagenet_input(&images, &device).unwrap();
    let logits: Vec<f32> = model.forward(x).try_into_vec_as::<f32>().unwrap();
    let mut correct = 0;
    for (i, p) in files.iter().enumerate() {
        // foolbox__imagenet_NN_LABEL.jpg
        let stem = p.file_stem().unwrap().to_str().unwrap();
        let label: usize = stem.rsplit('_').next().unwrap().parse().unwrap();
        let row = &logits[i * 1000..(i + 1) * 1000];
        let t5 = top5(row);
        eprintln!("{stem}: top-5 {t5:?}");
        correct += usize::from(t5[0] == label);
    }
    assert!(correct >= 18, "top-1 {correct}/20");
}
