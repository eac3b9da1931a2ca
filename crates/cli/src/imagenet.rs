//! `stabilize imagenet`: ImageNet top-5 of the pretrained MobileNetV2 (checks the weights) or of a
//! stabilized run of it (`--model RUN`);
//! `--dump` writes the exact input and logits for the PyTorch comparison.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde::Serialize;
use stabilize_burn::mobilenet::MobileNetV2;
use stabilize_core::data::dirs;
use stabilize_core::image::load;

use crate::args::RunArgs;

#[derive(Serialize)]
struct ImagenetRow {
    path: PathBuf,
    top5: [usize; 5],
    top5_logits: [f32; 5],
}

/// The network `--model` names: `pretrained`, or a `train classify --dataset photos` run folder.
fn open_model(model: &str, run: &RunArgs, device: &stabilize_burn::Device) -> Result<MobileNetV2> {
    if model == "pretrained" {
        return Ok(MobileNetV2::load_torchvision(&dirs::mobilenet_weights(&run.data())?, device)?);
    }
    let dir = Path::new(model);
    if !dir.is_dir() {
        bail!("--model {model}: not `pretrained` and not a run folder");
    }
    if !stabilize_burn::train::is_imagenet_run(dir) {
        bail!("--model {model}: not an ImageNet classifier run (train one with `train classify --dataset photos`)");
    }
    Ok(stabilize_burn::train::load_imagenet_run(dir, device)?.1)
}

pub fn run(model: &str, dump: Option<&Path>, run: &RunArgs, json: bool, paths: &[PathBuf]) -> Result<()> {
    use stabilize_burn::imagenet::{CROP, imagenet_input, top5};
    let device = run.device()?;
    let model = open_model(model, run, &device)?;
    let loaded = load::load_all(paths, &load::LoadOptions::default());
    for s in &loaded.skipped {
        eprintln!("{s}");
    }
    if loaded.images.is_empty() {
        bail!("no readable images under the given paths");
    }
    let images: Vec<stabilize_core::Image> = loaded.images.iter().map(|(_, i)| i.clone()).collect();
    let x = imagenet_input(&images, &device)?;
    let input: Vec<f32> = x.clone().try_into_vec_as::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let logits: Vec<f32> = model.forward(x).try_into_vec_as::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let n = images.len();
    if let Some(dir) = dump {
        stabilize_core::fsutil::ensure_writable_dir(dir)?;
        let c = CROP as usize;
        stabilize_core::data::npy::write_npy(&dir.join("input.npy"), &input, &[n, 3, c, c])?;
        stabilize_core::data::npy::write_npy(&dir.join("logits.npy"), &logits, &[n, 1000])?;
        let names: Vec<String> = loaded.images.iter().map(|(p, _)| p.display().to_string()).collect();
        stabilize_core::fsutil::write_atomic(&dir.join("paths.json"), &serde_json::to_vec_pretty(&names)?)?;
    }
    let rows: Vec<ImagenetRow> = loaded
        .images
        .iter()
        .enumerate()
        .map(|(i, (p, _))| {
            let row = &logits[i * 1000..(i + 1) * 1000];
            let t = top5(row);
            ImagenetRow { path: p.clone(), top5: t, top5_logits: t.map(|k| row[k]) }
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string(&serde_json::json!({ "images": rows, "skipped": loaded.skipped }))?);
    } else {
        for r in &rows {
            println!("{}: top-5 classes {:?}", r.path.display(), r.top5);
        }
    }
    Ok(())
}
