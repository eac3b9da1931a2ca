//! Embedding shards: what `stabilize embed --out DIR` writes beside `embeddings.npy` so that the
//! vectors can be brought into an index elsewhere (`stabilize index build --from-npy`): the model
//! that made them ([`ShardModel`], `model.json`) and what is known of each row's file
//! ([`ShardFile`], `files.json`: size, pixels, modification time, pHash), with `paths.txt`
//! (row i = line i, as [`crate::fsutil::path_text`] writes paths). [`read_shard`] reads one and
//! checks that its parts agree.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The model file of a shard.
pub const SHARD_MODEL: &str = "model.json";
/// The per-row file of a shard.
pub const SHARD_FILES: &str = "files.json";

/// The model that made a shard's vectors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardModel {
    /// How it was named (`default`, a run folder, `pretrained`).
    pub model: String,
    pub weights_sha256: String,
    /// What was done to each file before embedding (the burn layer's `PIPELINE`).
    pub pipeline: String,
    pub dim: usize,
}

/// What is known of one row's file when it was embedded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardFile {
    pub bytes: u64,
    pub pixels: u64,
    pub mtime_ns: u128,
    /// pHash (hex) at the model's input size, as `dupes` fuses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phash: Option<String>,
}

/// One shard, read and checked.
#[derive(Clone, Debug)]
pub struct Shard {
    pub npy: PathBuf,
    pub model: ShardModel,
    /// Row i's path, as written ([`crate::fsutil::path_text`]).
    pub paths: Vec<String>,
    pub files: Vec<ShardFile>,
    /// Row-major `[paths.len(), model.dim]`.
    pub data: Vec<f32>,
}

/// Reads the shard of `npy` (an `embeddings.npy`): its paths from `paths` (default: `paths.txt`
/// beside it), `model.json` and `files.json` beside it. A 2-D float32 array with the model's
/// width, as many paths and file entries as rows, finite values: anything else is a one-line error
/// naming the file.
pub fn read_shard(npy: &Path, paths: Option<&Path>) -> Result<Shard> {
    let dir = npy.parent().unwrap_or(Path::new("."));
    let bad = |p: &Path, why: String| Error::Invalid(format!("{}: {why}", p.display()));
    let read_json = |name: &str| -> Result<String> {
        let p = dir.join(name);
        std::fs::read_to_string(&p)
            .map_err(|e| bad(&p, format!("{e} (written by `stabilize embed` beside embeddings.npy)")))
    };
    let model: ShardModel =
        serde_json::from_str(&read_json(SHARD_MODEL)?).map_err(|e| bad(&dir.join(SHARD_MODEL), e.to_string()))?;
    let files: Vec<ShardFile> =
        serde_json::from_str(&read_json(SHARD_FILES)?).map_err(|e| bad(&dir.join(SHARD_FILES), e.to_string()))?;
    let (shape, data) = crate::data::npy::read_npy_f32(npy)?;
    let [rows, dim] = shape[..] else {
        return Err(bad(npy, format!("shape {shape:?}, expected [rows, dim]")));
    };
    if dim != model.dim {
        return Err(bad(npy, format!("vectors of width {dim}, but its model.json says {}", model.dim)));
    }
    if data.iter().any(|v| !v.is_finite()) {
        return Err(bad(npy, "holds NaN or infinite values".into()));
    }
    let paths_file = paths.map(Path::to_path_buf).unwrap_or_else(|| dir.join("paths.txt"));
    let text = std::fs::read_to_string(&paths_file).map_err(|e| bad(&paths_file, e.to_string()))?;
    let paths: Vec<String> = text.lines().map(String::from).collect();
    if paths.len() != rows {
        return Err(bad(&paths_file, format!("{} paths for {rows} rows of {}", paths.len(), npy.display())));
    }
    if files.len() != rows {
        return Err(bad(&dir.join(SHARD_FILES), format!("{} entries for {rows} rows", files.len())));
    }
    if let Some(p) = paths.iter().find(|p| crate::fsutil::text_path(p).is_err()) {
        return Err(bad(&paths_file, format!("{p:?} is not a path as stabilize writes them")));
    }
    Ok(Shard { npy: npy.to_path_buf(), model, paths, files, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_shard(dir: &Path, rows: usize, dim: usize) {
        std::fs::create_dir_all(dir).unwrap();
        let data: Vec<f32> = (0..rows * dim).map(|i| i as f32 / 10.0).collect();
        crate::data::npy::write_npy(&dir.join("embeddings.npy"), &data, &[rows, dim]).unwrap();
        let paths: String = (0..rows).map(|i| format!("/photos/{i}.jpg\n")).collect();
        std::fs::write(dir.join("paths.txt"), paths).unwrap();
        let m = ShardModel { model: "default".into(), weights_sha256: "ab".repeat(32), pipeline: "p".into(), dim };
        std::fs::write(dir.join(SHARD_MODEL), serde_json::to_string(&m).unwrap()).unwrap();
        let f = vec![ShardFile { bytes: 1, pixels: 2, mtime_ns: 3, phash: None }; rows];
        std::fs::write(dir.join(SHARD_FILES), serde_json::to_string(&f).unwrap()).unwrap();
    }

    #[test]
    fn a_shard_reads_back_and_each_disagreement_is_named() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("s");
        write_shard(&d, 3, 4);
        let npy = d.join("embeddings.npy");
        let s = read_shard(&npy, None).unwrap();
        assert_eq!((s.paths.len(), s.data.len(), s.model.dim), (3, 12, 4));
        assert_eq!(s.paths[2], "/photos/2.jpg");
        // Paths of the wrong length.
        std::fs::write(d.join("paths.txt"), "/a.jpg\n").unwrap();
        assert!(read_shard(&npy, None).unwrap_err().to_string().contains("1 paths for 3 rows"));
        write_shard(&d, 3, 4);
        // A model.json of another width.
        let m = std::fs::read_to_string(d.join(SHARD_MODEL)).unwrap().replace("\"dim\":4", "\"dim\":5");
        std::fs::write(d.join(SHARD_MODEL), m).unwrap();
        assert!(read_shard(&npy, None).unwrap_err().to_string().contains("width 4"));
        write_shard(&d, 3, 4);
        std::fs::remove_file(d.join(SHARD_FILES)).unwrap();
        assert!(read_shard(&npy, None).unwrap_err().to_string().contains("files.json"));
    }
}
