//! `stabilize bench`: stabilize against PyTorch and Pillow on the same work, side by side in one
//! invocation.
//!
//! - training step (plain and stabilized) and inference, images/s, for every compiled backend and
//!   for PyTorch running `scripts/bench_pytorch.py` (the same model, loss, optimiser and batch) in
//!   both memory layouts (NCHW, PyTorch's eager default, and channels-last, the standard CPU
//!   practice); `pytorch` is the faster of the two each round, and every ratio is against it;
//! - MobileNetV2 (the network behind every embedding): ImageNet inference at 224 px and the
//!   embedding fine-tuning step at 128 px, against torchvision's `mobilenet_v2` the same way;
//! - one end-to-end stabilized Fashion-MNIST epoch (data pipeline included), seconds;
//! - the JPEG-q round trip and the THUMB-s resize on the same photos, against Pillow
//!   (`scripts/bench_pillow.py`).
//!
//! The reference scripts are compiled into the binary, so the reference is the one this build was
//! measured against. A reference whose Python cannot run is left out (said on stderr), never faked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::Value;
use stabilize_burn::BackendKind;
use stabilize_core::data::dirs;
use stabilize_core::image::{bench as image_bench, load};

const PYTORCH_SCRIPT: &str = include_str!("../../../scripts/bench_pytorch.py");
const PILLOW_SCRIPT: &str = include_str!("../../../scripts/bench_pillow.py");

/// What `stabilize bench` measures and against what.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Training batch size.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Timed steps (and inference batches) per variant and round, after 3 warm-up steps.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Rounds; every implementation is measured once per round, and the median is reported.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Backends to measure, comma-separated (default: every backend in this build).
    #[arg(long, alias = "backend", value_delimiter = ',')]
    pub backends: Vec<String>,
    /// Device of every measured backend and of PyTorch: cpu, or cuda / cuda:N (an NVIDIA GPU:
    /// `--backends tch --device cuda`) [default: each backend's own; PyTorch on the CPU].
    #[arg(long)]
    pub device: Option<stabilize_burn::device::DeviceChoice>,
    /// Channels of the CNN's first convolution.
    #[arg(long, default_value_t = 16)]
    pub width: usize,
    /// Inference batch size.
    #[arg(long, default_value_t = 256)]
    pub infer_batch: usize,
    /// Timed MobileNetV2 batches (inference) and embedding steps per implementation and round,
    /// after one warm-up (0: skip MobileNetV2).
    #[arg(long, default_value_t = 2)]
    pub mobilenet_steps: usize,
    /// MobileNetV2 inference batch (224 px).
    #[arg(long, default_value_t = 16)]
    pub mobilenet_batch: usize,
    /// Triplets of the embedding step (3 crops each, 128 px, plus their noisy copies).
    #[arg(long, default_value_t = 8)]
    pub embed_triplets: usize,
    /// Training images in the end-to-end epoch (0: skip it).
    #[arg(long, default_value_t = 10000)]
    pub epoch_images: usize,
    /// Photos for the JPEG and resize measurements.
    #[arg(long, default_value_t = 32)]
    pub images: usize,
    /// The photos are shrunk so that their longer side is at most this many pixels.
    #[arg(long, default_value_t = 512)]
    pub image_side: u32,
    /// JPEG quality of the round trip.
    #[arg(long, default_value_t = 50)]
    pub quality: u8,
    /// THUMB-s: percent of each side.
    #[arg(long, default_value_t = 50.0)]
    pub percent: f32,
    /// Passes over the photos per image measurement.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Python with torch 2.9 for the PyTorch reference (default: .venv-torch/bin/python).
    #[arg(long)]
    pub pytorch_python: Option<PathBuf>,
    /// Python with Pillow for the image reference (default: .venv-check/bin/python).
    #[arg(long)]
    pub pillow_python: Option<PathBuf>,
    /// Skip the PyTorch and Pillow references.
    #[arg(long)]
    pub no_reference: bool,
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Print the result as one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
}

