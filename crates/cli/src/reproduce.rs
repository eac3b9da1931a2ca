//! `stabilize reproduce`: runs the study's stages ([`stabilize_core::eval::study`]) as child
//! processes of this executable, skipping finished ones and resuming interrupted trainings, then
//! renders the report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use stabilize_core::eval::study::{RUNS, stages};
use stabilize_core::run_files;

use crate::args::{RunArgs, write_json};

pub fn run(quick: bool, out: &Path, run: &RunArgs) -> Result<()> {
    let exe = std::env::current_exe().context("locating the stabilize executable")?;
    stabilize_core::fsutil::ensure_writable_dir(out).with_context(|| format!("output folder {}", out.display()))?;
    let stages = stages(quick, out);
    let total = stages.len() + 1;
    let started = Instant::now();
    for (i, st) in stages.iter().enumerate() {
        if st.is_done() {
            let done = st.done.as_ref().map(|d| d.display().to_string()).unwrap_or_default();
            eprintln!("[{}/{total}] {}: done already ({done}), skipped", i + 1, st.name);
            continue;
        }
        let mut args = st.command();
        args.extend(run.to_args(st.uses_backend()));
        let line = format!("stabilize {}", args.join(" "));
        eprintln!("[{}/{total}] {}: {line}", i + 1, st.name);
        let t = Instant::now();
        let status =
            std::process::Command::new(&exe).args(&args).status().with_context(|| format!("starting {line}"))?;
        if !status.success() {
            bail!(
                "stage {}/{total} ({}) failed ({status}); earlier stages' results are kept in {}; re-run to continue",
                i + 1,
                st.name,
                out.display()
            );
        }
        if let Some(dir) = &st.run_dir {
            let record = serde_json::json!({ "command": line, "seconds": t.elapsed().as_secs_f64() });
            write_json(&dir.join(run_files::RUN), &record, false)?;
        }
    }
    eprintln!("[{total}/{total}] report");
    let runs: Vec<PathBuf> = RUNS.iter().map(|n| out.join(n)).collect();
    let report = out.join("report.html");
    crate::report::run(&runs, &report, None).context("stage report failed; the runs are kept")?;
    eprintln!("reproduce finished in {:.0}s; open {}", started.elapsed().as_secs_f64(), report.display());
    Ok(())
}
