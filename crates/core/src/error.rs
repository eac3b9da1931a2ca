//! One error type for the core; every variant renders as a one-line message for the CLI.

use std::path::PathBuf;

/// Errors of the framework-free core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot decode image: {reason}")]
    Decode { path: PathBuf, reason: String },
    #[error("invalid image: {0}")]
    InvalidImage(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("bad distortion spec '{spec}': {reason}")]
    Spec { spec: String, reason: String },
    #[error("{path}: not a valid IDX file: {reason}")]
    Idx { path: PathBuf, reason: String },
    #[error("JPEG codec: {0}")]
    Jpeg(String),
    #[error("resize: {0}")]
    Resize(String),
    #[error("{0}")]
    Asset(String),
    #[error("checksum mismatch for {path}: expected sha256 {expected}, got {actual}")]
    Checksum { path: PathBuf, expected: String, actual: String },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

/// `.with_path(p)` on I/O results.
pub trait IoContext<T> {
    fn with_path(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::result::Result<T, std::io::Error> {
    fn with_path(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