/// The benchmark's result; the last line of `--json` output. A key per measured implementation
/// (`flex`, `tch`, `cuda`, `wgpu`; `pytorch-nchw` and `pytorch-channels-last`, and `pytorch`, the
/// faster of the two each round; `stabilize`, `pillow`); absent ones were not run.
#[derive(Debug, Default, Serialize)]
pub struct BenchResult {
    /// MobileNetV2 ImageNet inference at 224 px, images/s.
    pub mobilenet_infer_img_per_s: BTreeMap<String, f64>,
    /// The embedding fine-tuning step at 128 px, clean crops/s.
    pub embed_step_img_per_s: BTreeMap<String, f64>,
    pub train_img_per_s: BTreeMap<String, f64>,
    pub train_plain_img_per_s: BTreeMap<String, f64>,
    pub infer_img_per_s: BTreeMap<String, f64>,
    /// Stabilized step time / plain step time.
    pub stability_overhead: BTreeMap<String, f64>,
    pub epoch_seconds: BTreeMap<String, f64>,
    pub jpeg_roundtrip_img_per_s: BTreeMap<String, f64>,
    pub resize_img_per_s: BTreeMap<String, f64>,
    /// FLOPs per image of each measured work (`stabilize_burn::flops`: convolutions and linear
    /// layers; forward, and for a step the gradients it needs).
    pub flops_per_image: BTreeMap<String, f64>,
    /// FLOPs per image × the rate: per work, per implementation.
    pub gflop_per_s: BTreeMap<String, BTreeMap<String, f64>>,
    /// The cores' peak, from their vector width, FMA units and clock ([`cpu_peak`]), if known.
    pub peak_gflop_per_s: Option<f64>,
    pub peak_note: String,
    /// stabilize over all cores (Pillow has no parallel equivalent to compare with).
    pub jpeg_roundtrip_parallel_img_per_s: f64,
    pub resize_parallel_img_per_s: f64,
    pub settings: Value,
}

fn python_default(explicit: &Option<PathBuf>, venv: &str) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.clone());
    }
    let p = PathBuf::from(venv).join("bin/python");
    p.is_file().then_some(p)
}

/// Runs an embedded reference script with `python`; its last stdout line is one JSON object.
fn run_reference(python: &Path, name: &str, script: &str, args: &[String]) -> Result<Value> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(name);
    std::fs::write(&path, script)?;
    let out =
        Command::new(python).arg(&path).args(args).output().with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("{name} failed: {}", err.lines().last().unwrap_or("no output"));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().context("no output")?;
    serde_json::from_str(line).with_context(|| format!("{name} printed no JSON: {line}"))
}

/// `scripts/bench_pytorch.py --serve`, kept running so that its measurements alternate with ours.
struct TorchServer {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    version: String,
    threads: u64,
    _dir: tempfile::TempDir,
}

impl TorchServer {
    fn start(python: &Path, args: &BenchArgs, data: &Path) -> Result<Self> {
        use std::process::Stdio;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("bench_pytorch.py");
        std::fs::write(&path, PYTORCH_SCRIPT)?;
        let mut child = Command::new(python)
            .arg(&path)
            .arg("--serve")
            .arg(format!("--batch-size={}", args.batch_size))
            .arg(format!("--width={}", args.width))
            .arg(format!("--infer-batch={}", args.infer_batch))
            .arg(format!("--mnv2-batch={}", args.mobilenet_batch))
            .arg(format!("--embed-triplets={}", args.embed_triplets))
            .arg(format!("--device={}", args.device.map_or("cpu".into(), |d| d.to_string())))
            .arg(format!("--data={}", data.display()))
            // The same allocator settings as this process (see `tune_allocator`), unless the
            // caller chose their own: the comparison is of compute, not of malloc defaults.
            .env("GLIBC_TUNABLES", std::env::var("GLIBC_TUNABLES").unwrap_or_else(|_| crate::GLIBC_TUNABLES.into()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("running {}", python.display()))?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = std::io::BufReader::new(child.stdout.take().expect("piped"));
        let mut t = TorchServer { child, stdin, stdout, version: String::new(), threads: 0, _dir: dir };
        let hello = t.read().context("bench_pytorch.py did not start (is torch installed?)")?;
        t.version = hello.get("torch").and_then(Value::as_str).unwrap_or("?").to_string();
        t.threads = hello.get("threads").and_then(Value::as_u64).unwrap_or(0);
        Ok(t)
    }

    fn read(&mut self) -> Result<Value> {
        use std::io::BufRead;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("bench_pytorch.py exited");
        }
        serde_json::from_str(line.trim()).with_context(|| format!("bench_pytorch.py printed no JSON: {line}"))
    }

