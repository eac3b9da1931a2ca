//! A persistent approximate-nearest-neighbour index of embedding vectors (HNSW, by the `usearch`
//! crate), with exact search as the fallback and as the reference.
//!
//! Distances are Euclidean (L2, the `D` of the embedding model), not squared. Keys are `u64`; the
//! caller keeps what a key means (for `stabilize index` the file it came from) in a JSON
//! *manifest* saved in the same file.
//!
//! File layout (little-endian), written atomically (temporary file, fsync, rename):
//!
//! | bytes | content |
//! |---|---|
//! | 0..8 | magic `STBLIDX1` |
//! | 8..16 | `u64` length `m` of the header JSON |
//! | 16..24 | `u64` length `p` of the usearch payload |
//! | 24..28 | `u32` CRC-32 of the header JSON |
//! | 28..32 | `u32` CRC-32 of the payload |
//! | 32..32+m | header JSON: `{"config": IndexConfig, "manifest": …}` |
//! | padding to a multiple of 4096 | zeros |
//! | payload | usearch's own serialization |
//!
//! [`VectorIndex::open`] memory-maps the file and checks the magic, both lengths and both
//! checksums before usearch sees a byte, so a truncated or damaged file is a clear error, never a
//! crash; a read-only open then serves queries straight from the map (no copy).

use std::path::Path;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::{Error, IoContext, Result};

const MAGIC: &[u8; 8] = b"STBLIDX1";
const PAYLOAD_ALIGN: usize = 4096;

/// How vectors are stored inside the index (the exact reference always uses the caller's `f32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantization {
    F32,
    F16,
    I8,
}

/// The index's parameters: data that `init`s an empty [`VectorIndex`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexConfig {
    /// Vector dimension.
    pub dim: usize,
    /// HNSW neighbours per node (M).
    pub connectivity: usize,
    /// Candidate list size while inserting (efConstruction).
    pub expansion_add: usize,
    /// Candidate list size while searching (ef); raise it for recall, lower it for speed.
    pub expansion_search: usize,
    /// Storage of the vectors.
    pub quantization: Quantization,
}

impl IndexConfig {
    /// Defaults chosen by the scale benchmark (`stabilize index bench`, README): M 16,
    /// efConstruction 64, ef 128, f16 storage (1M×128 built in 177 s on 2 cores, recall@10 0.98;
    /// f16 halves the memory at no recall cost there, i8 loses recall).
    pub fn new(dim: usize) -> Self {
        IndexConfig { dim, connectivity: 16, expansion_add: 64, expansion_search: 128, quantization: Quantization::F16 }
    }

    /// An empty index.
    pub fn init(&self) -> Result<VectorIndex> {
        if self.dim == 0 || self.connectivity < 2 || self.expansion_add == 0 || self.expansion_search == 0 {
            return Err(Error::Invalid(format!("invalid index config {self:?}")));
        }
        let options = usearch::IndexOptions {
            dimensions: self.dim,
            metric: usearch::MetricKind::L2sq,
            quantization: match self.quantization {
                Quantization::F32 => usearch::ScalarKind::F32,
                Quantization::F16 => usearch::ScalarKind::F16,
                Quantization::I8 => usearch::ScalarKind::I8,
            },
            connectivity: self.connectivity,
            expansion_add: self.expansion_add,
            expansion_search: self.expansion_search,
            multi: false,
        };
        let inner = usearch::Index::new(&options).map_err(|e| Error::Invalid(format!("usearch: {e}")))?;
        Ok(VectorIndex { inner, config: self.clone(), _map: None })
    }
}

/// One search result: a key and its Euclidean distance to the query.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Neighbor {
    pub key: u64,
    pub distance: f32,
}

/// An HNSW index over `dim`-dimensional `f32` vectors. Thread-safe: `add` and `search` take
/// `&self`.
pub struct VectorIndex {
    // Field order matters: `inner` may point into `_map` (a read-only open), so it drops first.
    inner: usearch::Index,
    config: IndexConfig,
    _map: Option<memmap2::Mmap>,
}

#[derive(Serialize, Deserialize)]
struct Header<M> {
    config: IndexConfig,
    manifest: M,
}

