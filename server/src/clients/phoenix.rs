//! How home mixer reaches Phoenix: the engine in this process, or a remote
//! `foryou phoenix serve` over gRPC (`--phoenix-addr`). Both speak the
//! `PhoenixRanker` / `PhoenixRetrieval` messages.

use std::sync::Arc;

use async_trait::async_trait;
use foryou_proto::v1 as pb;
use foryou_proto::v1::phoenix_ranker_client::PhoenixRankerClient as RankerStub;
use foryou_proto::v1::phoenix_retrieval_client::PhoenixRetrievalClient as RetrievalStub;
use tonic::transport::Channel;

use super::ClientError;
use super::breaker::{BreakerPolicy, CircuitBreaker, call_prober};

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
///
/// Each gRPC service has its own [`CircuitBreaker`], `phoenix_ranker`
/// (Predict) and `phoenix_retrieval` (Retrieve): the two run on separate
/// batchers with separate queues in the engine and fail apart (a ranker
/// timing out under load leaves retrieval answering), so one tripping
/// does not cut the other off. A Phoenix that hangs altogether trips both
/// after the same requests, since each feed request calls each once.
#[derive(Debug, Clone)]
pub struct RemotePhoenix {
    ranker: RankerStub<Channel>,
    retrieval: RetrievalStub<Channel>,
    ranker_breaker: Arc<CircuitBreaker>,
    retrieval_breaker: Arc<CircuitBreaker>,
}

impl RemotePhoenix {
    /// A client of `addr` with a per-call timeout and a circuit breaker per
    /// service with `breaker`'s policy; an `https://` address needs `tls`.
    pub fn new(
        addr: &str,
        timeout: std::time::Duration,
        max_message_bytes: usize,
        breaker: BreakerPolicy,
        tls: Option<&tonic::transport::ClientTlsConfig>,
    ) -> Result<Self, ClientError> {
        let channel = super::error::lazy_channel("phoenix", addr, timeout, tls)?;
        let ranker = RankerStub::new(channel.clone())
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes);
        let retrieval = RetrievalStub::new(channel)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes);
        let ranker_breaker = Arc::new(CircuitBreaker::new("phoenix_ranker", "phoenix", breaker));
        let retrieval_breaker =
            Arc::new(CircuitBreaker::new("phoenix_retrieval", "phoenix", breaker));
        // Background probes while open: one candidate, one post.
        let stub = ranker.clone();
        ranker_breaker.probe_in_background(call_prober(move || {
            let mut c = stub.clone();
            async move {
                let probe = pb::PredictRequest {
                    user_id: 1,
                    candidates: vec![pb::RankCandidate {
                        post_id: 1,
                        author_id: 1,
                        ..Default::default()
                    }],
                    ..Default::default()
                };
                c.predict(probe).await.map(|_| ())
            }
        }));
        let stub = retrieval.clone();
        retrieval_breaker.probe_in_background(call_prober(move || {
            let mut c = stub.clone();
            async move {
                let probe = pb::RetrieveRequest {
                    user_id: 1,
                    top_k: 1,
                    ..Default::default()
                };
                c.retrieve(probe).await.map(|_| ())
            }
        }));
        Ok(Self {
            ranker,
            retrieval,
            ranker_breaker,
            retrieval_breaker,
        })
    }

    /// The circuit breaker of Predict.
    pub fn ranker_breaker(&self) -> &CircuitBreaker {
        &self.ranker_breaker
    }

    /// The circuit breaker of Retrieve.
    pub fn retrieval_breaker(&self) -> &CircuitBreaker {
        &self.retrieval_breaker
    }
}

#[async_trait]
impl PhoenixRankerClient for RemotePhoenix {
    async fn predict(&self, req: pb::PredictRequest) -> Result<pb::PredictResponse, ClientError> {
        let mut ranker = self.ranker.clone();
        self.ranker_breaker
            .call(|| async move { ranker.predict(req).await })
            .await
    }
}

#[async_trait]
impl PhoenixRetrievalClient for RemotePhoenix {
    async fn retrieve(
        &self,
        req: pb::RetrieveRequest,
    ) -> Result<pb::RetrieveResponse, ClientError> {
        let mut retrieval = self.retrieval.clone();
        self.retrieval_breaker
            .call(|| async move { retrieval.retrieve(req).await })
            .await
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
