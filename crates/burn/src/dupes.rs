//! The near-duplicate search behind `stabilize dupes`, czkawka-style: a parameters struct
//! ([`DupesParams`]), one search ([`find_dupes`]), and results ([`DupesReport`]) that a CLI or a
//! GUI prints. Files are walked, decoded in parallel (EXIF-rotated, bomb-limited), cut free of
//! solid borders, described by a trained embedding model (cached per model), a perceptual hash, or
//! both fused, every pair under the threshold is found, and pairs are grouped into clusters with a
//! suggested file to keep.
//! Nothing is moved or deleted.

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::Device;
use rayon::prelude::*;
use serde::Serialize;
use stabilize_core::dedup::ann::{DEFAULT_K, MAX_INDEXED_BITS, hash_pairs, indexable, pairs_indexed};
use stabilize_core::dedup::cache::Cache;
use stabilize_core::dedup::index::{IndexManifest, IndexedFile, VectorIndex, is_index_file};
use stabilize_core::dedup::keep::{Candidate, choose, set_centrality};
use stabilize_core::dedup::{
    Cluster, FileInfo, clusters, identical_groups, library_clusters, pairs_touching, pairs_under,
};
use stabilize_core::eval::embed::Descriptors;
use stabilize_core::image::borders::into_content;
use stabilize_core::image::hash::{HashKind, PerceptualHash};
use stabilize_core::image::load;
use stabilize_core::image::regions::{REGION_COUNT, RegionSource};

use crate::collection::{CollectionError, ModelSpec, embed_files};

/// Hamming threshold (bits of 64) for the hashes when none is given; imagededup uses 10.
pub const DEFAULT_HASH_THRESHOLD: f64 = 10.0;
/// The precision a model's calibrated threshold is taken at when none is given.
pub const DEFAULT_PRECISION: f64 = 0.99;

/// How candidate pairs are found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum PairSearch {
    /// Indexed from [`INDEXED_FROM`] files on (when the method allows it), else exact.
    #[default]
    Auto,
    /// Every pair compared.
    Exact,
    /// Candidates from an HNSW graph of the vectors and buckets of the hashes
    /// ([`stabilize_core::dedup::ann`]), each checked exactly; regions are searched exactly.
    Indexed,
}

/// Files from which `PairSearch::Auto` takes the indexed search. Measured with 1280-d vectors
/// fused with hashes (the default model's shape; `stabilize index bench-pairs --n N --subset N
/// --dim 1280`, README): indexed is faster from about 1,000 items (0.1 s against 0.2 s) and 5×
/// faster at 5,000 (0.9 s against 4.9 s); below 5,000 exact costs a few seconds at most, so small
/// collections keep every pair compared.
pub const INDEXED_FROM: usize = 5_000;

/// How files are described.
#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    /// A trained embedding run folder (`train embed`, calibrated by `eval embed`), or the
    /// pretrained features (which need an explicit threshold).
    Model(ModelSpec),
    Hash(HashKind),
    /// A model fused with a hash ([`Descriptors::Fused`]) by the run's rule
    /// ([`stabilize_core::eval::fusion::FuseRule`]): a pair either finds is close.
    Fused(ModelSpec, HashKind),
}

/// What to search and how.
#[derive(Clone, Debug)]
pub struct DupesParams {
    /// Folders (searched recursively) or files.
    pub paths: Vec<PathBuf>,
    /// Library mode: folders or files already in the collection. `paths` are then the new
    /// files: only pairs with a new file are compared (never library with library), and only
    /// clusters holding a new file are reported, each with its library files
    /// ([`stabilize_core::dedup::library_clusters`]). A file under both is taken as the
    /// library's. The library's embeddings come from the cache after the first run.
    pub against: Vec<PathBuf>,
    pub method: Method,
    /// The distance under which two files are duplicates (L2 for a model or a fused pair, Hamming bits for a
    /// hash); `None`: the model's calibrated distance at `precision`, or
    /// [`DEFAULT_HASH_THRESHOLD`] bits.
    pub threshold: Option<f64>,
    /// The precision of a model's (or a fused pair's) calibrated threshold (not for a hash alone)
    /// [default 0.99].
    pub precision: Option<f64>,
    /// Read and write the model's embedding cache.
    pub cache: bool,
    /// Folders whose files are kept first ([`stabilize_core::dedup::keep`]), the first given first.
    pub prefer: Vec<PathBuf>,
    /// Describe each file by its whole and its [regions](stabilize_core::image::regions) (a model
    /// only): a copy cut down to part of the picture matches the region it came from
    /// ([`Descriptors::Regions`]); 6× the embedding work.
    pub regions: bool,
    /// How candidate pairs are found.
    pub search: PairSearch,
    /// Folders left out of the walk (`--move-to`'s destination, so moved files are not found
    /// again under a searched folder).
    pub exclude: Vec<PathBuf>,
}

