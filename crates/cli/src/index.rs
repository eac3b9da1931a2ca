//! `stabilize index build|add|query|bench`: a persistent nearest-neighbour index of a collection's
//! embeddings (`stabilize_core::dedup::index`, HNSW by usearch), and its scale benchmark.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde::Serialize;
use stabilize_core::dedup::index::{IndexConfig, IndexManifest, IndexedFile, Quantization, VectorIndex};
use stabilize_core::dedup::index_bench::{self, Synthetic};
use stabilize_core::image::load;

use stabilize_burn::collection::{Embedder, ModelSpec, embed_files};
use stabilize_core::dedup::cache::{Cache, stat};

use crate::args::{RunArgs, bar, model_spec, set_jobs};

#[derive(Subcommand)]
pub enum IndexCommand {
    /// Embed every image under DIRs with a trained model and write an index file.
    Build {
        /// Folders (searched recursively) or files.
        #[arg(required_unless_present = "from_npy", conflicts_with = "from_npy")]
        paths: Vec<PathBuf>,
        /// Build from the vectors `stabilize embed` wrote instead of embedding files (repeatable:
        /// shards embedded apart, on other machines): each `embeddings.npy` with `paths.txt`,
        /// `model.json` and `files.json` beside it. Every shard must come from --model's weights,
        /// have its width and as many paths as rows; a path in two shards is an error.
        #[arg(long, value_name = "NPY")]
        from_npy: Vec<PathBuf>,
        /// The paths file of each --from-npy, in order [default: paths.txt beside it].
        #[arg(long, value_name = "TXT", requires = "from_npy")]
        paths_file: Vec<PathBuf>,
        /// The embedding run folder (`train embed`), or `default` (the shipped stabilized model).
        #[arg(long, default_value = "default")]
        model: String,
        /// The index file to write (atomically).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        params: IndexParams,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Add files or folders to an index: new files are embedded, changed files (size or mtime)
    /// re-embedded, unchanged ones left alone. The file is replaced atomically.
    Add {
        index: PathBuf,
        #[arg(required_unless_present = "from_npy", conflicts_with = "from_npy")]
        paths: Vec<PathBuf>,
        /// Add the vectors of `stabilize embed` shards instead of embedding files (checked as
        /// `build --from-npy` checks them; a path the index holds is replaced).
        #[arg(long, value_name = "NPY")]
        from_npy: Vec<PathBuf>,
        /// The paths file of each --from-npy, in order [default: paths.txt beside it].
        #[arg(long, value_name = "TXT", requires = "from_npy")]
        paths_file: Vec<PathBuf>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// The K nearest indexed images of each query image, with distances; those under the model's
    /// calibrated threshold (precision 0.99) are marked as duplicates.
    Query {
        index: PathBuf,
        #[arg(required = true)]
        images: Vec<PathBuf>,
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// Exact (brute-force) search instead of the HNSW graph.
        #[arg(long)]
        exact: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Scale benchmark: build time, memory, query p50/p99 and recall@k against exact search, on
    /// synthetic unit vectors (labelled as such) or on the vectors of a real index (--from).
    Bench {
        /// Synthetic vectors: clustered (groups, like a photo collection) or uniform (the hardest).
        #[arg(long, default_value = "clustered", conflicts_with = "from")]
        synthetic: String,
        /// Use the vectors stored in this index file instead (queries: the indexed vectors).
        #[arg(long)]
        from: Option<PathBuf>,
        /// Number of vectors.
        #[arg(long, default_value_t = 1_000_000)]
        n: usize,
        #[arg(long, default_value_t = 128)]
        dim: usize,
        #[arg(long, default_value_t = 1000)]
        queries: usize,
        #[arg(long, default_value_t = 10)]
        k: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Build threads [default: all cores].
        #[arg(long)]
        threads: Option<usize>,
        #[command(flatten)]
        params: IndexParams,
        /// Also query the same index at these search sizes (comma-separated ef values).
        #[arg(long, value_delimiter = ',')]
        also_ef: Vec<usize>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The pair search of `dupes --search indexed` at scale, on synthetic clustered vectors: time,
    /// peak memory and pairs over N, then pair recall and clusters against exact search on a subset.
    BenchPairs {
        #[arg(long, default_value_t = 1_000_000)]
        n: usize,
        /// Items compared both ways (exact search is quadratic).
        #[arg(long, default_value_t = 100_000)]
        subset: usize,
        #[arg(long, default_value_t = 128)]
        dim: usize,
        /// L2 (fused) distance under which a pair is a duplicate.
        #[arg(long, default_value_t = 0.45)]
        threshold: f64,
        /// Graph neighbours asked per item.
        #[arg(long, default_value_t = stabilize_core::dedup::ann::DEFAULT_K)]
        k: usize,
        /// Vectors alone, without fused SimHash hashes.
        #[arg(long)]
        no_hash: bool,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// HNSW parameters.
#[derive(clap::Args)]
pub struct IndexParams {
    /// Neighbours per node (M).
    #[arg(long, default_value_t = 16)]
    m: usize,
    /// Candidates while inserting (efConstruction).
    #[arg(long, default_value_t = 64)]
    ef_construction: usize,
    /// Candidates while searching (ef).
    #[arg(long, default_value_t = 128)]
    ef: usize,
    /// Vector storage: f32, f16 or i8.
    #[arg(long, default_value = "f16")]
    quantization: String,
}

impl IndexParams {
    fn config(&self, dim: usize) -> Result<IndexConfig> {
        let quantization = match self.quantization.as_str() {
            "f32" => Quantization::F32,
            "f16" => Quantization::F16,
            "i8" => Quantization::I8,
            q => bail!("unknown --quantization '{q}' (f32, f16 or i8)"),
        };
        if self.m < 2 || self.ef_construction == 0 || self.ef == 0 {
            bail!("--m must be ≥ 2, --ef-construction and --ef ≥ 1");
        }
        Ok(IndexConfig {
            dim,
            connectivity: self.m,
            expansion_add: self.ef_construction,
            expansion_search: self.ef,
            quantization,
        })
    }
}

#[derive(clap::Args)]
pub struct CommonArgs {
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Worker threads [default: all cores].
    #[arg(long)]
    jobs: Option<usize>,
    #[command(flatten)]
    run: RunArgs,
}

fn absolute(paths: &[PathBuf]) -> Vec<PathBuf> {
    paths.iter().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())).collect()
}

pub fn run(cmd: IndexCommand) -> Result<()> {
    match cmd {
        IndexCommand::Build { paths: _, from_npy, paths_file, model, out, params, common } if !from_npy.is_empty() => {
            build_from_shards(&from_npy, &paths_file, &model, &out, &params, &common)
        }
        IndexCommand::Build { paths, model, out, params, common, .. } => build(&paths, &model, &out, &params, &common),
        IndexCommand::Add { index, from_npy, paths_file, common, .. } if !from_npy.is_empty() => {
            add_from_shards(&index, &from_npy, &paths_file, &common)
        }
        IndexCommand::Add { index, paths, common, .. } => add(&index, &paths, &common),
        IndexCommand::Query { index, images, k, exact, common } => query(&index, &images, k, exact, &common),
        IndexCommand::Bench { synthetic, from, n, dim, queries, k, seed, threads, params, also_ef, json } => {
            bench(&synthetic, from.as_deref(), n, dim, queries, k, seed, threads, &params, &also_ef, json)
        }
        IndexCommand::BenchPairs { n, subset, dim, threshold, k, no_hash, seed, json } => {
            if n < 2 || subset < 2 || dim == 0 || k == 0 || threshold.is_nan() || threshold <= 0.0 {
                bail!("--n and --subset must be ≥ 2, --dim and --k ≥ 1, --threshold > 0");
            }
            let r = index_bench::pairs_run(n, subset, dim, threshold, k, !no_hash, seed, &|m| eprintln!("{m}"))?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{} — {} × {}, threshold {}, k {}, {} threads\nindexed over {}: {} pairs in {:.1}s, peak RSS {}\nfirst {}: exact {} pairs in {:.1}s, indexed {} in {:.1}s, pair recall {:.4}, same clusters: {}",
                    r.data,
                    r.n,
                    r.dim,
                    r.threshold,
                    r.k,
                    r.threads,
                    r.n,
                    r.indexed_pairs,
                    r.indexed_seconds,
                    r.peak_rss_bytes.map_or("?".into(), stabilize_core::fsutil::human_bytes),
                    r.subset,
                    r.subset_exact_pairs,
                    r.subset_exact_seconds,
                    r.subset_indexed_pairs,
                    r.subset_indexed_seconds,
                    r.subset_pair_recall,
                    r.subset_same_clusters
                );
            }
            Ok(())
        }
    }
}

/// Embeds `paths` (absolute), adds them under fresh keys; returns (added, skipped).
fn embed_and_add(
    index: &VectorIndex,
    manifest: &mut IndexManifest,
    emb: &Embedder,
    files: &[PathBuf],
    quiet: bool,
) -> Result<(usize, Vec<load::Skipped>)> {
    let pb = bar(files.len(), "files", quiet);
    // With pHash, as `dupes` fuses it, so the index can serve as `dupes --against`'s library.
    let fused = Some(stabilize_core::HashKind::Phash);
    let mut cache = Cache::open(&emb.cache_key(fused, false));
    let (done, skipped, _) = embed_files(files, emb, fused, false, Some(&mut cache), &|| pb.inc(1));
    pb.finish_and_clear();
    if let Err(e) = cache.save() {
        eprintln!("warning: embedding cache not saved: {e}");
    }
    let first = manifest.files.len() as u64;
    let keys: Vec<u64> = (first..first + done.len() as u64).collect();
    let mut data = Vec::with_capacity(done.len() * emb.dim);
    for e in done {
        data.extend_from_slice(&e.vector);
        manifest.files.push(Some(IndexedFile {
            path: e.info.path,
            bytes: e.info.bytes,
            pixels: e.info.pixels,
            mtime_ns: e.mtime_ns,
            phash: e.hash.as_ref().map(|h| h.to_hex()),
        }));
    }
    let threads = rayon::current_num_threads();
    index.add_batch(&keys, &data, threads)?;
    Ok((keys.len(), skipped))
}

fn report_skipped(skipped: &[load::Skipped], json: bool) {
    if !json {
        for s in skipped {
            eprintln!("{s}");
        }
    }
}

fn build(paths: &[PathBuf], model: &str, out: &Path, params: &IndexParams, common: &CommonArgs) -> Result<()> {
    let started = Instant::now();
    set_jobs(common.jobs)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        stabilize_core::fsutil::ensure_writable_dir(dir)?;
    }
    let (emb, mut manifest) = new_index_model(model, common)?;
    let config = params.config(emb.dim)?;
    let index = config.init()?;
    let (files, mut skipped) = load::list_images(&absolute(paths));
    let (added, bad) = embed_and_add(&index, &mut manifest, &emb, &files, common.json)?;
    skipped.extend(bad);
    index.save(out, &manifest)?;
    let seconds = started.elapsed().as_secs_f64();
    report_skipped(&skipped, common.json);
    if common.json {
        let v = serde_json::json!({"index": out, "added": added, "skipped": skipped, "vectors": index.len(),
            "threshold": manifest.threshold, "seconds": seconds});
        println!("{}", serde_json::to_string(&v)?);
    } else {
        eprintln!(
            "indexed {added} images ({} skipped) in {seconds:.1}s → {}{}",
            skipped.len(),
            out.display(),
            manifest.threshold.map(|t| format!("; duplicate threshold {t:.4}")).unwrap_or_default()
        );
    }
    Ok(())
}

/// The model a new index is built with (a run folder or `default`; `index add` and `query`
/// reload it from the folder the manifest names), loaded, and the empty manifest naming it.
fn new_index_model(model: &str, common: &CommonArgs) -> Result<(Embedder, IndexManifest)> {
    let ModelSpec::Run(model) = model_spec(model, None, &common.run)? else {
        bail!("index build needs a trained model folder or 'default', not the pretrained features");
    };
    let emb = Embedder::load(&model, &common.run.device()?)?;
    let manifest = IndexManifest {
        model_dir: std::path::absolute(&model).unwrap_or_else(|_| model.clone()),
        weights_sha256: emb.weights_sha256.clone(),
        threshold: emb.calibrated_threshold(stabilize_burn::dupes::DEFAULT_PRECISION, None, false).ok(),
        pipeline: emb.pipeline().to_string(),
        files: Vec::new(),
    };
    Ok((emb, manifest))
}

/// `index build --from-npy`: every shard read and checked against the model and each other
/// before anything is written, then indexed as one.
fn build_from_shards(
    npys: &[PathBuf],
    paths_files: &[PathBuf],
    model: &str,
    out: &Path,
    params: &IndexParams,
    common: &CommonArgs,
) -> Result<()> {
    let started = Instant::now();
    set_jobs(common.jobs)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        stabilize_core::fsutil::ensure_writable_dir(dir)?;
    }
    let (emb, mut manifest) = new_index_model(model, common)?;
    let shards = checked_shards(npys, paths_files, &emb, &manifest)?;
    let index = params.config(emb.dim)?.init()?;
    let (added, _) = add_shards(&index, &mut manifest, shards)?;
    index.save(out, &manifest)?;
    let seconds = started.elapsed().as_secs_f64();
    if common.json {
        let v = serde_json::json!({"index": out, "added": added, "shards": npys.len(), "vectors": index.len(),
            "threshold": manifest.threshold, "seconds": seconds});
        println!("{}", serde_json::to_string(&v)?);
    } else {
        eprintln!("indexed {added} vectors from {} shards in {seconds:.1}s → {}", npys.len(), out.display());
    }
    Ok(())
}

