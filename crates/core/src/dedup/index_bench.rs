//! The index scale benchmark: build time, memory, query latency and recall@k against exact
//! search, on synthetic vectors (clearly labelled as such) or on the vectors of a real index.

use std::time::Instant;

use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::dedup::index::{IndexConfig, Neighbor, VectorIndex, exact_knn, recall_at_k};
use crate::error::{Error, Result};

/// Which synthetic vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synthetic {
    /// Uniform on the unit sphere: no structure at all, the hardest case for a graph index.
    Uniform,
    /// Unit vectors in groups, like embeddings of a photo collection: `n / 16` centres uniform on
    /// the sphere, each point its centre plus N(0, 0.35²/dim) per coordinate, renormalised.
    Clustered,
}

impl std::str::FromStr for Synthetic {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "uniform" => Ok(Synthetic::Uniform),
            "clustered" => Ok(Synthetic::Clustered),
            _ => Err(Error::Invalid(format!("unknown synthetic data '{s}' (uniform or clustered)"))),
        }
    }
}

fn normalize(v: &mut [f32], dim: usize) {
    for row in v.chunks_mut(dim) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|x| *x /= norm);
    }
}

/// `n` synthetic unit vectors of dimension `dim` (row-major), and `queries` more from the same
/// distribution (for `Clustered`: new points around existing centres, i.e. near-duplicate
/// look-ups). Deterministic in `seed`; generated in parallel blocks.
pub fn synthetic(kind: Synthetic, n: usize, queries: usize, dim: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    use rayon::prelude::*;
    let gauss = |count: usize, stream: u64| -> Vec<f32> {
        let block = 4096 * dim;
        let mut v = vec![0f32; count * dim];
        v.par_chunks_mut(block).enumerate().for_each(|(b, chunk)| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ (stream << 40) ^ b as u64);
            let normal = Normal::new(0f32, 1.0).expect("valid");
            chunk.iter_mut().for_each(|x| *x = normal.sample(&mut rng));
        });
        v
    };
    match kind {
        Synthetic::Uniform => {
            let (mut d, mut q) = (gauss(n, 1), gauss(queries, 2));
            normalize(&mut d, dim);
            normalize(&mut q, dim);
            (d, q)
        }
        Synthetic::Clustered => {
            let centres_n = (n / 16).max(1);
            let mut centres = gauss(centres_n, 3);
            normalize(&mut centres, dim);
            let spread = 0.35 / (dim as f32).sqrt();
            let place = |count: usize, stream: u64| {
                let mut v = gauss(count, stream);
                v.par_chunks_mut(dim).enumerate().for_each(|(i, row)| {
                    // Point i belongs to centre (i · a prime) mod centres_n: spread evenly.
                    let c = (i.wrapping_mul(2_654_435_761) ^ stream as usize) % centres_n;
                    let centre = &centres[c * dim..(c + 1) * dim];
                    row.iter_mut().zip(centre).for_each(|(x, m)| *x = m + spread * *x);
                });
                normalize(&mut v, dim);
                v
            };
            (place(n, 4), place(queries, 5))
        }
    }
}

/// What the benchmark measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScaleResult {
    /// "synthetic uniform", "synthetic clustered", or the real index's path.
    pub data: String,
    pub n: usize,
    pub dim: usize,
    pub threads: usize,
    pub config: IndexConfig,
    pub build_seconds: f64,
    /// usearch's own count of the index's bytes in memory.
    pub index_memory_bytes: usize,
    /// Peak resident memory of the process (VmHWM), when the OS reports it.
    pub peak_rss_bytes: Option<u64>,
    pub file_bytes: u64,
    pub save_seconds: f64,
    /// Time to open the saved file read-only (memory-mapped, checksums verified).
    pub open_seconds: f64,
    pub queries: usize,
    pub k: usize,
    /// Single-threaded query latency on the opened index, milliseconds.
    pub query_p50_ms: f64,
    pub query_p99_ms: f64,
    /// Single-threaded exact (brute-force) query latency, milliseconds, on the first queries.
    pub exact_query_p50_ms: f64,
    pub recall_at_k: f64,
    /// The same queries at other search sizes (ef) on the same index.
    pub by_ef: Vec<EfResult>,
}

