//! The whole study that `stabilize reproduce` runs, as data: the stages (each a `stabilize`
//! command line and the file whose presence means it is done), in order. The CLI runs them as
//! child processes; a library user can read or run the same plan.
//!
//! The paper's protocol: a baseline (α = 0) and a stabilized run with the same data, seed and
//! budget, each evaluated, then the report. The classifier follows the paper's fine-tuning: a
//! network trained first (`classify-pretrained`, α = 0), then two copies of it fine-tuned the same
//! way, α = 0 and KL α = [`FINETUNE_ALPHA`] with `x'` from real distortions
//! ([`FINETUNE_PERTURB`]); the report compares the two fine-tunes. The embedding: MobileNetV2
//! fine-tuned on photo triplets, the paper's α 0.1 and σ 0.2.

use std::path::{Path, PathBuf};

use crate::run_files;

/// The classifier distortions of the study (the paper's JPEG-q, THUMB-s, CROP-o and noise).
pub const CLASSIFY_DISTORTIONS: &str =
    "jpeg:10,jpeg:30,jpeg:50,jpeg:70,jpeg:90,thumb:25,thumb:50,thumb:75,crop:2,crop:4,noise:0.05,noise:0.1";

/// The run folders of the study under its output folder, in report order.
pub const RUNS: [&str; 4] = ["classify-baseline", "classify-stabilized", "embed-baseline", "embed-stabilized"];

/// The classifier both fine-tunes start from (not in the report: the fine-tunes are compared).
pub const PRETRAINED: &str = "classify-pretrained";

/// `x'` of the stabilizing fine-tune (the README's fine-tune table).
pub const FINETUNE_PERTURB: &str = "jpeg:10-90,thumb:25-75,crop:0-4,noise:0-0.1";

/// α of the stabilizing fine-tune: the largest of 0.5, 1 and 2 whose clean cost on 10,000
/// validation images (training images kept out, two seeds) was ≤ 0.15 pt (the README; α = 2,
/// used until 2026-12-04, cost 0.2–0.6 pt of clean top-1 over three seeds).
pub const FINETUNE_ALPHA: &str = "0.5";

/// One stage: `stabilize ARGS…`, done when `done` exists.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    pub name: &'static str,
    pub args: Vec<String>,
    /// The file whose presence means the stage is done (none for `fetch`, which is a no-op when
    /// the assets are present).
    pub done: Option<PathBuf>,
    /// A training stage's run folder (for `--resume` and the `run.json` record).
    pub run_dir: Option<PathBuf>,
}

impl Stage {
    pub fn is_done(&self) -> bool {
        self.done.as_ref().is_some_and(|d| d.is_file())
    }

    /// The stage's arguments, with `--resume` when a training stage has a checkpoint but no final
    /// model.
    pub fn command(&self) -> Vec<String> {
        let mut args = self.args.clone();
        if let Some(dir) = &self.run_dir
            && dir.join(run_files::STATE).is_file()
            && !self.is_done()
        {
            args.push("--resume".into());
        }
        args
    }