/// Reads every shard of `npys` (with `paths_files`, one per shard or none) and checks it against
/// the model of `manifest` (`emb`: weights, width, pipeline) and the others (no path in two).
fn checked_shards(
    npys: &[PathBuf],
    paths_files: &[PathBuf],
    emb: &Embedder,
    manifest: &IndexManifest,
) -> Result<Vec<stabilize_core::dedup::shards::Shard>> {
    if !paths_files.is_empty() && paths_files.len() != npys.len() {
        bail!("{} --paths-file for {} --from-npy: give one per shard, or none", paths_files.len(), npys.len());
    }
    let mut shards = Vec::with_capacity(npys.len());
    let mut seen: std::collections::HashMap<String, PathBuf> = Default::default();
    for (k, npy) in npys.iter().enumerate() {
        let shard = stabilize_core::dedup::shards::read_shard(npy, paths_files.get(k).map(PathBuf::as_path))?;
        if shard.model.weights_sha256 != manifest.weights_sha256 {
            bail!(
                "{}: vectors of another model ({}, weights {}), not {} ({})",
                npy.display(),
                shard.model.model,
                &shard.model.weights_sha256[..12.min(shard.model.weights_sha256.len())],
                manifest.model_dir.display(),
                &manifest.weights_sha256[..12]
            );
        }
        if shard.model.dim != emb.dim {
            bail!("{}: width {}, the model makes {}", npy.display(), shard.model.dim, emb.dim);
        }
        if let Some(why) = emb.pipeline_mismatch(&shard.model.pipeline, "the vectors (`stabilize embed`)") {
            bail!("{}: {why}", npy.display());
        }
        for p in &shard.paths {
            if let Some(other) = seen.insert(p.clone(), npy.clone()) {
                bail!("{p} is in two shards: {} and {}", other.display(), npy.display());
            }
        }
        shards.push(shard);
    }
    Ok(shards)
}