    /// One request line (`KIND N [LAYOUT]`, see the script's docs) and its JSON answer.
    fn ask(&mut self, request: &str) -> Result<Value> {
        use std::io::Write;
        writeln!(self.stdin, "{request}")?;
        self.stdin.flush()?;
        let v = self.read()?;
        if let Some(e) = v.get("error") {
            bail!("bench_pytorch.py: {e}");
        }
        Ok(v)
    }

    /// Images per second of `kind` over `n` steps in `layout` (`nchw` or `cl`).
    fn ask_rate(&mut self, kind: &str, n: usize, layout: &str) -> Result<f64> {
        num(&self.ask(&format!("{kind} {n} {layout}"))?, "img_per_s").context("no img_per_s")
    }
}

impl Drop for TorchServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// PyTorch's memory layouts: the name of its rows and the script's argument.
const TORCH_LAYOUTS: [(&str, &str); 2] = [("pytorch-nchw", "nchw"), ("pytorch-channels-last", "cl")];

/// Appends one round's PyTorch samples per layout, and `pytorch`: the faster layout of the round,
/// per measure.
fn push_torch_round<const K: usize>(samples: &mut BTreeMap<String, [Vec<f64>; K]>, round: [[f64; K]; 2]) {
    for ((name, _), v) in TORCH_LAYOUTS.iter().zip(round) {
        let e = samples.entry(name.to_string()).or_insert_with(|| std::array::from_fn(|_| Vec::new()));
        for k in 0..K {
            e[k].push(v[k]);
        }
    }
    let e = samples.entry("pytorch".into()).or_insert_with(|| std::array::from_fn(|_| Vec::new()));
    for k in 0..K {
        e[k].push(round[0][k].max(round[1][k]));
    }
}

/// One round of PyTorch's rates of `kinds` (the script's requests) over `steps`, in both layouts,
/// into `samples`; if the reference fails it is left out from then on (said once, as `what`) and
/// its samples dropped, never faked.
fn torch_round<const K: usize>(
    torch: &mut Option<TorchServer>,
    samples: &mut BTreeMap<String, [Vec<f64>; K]>,
    kinds: [&str; K],
    steps: usize,
    what: &str,
) {
    let Some(t) = torch.as_mut() else { return };
    let got = (|| -> Result<[[f64; K]; 2]> {
        let mut round = [[0.0; K]; 2];
        for (r, (_, layout)) in round.iter_mut().zip(TORCH_LAYOUTS) {
            for (v, kind) in r.iter_mut().zip(kinds) {
                *v = t.ask_rate(kind, steps, layout)?;
            }
        }
        Ok(round)
    })();
    match got {
        Ok(round) => push_torch_round(samples, round),
        Err(e) => {
            eprintln!("{what} left out: {e:#}");
            *torch = None;
            samples.retain(|k, _| !k.starts_with("pytorch"));
        }
    }
}

