//! The names of the files in a run folder, in one place: training writes them, evaluation, the
//! report, `dupes` and `index` read them.
//!
//! ```text
//! RUN/config.json             the training settings (the task's config)
//! RUN/checkpoint/state.json   what is done, and the history; points at the newest checkpoint
//! RUN/checkpoint/*.bpk        the newest checkpoint's model and optimiser
//! RUN/model.bpk               the final model (inference mode)
//! RUN/metrics.json            the training summary
//! RUN/eval.json               the evaluation (`eval classify` / `eval embed`)
//! RUN/fusion.json           how the model is fused with pHash, fitted on validation photos (`eval fusion`)
//! RUN/eval-corruptions.json   the corruption suite (`eval classify --suite corruptions`)
//! RUN/examples/examples.json  where a model and its baseline disagree most (`eval embed --baseline`)
//! RUN/run.json                the command line and wall time (`reproduce`)
//! ```

pub const CONFIG: &str = "config.json";
pub const CHECKPOINT_DIR: &str = "checkpoint";
pub const STATE: &str = "checkpoint/state.json";
pub const MODEL: &str = "model.bpk";
pub const METRICS: &str = "metrics.json";
pub const EVAL: &str = "eval.json";
pub const FUSION: &str = "fusion.json";
pub const EVAL_CORRUPTIONS: &str = "eval-corruptions.json";
/// A Fashion-MNIST run's evaluation on its validation images (`eval classify --on validation`).
pub const EVAL_VALIDATION: &str = "eval-validation.json";
pub const EXAMPLES_DIR: &str = "examples";
pub const EXAMPLES: &str = "examples/examples.json";
pub const RUN: &str = "run.json";
