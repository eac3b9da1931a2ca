//! `stabilize dupes`: near-duplicate clusters under folders, by a trained model, a perceptual
//! hash, or both fused (the default: the shipped model with pHash); the search is the library's ([`stabilize_burn::dupes`]), this prints it as text, JSON
//! or CSV, and with `--move-to DIR` moves every file but the keep out of the way
//! ([`stabilize_core::dedup::moves`]; `dupes undo DIR` puts them back). Never deletes anything.

use std::path::PathBuf;

use anyhow::Result;
use stabilize_burn::dupes::{DupesParams, DupesProgress, DupesReport, Method, PairSearch, find_dupes};
use stabilize_core::HashKind;
use stabilize_core::dedup::moves::{MoveReport, common_base, move_files};

use crate::args::{RunArgs, bar, check_threshold_args, model_spec, set_jobs};

/// What `dupes` uses without --model or --hash: the default model fused with pHash (on the
/// planted held-out copies it finds more pairs than the model alone at the same precision; README).
fn default_method(model: stabilize_burn::collection::ModelSpec) -> Method {
    Method::Fused(model, HashKind::Phash)
}

/// `stabilize dupes` arguments.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct DupesArgs {
    #[command(subcommand)]
    command: Option<DupesCommand>,
    /// Folders (searched recursively) or files; with --against, the new files.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Library mode: a folder (or file) already in the collection (repeatable). Only clusters
    /// holding one of PATHS are reported, each with its library files marked; the library is not
    /// compared with itself, and its embeddings come from the cache after the first run.
    #[arg(long, value_name = "LIBRARY")]
    against: Vec<PathBuf>,
    /// `default` (the shipped stabilized model), an embedding run folder (`train embed`,
    /// evaluated by `eval embed` for the calibration), or `pretrained` (the ImageNet MobileNetV2
    /// features; needs --threshold). With --hash too, the two are fused: a pair is as close as
    /// the nearer of the model's distance and the hash's bits scaled by the run's fitted rule
    /// (`fusion.json`: the default model counts 0.04 per bit while its distance is under 1.0;
    /// 0.03 per bit, no cap, for a run without a fit), so either can find it.
    #[arg(long)]
    model: Option<String>,
    /// Input side in px of `--model pretrained` [default: 224].
    #[arg(long, requires = "model")]
    input_size: Option<u32>,
    /// A perceptual hash (phash, dhash, ahash or blockhash): alone, instead of a model; with
    /// --model, fused with it. Without either: the default model fused with phash.
    #[arg(long)]
    hash: Option<HashKind>,
    /// Distance threshold (L2 for a model or a fused pair, Hamming bits for a hash alone).
    #[arg(long, conflicts_with = "precision")]
    threshold: Option<f64>,
    /// Pick the threshold from the model's calibration curve at this precision [default 0.99].
    #[arg(long)]
    precision: Option<f64>,
    /// Print one JSON object.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print CSV rows: cluster,path,keep,max_distance.
    #[arg(long)]
    csv: bool,
    /// A folder whose files are kept before others' (repeatable; the first given first). Then:
    /// the most pixels, the best JPEG quality, not clearly noisier, the least border, the copy
    /// nearest the rest of its cluster, the oldest.
    #[arg(long, value_name = "DIR")]
    prefer: Vec<PathBuf>,
    /// Also write a self-contained review page (thumbnails inline, no network): each cluster's
    /// files side by side with size, format and distance to the keep, least certain first.
    #[arg(long, value_name = "PAGE")]
    html: Option<PathBuf>,
    /// Move every file of each cluster but its keep (in library mode: every new file but the
    /// keep; library files never move) into DIR under its path relative to the searched folders,
    /// listing each in DIR/stabilize-moves.jsonl first. Never overwrites; across file systems it
    /// copies, fsyncs and only then removes. `stabilize dupes undo DIR` puts them back.
    #[arg(long, value_name = "DIR")]
    move_to: Option<PathBuf>,
    /// How pairs are found: `exact` compares every pair; `indexed` takes candidates from an
    /// HNSW graph of the model's vectors (each file's 32 nearest) and buckets of the hashes (all
    /// pairs within the threshold), checked exactly; `auto` indexes from 5,000 files on.
    #[arg(long, value_enum, default_value_t = PairSearch::Auto)]
    search: PairSearch,
    /// Worker threads [default: all cores].
    #[arg(long)]
    jobs: Option<usize>,
    /// Describe each file by its whole and five regions (corners and centre at 0.75 of each
    /// side) with the model: finds copies cut down to part of the picture. The regions come from
    /// where the model's region penalty was fitted (`eval fusion --regions [--region-source
    /// map|zoom]`): cut out (6× the embedding work; the one that finds part-crops, README), or
    /// pooled from its feature map (about 1×) or from that of the enlarged image (about 2×).
    #[arg(long)]
    regions: bool,
    /// Do not read or write the embedding cache ($STABILIZE_CACHE_DIR, else
    /// $XDG_CACHE_HOME/stabilize, else ~/.cache/stabilize).
    #[arg(long)]
    no_cache: bool,
    #[command(flatten)]
    run: RunArgs,
}

