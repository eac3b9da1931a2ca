//! Evaluation protocols and metrics: classifier metrics ([`metrics`]), near-duplicate retrieval
//! metrics (PR, AP, CDFs; [`retrieval`]), the schemas of the classifier ([`classify`]), ImageNet
//! classifier on photos ([`imagenet`]) and embedding ([`embed`]) evaluations with the embedding
//! protocol itself (it takes the descriptors from the caller), the α/σ sweep's frontier ([`sweep`]), and the whole study that `reproduce`
//! runs, as a plan of stages ([`study`]).

pub mod classify;
pub mod embed;
pub mod fusion;
pub mod imagenet;
pub mod metrics;
pub mod retrieval;
pub mod study;
pub mod sweep;

pub use classify::ClassifyEval;
pub use embed::EmbedEval;
