//! `stabilize average`: the mean of the weights of embedding runs of one recipe, trained with
//! other seeds (`stabilize_burn::average`), as a new run folder.

use std::path::PathBuf;

use anyhow::Result;
use stabilize_burn::average::average_embedding_runs;

use crate::args::RunArgs;

/// `stabilize average` arguments.
#[derive(clap::Args)]
pub struct AverageArgs {
    /// Finished embedding run folders of one recipe (configs equal but for the seed); two or more.
    #[arg(required = true, num_args = 2..)]
    runs: Vec<PathBuf>,
    /// The new run folder (its `config.json` is the first run's; `average.json` names the runs).
    #[arg(long)]
    out: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    run_args: RunArgs,
}

pub fn run(a: AverageArgs) -> Result<()> {
    let device = a.run_args.device()?;
    let record = average_embedding_runs(&a.runs, &a.out, &device)?;
    if a.json {
        println!("{}", serde_json::to_string(&record)?);
    } else {
        println!(
            "averaged {} runs (seeds {:?}) into {}; evaluate it with `stabilize eval embed --model {}`",
            record.runs.len(),
            record.seeds,
            a.out.display(),
            a.out.display()
        );
    }
    Ok(())
}
