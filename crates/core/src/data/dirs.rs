//! Where the fetched assets live: the data dir and each asset's folder, and the two assets the
//! models read by path (the MobileNetV2 weights, the photo pool), with the error that says how to
//! fetch them.

use std::path::{Path, PathBuf};

use crate::data::crops::{Photo, load_pool};
use crate::error::{Error, Result};
use crate::image::load::Skipped;

/// The asset folders whose presence marks a `./data` left by older versions (which kept the data
/// in the current folder).
const ASSET_FOLDERS: [&str; 4] = ["mobilenet-v2", "photos", "fashion-mnist", "embed-default"];

/// The data dir: the given one, else `$STABILIZE_DATA`, else `./data` where an older version left
/// its assets there, else `$XDG_DATA_HOME/stabilize`, else `~/.local/share/stabilize` (else
/// `./data` when there is no home). See [`resolve_data_dir`].
pub fn data_dir(explicit: Option<&Path>) -> PathBuf {
    data_dir_and_note(explicit).0
}

/// [`data_dir`], and a note to show when it is an older version's `./data`.
pub fn data_dir_and_note(explicit: Option<&Path>) -> (PathBuf, Option<String>) {
    let legacy = Path::new("data");
    let has_assets = ASSET_FOLDERS.iter().any(|a| legacy.join(a).is_dir());
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    resolve_data_dir(explicit, env("STABILIZE_DATA"), has_assets, env("XDG_DATA_HOME"), env("HOME"))
}

/// The rule of [`data_dir`] on given inputs: `--data-dir`, `$STABILIZE_DATA`, whether `./data`
/// holds assets, `$XDG_DATA_HOME`, `$HOME`.
pub fn resolve_data_dir(
    explicit: Option<&Path>,
    env: Option<PathBuf>,
    legacy_has_assets: bool,
    xdg_data_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> (PathBuf, Option<String>) {
    if let Some(p) = explicit {
        return (p.to_path_buf(), None);
    }
    if let Some(p) = env {
        return (p, None);
    }
    let standard = xdg_data_home
        .filter(|d| d.is_absolute())
        .map(|d| d.join("stabilize"))
        .or_else(|| home.map(|h| h.join(".local/share/stabilize")));
    match standard {
        Some(std_dir) if legacy_has_assets => (
            PathBuf::from("data"),
            Some(format!(
                "note: using ./data, where an older stabilize kept its assets; move it to {} (or set STABILIZE_DATA) to use it from any folder",
                std_dir.display()
            )),
        ),
        Some(std_dir) => (std_dir, None),
        None => (PathBuf::from("data"), None),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_dir_follows_the_flag_the_variable_an_old_data_folder_then_xdg() {
        let p = |s: &str| Some(PathBuf::from(s));
        let flag = Some(Path::new("/flag"));
        assert_eq!(resolve_data_dir(flag, p("/env"), true, p("/xdg"), p("/home/u")).0, PathBuf::from("/flag"));
        assert_eq!(resolve_data_dir(None, p("/env"), true, p("/xdg"), p("/home/u")), (PathBuf::from("/env"), None));
        let (d, note) = resolve_data_dir(None, None, true, p("/xdg"), p("/home/u"));
        assert_eq!(d, PathBuf::from("data"));
        assert!(note.unwrap().contains("/xdg/stabilize"));
        assert_eq!(
            resolve_data_dir(None, None, false, p("/xdg"), p("/home/u")),
            (PathBuf::from("/xdg/stabilize"), None)
        );
        // A relative XDG_DATA_HOME is invalid by the spec and ignored.
        assert_eq!(
            resolve_data_dir(None, None, false, p("rel"), p("/home/u")).0,
            PathBuf::from("/home/u/.local/share/stabilize")
        );
        assert_eq!(resolve_data_dir(None, None, false, None, None).0, PathBuf::from("data"));
    }
}
