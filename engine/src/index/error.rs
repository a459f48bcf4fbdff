//! Typed errors of the live index: each names the bad value and what was
//! expected, in lowercase without a trailing period.

/// What a live-index call can refuse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IndexError {
    /// A configuration value is out of range.
    #[error("index config {field} = {value}: expected {expected}")]
    Config {
        /// The field.
        field: &'static str,
        /// Its value, as written.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
    /// A post's representation has the wrong width.
    #[error("post {post_id} has a representation of {len} values, expected {dim}")]
    RepresentationWidth {
        /// The post.
        post_id: i64,
        /// Values given.
        len: usize,
        /// The index's width D.
        dim: usize,
    },
    /// A post's representation holds NaN or an infinity.
    #[error("post {post_id} has a non-finite representation value at {position}")]
    NonFinite {
        /// The post.
        post_id: i64,
        /// Position of the first bad value.
        position: usize,
    },
    /// The query matrix does not hold one row of width D per query.
    #[error("{values} query values for {queries} queries of width {dim}")]
    QueryShape {
        /// Values given.
        values: usize,
        /// Queries given.
        queries: usize,
        /// The index's width D.
        dim: usize,
    },
    /// The device holding sealed segments failed (out of memory, a lost
    /// context); the search is not answered from a partial index.
    #[error("index device: {0}")]
    Device(String),
}
