//! The embedding cache of a model: one file per model (keyed by its weights' sha256), entries
//! keyed by path and valid while the file's size and modification time match. Shared by `dupes`
//! and `index`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One cached embedding.
#[derive(Clone, Serialize, Deserialize)]
pub struct CacheEntry {
    pub size: u64,
    pub mtime_ns: u128,
    pub pixels: u64,
    pub vector: Vec<f32>,
    /// The file's perceptual hash ([`crate::image::hash::PerceptualHash::to_bytes`]) when the
    /// model is fused with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<Vec<u8>>,
}

/// The embedding cache of a model, keyed by path; one file per key (the caller's: the weights'
/// sha256, the preprocessing and the fused hash, `Embedder::cache_key` in the burn layer)
/// under $STABILIZE_CACHE_DIR, else $XDG_CACHE_HOME/stabilize, else ~/.cache/stabilize.
pub struct Cache {
    path: PathBuf,
    old: HashMap<String, CacheEntry>,
    new: HashMap<String, CacheEntry>,
}

impl Cache {
    pub fn open(key: &str) -> Cache {
        let base = std::env::var_os("STABILIZE_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("stabilize")))
            .or_else(|| std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/stabilize")))
            .unwrap_or_else(|| std::env::temp_dir().join("stabilize-cache"));
        let path = base.join(format!("embeddings-{}.json", &key[..16]));
        // An unreadable or damaged cache is only a slower run.
        let old = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        Cache { path, old, new: HashMap::new() }
    }

    /// The entry of `path` if its size and modification time still match.
    pub fn get(&self, path: &str, size: u64, mtime_ns: u128) -> Option<&CacheEntry> {
        self.old.get(path).filter(|c| c.size == size && c.mtime_ns == mtime_ns)
    }

    /// Records an entry used in this run (only these are saved).
    pub fn insert(&mut self, path: String, entry: CacheEntry) {
        self.new.insert(path, entry);
    }

    /// Writes the entries used in this run. Best effort: a cache that cannot be written only costs
    /// speed next time, so the error is returned for a warning, not raised.
    pub fn save(&self) -> std::result::Result<(), String> {
        if let Some(parent) = self.path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let bytes = serde_json::to_vec(&self.new).map_err(|e| e.to_string())?;
        crate::fsutil::write_atomic(&self.path, &bytes).map_err(|e| e.to_string())
    }
}

/// A file's size and modification time (ns since the epoch).
pub fn stat(p: &Path) -> std::io::Result<(u64, u128)> {
    let meta = std::fs::metadata(p)?;
    let mtime =
        meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    Ok((meta.len(), mtime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_a_save_and_go_stale_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: tests in this crate do not read the variable concurrently.
        unsafe { std::env::set_var("STABILIZE_CACHE_DIR", dir.path()) };
        let sha = "ab".repeat(32);
        let mut c = Cache::open(&sha);
        assert!(c.get("a.png", 10, 5).is_none());
        c.insert("a.png".into(), CacheEntry { size: 10, mtime_ns: 5, pixels: 4, vector: vec![0.5, 0.25], hash: None });
        c.save().unwrap();
        let c = Cache::open(&sha);
        assert_eq!(c.get("a.png", 10, 5).map(|e| e.vector.clone()), Some(vec![0.5, 0.25]));
        assert!(c.get("a.png", 11, 5).is_none() && c.get("a.png", 10, 6).is_none());
        assert!(dir.path().join(format!("embeddings-{}.json", &sha[..16])).is_file());
    }
}