/// The median of the per-round ratios `a[k] / b[k]`: the two sides of a ratio ran back to back
/// in the same round, so the machine's drift between rounds cancels out of it.
fn ratio(a: &[f64], b: &[f64]) -> f64 {
    median(&a.iter().zip(b).map(|(x, y)| x / y).collect::<Vec<_>>())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.batch_size == 0
        || args.steps == 0
        || args.rounds == 0
        || args.infer_batch == 0
        || args.repeats == 0
        || args.images == 0
        || args.mobilenet_batch == 0
        || args.embed_triplets == 0
    {
        bail!(
            "--batch-size, --steps, --rounds, --infer-batch, --repeats, --images, --mobilenet-batch and --embed-triplets must be ≥ 1"
        );
    }
    if !((1..=100).contains(&args.quality) && args.percent > 0.0 && args.percent <= 100.0) {
        bail!("--quality must be in 1..=100 and --percent in (0, 100]");
    }
    let kinds: Vec<BackendKind> = if args.backends.is_empty() {
        BackendKind::compiled()
    } else {
        args.backends.iter().map(|b| b.parse().map_err(anyhow::Error::msg)).collect::<Result<_>>()?
    };
    let devices: Vec<(BackendKind, stabilize_burn::Device)> =
        kinds.iter().map(|k| Ok((*k, k.device_on(args.device).map_err(anyhow::Error::msg)?))).collect::<Result<_>>()?;
    let data = crate::args::data_dir(args.data_dir.as_deref());
    let fm_dir = dirs::asset_dir(&data, "fashion-mnist");
    let photos_dir = dirs::asset_dir(&data, "photos");
    if args.epoch_images > 0 && !fm_dir.is_dir() {
        bail!(
            "no Fashion-MNIST in {} (run `stabilize fetch fashion-mnist`, or pass --epoch-images 0)",
            fm_dir.display()
        );
    }
    if !photos_dir.is_dir() {
        bail!("no photos in {} (run `stabilize fetch photos`)", photos_dir.display());
    }
    let say = |s: String| {
        if !args.json {
            println!("{s}");
        } else {
            eprintln!("{s}");
        }
    };
    let model = stabilize_burn::model::SmallCnnConfig::new().with_width(args.width);
    let mut r = BenchResult {
        settings: serde_json::json!({
            "batch_size": args.batch_size, "steps": args.steps, "rounds": args.rounds, "width": args.width,
            "infer_batch": args.infer_batch, "epoch_images": args.epoch_images,
            "mobilenet_steps": args.mobilenet_steps, "mobilenet_batch": args.mobilenet_batch,
            "embed_triplets": args.embed_triplets,
            "device": args.device.map(|d| d.to_string()),
            "images": args.images, "image_side": args.image_side, "quality": args.quality,
            "percent": args.percent, "repeats": args.repeats,
            "threads": rayon::current_num_threads(),
        }),
        ..Default::default()
    };

    say(format!(
        "training step: Fashion-MNIST CNN (width {}), batch {}; stabilized = CE + 0.01·Lstab, σ 0.04; median of {} rounds × {} steps, implementations alternating each round",
        args.width, args.batch_size, args.rounds, args.steps
    ));
    let torch_python = if args.no_reference { None } else { python_default(&args.pytorch_python, ".venv-torch") };
    let mut torch = match &torch_python {
        Some(py) => match TorchServer::start(py, &args, &data) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("PyTorch reference left out: {e:#}");
                None
            }
        },
        None => {
            if !args.no_reference {
                eprintln!("PyTorch reference left out: no .venv-torch/bin/python (pass --pytorch-python)");
            }
            None
        }
    };
    // name -> (plain, stabilized, inference) samples, one per round.
    let mut samples: BTreeMap<String, [Vec<f64>; 3]> = BTreeMap::new();
    for _ in 0..args.rounds {
        for (kind, device) in &devices {
            let t = stabilize_burn::bench::train_step_throughput(&model, device, args.batch_size, args.steps);
            let inf = stabilize_burn::bench::infer_throughput(&model, device, args.infer_batch, args.steps);
            let e = samples.entry(kind.to_string()).or_default();
            e[0].push(t.plain_img_per_s);
            e[1].push(t.stabilized_img_per_s);
            e[2].push(inf);
        }
        torch_round(&mut torch, &mut samples, ["train_plain", "train", "infer"], args.steps, "PyTorch reference");
    }
    for (name, [plain, stab, inf]) in &samples {
        let (p, s, i) = (median(plain), median(stab), median(inf));
        let overhead = ratio(plain, stab);
        let extra = match (name.as_str(), &torch) {
            ("pytorch", Some(t)) => {
                format!("   (torch {}, {} threads; the faster layout each round)", t.version, t.threads)
            }
            _ => String::new(),
        };
        say(format!(
            "  {name:<21} plain {p:>7.0} img/s   stabilized {s:>7.0} img/s   overhead {overhead:.2}x   inference {i:>7.0} img/s{extra}"
        ));
        r.train_plain_img_per_s.insert(name.clone(), p);
        r.train_img_per_s.insert(name.clone(), s);
        r.stability_overhead.insert(name.clone(), overhead);
        r.infer_img_per_s.insert(name.clone(), i);
    }
    if let Some(pt) = samples.get("pytorch") {
        for (k, v) in &samples {
            if !k.starts_with("pytorch") {
                let [plain, stab, inf] = [0, 1, 2].map(|j| ratio(&v[j], &pt[j]));
                say(format!(
                    "  {k} / pytorch: stabilized step {stab:.2}x, plain step {plain:.2}x, inference {inf:.2}x (medians of per-round ratios)"
                ));
            }
        }
    }

    if args.mobilenet_steps > 0 {
        mobilenet_rows(&args, &devices, &mut torch, &mut r, &say);
    }

    if args.epoch_images > 0 {
        say(format!(
            "end-to-end epoch: {} Fashion-MNIST training images, stabilized, IDX decode to test top-1",
            args.epoch_images
        ));
        for (kind, device) in &devices {
            let scratch = tempfile::tempdir()?;
            let (secs, top1) = stabilize_burn::bench::epoch_seconds(
                &fm_dir,
                device,
                args.batch_size,
                args.epoch_images,
                scratch.path(),
            )?;
            say(format!("  {:<8} {secs:>7.1} s   test top-1 {:.2} %", kind.to_string(), top1 * 100.0));
            r.epoch_seconds.insert(kind.to_string(), secs);
        }
        if let Some(v) = torch.as_mut().and_then(|t| t.ask(&format!("epoch {}", args.epoch_images)).ok())
            && let Some(secs) = num(&v, "epoch_seconds")
        {
            say(format!(
                "  {:<8} {secs:>7.1} s   test top-1 {:.2} %",
                "pytorch",
                num(&v, "epoch_test_top1").unwrap_or(f64::NAN) * 100.0
            ));
            r.epoch_seconds.insert("pytorch".into(), secs);
        }
    }

    let (paths, _) = load::list_images(&[photos_dir]);
    let images = image_bench::prepare(&paths, args.image_side, args.images)?;
    let ops = image_bench::measure(&images, args.quality, args.percent, args.repeats)?;
    say(format!(
        "image ops: {} photos, longer side ≤ {} px (mean {:.0} kpx), one image at a time on one thread; jpeg:{} round trip, thumb:{}",
        ops.images,
        args.image_side,
        ops.mean_pixels / 1e3,
        args.quality,
        args.percent
    ));
    r.jpeg_roundtrip_img_per_s.insert("stabilize".into(), ops.jpeg_roundtrip_img_per_s);
    r.resize_img_per_s.insert("stabilize".into(), ops.resize_img_per_s);
    r.jpeg_roundtrip_parallel_img_per_s = ops.jpeg_roundtrip_parallel_img_per_s;
    r.resize_parallel_img_per_s = ops.resize_parallel_img_per_s;
    let pillow_python = if args.no_reference { None } else { python_default(&args.pillow_python, ".venv-check") };
    if let Some(py) = pillow_python {
        let dir = tempfile::tempdir()?;
        for (i, img) in images.iter().enumerate() {
            img.save(&dir.path().join(format!("{i:04}.png")))?;
        }
        let a = vec![
            dir.path().display().to_string(),
            format!("--quality={}", args.quality),
            format!("--percent={}", args.percent),
            format!("--repeats={}", args.repeats),
        ];
        match run_reference(&py, "bench_pillow.py", PILLOW_SCRIPT, &a) {
            Ok(v) => {
                if let (Some(j), Some(z)) = (num(&v, "jpeg_roundtrip_img_per_s"), num(&v, "resize_img_per_s")) {
                    r.jpeg_roundtrip_img_per_s.insert("pillow".into(), j);
                    r.resize_img_per_s.insert("pillow".into(), z);
                }
            }
            Err(e) => eprintln!("Pillow reference left out: {e:#}"),
        }
    } else if !args.no_reference {
        eprintln!("Pillow reference left out: no .venv-check/bin/python (pass --pillow-python)");
    }
    for (what, m) in [("jpeg round trip", &r.jpeg_roundtrip_img_per_s), ("thumb resize", &r.resize_img_per_s)] {
        let ours = m["stabilize"];
        match m.get("pillow") {
            Some(p) => say(format!(
                "  {what:<16} stabilize {ours:>7.1} img/s   pillow {p:>7.1} img/s   ratio {:.2}x",
                ours / p
            )),
            None => say(format!("  {what:<16} stabilize {ours:>7.1} img/s")),
        }
    }
    say(format!(
        "  all cores: jpeg round trip {:.1} img/s, thumb resize {:.1} img/s",
        r.jpeg_roundtrip_parallel_img_per_s, r.resize_parallel_img_per_s
    ));
    let on_gpu = matches!(args.device, Some(stabilize_burn::device::DeviceChoice::Cuda(_)));
    flop_rates(&model, on_gpu, &mut r, &say);
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(())
}