/// `stabilize dupes` subcommands.
#[derive(clap::Subcommand)]
pub enum DupesCommand {
    /// Put back every file a `dupes --move-to DIR` moved (DIR/stabilize-moves.jsonl), never
    /// overwriting; safe to re-run, also after a move or an undo was killed.
    Undo {
        /// The folder given to --move-to.
        dir: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: DupesArgs) -> Result<()> {
    if let Some(DupesCommand::Undo { dir, json }) = &args.command {
        return undo(dir, *json);
    }
    set_jobs(args.jobs)?;
    if let Some(dir) = &args.move_to
        && dir.exists()
        && !dir.is_dir()
    {
        anyhow::bail!("--move-to {}: not a folder", dir.display());
    }
    check_threshold_args(args.threshold, args.precision)?;
    let params = DupesParams {
        paths: args.paths.clone(),
        against: args.against.clone(),
        prefer: args.prefer.clone(),
        method: match (&args.model, args.hash) {
            (Some(m), None) => Method::Model(model_spec(m, args.input_size, &args.run)?),
            (Some(m), Some(h)) => Method::Fused(model_spec(m, args.input_size, &args.run)?, h),
            (None, Some(h)) => Method::Hash(h),
            (None, None) => default_method(model_spec("default", None, &args.run)?),
        },
        threshold: args.threshold,
        precision: args.precision,
        cache: !args.no_cache,
        regions: args.regions,
        search: args.search,
        exclude: args.move_to.iter().cloned().collect(),
    };
    let device = args.run.device()?;
    let pb = bar(0, "files", args.json || args.csv);
    let report = find_dupes(&params, &device, &|p| match p {
        DupesProgress::Files(n) => pb.set_length(n as u64),
        DupesProgress::File => pb.inc(1),
    })?;
    pb.finish_and_clear();
    if let Some(page) = &args.html {
        write_review(page, &report)?;
    }
    let moves = match &args.move_to {
        Some(dir) => Some(move_duplicates(dir, &args, &report)?),
        None => None,
    };
    let DupesReport { clusters: found, skipped, seconds, method: method_name, threshold, .. } = &report;
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(m) = &moves {
            v["moves"] = serde_json::to_value(m)?;
        }
        println!("{v}");
    } else if args.csv {
        let library = !args.against.is_empty();
        println!("cluster,path,keep,max_distance{}", if library { ",in_library" } else { "" });
        for (k, c) in found.iter().enumerate() {
            for f in &c.files {
                let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
                let lib = if library { format!(",{}", c.library.contains(f)) } else { String::new() };
                println!("{k},{},{},{}{lib}", q(f), f == &c.keep, c.max_distance);
            }
        }
    } else {
        for (k, c) in found.iter().enumerate() {
            println!("cluster {} ({} files, max distance {:.3}):", k + 1, c.files.len(), c.max_distance);
            for f in &c.files {
                let mark = match (f == &c.keep, args.against.is_empty(), c.library.contains(f)) {
                    (true, _, _) => "keep",
                    (false, false, true) => "lib ",
                    (false, false, false) => "new ",
                    _ => "    ",
                };
                println!("  {mark} {f}");
            }
            for same in &c.identical {
                println!("  byte-identical: {}", same.join(", "));
            }
        }
        for s in skipped.iter() {
            eprintln!("{s}");
        }
        if let (Some(n), Some(l)) = (report.new_files, report.library_files) {
            eprintln!("library mode: {n} new files against {l} library files; clusters hold a new file");
        }
        let acted = match &moves {
            None => "nothing was moved or deleted".to_string(),
            Some(m) => {
                for n in &m.not_moved {
                    eprintln!("not moved {}: {}", n.path, n.reason);
                }
                format!(
                    "moved {} files to {} ({} copied across file systems, {} left in place); nothing deleted; undo: stabilize dupes undo {}",
                    m.moved,
                    m.dir,
                    m.copied,
                    m.not_moved.len(),
                    m.dir
                )
            }
        };
        eprintln!(
            "{} files, {} skipped, {} clusters ({} files in them) with {method_name} at threshold {threshold:.4}, {} search, in {seconds:.1}s; {acted}",
            report.files_seen - skipped.len(),
            skipped.len(),
            found.len(),
            found.iter().map(|c| c.files.len()).sum::<usize>(),
            report.search
        );
    }
    Ok(())
}

