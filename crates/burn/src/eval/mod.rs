//! Evaluation with a model: classifiers under distortions and the corruption suite
//! ([`classify`]), embedding runs on the held-out photos beside the pretrained features and the
//! hashes ([`embed`]), and the fit of how a model is fused with pHash, on training photos ([`fusion`]). The result types are the core's ([`stabilize_core::eval`]).

pub mod classify;
pub mod embed;
pub mod fusion;

pub use classify::{evaluate_classifier, evaluate_classifier_ops, evaluate_corruptions};
pub use embed::{EmbeddingEvaluation, EvalError, EvalEvent, evaluate_embedding_run, read_embed_eval, write_examples};
pub use fusion::fit_fusion;
