//! The default embedding model (`--model default`, and, fused with pHash, what `dupes` uses with no `--model` or
//! `--hash`): a run folder kept in the repository (`models/embed-default/`: its config, weights,
//! training metrics, its fusion rule with pHash and its evaluation, which holds the calibration `dupes` reads its threshold
//! from), compiled into the binary, and written once into `<data dir>/embed-default/` on first
//! use, so a new user needs no training and no extra download. How it was trained, with the
//! command and seed that reproduce it, is in `models/embed-default/README.md`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use stabilize_core::fsutil::{sha256_bytes, write_atomic};
use stabilize_core::run_files;

/// The run folder's files, as committed.
const FILES: [(&str, &[u8]); 5] = [
    (run_files::CONFIG, include_bytes!("../../../models/embed-default/config.json")),
    (run_files::METRICS, include_bytes!("../../../models/embed-default/metrics.json")),
    (run_files::FUSION, include_bytes!("../../../models/embed-default/fusion.json")),
    (run_files::EVAL, include_bytes!("../../../models/embed-default/eval.json")),
    // The weights last: a folder with model.bpk in place is complete.
    (run_files::MODEL, include_bytes!("../../../models/embed-default/model.bpk")),
];

/// sha256 of `models/embed-default/model.bpk` (also in its README); checked before every use.
pub const MODEL_SHA256: &str = "84448f38468ab0be00b6d306d3b3e1615a77e5ffd05b876c748138a62b32e7a1";

/// The folder under the data dir the default model is written to.
pub const DIR_NAME: &str = "embed-default";

/// The default model's run folder under `data_dir`, written there from the binary when a file is
/// missing or differs from the compiled one (an older release's calibration, a damaged copy).
/// The folder is the binary's: an `eval embed` made in it is replaced on the next use, so
/// evaluate a copy instead.
pub fn ensure(data_dir: &Path) -> Result<PathBuf> {
    let dir = data_dir.join(DIR_NAME);
    let stale: Vec<_> =
        FILES.iter().filter(|(name, bytes)| std::fs::read(dir.join(name)).ok().as_deref() != Some(*bytes)).collect();
    if stale.is_empty() {
        return Ok(dir);
    }
    if sha256_bytes(FILES[FILES.len() - 1].1) != MODEL_SHA256 {
        bail!("the default model compiled into this binary does not match its sha256 (a broken build)");
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // In FILES' order: the weights last, so a folder with model.bpk in place is complete.
    for (name, bytes) in stale {
        write_atomic(&dir.join(name), bytes)
            .with_context(|| format!("writing the default model to {}", dir.display()))?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stabilize_core::fsutil::sha256_file;

    #[test]
    fn the_compiled_weights_match_their_checksum_and_install_once() {
        assert_eq!(sha256_bytes(FILES[FILES.len() - 1].1), MODEL_SHA256);
        let data = tempfile::tempdir().unwrap();
        let dir = ensure(data.path()).unwrap();
        for (name, bytes) in FILES {
            assert_eq!(std::fs::read(dir.join(name)).unwrap(), bytes, "{name}");
        }
        // A damaged copy is replaced; an intact one is left as it is.
        std::fs::write(dir.join(run_files::MODEL), b"damaged").unwrap();
        ensure(data.path()).unwrap();
        assert_eq!(sha256_file(&dir.join(run_files::MODEL)).unwrap(), MODEL_SHA256);
        let before = std::fs::metadata(dir.join(run_files::MODEL)).unwrap().modified().unwrap();
        ensure(data.path()).unwrap();
        assert_eq!(std::fs::metadata(dir.join(run_files::MODEL)).unwrap().modified().unwrap(), before);
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(run_files::CONFIG)).unwrap()).unwrap();
        assert_eq!(config["l0"], "distil");
        // An older calibration is replaced by the compiled one.
        std::fs::write(dir.join(run_files::EVAL), b"{}").unwrap();
        ensure(data.path()).unwrap();
        assert_eq!(std::fs::read(dir.join(run_files::EVAL)).unwrap(), compiled(run_files::EVAL));
    }

    fn compiled(name: &str) -> &'static [u8] {
        FILES.iter().find(|f| f.0 == name).unwrap().1
    }

    /// The shipped calibration of the fused method was made with the shipped fusion rule and
    /// descriptor (a refit without a new `eval embed` would make `dupes` refuse the default).
    #[test]
    fn the_shipped_calibration_uses_the_shipped_fusion_rule() {
        let fit: stabilize_core::eval::fusion::FusionFit = serde_json::from_slice(compiled(run_files::FUSION)).unwrap();
        let eval: stabilize_core::EmbedEval = serde_json::from_slice(compiled(run_files::EVAL)).unwrap();
        assert_eq!(eval.fuse_rule, Some(fit.rule));
        // Described as it was fitted (mirror-averaged or not), with regions at the fitted penalty.
        assert_eq!(eval.mirror, fit.mirror);
        assert_eq!(eval.region_penalty, fit.regions.as_ref().map(|r| r.penalty));
        assert_eq!(eval.mirror_regions, fit.regions.as_ref().is_some_and(|r| r.mirrored));
        assert_eq!(fit.hash, "phash");
        assert!(eval.borders_stripped && fit.borders_stripped);
        // Fitted on the validation photos of a run of its recipe that kept them out of training
        // (the shipped model trained on every training photo), with the evaluation's distortions.
        assert!(fit.validation && !fit.fitted_on.is_empty() && fit.photos >= 2, "{:?}", fit.fitted_on);
        assert_eq!(fit.distortions, eval.distortions.iter().map(|d| d.spec.clone()).collect::<Vec<_>>());
    }
}
