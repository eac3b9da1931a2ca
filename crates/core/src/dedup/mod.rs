//! Near-duplicate search: pairs under a threshold and their clusters with a suggested keep
//! ([`clusters`]), the per-model embedding cache ([`cache`]), and the persistent HNSW index with
//! its scale benchmark ([`index`], [`index_bench`]; feature `index`), and moving the
//! duplicates out of the way with an undo ([`moves`]).

#[cfg(feature = "index")]
pub mod ann;
pub mod cache;
pub mod clusters;
#[cfg(feature = "index")]
pub mod index;
#[cfg(all(feature = "index", feature = "bench"))]
pub mod index_bench;
pub mod keep;
pub mod moves;
#[cfg(feature = "report")]
pub mod review;
pub mod shards;

pub use clusters::{Cluster, FileInfo, clusters, identical_groups, library_clusters, pairs_touching, pairs_under};
