//! Where the fetched assets live: the data dir and each asset's folder, and the two assets the
//! models read by path (the MobileNetV2 weights, the photo pool), with the error that says how to
//! fetch them.

use std::path::{Path, PathBuf};

use crate::data::crops::{Photo, load_pool};
use crate::error::{Error, Result};
use crate::image::load::Skipped;

/// The data dir: the given one, else `$STABILIZE_DATA`, else `./data`.
pub fn data_dir(explicit: Option<&Path>) -> PathBuf {
    match explicit {
        Some(p) => p.to_path_buf(),
        None => std::env::var_os("STABILIZE_DATA").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("data")),
    }
}

/// Where an asset's files live: `<data_dir>/<name>/`.
pub fn asset_dir(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join(name)
}

/// torchvision's MobileNetV2 ImageNet weights in the data dir (`stabilize fetch mobilenet-v2`).
pub fn mobilenet_weights(data_dir: &Path) -> Result<PathBuf> {
    let path = asset_dir(data_dir, "mobilenet-v2").join("mobilenet_v2-b0353104.pth");
    if !path.is_file() {
        return Err(Error::Asset(format!(
            "no MobileNetV2 weights at {} (run `stabilize fetch mobilenet-v2`)",
            path.display()
        )));
    }
    Ok(path)
}

/// The usable photo pool of the data dir (`stabilize fetch photos`), prepared for crops of
/// `input_size` px, and the files that could not be read. Fewer than 4 usable photos is an error.
pub fn photo_pool(data_dir: &Path, input_size: usize) -> Result<(Vec<Photo>, Vec<Skipped>)> {
    let dir = asset_dir(data_dir, "photos");
    if !dir.is_dir() {
        return Err(Error::Asset(format!("no photos in {} (run `stabilize fetch photos`)", dir.display())));
    }
    let (photos, skipped, small) = load_pool(&dir, 2 * input_size as u32)?;
    if photos.len() < 4 {
        return Err(Error::Asset(format!(
            "only {} usable photos in {} ({small} too small, {} unreadable)",
            photos.len(),
            dir.display(),
            skipped.len()
        )));
    }
    Ok((photos, skipped))
}

/// The labelled ImageNet photos of the pool as fetched (full size, not shrunk for crops), with
/// their classes ([`crate::data::crops::imagenet_label`]), in file-name order. An unreadable one
/// is an error: they are the labelled check of every ImageNet evaluation.
pub fn labelled_imagenet_photos(data_dir: &Path) -> Result<Vec<(String, crate::image::Image, usize)>> {
    let dir = asset_dir(data_dir, "photos");
    let entries = std::fs::read_dir(&dir)
        .map_err(|_| Error::Asset(format!("no photos in {} (run `stabilize fetch photos`)", dir.display())))?;
    let mut named: Vec<(String, usize)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            crate::data::crops::imagenet_label(&name).map(|c| (name, c))
        })
        .collect();
    named.sort();
    named
        .into_iter()
        .map(|(name, class)| {
            let img = crate::image::load::load_image(&dir.join(&name))?;
            Ok((name, img, class))
        })
        .collect()
}