/// Fills the FLOPs per image, the achieved GFLOP/s of every measured rate and the peak, and
/// prints them. `on_gpu`: the rates were measured on a GPU, so the cores' peak does not bound them
/// and none is given.
fn flop_rates(model: &stabilize_burn::model::SmallCnnConfig, on_gpu: bool, r: &mut BenchResult, say: &dyn Fn(String)) {
    use stabilize_burn::flops::{forward, mobilenet_layers, small_cnn_layers, train_step};
    let cnn = small_cnn_layers(model);
    let embed = mobilenet_layers(128, 12, 128);
    let works: [(&str, f64, &BTreeMap<String, f64>); 5] = [
        // Both copies go forward and backward: twice the plain step per counted image.
        ("classifier_stabilized_step", 2.0 * train_step(&cnn), &r.train_img_per_s),
        ("classifier_plain_step", train_step(&cnn), &r.train_plain_img_per_s),
        ("classifier_inference", forward(&cnn), &r.infer_img_per_s),
        ("mobilenet_inference_224", forward(&mobilenet_layers(224, 0, 1000)), &r.mobilenet_infer_img_per_s),
        ("embed_step_128", 2.0 * train_step(&embed), &r.embed_step_img_per_s),
    ];
    let (peak, note) =
        if on_gpu { (None, "measured on a GPU; the cores' peak does not apply".into()) } else { cpu_peak() };
    say(match peak {
        Some(p) => format!(
            "FLOP rate (convolutions and linear layers; GFLOP/s = FLOPs per image × rate); peak {p:.0} GFLOP/s: {note}"
        ),
        None => format!(
            "FLOP rate (convolutions and linear layers; GFLOP/s = FLOPs per image × rate); peak unknown: {note}"
        ),
    });
    let mut gflops = BTreeMap::new();
    for (name, flops, rates) in works {
        if rates.is_empty() {
            continue;
        }
        let row: BTreeMap<String, f64> = rates.iter().map(|(k, v)| (k.clone(), flops * v / 1e9)).collect();
        let cells: Vec<String> = row
            .iter()
            .map(|(k, g)| match peak {
                Some(p) => format!("{k} {g:.1} ({:.0} %)", 100.0 * g / p),
                None => format!("{k} {g:.1}"),
            })
            .collect();
        say(format!("  {name:<27} {:>7.2} MFLOP/image   {}", flops / 1e6, cells.join(", ")));
        r.flops_per_image.insert(name.into(), flops);
        gflops.insert(name.to_string(), row);
    }
    r.gflop_per_s = gflops;
    r.peak_gflop_per_s = peak;
    r.peak_note = note;
}