fn usearch_err<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> Error + '_ {
    move |e| Error::Invalid(format!("{what}: {e}"))
}

impl VectorIndex {
    pub fn config(&self) -> &IndexConfig {
        &self.config
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.inner.size()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the index holds in memory (graph and vectors), as usearch reports it.
    pub fn memory_usage(&self) -> usize {
        self.inner.memory_usage()
    }

    /// Changes the search candidate list size (ef) of this open index.
    pub fn set_expansion_search(&mut self, ef: usize) {
        self.inner.change_expansion_search(ef.max(1));
        self.config.expansion_search = ef.max(1);
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: u64) -> bool {
        self.inner.contains(key)
    }

    fn check_dim(&self, v: &[f32]) -> Result<()> {
        if v.len() != self.config.dim {
            return Err(Error::Invalid(format!(
                "vector of length {} for an index of dimension {}",
                v.len(),
                self.config.dim
            )));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(Error::Invalid("vector with NaN or infinite values".into()));
        }
        Ok(())
    }

    /// Adds `vectors` (`keys.len() × dim`, row-major) under `keys`, with `threads` workers.
    /// A key already present is an error (remove it first).
    pub fn add_batch(&self, keys: &[u64], vectors: &[f32], threads: usize) -> Result<()> {
        let dim = self.config.dim;
        if vectors.len() != keys.len() * dim {
            return Err(Error::Invalid(format!("{} keys but {} values (dimension {dim})", keys.len(), vectors.len())));
        }
        for k in keys {
            if self.inner.contains(*k) {
                return Err(Error::Invalid(format!("key {k} is already in the index")));
            }
        }
        for row in vectors.chunks(dim) {
            self.check_dim(row)?;
        }
        let threads = threads.max(1);
        self.inner
            .reserve_capacity_and_threads(self.len() + keys.len(), threads)
            .map_err(usearch_err("reserving index capacity"))?;
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failed: std::sync::Mutex<Option<Error>> = std::sync::Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    loop {
                        // Small blocks keep the workers balanced without contention on `next`.
                        let start = next.fetch_add(256, std::sync::atomic::Ordering::Relaxed);
                        if start >= keys.len() {
                            break;
                        }
                        for i in start..(start + 256).min(keys.len()) {
                            if let Err(e) = self.inner.add(keys[i], &vectors[i * dim..(i + 1) * dim]) {
                                *failed.lock().expect("no panics while held") = Some(usearch_err("adding")(e));
                                return;
                            }
                        }
                    }
                });
            }
        });
        match failed.into_inner().expect("no panics while held") {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Removes `key` (no error if absent).
    pub fn remove(&self, key: u64) -> Result<()> {
        self.inner.remove(key).map(|_| ()).map_err(usearch_err("removing"))
    }

    fn neighbors(m: usearch::ffi::Matches) -> Vec<Neighbor> {
        m.keys.into_iter().zip(m.distances).map(|(key, d)| Neighbor { key, distance: d.max(0.0).sqrt() }).collect()
    }

    /// The approximate `k` nearest neighbours of `query`, nearest first.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Neighbor>> {
        self.check_dim(query)?;
        Ok(Self::neighbors(self.inner.search(query, k).map_err(usearch_err("searching"))?))
    }

    /// The exact `k` nearest neighbours (brute force over every stored vector).
    pub fn exact_search(&self, query: &[f32], k: usize) -> Result<Vec<Neighbor>> {
        self.check_dim(query)?;
        Ok(Self::neighbors(self.inner.exact_search(query, k).map_err(usearch_err("searching"))?))
    }

    /// The stored vector of `key` (dequantized), if present.
    pub fn get(&self, key: u64) -> Result<Option<Vec<f32>>> {
        let mut v = vec![0f32; self.config.dim];
        let n = self.inner.get(key, &mut v).map_err(usearch_err("reading a vector"))?;
        Ok((n > 0).then_some(v))
    }

    /// Writes the index and `manifest` to `path` atomically.
    pub fn save<M: Serialize>(&self, path: &Path, manifest: &M) -> Result<()> {
        let header = serde_json::to_vec(&Header { config: self.config.clone(), manifest })
            .map_err(|e| Error::Invalid(format!("index manifest: {e}")))?;
        let mut payload = vec![0u8; self.inner.serialized_length()];
        self.inner.save_to_buffer(&mut payload).map_err(usearch_err("serializing the index"))?;
        let head_len = 32 + header.len();
        let pad = head_len.next_multiple_of(PAYLOAD_ALIGN) - head_len;
        crate::fsutil::write_atomic_with(path, |f| {
            use std::io::Write;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
            w.write_all(MAGIC)?;
            w.write_all(&(header.len() as u64).to_le_bytes())?;
            w.write_all(&(payload.len() as u64).to_le_bytes())?;
            w.write_all(&crc32fast::hash(&header).to_le_bytes())?;
            w.write_all(&crc32fast::hash(&payload).to_le_bytes())?;
            w.write_all(&header)?;
            w.write_all(&vec![0u8; pad])?;
            w.write_all(&payload)?;
            w.flush()
        })
    }

    /// Opens an index file. With `writable = false` the file is memory-mapped and queried in
    /// place (fast to open; `add`/`remove` then fail); with `true` it is copied into memory.
    pub fn open<M: DeserializeOwned>(path: &Path, writable: bool) -> Result<(VectorIndex, M)> {
        let bad = |reason: String| Error::Invalid(format!("{}: not a valid stabilize index: {reason}", path.display()));
        let file = std::fs::File::open(path).with_path(path)?;
        // SAFETY: the map is read-only and private to this process; the index file is replaced
        // only by atomic rename (a new inode), never modified in place by stabilize.
        let map = unsafe { memmap2::Mmap::map(&file) }.with_path(path)?;
        if map.len() < 32 || &map[..8] != MAGIC {
            return Err(bad("wrong magic (not written by `stabilize index build`)".into()));
        }
        let u64_at = |o: usize| u64::from_le_bytes(map[o..o + 8].try_into().expect("8 bytes"));
        let u32_at = |o: usize| u32::from_le_bytes(map[o..o + 4].try_into().expect("4 bytes"));
        let (m, p) = (u64_at(8), u64_at(16));
        let head_end = 32u64.checked_add(m).ok_or_else(|| bad("header length overflows".into()))?;
        let offset = head_end.next_multiple_of(PAYLOAD_ALIGN as u64);
        if offset.checked_add(p) != Some(map.len() as u64) {
            return Err(bad(format!(
                "file is {} bytes, header says {} (truncated or appended to)",
                map.len(),
                offset.saturating_add(p)
            )));
        }
        let (head_end, offset) = (head_end as usize, offset as usize);
        let header_bytes = &map[32..head_end];
        let payload = &map[offset..];
        if crc32fast::hash(header_bytes) != u32_at(24) {
            return Err(bad("header checksum mismatch (damaged file)".into()));
        }
        if crc32fast::hash(payload) != u32_at(28) {
            return Err(bad("payload checksum mismatch (damaged file)".into()));
        }
        let header: Header<M> = serde_json::from_slice(header_bytes).map_err(|e| bad(format!("header JSON: {e}")))?;
        let index = header.config.init()?;
        let meta = usearch::Index::metadata_from_buffer(payload).map_err(|e| bad(format!("payload: {e}")))?;
        if meta.dimensions as usize != header.config.dim {
            return Err(bad(format!("payload dimension {} ≠ header {}", meta.dimensions, header.config.dim)));
        }
        if writable {
            index.inner.load_from_buffer(payload).map_err(|e| bad(format!("payload: {e}")))?;
            Ok((index, header.manifest))
        } else {
            // SAFETY: `payload` lies in `map`, which the returned index owns and drops after
            // `inner` (field order), and nothing writes to it.
            unsafe { index.inner.view_from_buffer(payload) }.map_err(|e| bad(format!("payload: {e}")))?;
            let mut index = index;
            index._map = Some(map);
            Ok((index, header.manifest))
        }
    }
}