/// Adds the rows of `shards` to `index` under fresh keys; a path the index already holds is
/// replaced. Returns (rows added, of them replacements).
fn add_shards(
    index: &VectorIndex,
    manifest: &mut IndexManifest,
    shards: Vec<stabilize_core::dedup::shards::Shard>,
) -> Result<(usize, usize)> {
    let known: std::collections::HashMap<String, usize> =
        manifest.files.iter().enumerate().filter_map(|(k, f)| f.as_ref().map(|f| (f.path.clone(), k))).collect();
    let first = manifest.files.len() as u64;
    let (mut data, mut replaced) = (Vec::new(), 0);
    for shard in shards {
        data.extend_from_slice(&shard.data);
        for (path, f) in shard.paths.into_iter().zip(shard.files) {
            if let Some(&k) = known.get(&path) {
                index.remove(k as u64)?;
                manifest.files[k] = None;
                replaced += 1;
            }
            let phash = f.phash;
            manifest.files.push(Some(IndexedFile {
                path,
                bytes: f.bytes,
                pixels: f.pixels,
                mtime_ns: f.mtime_ns,
                phash,
            }));
        }
    }
    let keys: Vec<u64> = (first..manifest.files.len() as u64).collect();
    index.add_batch(&keys, &data, rayon::current_num_threads())?;
    Ok((keys.len(), replaced))
}

