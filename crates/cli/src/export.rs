//! `stabilize export`: a run's weights as one safetensors file for PyTorch
//! (`stabilize_burn::export`), and on request a reference (inputs and this program's outputs) that
//! `scripts/load_in_pytorch.py --check` compares the torch module against.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use stabilize_burn::export::{LoadedRun, Reference, source_sha256};
use stabilize_core::data::npy::write_npy;
use stabilize_core::fsutil::{ensure_writable_dir, path_text, write_atomic};
use stabilize_core::image::load;

use crate::args::RunArgs;

/// Fashion-MNIST test images in a Fashion-MNIST classifier's reference.
pub const FASHION_REFERENCE_IMAGES: usize = 256;

/// `stabilize export` arguments.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// `default` (the shipped embedding model) or a finished run folder: an embedding run, a
    /// `train classify --dataset photos` run (ImageNet MobileNetV2) or a Fashion-MNIST classifier.
    run: String,
    /// The safetensors file to write (torchvision's `mobilenet_v2` key names, plus `head.*` for an
    /// embedding model's projection; an `nn.Sequential`'s for the Fashion-MNIST CNN).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing --out.
    #[arg(long)]
    overwrite: bool,
    /// Also write DIR/input.npy (what the model is given, [N,C,S,S] on [0,1]), DIR/output.npy
    /// (what it computes: logits or unit embeddings, [N,K]) and DIR/paths.txt, for
    /// `scripts/load_in_pytorch.py OUT --check DIR`.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Photos (files or folders) for --reference of a photo model; a Fashion-MNIST classifier's
    /// reference is the first 256 images of Fashion-MNIST's test split.
    #[arg(long, num_args = 1..)]
    images: Vec<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    run_args: RunArgs,
}

pub fn run(a: ExportArgs) -> Result<()> {
    let dir = if a.run == "default" {
        crate::default_model::ensure(&a.run_args.data())?
    } else {
        let d = PathBuf::from(&a.run);
        if !d.is_dir() {
            bail!("{}: not a run folder (nor `default`)", a.run);
        }
        d
    };
    if a.out.exists() && !a.overwrite {
        bail!("{} exists (pass --overwrite to replace it)", a.out.display());
    }
    if a.out.is_dir() {
        bail!("{} is a folder; --out names the file to write", a.out.display());
    }
    if !a.images.is_empty() && a.reference.is_none() {
        bail!("--images is for --reference DIR");
    }
    let device = a.run_args.device()?;
    let loaded = LoadedRun::open(&dir, &device)?;
    let is_fashion = matches!(loaded, LoadedRun::Fashion(..));
    // Everything that can fail on the input is checked before anything is written.
    let reference = match &a.reference {
        None => None,
        Some(rdir) => {
            let (images, names) = reference_images(&a, is_fashion)?;
            let r = loaded.reference(&images, &device)?;
            Some((rdir, r, names))
        }
    };
    let mut export = loaded.export(&source_sha256(&dir)?);
    if matches!(loaded, LoadedRun::Embedding(..)) && stabilize_core::eval::fusion::read_fit_settings(&dir)?.mirror {
        // The network is exported as it is; what stabilize compares is its mirror-averaged output.
        export.metadata.insert(
            "descriptor".into(),
            "mirror-averaged: normalize(output(x) + output(x.flip(3))), as stabilize's dupes, embed and index compare images (the run's fusion.json)".into(),
        );
    }
    if let Some(parent) = a.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let bytes = export.write(&a.out)?;
    if let Some((rdir, r, names)) = &reference {
        write_reference(rdir, r, names)?;
    }
    if a.json {
        let reference = reference.as_ref().map(|(d, r, _)| {
            serde_json::json!({ "dir": path_text(d), "input_shape": r.input_shape, "output_shape": r.output_shape })
        });
        println!(
            "{}",
            serde_json::json!({
                "out": path_text(&a.out), "kind": export.kind.name(), "tensors": export.tensors.len(), "bytes": bytes,
                "metadata": export.metadata, "reference": reference,
            })
        );
    } else {
        println!(
            "{}: {} ({} tensors, {:.1} MB); load it with scripts/load_in_pytorch.py",
            a.out.display(),
            export.kind.name(),
            export.tensors.len(),
            bytes as f64 / 1e6
        );
        if let Some((d, r, _)) = &reference {
            println!("reference: {} (input {:?}, output {:?})", d.display(), r.input_shape, r.output_shape);
        }
    }
    Ok(())
}

/// The reference's images and their names: the photos given (photo models) or Fashion-MNIST
/// test images.
fn reference_images(a: &ExportArgs, is_fashion: bool) -> Result<(Vec<stabilize_core::Image>, Vec<String>)> {
    if is_fashion {
        if !a.images.is_empty() {
            bail!("a Fashion-MNIST classifier's reference is Fashion-MNIST's test images; drop --images");
        }
        let test = a.run_args.fashion_mnist()?.test;
        let n = FASHION_REFERENCE_IMAGES.min(test.len());
        return Ok((
            (0..n).map(|i| test.image(i)).collect(),
            (0..n).map(|i| format!("fashion-mnist:test:{i}")).collect(),
        ));
    }
    if a.images.is_empty() {
        bail!("--reference needs --images PATH… (photos to run the model on)");
    }
    for p in &a.images {
        if !p.exists() {
            bail!("{}: no such file or folder", p.display());
        }
    }
    let loaded = load::load_all(&a.images, &load::LoadOptions::default());
    for s in &loaded.skipped {
        eprintln!("{s}");
    }
    if loaded.images.is_empty() {
        bail!("no readable images under --images");
    }
    let names = loaded.images.iter().map(|(p, _)| path_text(p)).collect();
    Ok((loaded.images.into_iter().map(|(_, i)| i).collect(), names))
}

fn write_reference(dir: &Path, r: &Reference, names: &[String]) -> Result<()> {
    ensure_writable_dir(dir)?;
    write_npy(&dir.join("input.npy"), &r.input, &r.input_shape)?;
    write_npy(&dir.join("output.npy"), &r.output, &r.output_shape)?;
    let mut text = names.join("\n");
    text.push('\n');
    write_atomic(&dir.join("paths.txt"), text.as_bytes())?;
    Ok(())
}