    /// Whether the stage takes `--backend` (everything but `fetch`).
    pub fn uses_backend(&self) -> bool {
        self.args.first().is_none_or(|a| a != "fetch")
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// The stages of the study into `out`; `quick` uses subsets, fewer steps and 64-px embeddings.
pub fn stages(quick: bool, out: &Path) -> Vec<Stage> {
    let (cls_epochs, ft_epochs, cls_subset) = if quick { ("2", "1", Some("12000")) } else { ("10", "2", None) };
    let (emb_steps, emb_size, emb_every) = if quick { ("40", "64", "20") } else { ("300", "128", "50") };
    let mut stages = vec![Stage { name: "fetch assets", args: s(&["fetch", "all"]), done: None, run_dir: None }];
    let subset = |args: &mut Vec<String>| {
        if let Some(n) = cls_subset {
            args.extend(s(&["--train-subset", n]));
        }
    };
    let pre = out.join(PRETRAINED);
    let mut args = s(&["train", "classify", "--alpha", "0", "--epochs", cls_epochs, "--seed", "0"]);
    subset(&mut args);
    args.extend(s(&["--out", &pre.display().to_string()]));
    let model = Some(pre.join(run_files::MODEL));
    stages.push(Stage { name: "train classifier", args, done: model, run_dir: Some(pre.clone()) });
    for (name, alpha) in [(RUNS[0], "0"), (RUNS[1], FINETUNE_ALPHA)] {
        let dir = out.join(name);
        let d = dir.display().to_string();
        let mut args = s(&[
            "train",
            "classify",
            "--init",
            &pre.display().to_string(),
            "--alpha",
            alpha,
            "--loss",
            "kl",
            "--perturb",
            FINETUNE_PERTURB,
            "--epochs",
            ft_epochs,
            "--lr",
            "3e-4",
            "--seed",
            "0",
        ]);
        subset(&mut args);
        args.extend(s(&["--out", &d]));
        let model = Some(dir.join(run_files::MODEL));
        stages.push(Stage { name: "fine-tune classifier", args, done: model, run_dir: Some(dir.clone()) });
        stages.push(Stage {
            name: "evaluate classifier",
            args: s(&["eval", "classify", "--model", &d, "--distortions", CLASSIFY_DISTORTIONS]),
            done: Some(dir.join(run_files::EVAL)),
            run_dir: None,
        });
    }
    for (name, alpha) in [(RUNS[2], "0"), (RUNS[3], "0.1")] {
        let dir = out.join(name);
        let d = dir.display().to_string();
        let args = s(&[
            "train",
            "embed",
            "--init",
            "mobilenet-v2",
            "--alpha",
            alpha,
            "--sigma",
            "0.2",
            "--steps",
            emb_steps,
            "--input-size",
            emb_size,
            "--checkpoint-every",
            emb_every,
            "--seed",
            "0",
            "--out",
            &d,
        ]);
        stages.push(Stage {
            name: "fine-tune embedding",
            args,
            done: Some(dir.join(run_files::MODEL)),
            run_dir: Some(dir.clone()),
        });
        let mut eval = s(&["eval", "embed", "--model", &d]);
        if alpha != "0" {
            eval.extend(s(&["--baseline", &out.join(RUNS[2]).display().to_string()]));
        }
        stages.push(Stage {
            name: "evaluate embedding",
            args: eval,
            done: Some(dir.join(run_files::EVAL)),
            run_dir: None,
        });
    }
    stages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_pairs_each_baseline_with_its_stabilized_run_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let st = stages(true, dir.path());
        assert_eq!(st.len(), 10);
        assert_eq!(st[0].args, ["fetch", "all"]);
        assert!(!st[0].uses_backend() && st[1].uses_backend());
        let joined: Vec<String> = st.iter().map(|s| s.args.join(" ")).collect();
        // The network both fine-tunes start from, then the two fine-tunes: same budget, same x'
        // draws, α 0 and 0.5.
        assert!(
            joined[1].contains("--alpha 0 ") && joined[1].contains("--epochs 2 ") && joined[1].contains(PRETRAINED)
        );
        for (k, alpha) in [(2, "--alpha 0 "), (4, "--alpha 0.5 ")] {
            assert!(joined[k].contains(alpha) && joined[k].contains("--epochs 1 "), "{}", joined[k]);
            assert!(joined[k].contains(&format!("--init {}", dir.path().join(PRETRAINED).display())));
            assert!(joined[k].contains(FINETUNE_PERTURB) && joined[k].contains("--train-subset 12000"));
        }
        assert_eq!(
            joined[4].replace("--alpha 0.5 ", ""),
            joined[2].replace("--alpha 0 ", "").replace(RUNS[0], RUNS[1])
        );
        assert!(joined[8].contains("--alpha 0.1") && joined[8].contains("--input-size 64"));
        assert!(joined[9].contains("--baseline") && joined[9].contains("embed-baseline"));
        let full = stages(false, dir.path());
        assert!(full.iter().all(|s| !s.args.contains(&"--train-subset".to_string())));
        assert!(full[1].args.join(" ").contains("--epochs 10") && full[2].args.join(" ").contains("--epochs 2"));
        // A training stage with a checkpoint and no model resumes; with the model it is done.
        let run = dir.path().join(PRETRAINED);
        std::fs::create_dir_all(run.join(run_files::CHECKPOINT_DIR)).unwrap();
        std::fs::write(run.join(run_files::STATE), "{}").unwrap();
        assert_eq!(st[1].command().last().map(String::as_str), Some("--resume"));
        std::fs::write(run.join(run_files::MODEL), "").unwrap();
        assert!(st[1].is_done() && !st[1].command().contains(&"--resume".to_string()));
    }
}
