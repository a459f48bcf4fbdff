//! Typed errors of the engine. Every message names the bad input (file, field,
//! tensor) and what was expected, in lowercase without a trailing period.

use std::path::PathBuf;

/// Everything that can go wrong when loading a model or running it.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A config file could not be parsed or holds an invalid value.
    #[error("config {path}: {message}")]
    Config {
        /// The file (or `<memory>`).
        path: String,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A weight tensor is missing, unexpected or has the wrong shape or dtype.
    #[error("weights {path}: {message}")]
    Weights {
        /// The safetensors file.
        path: String,
        /// What is wrong, naming the tensor.
        message: String,
    },
    /// Model inputs are malformed (shape, dtype, NaN, out-of-range id).
    #[error("invalid input: {0}")]
    Input(String),
    /// Reading or writing a file failed.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error (shown in the message, so not a `source`).
        cause: std::io::Error,
    },
    /// A safetensors file is not in the safetensors format.
    #[error("{path}: not a valid safetensors file: {message}")]
    Safetensors {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// The device cannot be used or failed (no `cuda` feature, driver,
    /// compiler, an unsupported shape); the cause is kept.
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
    /// The live retrieval index refused a call (a bad config, a query or
    /// post of the wrong width).
    #[error("retrieval index: {0}")]
    Index(#[from] crate::index::IndexError),
    /// A tensor operation failed (a bug or an exhausted resource, not bad input).
    #[error("tensor op: {0}")]
    Tensor(#[from] candle_core::Error),
}

impl EngineError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            cause: source,
        }
    }
}

/// Result alias of the engine.
pub type Result<T> = std::result::Result<T, EngineError>;