/// Progress of [`find_dupes`], from worker threads.
pub enum DupesProgress {
    /// `n` files will be read.
    Files(usize),
    /// One more file read.
    File,
}

/// What a search found (`dupes --json` prints it).
#[derive(Clone, Debug, Serialize)]
pub struct DupesReport {
    /// Files whose embedding came from the cache.
    pub cache_hits: usize,
    pub clusters: Vec<Cluster>,
    pub files_seen: usize,
    /// `model DIR`, the hash's name, or `model DIR fused with HASH`.
    pub method: String,
    /// Library mode: readable new files and library files compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_files: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub library_files: Option<usize>,
    pub seconds: f64,
    /// How the pairs were found: `exact` or `indexed`.
    pub search: &'static str,
    /// Files that could not be read, with the reason.
    pub skipped: Vec<load::Skipped>,
    pub threshold: f64,
}

/// Why a search could not run.
#[derive(Debug, thiserror::Error)]
pub enum DupesError {
    #[error("{0}")]
    Model(#[from] CollectionError),
    #[error("{0}")]
    Params(String),
}

/// Runs the search; `device` embeds (unused for hashes).
pub fn find_dupes(
    params: &DupesParams,
    device: &Device,
    progress: &(dyn Fn(DupesProgress) + Sync),
) -> Result<DupesReport, DupesError> {
    let started = Instant::now();
    // A mistyped library would read as "nothing matches": refuse it instead.
    if let Some(p) = params.against.iter().find(|p| !p.exists()) {
        return Err(DupesError::Params(format!("--against {}: no such file or folder", p.display())));
    }
    // A library given as an index file (`stabilize index build`): its vectors and hashes are read
    // from it, never recomputed, and only its files near a new one are loaded.
    let index_library = match params.against.iter().position(|p| is_index_file(p)) {
        Some(_) if params.against.len() > 1 => {
            return Err(DupesError::Params("--against: one index file, or folders, not both".into()));
        }
        Some(k) => Some(open_index_library(&params.against[k], params)?),
        None => None,
    };
    let (mut files, mut skipped) = load::list_images(&params.paths);
    let absolute = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
    let excluded: Vec<PathBuf> = params.exclude.iter().map(absolute).collect();
    files.retain(|p| !excluded.iter().any(|e| absolute(p).starts_with(e)));
    // Library mode: the new files first, then the library's (a file under both is the library's).
    let mut new_paths = std::collections::HashSet::new();
    if index_library.is_some() {
        new_paths = files.iter().map(|p| stabilize_core::fsutil::path_text(p)).collect();
    } else if !params.against.is_empty() {
        let (mut library, lib_skipped) = load::list_images(&params.against);
        library.retain(|p| !excluded.iter().any(|e| absolute(p).starts_with(e)));
        skipped.extend(lib_skipped);
        let key = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        let in_library: std::collections::HashSet<PathBuf> = library.iter().map(key).collect();
        files.retain(|p| !in_library.contains(&key(p)));
        new_paths = files.iter().map(|p| stabilize_core::fsutil::path_text(p)).collect();
        files.extend(library);
    }
    progress(DupesProgress::Files(files.len()));
    let on_file = || progress(DupesProgress::File);
    let mut cache_hits = 0;
    let (infos, desc, threshold, method) = match &params.method {
        Method::Model(spec) | Method::Fused(spec, _) => {
            let fused = match &params.method {
                Method::Fused(_, kind) => Some(*kind),
                _ => None,
            };
            let emb = spec.load(device)?;
            if let Some((path, _, manifest)) = &index_library {
                if manifest.weights_sha256 != emb.weights_sha256 {
                    return Err(DupesError::Params(format!(
                        "--against {}: built with another model ({}), not {spec}",
                        path.display(),
                        manifest.model_dir.display()
                    )));
                }
                if let Some(why) = emb.pipeline_mismatch(&manifest.pipeline, "the index") {
                    return Err(DupesError::Params(format!("--against {}: {why}", path.display())));
                }
            }
            let regions = params.regions;
            let t = match params.threshold {
                Some(t) => t,
                None => emb.calibrated_threshold(params.precision.unwrap_or(DEFAULT_PRECISION), fused, regions)?,
            };
            let mut cache = params.cache.then(|| Cache::open(&emb.cache_key(fused, regions)));
            let (done, bad, hits) = embed_files(&files, &emb, fused, regions, cache.as_mut(), &on_file);
            if let Some(Err(e)) = cache.as_ref().map(Cache::save) {
                eprintln!("warning: embedding cache not saved: {e}");
            }
            cache_hits = hits;
            skipped.extend(bad);
            let mut data = Vec::with_capacity(done.len() * emb.dim);
            let mut hashes = Vec::new();
            let infos: Vec<FileInfo> = done
                .into_iter()
                .map(|e| {
                    data.extend_from_slice(&e.vector);
                    hashes.extend(e.hash);
                    e.info
                })
                .collect();
            let (vectors, with) = if regions {
                (
                    Descriptors::Regions { dim: emb.dim, per: 1 + REGION_COUNT, data, penalty: emb.region_penalty },
                    match emb.region_source {
                        RegionSource::Crops if emb.mirror_regions => " with regions (mirror-averaged too)",
                        RegionSource::Crops => " with regions",
                        RegionSource::Map => " with regions from its feature map",
                        RegionSource::Zoom => " with regions from its enlarged feature map",
                    },
                )
            } else {
                (Descriptors::Vectors { dim: emb.dim, data }, "")
            };
            let mirrored = if emb.mirror { " (mirror-averaged)" } else { "" };
            let with = format!("{mirrored}{with}");
            match fused {
                None => (infos, vectors, t, format!("{spec}{with}")),
                Some(kind) => {
                    assert_eq!(hashes.len(), infos.len(), "embed_files hashes every file when asked");
                    (
                        infos,
                        Descriptors::fuse(vectors, hashes, emb.fuse_rule),
                        t,
                        format!("{spec}{with} fused with {}", kind.name()),
                    )
                }
            }
        }
        Method::Hash(kind) => {
            if params.regions {
                return Err(DupesError::Params(
                    "--regions needs a model (a hash describes the whole image only)".into(),
                ));
            }
            if params.precision.is_some() {
                return Err(DupesError::Params(
                    "--precision needs --model (the calibration is stored with the model's evaluation)".into(),
                ));
            }
            let (infos, hashes, bad) = hash_files(&files, *kind, &on_file);
            skipped.extend(bad);
            let t = params.threshold.unwrap_or(DEFAULT_HASH_THRESHOLD);
            (infos, Descriptors::Hashes(hashes), t, kind.name().to_string())
        }
    };
    let new_count = infos.len();
    let (infos, desc, index_files) = match &index_library {
        Some((_, index, manifest)) => {
            let (infos, desc) = with_index_neighbours(infos, desc, index, manifest, threshold)?;
            (infos, desc, Some(manifest.files.iter().flatten().count()))
        }
        None => (infos, desc, None),
    };
    let distance = |i: usize, j: usize| desc.distance(i, &desc, j);
    // The keep ([`stabilize_core::dedup::keep`]), among `candidates`; how central a file is
    // ([`set_centrality`], and by descriptor) is measured among all the cluster's `members`. The
    // descriptor distance is the model's whole-image vectors' when there are any: the fused
    // distance is 0 for every pair whose hashes agree, too coarse to rank. (Borrowed where
    // possible: a copy of a large library's vectors would double their memory.)
    let wholes;
    let fine: &Descriptors = match &desc {
        Descriptors::Fused { vectors, .. } if matches!(vectors.as_ref(), Descriptors::Vectors { .. }) => vectors,
        Descriptors::Fused { vectors, .. } => {
            wholes = vectors.wholes();
            &wholes
        }
        Descriptors::Regions { .. } => {
            wholes = desc.wholes();
            &wholes
        }
        other => other,
    };
    let keep_rule = |candidates: &[usize], members: &[usize]| {
        let read = |&i: &usize| {
            let others: Vec<f64> = members.iter().filter(|&&j| j != i).map(|&j| fine.distance(i, fine, j)).collect();
            let mean = others.iter().sum::<f64>() / others.len().max(1) as f64;
            Candidate::read(&infos[i].path, infos[i].pixels, mean)
        };
        let mut read: Vec<Candidate> = members.iter().map(read).collect();
        set_centrality(&mut read);
        // Library mode: only some members are candidates.
        if candidates != members {
            read = candidates
                .iter()
                .map(|i| read[members.iter().position(|m| m == i).expect("a candidate is a member")].clone())
                .collect();
        }
        candidates[choose(&read, &params.prefer)]
    };
    let n = infos.len();
    // Library mode: the readable new files come first, in order.
    let first =
        if params.against.is_empty() { n } else { infos.iter().take_while(|f| new_paths.contains(&f.path)).count() };
    let indexable = indexable(&desc, threshold);
    let indexed = match params.search {
        PairSearch::Exact => false,
        PairSearch::Auto => indexable && n >= INDEXED_FROM,
        PairSearch::Indexed if indexable => true,
        PairSearch::Indexed => {
            return Err(DupesError::Params(format!(
                "--search indexed: not for regions or hash thresholds above {MAX_INDEXED_BITS} bits; use --search exact"
            )));
        }
    };
    let indexed = indexed && index_library.is_none();
    let pairs = if indexed {
        pairs_indexed(&desc, n, first, threshold, DEFAULT_K).map_err(|e| DupesError::Params(e.to_string()))?
    } else if first == n {
        pairs_under(n, threshold, &distance)
    } else {
        pairs_touching(n, first, threshold, &distance)
    };
    let (found, new_files, library_files) = if params.against.is_empty() {
        (clusters(&infos, &pairs, &keep_rule), None, None)
    } else {
        (library_clusters(&infos, &pairs, first, &keep_rule), Some(first), Some(index_files.unwrap_or(n - first)))
    };
    debug_assert!(index_library.is_none() || first == new_count);
    // Each file's distance to its keep, and the byte-identical sets.
    let index: std::collections::HashMap<&str, usize> =
        infos.iter().enumerate().map(|(i, f)| (f.path.as_str(), i)).collect();
    let found: Vec<Cluster> = found
        .into_par_iter()
        .map(|c| {
            let mut c = c.with_distances(&|p| index[p], &distance);
            c.identical = identical_groups(&c.files);
            c
        })
        .collect();
    Ok(DupesReport {
        cache_hits,
        clusters: found,
        files_seen: infos.len() + skipped.len(),
        method,
        new_files,
        library_files,
        seconds: started.elapsed().as_secs_f64(),
        search: if indexed || index_library.is_some() { "indexed" } else { "exact" },
        skipped,
        threshold,
    })
}

/// Opens an index file given as `--against` for a search with `params`: a model (fused with
/// pHash or not), no regions; its pipeline must be this build's.
fn open_index_library(
    path: &std::path::Path,
    params: &DupesParams,
) -> Result<(PathBuf, VectorIndex, IndexManifest), DupesError> {
    let bad = |why: String| DupesError::Params(format!("--against {}: {why}", path.display()));
    match &params.method {
        Method::Model(_) | Method::Fused(_, HashKind::Phash) => {}
        _ => return Err(bad("an index library needs a model, alone or fused with phash".into())),
    }
    if params.regions {
        return Err(bad("an index holds whole-image vectors only; --regions needs a folder library".into()));
    }
    let (index, manifest): (VectorIndex, IndexManifest) =
        VectorIndex::open(path, false).map_err(|e| bad(e.to_string()))?;
    if matches!(params.method, Method::Fused(..)) && manifest.files.iter().flatten().any(|f| f.phash.is_none()) {
        return Err(bad("built before indexes stored pHash; rebuild it, or use --model alone".into()));
    }
    Ok((path.to_path_buf(), index, manifest))
}

/// The new files' descriptors `desc` (rows `0..infos.len()`) extended by the index's files that
/// could pair with one: each new file's [`DEFAULT_K`] nearest in the index's graph within the
/// threshold, and (fused) every indexed file whose pHash is within the threshold's bits of a new
/// one. Their vectors are the index's (f16, dequantized), their hashes the manifest's.
fn with_index_neighbours(
    mut infos: Vec<FileInfo>,
    desc: Descriptors,
    index: &VectorIndex,
    manifest: &IndexManifest,
    threshold: f64,
) -> Result<(Vec<FileInfo>, Descriptors), DupesError> {
    let err = |e: stabilize_core::Error| DupesError::Params(format!("reading the index: {e}"));
    let (vectors, hashes, rule) = match desc {
        Descriptors::Vectors { .. } => (desc, None, None),
        Descriptors::Fused { vectors, hashes, rule } => (*vectors, Some(hashes), Some(rule)),
        _ => unreachable!("checked by open_index_library"),
    };
    let Descriptors::Vectors { dim, mut data } = vectors else { unreachable!("whole-image vectors") };
    if dim != index.config().dim {
        return Err(DupesError::Params(format!(
            "the index holds {}-d vectors, the model makes {dim}",
            index.config().dim
        )));
    }
    let n = infos.len();
    let limit = (threshold * 1.02 + 1e-6) as f32;
    let mut keys: std::collections::BTreeSet<u64> = std::collections::BTreeSet::new();
    let near: Result<Vec<Vec<u64>>, _> = (0..n)
        .into_par_iter()
        .map(|i| {
            index
                .search(&data[i * dim..(i + 1) * dim], DEFAULT_K)
                .map(|v| v.into_iter().filter(|nb| nb.distance <= limit).map(|nb| nb.key).collect())
        })
        .collect();
    keys.extend(near.map_err(err)?.into_iter().flatten());
    let present: Vec<(u64, &IndexedFile)> =
        manifest.files.iter().enumerate().filter_map(|(k, f)| f.as_ref().map(|f| (k as u64, f))).collect();
    if let (Some(h), Some(rule)) = (&hashes, &rule)
        && rule.l2_per_bit > 0.0
    {
        let lib = present
            .iter()
            .map(|(_, f)| f.phash.as_deref().and_then(PerceptualHash::from_hex).expect("checked when opened"));
        let all: Vec<PerceptualHash> = h.iter().cloned().chain(lib).collect();
        let pairs = hash_pairs(&all, n, threshold / rule.l2_per_bit)
            .map_err(|e| DupesError::Params(format!("--against an index: {e}")))?;
        for (_, j) in pairs {
            if j >= n {
                keys.insert(present[j - n].0);
            }
        }
    }
    let mut lib_hashes = Vec::new();
    for key in keys {
        let Some(f) = manifest.files.get(key as usize).and_then(Option::as_ref) else { continue };
        let Some(v) = index.get(key).map_err(err)? else { continue };
        infos.push(FileInfo { path: f.path.clone(), pixels: f.pixels, bytes: f.bytes });
        data.extend_from_slice(&v);
        if hashes.is_some() {
            lib_hashes.push(f.phash.as_deref().and_then(PerceptualHash::from_hex).expect("checked when opened"));
        }
    }
    let vectors = Descriptors::Vectors { dim, data };
    Ok(match (hashes, rule) {
        (Some(mut h), Some(rule)) => {
            h.extend(lib_hashes);
            (infos, Descriptors::fuse(vectors, h, rule))
        }
        _ => (infos, vectors),
    })
}

/// Hashes `files` in parallel with `kind` (solid borders cut off first): the readable files,
/// their hashes, the unreadable ones.
pub fn hash_files(
    files: &[PathBuf],
    kind: HashKind,
    on_file: &(dyn Fn() + Sync),
) -> (Vec<FileInfo>, Vec<PerceptualHash>, Vec<load::Skipped>) {
    let hasher = kind.hasher();
    let opts = load::LoadOptions::default();
    type Hashed = Result<(FileInfo, PerceptualHash), String>;
    let results: Vec<(PathBuf, Hashed)> = files
        .par_iter()
        .map(|p| {
            let r = (|| {
                let bytes = std::fs::metadata(p).map_err(|e| e.to_string())?.len();
                let img = load::load_image_with(p, &opts).map_err(|e| e.to_string())?;
                let info =
                    FileInfo { path: stabilize_core::fsutil::path_text(p), pixels: img.pixel_count() as u64, bytes };
                let content = into_content(img).map_err(|e| e.to_string())?;
                Ok((info, PerceptualHash::of(&hasher, &content)))
            })();
            on_file();
            (p.clone(), r)
        })
        .collect();
    let (mut infos, mut hashes, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for (path, r) in results {
        match r {
            Ok((i, h)) => {
                infos.push(i);
                hashes.push(h);
            }
            Err(reason) => skipped.push(load::Skipped { path, reason }),
        }
    }
    (infos, hashes, skipped)
}