/// Query latency and recall at one search size.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EfResult {
    pub ef: usize,
    pub query_p50_ms: f64,
    pub query_p99_ms: f64,
    pub recall_at_k: f64,
}

/// Peak resident set size from /proc/self/status (Linux), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

/// Builds an index of `data` (`n × dim`), saves it under `dir`, reopens it read-only and
/// measures queries (one at a time, single-threaded) and recall@k against [`exact_knn`].
/// `progress` is told each phase.
#[allow(clippy::too_many_arguments)]
pub fn run(
    label: &str,
    data: &[f32],
    queries: &[f32],
    config: &IndexConfig,
    other_ef: &[usize],
    k: usize,
    threads: usize,
    dir: &std::path::Path,
    progress: &dyn Fn(&str),
) -> Result<ScaleResult> {
    let dim = config.dim;
    let n = data.len() / dim;
    let nq = queries.len() / dim;
    progress(&format!("building: {n} vectors × {dim} on {threads} threads"));
    let t = Instant::now();
    let index = config.init()?;
    let keys: Vec<u64> = (0..n as u64).collect();
    index.add_batch(&keys, data, threads)?;
    let build_seconds = t.elapsed().as_secs_f64();
    let index_memory_bytes = index.memory_usage();
    progress("saving");
    let path = dir.join("bench.idx");
    let t = Instant::now();
    index.save(&path, &())?;
    let save_seconds = t.elapsed().as_secs_f64();
    drop(index);
    let file_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let t = Instant::now();
    let (mut index, ()) = VectorIndex::open(&path, false)?;
    let open_seconds = t.elapsed().as_secs_f64();
    progress("exact reference");
    let truth = exact_knn(data, dim, queries, k);
    let mut by_ef = Vec::new();
    for &ef in std::iter::once(&config.expansion_search).chain(other_ef) {
        progress(&format!("querying: {nq} queries at ef {ef}"));
        index.set_expansion_search(ef);
        let mut lat = Vec::with_capacity(nq);
        let mut found: Vec<Vec<Neighbor>> = Vec::with_capacity(nq);
        for q in queries.chunks(dim) {
            let t = Instant::now();
            found.push(index.search(q, k)?);
            lat.push(t.elapsed().as_secs_f64() * 1e3);
        }
        lat.sort_by(f64::total_cmp);
        by_ef.push(EfResult {
            ef,
            query_p50_ms: percentile(&lat, 0.5),
            query_p99_ms: percentile(&lat, 0.99),
            recall_at_k: recall_at_k(&found, &truth, k),
        });
    }
    let main = by_ef.remove(0);
    // One exact query at a time on one thread: the latency a fallback user would see.
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| Error::Invalid(format!("thread pool: {e}")))?;
    let mut exact_lat: Vec<f64> = queries
        .chunks(dim)
        .take(20)
        .map(|q| {
            let t = Instant::now();
            one_thread.install(|| exact_knn(data, dim, q, k));
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    exact_lat.sort_by(f64::total_cmp);
    let _ = std::fs::remove_file(&path);
    Ok(ScaleResult {
        data: label.to_string(),
        n,
        dim,
        threads,
        config: config.clone(),
        build_seconds,
        index_memory_bytes,
        peak_rss_bytes: peak_rss_bytes(),
        file_bytes,
        save_seconds,
        open_seconds,
        queries: nq,
        k,
        query_p50_ms: main.query_p50_ms,
        query_p99_ms: main.query_p99_ms,
        exact_query_p50_ms: percentile(&exact_lat, 0.5),
        recall_at_k: main.recall_at_k,
        by_ef,
    })
}

/// What the pair-search benchmark ([`pairs_run`]) measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PairsResult {
    /// "synthetic clustered" vectors, with SimHash hashes when fused.
    pub data: String,
    pub n: usize,
    pub dim: usize,
    /// Fused with 64-bit hashes (the signs of 64 fixed random projections of each vector, so near
    /// vectors have near hashes) by the rule `min(l2, 0.05 · bits)`, as `dupes` does by default.
    pub fused: bool,
    pub threshold: f64,
    pub k: usize,
    pub threads: usize,
    /// The indexed search over all `n`: seconds, pairs found, peak resident memory after it.
    pub indexed_seconds: f64,
    pub indexed_pairs: usize,
    pub peak_rss_bytes: Option<u64>,
    /// On the first `subset` items: exact pairs, the indexed search's pairs, both times, and the
    /// share of exact pairs the indexed search found (it finds no false pair: each is checked).
    pub subset: usize,
    pub subset_exact_pairs: usize,
    pub subset_indexed_pairs: usize,
    pub subset_exact_seconds: f64,
    pub subset_indexed_seconds: f64,
    pub subset_pair_recall: f64,
    /// Whether single linkage over the indexed pairs gives the same groups as over the exact ones.
    pub subset_same_clusters: bool,
}

