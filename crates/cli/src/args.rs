//! What several commands share: where data comes from and which backend computes, the worker
//! count and the threshold checks, and the progress bars.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use stabilize_burn::BackendKind;
use stabilize_core::data::dirs;
use stabilize_core::data::fashion_mnist::FashionMnist;

/// The data dir in effect ([`dirs::data_dir`]); the first time an older version's `./data` is
/// used, a note on stderr says where it belongs now.
pub fn data_dir(explicit: Option<&std::path::Path>) -> PathBuf {
    static NOTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let (dir, note) = dirs::data_dir_and_note(explicit);
    if let Some(note) = note
        && !NOTED.swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        eprintln!("{note}");
    }
    dir
}

/// Where data comes from and which backend computes.
#[derive(clap::Args, Clone)]
pub struct RunArgs {
    /// burn backend (tch, cuda and wgpu need their cargo feature).
    #[arg(long, value_enum, default_value_t = BackendKind::default())]
    pub backend: BackendKind,
    /// Device of the backend: cpu, or cuda / cuda:N for an NVIDIA GPU with --backend tch (the
    /// PyTorch wheel's libtorch carries CUDA) or --backend cuda [default: the backend's own].
    #[arg(long)]
    pub device: Option<stabilize_burn::device::DeviceChoice>,
    /// Data dir [default: $STABILIZE_DATA, else $XDG_DATA_HOME/stabilize, else
    /// ~/.local/share/stabilize; an older version's ./data is still found].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl RunArgs {
    pub fn device(&self) -> Result<stabilize_burn::Device> {
        self.backend.device_on(self.device).map_err(anyhow::Error::msg)
    }

    /// The data dir in effect.
    pub fn data(&self) -> PathBuf {
        data_dir(self.data_dir.as_deref())
    }

    /// The `--backend`/`--device`/`--data-dir` arguments that reproduce these settings in a child command.
    pub fn to_args(&self, with_backend: bool) -> Vec<String> {
        let mut v = Vec::new();
        if with_backend {
            v.extend(["--backend".into(), self.backend.to_string()]);
            if let Some(d) = self.device {
                v.extend(["--device".into(), d.to_string()]);
            }
        }
        if let Some(d) = &self.data_dir {
            v.extend(["--data-dir".into(), d.display().to_string()]);
        }
        v
    }

    pub fn fashion_mnist(&self) -> Result<FashionMnist> {
        Ok(FashionMnist::load(&dirs::asset_dir(&self.data(), "fashion-mnist"))?)
    }
}

/// The descriptor a `--model` argument names: `default` (the shipped stabilized model,
/// [`crate::default_model`]), `pretrained` (torchvision's ImageNet MobileNetV2 features from the
/// data dir, at `input_size` px, 224 by default) or an embedding run folder (write `./default` or
/// `./pretrained` for a folder of that name). `input_size` is for the pretrained features only: a
/// model has its own.
pub fn model_spec(
    model: &str,
    input_size: Option<u32>,
    run: &RunArgs,
) -> Result<stabilize_burn::collection::ModelSpec> {
    use stabilize_burn::collection::{ModelSpec, PRETRAINED_INPUT};
    if model == "pretrained" {
        let weights = dirs::mobilenet_weights(&run.data())?;
        return Ok(ModelSpec::Pretrained { weights, input_size: input_size.unwrap_or(PRETRAINED_INPUT) });
    }
    if input_size.is_some() {
        bail!("--input-size is for --model pretrained; {model} has its own input size");
    }
    if model == "default" {
        return Ok(ModelSpec::Run(crate::default_model::ensure(&run.data())?));
    }
    let dir = PathBuf::from(model);
    if !dir.is_dir() {
        bail!("--model {model}: not a run folder (nor 'default' or 'pretrained')");
    }
    Ok(ModelSpec::Run(dir))
}

/// A spinner with a message (hidden when `quiet`).
pub fn spinner(quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    pb.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}").expect("valid template"));
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

/// A bar over `n` items of `what` with a message (hidden when `quiet`).
pub fn bar(n: usize, what: &str, quiet: bool) -> ProgressBar {
    let pb = if quiet { ProgressBar::hidden() } else { ProgressBar::new(n as u64) };
    let template =
        format!("[{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {what} ({{per_sec}}, ETA {{eta}}) {{msg}}");
    pb.set_style(ProgressStyle::with_template(&template).expect("valid template"));
    pb
}

/// A line above the bar, or on stderr when the bar is hidden (no terminal, `--json`).
pub fn log_line(pb: &ProgressBar, line: String) {
    if pb.is_hidden() { eprintln!("{line}") } else { pb.println(line) }
}

/// Checks `--precision` and `--threshold` values.
pub fn check_threshold_args(threshold: Option<f64>, precision: Option<f64>) -> Result<()> {
    if let Some(p) = precision
        && !(p > 0.0 && p <= 1.0)
    {
        bail!("--precision must be in (0, 1], got {p}");
    }
    if let Some(t) = threshold
        && !(t.is_finite() && t >= 0.0)
    {
        bail!("--threshold must be ≥ 0, got {t}");
    }
    Ok(())
}

/// Sets the global worker count (`--jobs`).
pub fn set_jobs(jobs: Option<usize>) -> Result<()> {
    if let Some(j) = jobs {
        if j == 0 {
            bail!("--jobs must be ≥ 1");
        }
        rayon::ThreadPoolBuilder::new().num_threads(j).build_global().context("setting the thread count")?;
    }
    Ok(())
}

/// Writes `value` as JSON to `path` atomically (pretty unless `compact`).
pub fn write_json(path: &Path, value: &impl serde::Serialize, compact: bool) -> Result<()> {
    let bytes = if compact { serde_json::to_vec(value)? } else { serde_json::to_vec_pretty(value)? };
    Ok(stabilize_core::fsutil::write_atomic(path, &bytes)?)
}

/// `--region-source`: where a region's descriptor comes from
/// ([`stabilize_core::image::regions::RegionSource`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RegionSourceArg {
    /// Each region cut out and embedded: 6× the forward passes.
    Crops,
    /// Each region pooled from the model's last feature map: no extra forward pass.
    Map,
    /// Each region pooled from the feature map of the image enlarged by 1/0.75: two forward
    /// passes, the region at a copy's scale.
    Zoom,
}

impl From<RegionSourceArg> for stabilize_core::image::regions::RegionSource {
    fn from(a: RegionSourceArg) -> Self {
        match a {
            RegionSourceArg::Crops => Self::Crops,
            RegionSourceArg::Map => Self::Map,
            RegionSourceArg::Zoom => Self::Zoom,
        }
    }
}
