//! `stabilize embed`: the vectors of a collection, for the user's own search: `embeddings.npy`
//! (float32, N × d, L2-normalised rows), `paths.txt` (row i = line i) and `skipped.json`, with
//! the shard's `model.json` and `files.json` (`stabilize index build --from-npy` reads them).

use std::path::PathBuf;

use anyhow::{Result, bail};
use stabilize_burn::collection::{embed_files, write_embeddings};
use stabilize_core::dedup::cache::Cache;
use stabilize_core::image::load;

use crate::args::{RunArgs, bar, model_spec, set_jobs};

/// `stabilize embed` arguments.
#[derive(clap::Args)]
pub struct EmbedArgs {
    /// Folders (searched recursively) or files.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// `default` (the shipped stabilized model, 1280-d), `pretrained` (the ImageNet MobileNetV2
    /// features, 1280-d) or an embedding run folder.
    #[arg(long, default_value = "default")]
    model: String,
    /// Input side in px of `--model pretrained` [default: 224].
    #[arg(long)]
    input_size: Option<u32>,
    /// Output folder for embeddings.npy, paths.txt and skipped.json.
    #[arg(long)]
    out: PathBuf,
    /// Replace the files of an earlier export in --out.
    #[arg(long)]
    overwrite: bool,
    /// Print a JSON summary.
    #[arg(long)]
    json: bool,
    /// Worker threads [default: all cores].
    #[arg(long)]
    jobs: Option<usize>,
    /// Do not read or write the embedding cache.
    #[arg(long)]
    no_cache: bool,
    #[command(flatten)]
    run: RunArgs,
}

pub fn run(args: EmbedArgs) -> Result<()> {
    set_jobs(args.jobs)?;
    for p in &args.paths {
        if !p.exists() {
            bail!("{}: no such file or folder", p.display());
        }
    }
    let npy = args.out.join("embeddings.npy");
    if npy.exists() && !args.overwrite {
        bail!("{} exists (pass --overwrite to replace it)", npy.display());
    }
    let spec = model_spec(&args.model, args.input_size, &args.run)?;
    let started = std::time::Instant::now();
    let emb = spec.load(&args.run.device()?)?;
    let (files, mut skipped) = load::list_images(&args.paths);
    let pb = bar(files.len(), "images", args.json);
    // With pHash (as `dupes` fuses it), so the shard can become a `dupes --against` index.
    let fused = Some(stabilize_core::HashKind::Phash);
    let mut cache = (!args.no_cache).then(|| Cache::open(&emb.cache_key(fused, false)));
    let embedding = std::time::Instant::now();
    let (done, bad, hits) = embed_files(&files, &emb, fused, false, cache.as_mut(), &|| pb.inc(1));
    let embed_seconds = embedding.elapsed().as_secs_f64();
    pb.finish_and_clear();
    if let Some(Err(e)) = cache.as_ref().map(Cache::save) {
        eprintln!("warning: embedding cache not saved: {e}");
    }
    skipped.extend(bad);
    let model = stabilize_core::dedup::shards::ShardModel {
        model: spec.to_string(),
        weights_sha256: emb.weights_sha256.clone(),
        pipeline: emb.pipeline().to_string(),
        dim: emb.dim,
    };
    let summary = write_embeddings(&args.out, &model, &done, &skipped)?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let v = serde_json::json!({
            "rows": summary.rows, "dim": summary.dim, "skipped": summary.skipped, "cache_hits": hits,
            "model": spec.to_string(), "seconds": seconds, "embed_seconds": embed_seconds, "out": args.out,
        });
        println!("{v}");
    } else {
        for s in &skipped {
            eprintln!("{s}");
        }
        let fresh = summary.rows.saturating_sub(hits);
        let rate = if fresh > 0 {
            format!(", {:.1} images/s embedded", fresh as f64 / embed_seconds.max(1e-9))
        } else {
            String::new()
        };
        eprintln!(
            "{} rows × {} in {}/embeddings.npy ({} skipped, {hits} from the cache) with {spec} in {seconds:.1}s{rate}",
            summary.rows,
            summary.dim,
            args.out.display(),
            summary.skipped,
        );
    }
    Ok(())
}