/// Opens an index and the model that made it, checking that the weights are still the same.
fn open_with_model(path: &Path, writable: bool, run: &RunArgs) -> Result<(VectorIndex, IndexManifest, Embedder)> {
    let (index, manifest): (VectorIndex, IndexManifest) = VectorIndex::open(path, writable)?;
    let emb = Embedder::load(&manifest.model_dir, &run.device()?)
        .with_context(|| format!("loading the model that built {}", path.display()))?;
    if emb.weights_sha256 != manifest.weights_sha256 {
        bail!(
            "{}: the model at {} has changed since the index was built (weights sha256 {} ≠ {}); rebuild the index",
            path.display(),
            manifest.model_dir.display(),
            &emb.weights_sha256[..12],
            &manifest.weights_sha256[..12]
        );
    }
    if let Some(why) = emb.pipeline_mismatch(&manifest.pipeline, "the index") {
        bail!("{}: {why}", path.display());
    }
    Ok((index, manifest, emb))
}

/// `index add --from-npy`: the shards checked against the index's model, then added.
fn add_from_shards(path: &Path, npys: &[PathBuf], paths_files: &[PathBuf], common: &CommonArgs) -> Result<()> {
    let started = Instant::now();
    set_jobs(common.jobs)?;
    let (index, mut manifest, emb) = open_with_model(path, true, &common.run)?;
    let shards = checked_shards(npys, paths_files, &emb, &manifest)?;
    let (added, replaced) = add_shards(&index, &mut manifest, shards)?;
    index.save(path, &manifest)?;
    let seconds = started.elapsed().as_secs_f64();
    if common.json {
        let v = serde_json::json!({"index": path, "added": added, "replaced": replaced, "shards": npys.len(),
            "vectors": index.len(), "seconds": seconds});
        println!("{}", serde_json::to_string(&v)?);
    } else {
        eprintln!(
            "added {added} vectors ({replaced} of them replacing) from {} shards; {} vectors in {} ({seconds:.1}s)",
            npys.len(),
            index.len(),
            path.display()
        );
    }
    Ok(())
}

