//! Evaluation with a model: classifiers under distortions and the corruption suite
//! ([`classify`]), embedding runs on the held-out photos beside the pretrained features and the
//! hashes ([`embed`]), the fit of how a model is fused with pHash, on validation photos
//! ([`fusion`]), and the ImageNet classifier's stability on the held-out photos, the original
//! network beside a stabilized one ([`imagenet`]). The result types are the core's
//! ([`stabilize_core::eval`]).

pub mod classify;
pub mod embed;
pub mod fusion;
pub mod imagenet;

pub use classify::{evaluate_classifier, evaluate_classifier_ops, evaluate_corruptions};
pub use embed::{
    EmbeddingEvaluation, EvalError, EvalEvent, EvalExtras, evaluate_embedding_run, read_embed_eval, write_examples,
};
pub use fusion::fit_fusion;
pub use imagenet::evaluate_imagenet;