/// The peak FLOP rate of the cores this process uses, from `/proc/cpuinfo`: cores × clock ×
/// FLOPs per cycle, the last from the widest vector unit with FMA, assuming two FMA pipes per
/// core (AVX-512: 64 single-precision FLOPs a cycle; AMD before family 26 (Zen 4) runs 512-bit
/// operations as two 256-bit halves: 32; AVX2 + FMA: 32; otherwise 8). An estimate, said as one.
fn cpu_peak() -> (Option<f64>, String) {
    let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
        return (None, "no /proc/cpuinfo".into());
    };
    let field = |key: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let (Some(mhz), Some(flags)) = (field("cpu MHz").and_then(|v| v.parse::<f64>().ok()), field("flags")) else {
        return (None, "no clock or flags in /proc/cpuinfo".into());
    };
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let amd = field("vendor_id").as_deref() == Some("AuthenticAMD");
    let family: u32 = field("cpu family").and_then(|v| v.parse().ok()).unwrap_or(0);
    let (per_cycle, unit) = if has("avx512f") && !(amd && family < 26) {
        (64.0, "AVX-512, 2 FMA pipes")
    } else if has("avx512f") || (has("avx2") && has("fma")) {
        (32.0, "256-bit FMA, 2 pipes")
    } else {
        (8.0, "SSE, no FMA")
    };
    let cores = rayon::current_num_threads() as f64;
    let peak = cores * mhz / 1e3 * per_cycle;
    (Some(peak), format!("{cores} cores × {:.2} GHz × {per_cycle} FLOPs/cycle ({unit}; an estimate)", mhz / 1e3))
}