fn add(path: &Path, paths: &[PathBuf], common: &CommonArgs) -> Result<()> {
    let started = Instant::now();
    set_jobs(common.jobs)?;
    let (index, mut manifest, emb) = open_with_model(path, true, &common.run)?;
    let (files, mut skipped) = load::list_images(&absolute(paths));
    let mut known: std::collections::HashMap<String, u64> = Default::default();
    for (k, f) in manifest.files.iter().enumerate() {
        if let Some(f) = f {
            known.insert(f.path.clone(), k as u64);
        }
    }
    let (mut todo, mut unchanged, mut replaced) = (Vec::new(), 0usize, 0usize);
    for f in files {
        let key = stabilize_core::fsutil::path_text(&f);
        match known.get(&key) {
            Some(&k) => {
                let entry = manifest.files[k as usize].as_ref().expect("known keys are present");
                if stat(&f).ok() == Some((entry.bytes, entry.mtime_ns)) {
                    unchanged += 1;
                    continue;
                }
                index.remove(k)?;
                manifest.files[k as usize] = None;
                replaced += 1;
                todo.push(f);
            }
            None => todo.push(f),
        }
    }
    let (added, bad) = embed_and_add(&index, &mut manifest, &emb, &todo, common.json)?;
    skipped.extend(bad);
    index.save(path, &manifest)?;
    let seconds = started.elapsed().as_secs_f64();
    report_skipped(&skipped, common.json);
    if common.json {
        let v = serde_json::json!({"index": path, "added": added, "replaced": replaced, "unchanged": unchanged,
            "skipped": skipped, "vectors": index.len(), "seconds": seconds});
        println!("{}", serde_json::to_string(&v)?);
    } else {
        eprintln!(
            "added {added} images ({replaced} of them changed), {unchanged} unchanged, {} skipped; {} vectors in {} ({seconds:.1}s)",
            skipped.len(),
            index.len(),
            path.display()
        );
    }
    Ok(())
}

#[derive(Serialize)]
struct Hit {
    path: String,
    distance: f32,
    duplicate: bool,
}