/// What a `stabilize index` file says about its vectors, beside them (key k is `files[k]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IndexManifest {
    /// The embedding run that made the vectors (absolute path) and its weights' sha256.
    pub model_dir: std::path::PathBuf,
    pub weights_sha256: String,
    /// The model's calibrated threshold at precision 0.99, when it had been evaluated.
    pub threshold: Option<f64>,
    /// What was done to each file before embedding (the burn layer's `PIPELINE`); empty in
    /// indexes built before borders were cut off.
    #[serde(default)]
    pub pipeline: String,
    /// Key k is `files[k]`; `None` where a file was replaced.
    pub files: Vec<Option<IndexedFile>>,
}

/// One indexed file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IndexedFile {
    /// As [`crate::fsutil::path_text`] writes it.
    pub path: String,
    pub bytes: u64,
    pub pixels: u64,
    pub mtime_ns: u128,
    /// Its pHash (hex of the 8 bytes) at the model's input size, as `dupes` fuses it; absent in
    /// indexes built before it was stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phash: Option<String>,
}

/// Whether the file at `path` starts like an index file (its magic), without reading the rest.
pub fn is_index_file(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == MAGIC
}

/// Exact k nearest neighbours of each query among `data` (`n × dim`, row-major), by brute force
/// in `f32`, parallel over queries: the reference for recall. Ties go to the lower index.
pub fn exact_knn(data: &[f32], dim: usize, queries: &[f32], k: usize) -> Vec<Vec<Neighbor>> {
    use rayon::prelude::*;
    queries
        .par_chunks(dim)
        .map(|q| {
            // A bounded max-heap of (distance², index).
            let mut heap: std::collections::BinaryHeap<(OrdF32, usize)> = Default::default();
            for (i, row) in data.chunks_exact(dim).enumerate() {
                let d: f32 = row.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum();
                if heap.len() < k {
                    heap.push((OrdF32(d), i));
                } else if heap.peek().is_some_and(|top| (OrdF32(d), i) < *top) {
                    heap.pop();
                    heap.push((OrdF32(d), i));
                }
            }
            let mut v: Vec<(OrdF32, usize)> = heap.into_vec();
            v.sort();
            v.into_iter().map(|(d, i)| Neighbor { key: i as u64, distance: d.0.sqrt() }).collect()
        })
        .collect()
}

