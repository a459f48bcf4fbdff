//! How home mixer reaches Phoenix: the engine in this process, or a remote
//! `foryou phoenix serve` over gRPC (`--phoenix-addr`). Both speak the
//! `PhoenixRanker` / `PhoenixRetrieval` messages.

use async_trait::async_trait;
use foryou_proto::v1 as pb;
use foryou_proto::v1::phoenix_ranker_client::PhoenixRankerClient as RankerStub;
use foryou_proto::v1::phoenix_retrieval_client::PhoenixRetrievalClient as RetrievalStub;
use tonic::transport::Channel;

use super::ClientError;

/// The ranker.
#[async_trait]
pub trait PhoenixRankerClient: Send + Sync + std::fmt::Debug {
    /// Per-action probabilities for each candidate.
    async fn predict(&self, req: pb::PredictRequest) -> Result<pb::PredictResponse, ClientError>;
}

/// The retriever.
#[async_trait]
pub trait PhoenixRetrievalClient: Send + Sync + std::fmt::Debug {
    /// Top-k posts for the viewer.
    async fn retrieve(&self, req: pb::RetrieveRequest)
    -> Result<pb::RetrieveResponse, ClientError>;
}

/// A remote Phoenix (both services on one address); connects lazily.
#[derive(Debug, Clone)]
pub struct RemotePhoenix {
    ranker: RankerStub<Channel>,
    retrieval: RetrievalStub<Channel>,
}

impl RemotePhoenix {
    /// A client of `addr` with a per-call timeout.
    pub fn new(
        addr: &str,
        timeout: std::time::Duration,
        max_message_bytes: usize,
    ) -> Result<Self, ClientError> {
        let channel = super::error::lazy_channel("phoenix", addr, timeout)?;
        Ok(Self {
            ranker: RankerStub::new(channel.clone())
                .max_decoding_message_size(max_message_bytes)
                .max_encoding_message_size(max_message_bytes),
            retrieval: RetrievalStub::new(channel)
                .max_decoding_message_size(max_message_bytes)
                .max_encoding_message_size(max_message_bytes),
        })
    }
}

fn status(s: tonic::Status) -> ClientError {
    super::error::from_status("phoenix", s)
}

#[async_trait]
impl PhoenixRankerClient for RemotePhoenix {
    async fn predict(&self, req: pb::PredictRequest) -> Result<pb::PredictResponse, ClientError> {
        self.ranker
            .clone()
            .predict(req)
            .await
            .map(tonic::Response::into_inner)
            .map_err(status)
    }
}

#[async_trait]
impl PhoenixRetrievalClient for RemotePhoenix {
    async fn retrieve(
        &self,
        req: pb::RetrieveRequest,
    ) -> Result<pb::RetrieveResponse, ClientError> {
        self.retrieval
            .clone()
            .retrieve(req)
            .await
            .map(tonic::Response::into_inner)
            .map_err(status)
    }
}

/// The engine of this process, called directly (no transport).
#[derive(Debug, Clone)]
pub struct EmbeddedPhoenix(pub crate::grpc::phoenix::PhoenixService);

#[async_trait]
impl PhoenixRankerClient for EmbeddedPhoenix {
    async fn predict(&self, req: pb::PredictRequest) -> Result<pb::PredictResponse, ClientError> {
        self.0
            .predict_inner(req, None)
            .await
            .map_err(|e| ClientError::new("phoenix", e.to_string()))
    }
}

#[async_trait]
impl PhoenixRetrievalClient for EmbeddedPhoenix {
    async fn retrieve(
        &self,
        req: pb::RetrieveRequest,
    ) -> Result<pb::RetrieveResponse, ClientError> {
        self.0
            .retrieve_inner(req, None)
            .await
            .map_err(|e| ClientError::new("phoenix", e.to_string()))
    }
}