fn query(path: &Path, images: &[PathBuf], k: usize, exact: bool, common: &CommonArgs) -> Result<()> {
    if k == 0 {
        bail!("--k must be ≥ 1");
    }
    set_jobs(common.jobs)?;
    let t = Instant::now();
    let (index, manifest, emb) = open_with_model(path, false, &common.run)?;
    let open_seconds = t.elapsed().as_secs_f64();
    let (files, mut skipped) = load::list_images(images);
    let (done, bad, _) = embed_files(&files, &emb, None, false, None, &|| {});
    skipped.extend(bad);
    let mut results = Vec::new();
    for e in &done {
        let t = Instant::now();
        let found = if exact { index.exact_search(&e.vector, k)? } else { index.search(&e.vector, k)? };
        let search_ms = t.elapsed().as_secs_f64() * 1e3;
        let hits: Vec<Hit> = found
            .iter()
            .filter_map(|n| {
                let f = manifest.files.get(n.key as usize)?.as_ref()?;
                Some(Hit {
                    path: f.path.clone(),
                    distance: n.distance,
                    duplicate: manifest.threshold.is_some_and(|th| f64::from(n.distance) <= th),
                })
            })
            .collect();
        results.push(serde_json::json!({"query": e.info.path, "neighbors": hits, "search_ms": search_ms}));
        if !common.json {
            println!("{}:", e.info.path);
            for h in &hits {
                println!("  {:.4} {}{}", h.distance, h.path, if h.duplicate { "  (duplicate)" } else { "" });
            }
        }
    }
    report_skipped(&skipped, common.json);
    if common.json {
        let v = serde_json::json!({"results": results, "skipped": skipped, "threshold": manifest.threshold,
            "open_seconds": open_seconds, "exact": exact});
        println!("{}", serde_json::to_string(&v)?);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn bench(
    synthetic: &str,
    from: Option<&Path>,
    n: usize,
    dim: usize,
    queries: usize,
    k: usize,
    seed: u64,
    threads: Option<usize>,
    params: &IndexParams,
    also_ef: &[usize],
    json: bool,
) -> Result<()> {
    if also_ef.contains(&0) {
        bail!("--also-ef values must be ≥ 1");
    }
    if n == 0 || dim == 0 || queries == 0 || k == 0 {
        bail!("--n, --dim, --queries and --k must be ≥ 1");
    }
    params.config(dim)?; // bad parameters fail before any work
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let (label, data, qs, dim) = match from {
        Some(p) => {
            // The real vectors of an index; queries are indexed vectors themselves.
            let (index, manifest): (VectorIndex, IndexManifest) = VectorIndex::open(p, false)?;
            let dim = index.config().dim;
            let mut data = Vec::new();
            for (key, f) in manifest.files.iter().enumerate() {
                if f.is_some()
                    && let Some(v) = index.get(key as u64)?
                {
                    data.extend_from_slice(&v);
                }
            }
            let count = data.len() / dim;
            let step = (count / queries.min(count).max(1)).max(1);
            let qs: Vec<f32> = data.chunks(dim).step_by(step).take(queries).flat_map(|v| v.iter().copied()).collect();
            (format!("real: {}", p.display()), data, qs, dim)
        }
        None => {
            let kind: Synthetic = synthetic.parse()?;
            eprintln!("generating {n} synthetic {synthetic} unit vectors × {dim} (seed {seed})");
            let (d, q) = index_bench::synthetic(kind, n, queries, dim, seed);
            (format!("synthetic {synthetic}"), d, q, dim)
        }
    };
    let config = params.config(dim)?;
    let dir = tempfile::Builder::new().prefix("stabilize-index-bench-").tempdir()?;
    let r = index_bench::run(&label, &data, &qs, &config, also_ef, k, threads, dir.path(), &|m| eprintln!("{m}"))?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} — {} vectors × {}, {} build threads, M {} efC {} ef {} {:?}",
            r.data,
            r.n,
            r.dim,
            r.threads,
            config.connectivity,
            config.expansion_add,
            config.expansion_search,
            config.quantization
        );
        println!("  build        {:>9.1} s", r.build_seconds);
        println!(
            "  index memory {:>9.1} MiB (peak RSS {:.1} MiB)",
            r.index_memory_bytes as f64 / 1048576.0,
            r.peak_rss_bytes.unwrap_or(0) as f64 / 1048576.0
        );
        println!(
            "  file         {:>9.1} MiB, save {:.2} s, open (mmap + checksums) {:.3} s",
            r.file_bytes as f64 / 1048576.0,
            r.save_seconds,
            r.open_seconds
        );
        println!(
            "  query        p50 {:.3} ms, p99 {:.3} ms (exact: p50 {:.1} ms)",
            r.query_p50_ms, r.query_p99_ms, r.exact_query_p50_ms
        );
        println!("  recall@{}    {:.4} over {} queries", r.k, r.recall_at_k, r.queries);
        for e in &r.by_ef {
            println!(
                "  at ef {:>4}: query p50 {:.3} ms, p99 {:.3} ms, recall@{} {:.4}",
                e.ef, e.query_p50_ms, e.query_p99_ms, r.k, e.recall_at_k
            );
        }
    }
    Ok(())
}