/// Hashes that agree where vectors do: bit b is the sign of the projection of the vector on a
/// fixed random direction b (SimHash), so the Hamming distance tracks the angle between vectors.
pub fn simhash(data: &[f32], dim: usize, seed: u64) -> Vec<crate::image::hash::PerceptualHash> {
    use rayon::prelude::*;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5348_4153);
    let normal = Normal::new(0f32, 1.0).expect("valid");
    let dirs: Vec<f32> = (0..64 * dim).map(|_| normal.sample(&mut rng)).collect();
    data.par_chunks(dim)
        .map(|v| {
            let mut w = 0u64;
            for (b, d) in dirs.chunks(dim).enumerate() {
                if v.iter().zip(d).map(|(x, y)| x * y).sum::<f32>() > 0.0 {
                    w |= 1 << b;
                }
            }
            crate::image::hash::PerceptualHash::from_bytes(&w.to_le_bytes()).expect("8 bytes are a hash")
        })
        .collect()
}

/// The pair-search benchmark: `n` synthetic clustered unit vectors of dimension `dim` (fused with
/// SimHash hashes when `fused`), every pair under `threshold` found by the indexed search
/// ([`crate::dedup::ann::pairs_indexed`], `k` neighbours) with its time and peak memory, then on
/// the first `subset` items the same against exact search (every pair).
#[allow(clippy::too_many_arguments)]
pub fn pairs_run(
    n: usize,
    subset: usize,
    dim: usize,
    threshold: f64,
    k: usize,
    fused: bool,
    seed: u64,
    progress: &dyn Fn(&str),
) -> Result<PairsResult> {
    use crate::dedup::ann::pairs_indexed;
    use crate::dedup::clusters::{components, pairs_under};
    use crate::eval::embed::Descriptors;
    progress(&format!("generating {n} vectors × {dim}"));
    let (data, _) = synthetic(Synthetic::Clustered, n, 0, dim, seed);
    let describe = |data: Vec<f32>| {
        let hashes = fused.then(|| simhash(&data, dim, seed));
        let v = Descriptors::Vectors { dim, data };
        match hashes {
            Some(h) => Descriptors::fuse(v, h, crate::eval::fusion::FuseRule { l2_per_bit: 0.05, l2_cap: 2.0 }),
            None => v,
        }
    };
    let subset = subset.min(n);
    let small = describe(data[..subset * dim].to_vec());
    let all = describe(data);
    progress(&format!("indexed search over {n}"));
    let t = Instant::now();
    let pairs = pairs_indexed(&all, n, n, threshold, k)?;
    let indexed_seconds = t.elapsed().as_secs_f64();
    let peak = peak_rss_bytes();
    drop(all);
    progress(&format!("indexed and exact search over the first {subset}"));
    let t = Instant::now();
    let sub_indexed = pairs_indexed(&small, subset, subset, threshold, k)?;
    let subset_indexed_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let sub_exact = pairs_under(subset, threshold, &|i, j| small.distance(i, &small, j));
    let subset_exact_seconds = t.elapsed().as_secs_f64();
    Ok(PairsResult {
        data: format!("synthetic clustered{}", if fused { " + SimHash" } else { "" }),
        n,
        dim,
        fused,
        threshold,
        k,
        threads: rayon::current_num_threads(),
        indexed_seconds,
        indexed_pairs: pairs.len(),
        peak_rss_bytes: peak,
        subset,
        subset_exact_pairs: sub_exact.len(),
        subset_indexed_pairs: sub_indexed.len(),
        subset_exact_seconds,
        subset_indexed_seconds,
        subset_pair_recall: sub_indexed.len() as f64 / sub_exact.len().max(1) as f64,
        subset_same_clusters: components(subset, &sub_exact) == components(subset, &sub_indexed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_vectors_are_unit_deterministic_and_clustered_ones_have_close_neighbours() {
        let (a, qa) = synthetic(Synthetic::Clustered, 2000, 10, 16, 7);
        let (b, _) = synthetic(Synthetic::Clustered, 2000, 10, 16, 7);
        assert_eq!(a, b);
        assert_eq!(qa.len(), 160);
        for row in a.chunks(16) {
            assert!((row.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);
        }
        // A clustered query's nearest neighbour is much closer than a uniform one's.
        let (u, qu) = synthetic(Synthetic::Uniform, 2000, 10, 16, 7);
        let near = |d: &[f32], q: &[f32]| exact_knn(d, 16, q, 1).iter().map(|r| r[0].distance).sum::<f32>() / 10.0;
        assert!(near(&a, &qa) < 0.6 * near(&u, &qu), "{} vs {}", near(&a, &qa), near(&u, &qu));
    }

    #[test]
    fn pair_benchmark_finds_the_exact_groups_on_a_small_set() {
        let r = pairs_run(3000, 3000, 32, 0.45, 32, true, 2, &|_| {}).unwrap();
        // n = subset: two indexed searches of the same vectors. The graph is built by several
        // threads, so the two can differ by a rare pair (seen once, under load), never by more
        // than 1 % of the exact pairs.
        let gap = r.indexed_pairs.abs_diff(r.subset_indexed_pairs) as f64;
        assert!(gap <= 0.01 * r.subset_exact_pairs as f64, "{r:?}");
        assert!(r.subset_exact_pairs > 3000, "{r:?}");
        assert!(r.subset_pair_recall > 0.98 && r.subset_pair_recall <= 1.0, "{r:?}");
        assert!(r.subset_same_clusters, "{r:?}");
        // SimHash tracks the angle: a vector's hash is nearer its group's than a stranger's.
        let (d, _) = synthetic(Synthetic::Clustered, 64, 0, 32, 2);
        let h = simhash(&d, 32, 2);
        let near = exact_knn(&d, 32, &d[..32], 2)[0][1].key as usize;
        assert!(h[0].distance(&h[near]) < 16, "{}", h[0].distance(&h[near]));
    }

    #[test]
    fn small_benchmark_reports_sane_numbers() {
        let dim = 16;
        let (d, q) = synthetic(Synthetic::Clustered, 3000, 30, dim, 1);
        let dir = tempfile::tempdir().unwrap();
        let r = run("synthetic clustered", &d, &q, &IndexConfig::new(dim), &[16], 10, 2, dir.path(), &|_| {}).unwrap();
        assert_eq!((r.n, r.queries, r.k), (3000, 30, 10));
        assert!(r.recall_at_k > 0.9, "{r:?}");
        assert!(r.query_p50_ms <= r.query_p99_ms);
        assert!(r.file_bytes > (3000 * dim * 4) as u64);
        assert!(!dir.path().join("bench.idx").exists());
        assert_eq!(r.by_ef.len(), 1);
        assert_eq!(r.by_ef[0].ef, 16);
        assert!(r.by_ef[0].recall_at_k <= r.recall_at_k + 0.02, "{r:?}");
    }
}
