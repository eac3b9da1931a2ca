//! `stabilize report`: the self-contained HTML report from evaluated run folders.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::sweep::SWEEP_JSON;

pub fn run(runs: &[PathBuf], out: &Path, sweep: Option<&Path>) -> Result<()> {
    use stabilize_core::report::{ReportMeta, Run, render, write};
    let runs: Vec<Run> = runs.iter().map(|d| Run::load(d)).collect::<Result<_, _>>()?;
    let meta = ReportMeta {
        title: "stabilize: stability training report".into(),
        generated: humantime_now(),
        version: env!("CARGO_PKG_VERSION").into(),
        notes: Vec::new(),
        sweep: match sweep {
            Some(dir) => {
                let path = dir.join(SWEEP_JSON);
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("{}: not a sweep folder (run `stabilize sweep --out`)", path.display()))?;
                Some(serde_json::from_slice(&bytes).with_context(|| format!("{}: unreadable", path.display()))?)
            }
            None => None,
        },
    };
    let rendered = render(&runs, &meta)?;
    let figures = write(&rendered, out)?;
    println!(
        "wrote {} ({} figures, PNG copies in {})",
        out.display(),
        figures.len(),
        figures.first().and_then(|p| p.parent()).map(|p| p.display().to_string()).unwrap_or_default()
    );
    Ok(())
}

/// Seconds since the Unix epoch as an ISO-8601 UTC timestamp.
fn humantime_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}
