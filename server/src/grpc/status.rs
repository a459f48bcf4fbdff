//! Every error a service can return, and its gRPC status. Handlers return
//! these; nothing else builds a `Status`.

use tonic::{Code, Status};

use super::scored_posts::QueryError;

/// A request-level failure.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// All request permits are taken.
    #[error("server at capacity, please retry")]
    Overloaded,
    /// The request breaks a documented limit or rule.
    #[error("{0}")]
    InvalidArgument(String),
    /// A dependency or worker failed.
    #[error("{0}")]
    Internal(String),
    /// The request's deadline passed before its compute started.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The caller's stream failed mid-way.
    #[error("{0}")]
    Stream(Status),
}

impl From<QueryError> for ServiceError {
    /// Every refused GetScoredPosts request is the caller's to fix.
    fn from(e: QueryError) -> Self {
        ServiceError::InvalidArgument(e.to_string())
    }
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Overloaded => Status::new(Code::ResourceExhausted, e.to_string()),
            ServiceError::InvalidArgument(m) => Status::invalid_argument(m),
            ServiceError::Internal(m) => Status::internal(m),
            ServiceError::DeadlineExceeded(m) => Status::deadline_exceeded(m),
            ServiceError::Stream(s) => s,
        }
    }
}