/// Moves every file of each cluster but its keep (library files never) into `dir`
/// ([`stabilize_core::dedup::moves::move_files`]). `STABILIZE_MOVE_STEP_MS`, a test's hook,
/// pauses between the steps of each move so a test can kill the run half way.
fn move_duplicates(dir: &std::path::Path, args: &DupesArgs, report: &DupesReport) -> Result<MoveReport> {
    use stabilize_core::fsutil::text_path_or_same;
    let files: Vec<(PathBuf, String)> = report
        .clusters
        .iter()
        .flat_map(|c| {
            c.files
                .iter()
                .filter(|f| **f != c.keep && !c.library.contains(f))
                .map(|f| (text_path_or_same(f), c.keep.clone()))
        })
        .collect();
    let roots: Vec<PathBuf> = args.paths.iter().chain(&args.against).cloned().collect();
    let step = std::env::var("STABILIZE_MOVE_STEP_MS").ok().and_then(|v| v.parse::<u64>().ok());
    let pause = || {
        if let Some(ms) = step {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    };
    let pb = bar(files.len(), "moved", args.json || args.csv);
    let r = move_files(&files, &common_base(&roots), dir, &pause, &|| pb.inc(1))
        .map_err(|e| anyhow::anyhow!("--move-to: {e}"))?;
    pb.finish_and_clear();
    Ok(r)
}

/// `stabilize dupes undo DIR`.
fn undo(dir: &std::path::Path, json: bool) -> Result<()> {
    let n = stabilize_core::dedup::moves::read_manifest(dir).map(|m| m.len()).unwrap_or(0);
    let pb = bar(n, "entries", json);
    let r = stabilize_core::dedup::moves::undo(dir, &|| pb.inc(1))?;
    pb.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        for l in &r.left {
            eprintln!("left {}: {}", l.path, l.reason);
        }
        let manifest = dir.join(stabilize_core::dedup::moves::MANIFEST);
        eprintln!(
            "{} files put back, {} already in place, {}",
            r.restored,
            r.in_place,
            if r.manifest_removed {
                "none left; the manifest is removed".to_string()
            } else {
                format!("{} left (kept in {})", r.left.len(), manifest.display())
            }
        );
    }
    if !r.left.is_empty() {
        anyhow::bail!("{} entries could not be put back (see above); they stay in the manifest", r.left.len());
    }
    Ok(())
}

/// Writes the review page of `report` to `page` ([`stabilize_core::dedup::review`]).
fn write_review(page: &std::path::Path, report: &DupesReport) -> Result<()> {
    use rayon::prelude::*;
    use stabilize_core::dedup::review::{review_file, review_html};
    let files: Vec<Vec<_>> = report
        .clusters
        .par_iter()
        .map(|c| c.files.iter().enumerate().map(|(i, f)| review_file(f, c.distances.get(i).copied())).collect())
        .collect();
    let html = review_html(&report.clusters, &files, &report.method, report.threshold);
    stabilize_core::fsutil::write_atomic(page, html.as_bytes())
        .map_err(|e| anyhow::anyhow!("writing the review page: {e}"))?;
    eprintln!("review page: {} ({} clusters)", page.display(), report.clusters.len());
    Ok(())
}