/// MobileNetV2's rows: ImageNet inference at 224 px and the embedding step at 128 px, every
/// backend and PyTorch's two layouts alternating round by round, medians and medians of per-round
/// ratios against the faster PyTorch layout.
fn mobilenet_rows(
    args: &BenchArgs,
    devices: &[(BackendKind, stabilize_burn::Device)],
    torch: &mut Option<TorchServer>,
    r: &mut BenchResult,
    say: &dyn Fn(String),
) {
    use stabilize_burn::bench::{embed_step_throughput, mobilenet_infer_throughput};
    say(format!(
        "MobileNetV2: ImageNet inference at 224 px, batch {}; embedding fine-tuning step at 128 px, {} triplets (stem and 12 blocks frozen, clean + noisy copies, triplet + 0.1·Lstab); median of {} rounds × {} steps",
        args.mobilenet_batch, args.embed_triplets, args.rounds, args.mobilenet_steps
    ));
    let mut samples: BTreeMap<String, [Vec<f64>; 2]> = BTreeMap::new();
    for _ in 0..args.rounds {
        for (kind, device) in devices {
            let inf = mobilenet_infer_throughput(device, args.mobilenet_batch, args.mobilenet_steps, 224);
            let step = embed_step_throughput(device, args.embed_triplets, args.mobilenet_steps);
            let e = samples.entry(kind.to_string()).or_default();
            e[0].push(inf);
            e[1].push(step);
        }
        torch_round(
            torch,
            &mut samples,
            ["mnv2_infer", "mnv2_embed"],
            args.mobilenet_steps,
            "PyTorch MobileNetV2 reference",
        );
    }
    for (name, [inf, step]) in &samples {
        let (i, s) = (median(inf), median(step));
        say(format!("  {name:<21} inference {i:>7.1} img/s   embedding step {s:>7.1} crops/s"));
        r.mobilenet_infer_img_per_s.insert(name.clone(), i);
        r.embed_step_img_per_s.insert(name.clone(), s);
    }
    if let Some(pt) = samples.get("pytorch") {
        for (k, v) in samples.iter().filter(|(k, _)| !k.starts_with("pytorch")) {
            say(format!(
                "  {k} / pytorch: MobileNetV2 inference {:.2}x, embedding step {:.2}x (medians of per-round ratios)",
                ratio(&v[0], &pt[0]),
                ratio(&v[1], &pt[1])
            ));
        }
    }
}