#[derive(Clone, Copy)]
struct OrdF32(f32);
impl PartialEq for OrdF32 {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for OrdF32 {}
impl PartialOrd for OrdF32 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF32 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Mean recall@k of `found` against `truth` (the share of each true top-k that was found).
pub fn recall_at_k(found: &[Vec<Neighbor>], truth: &[Vec<Neighbor>], k: usize) -> f64 {
    assert_eq!(found.len(), truth.len());
    if truth.is_empty() {
        return 1.0;
    }
    let total: f64 = found
        .iter()
        .zip(truth)
        .map(|(f, t)| {
            let t: std::collections::HashSet<u64> = t.iter().take(k).map(|n| n.key).collect();
            if t.is_empty() {
                return 1.0;
            }
            f.iter().take(k).filter(|n| t.contains(&n.key)).count() as f64 / t.len() as f64
        })
        .sum();
    total / truth.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random_unit(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut v: Vec<f32> = (0..n * dim).map(|_| rng.random::<f32>() - 0.5).collect();
        for row in v.chunks_mut(dim) {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            row.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }

    #[test]
    fn exact_knn_known_answer() {
        // Points on a line in 2-D: 0, 1, 3, 6; query 2.4 → 3 (0.6), 1 (1.4), 0 (2.4).
        let data = [0.0, 0.0, 1.0, 0.0, 3.0, 0.0, 6.0, 0.0];
        let r = exact_knn(&data, 2, &[2.4, 0.0], 3);
        let keys: Vec<u64> = r[0].iter().map(|n| n.key).collect();
        assert_eq!(keys, vec![2, 1, 0]);
        assert!((r[0][0].distance - 0.6).abs() < 1e-6);
        assert!((r[0][2].distance - 2.4).abs() < 1e-6);
        assert_eq!(recall_at_k(&r, &r, 3), 1.0);
        let half = vec![vec![r[0][0], Neighbor { key: 9, distance: 0.0 }]];
        assert_eq!(recall_at_k(&half, &[r[0][..2].to_vec()], 2), 0.5);
    }

    #[test]
    fn ann_matches_exact_and_survives_save_and_open() {
        let (n, dim) = (3000, 32);
        let data = random_unit(n, dim, 1);
        let keys: Vec<u64> = (0..n as u64).collect();
        let index = IndexConfig { quantization: Quantization::F32, ..IndexConfig::new(dim) }.init().unwrap();
        index.add_batch(&keys, &data, 2).unwrap();
        assert_eq!(index.len(), n);
        let queries = random_unit(50, dim, 2);
        let truth = exact_knn(&data, dim, &queries, 10);
        let found: Vec<_> = queries.chunks(dim).map(|q| index.search(q, 10).unwrap()).collect();
        let recall = recall_at_k(&found, &truth, 10);
        assert!(recall >= 0.95, "recall@10 {recall}");
        // usearch's own exact search agrees with ours, distances included.
        let ex = index.exact_search(&queries[..dim], 10).unwrap();
        assert_eq!(ex.iter().map(|n| n.key).collect::<Vec<_>>(), truth[0].iter().map(|n| n.key).collect::<Vec<_>>());
        assert!((ex[0].distance - truth[0][0].distance).abs() < 1e-5);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.idx");
        index.save(&path, &vec!["a".to_string(), "b".into()]).unwrap();
        for writable in [false, true] {
            let (back, manifest): (VectorIndex, Vec<String>) = VectorIndex::open(&path, writable).unwrap();
            assert_eq!(manifest, vec!["a", "b"]);
            assert_eq!(back.len(), n);
            assert_eq!(back.search(&queries[..dim], 10).unwrap(), found[0]);
            assert_eq!(back.get(7).unwrap().unwrap(), data[7 * dim..8 * dim].to_vec());
        }
        // A read-write open can grow; a key twice is refused.
        let (rw, _): (VectorIndex, Vec<String>) = VectorIndex::open(&path, true).unwrap();
        assert!(rw.add_batch(&[5], &data[..dim], 1).unwrap_err().to_string().contains("already"));
        rw.add_batch(&[n as u64], &queries[..dim], 1).unwrap();
        assert_eq!(rw.search(&queries[..dim], 1).unwrap()[0].key, n as u64);
        rw.remove(n as u64).unwrap();
        assert!(!rw.contains(n as u64));
        // f16 storage (the default): vectors come back within half precision, same neighbours.
        let half = IndexConfig::new(dim).init().unwrap();
        half.add_batch(&keys, &data, 2).unwrap();
        let v = half.get(7).unwrap().unwrap();
        assert!(v.iter().zip(&data[7 * dim..8 * dim]).all(|(a, b)| (a - b).abs() < 1e-3));
        let found_half: Vec<_> = queries.chunks(dim).map(|q| half.search(q, 10).unwrap()).collect();
        assert!(recall_at_k(&found_half, &truth, 10) >= 0.95);
    }

    #[test]
    fn damaged_files_are_errors_not_crashes() {
        let dim = 8;
        let data = random_unit(200, dim, 3);
        let index = IndexConfig::new(dim).init().unwrap();
        index.add_batch(&(0..200).collect::<Vec<u64>>(), &data, 1).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.idx");
        index.save(&path, &()).unwrap();
        let good = std::fs::read(&path).unwrap();
        let open = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            VectorIndex::open::<()>(&path, false).map(|_| ()).unwrap_err().to_string()
        };
        assert!(open(&[]).contains("wrong magic"));
        assert!(open(b"garbage that is long enough to hold a header").contains("wrong magic"));
        assert!(open(&good[..good.len() - 1]).contains("truncated"));
        let mut flipped = good.clone();
        let last = flipped.len() - 10;
        flipped[last] ^= 1;
        assert!(open(&flipped).contains("payload checksum"));
        let mut flipped = good.clone();
        flipped[40] ^= 1;
        assert!(open(&flipped).contains("header checksum"));
        let mut huge = good.clone();
        huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(open(&huge).contains("overflows"));
        // Wrong vectors are refused before usearch sees them.
        assert!(index.search(&[0.0; 3], 1).unwrap_err().to_string().contains("dimension"));
        assert!(index.add_batch(&[999], &[f32::NAN; 8], 1).unwrap_err().to_string().contains("NaN"));
    }
}
