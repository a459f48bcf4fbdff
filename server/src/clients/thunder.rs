//! How home mixer reaches Thunder: in-process (`foryou serve`'s embedded
//! store) or over gRPC (`--thunder-addr`).

use std::sync::Arc;

use async_trait::async_trait;
use foryou_proto::v1 as pb;
use foryou_proto::v1::in_network_posts_service_client::InNetworkPostsServiceClient;
use tonic::transport::Channel;

use super::ClientError;
use super::breaker::{BreakerPolicy, CircuitBreaker, call_prober};
use crate::grpc::in_network_posts::ThunderService;

/// Asks Thunder for in-network posts.
#[async_trait]
pub trait InNetworkPostsClient: Send + Sync + std::fmt::Debug {
    /// GetInNetworkPosts.
    async fn get_in_network_posts(
        &self,
        req: pb::GetInNetworkPostsRequest,
    ) -> Result<pb::GetInNetworkPostsResponse, ClientError>;
}

/// Calls the Thunder service of this process directly (same validation,
/// permits and retrieval as over the wire, no transport).
#[derive(Debug, Clone)]
pub struct EmbeddedThunder(pub ThunderService);

#[async_trait]
impl InNetworkPostsClient for EmbeddedThunder {
    async fn get_in_network_posts(
        &self,
        req: pb::GetInNetworkPostsRequest,
    ) -> Result<pb::GetInNetworkPostsResponse, ClientError> {
        self.0
            .get_in_network_posts_inner(req)
            .await
            .map_err(|e| ClientError::new("thunder", e.to_string()))
    }
}

/// A remote Thunder over gRPC; connects lazily, so a Thunder that is down
/// fails each request (ThunderSource then contributes nothing) instead of
/// the start-up. Calls go through a [`CircuitBreaker`] named `thunder`:
/// once Thunder keeps failing or timing out, requests stop waiting on it,
/// and a one-author query probes it in the background (inside a Tokio
/// runtime) until it answers.
#[derive(Debug, Clone)]
pub struct RemoteThunder {
    client: InNetworkPostsServiceClient<Channel>,
    breaker: Arc<CircuitBreaker>,
}

impl RemoteThunder {
    /// A client of `addr` (e.g. `http://10.0.0.5:50051`) with a per-call
    /// timeout and a circuit breaker with `breaker`'s policy; an `https://`
    /// address needs `tls`.
    pub fn new(
        addr: &str,
        timeout: std::time::Duration,
        max_message_bytes: usize,
        breaker: BreakerPolicy,
        tls: Option<&tonic::transport::ClientTlsConfig>,
    ) -> Result<Self, ClientError> {
        let channel = super::error::lazy_channel("thunder", addr, timeout, tls)?;
        let client = InNetworkPostsServiceClient::new(channel)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes)
            .accept_compressed(tonic::codec::CompressionEncoding::Zstd);
        let breaker = Arc::new(CircuitBreaker::new("thunder", "thunder", breaker));
        let probe_client = client.clone();
        breaker.probe_in_background(call_prober(move || {
            let mut c = probe_client.clone();
            async move {
                // One author, one post: Thunder's cheapest real query.
                let probe = pb::GetInNetworkPostsRequest {
                    user_id: 1,
                    following_user_ids: vec![1],
                    max_results: 1,
                    ..Default::default()
                };
                c.get_in_network_posts(probe).await.map(|_| ())
            }
        }));
        Ok(Self { client, breaker })
    }

    /// The circuit breaker of GetInNetworkPosts.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }
}

#[async_trait]
impl InNetworkPostsClient for RemoteThunder {
    async fn get_in_network_posts(
        &self,
        req: pb::GetInNetworkPostsRequest,
    ) -> Result<pb::GetInNetworkPostsResponse, ClientError> {
        let mut client = self.client.clone();
        self.breaker
            .call(|| async move { client.get_in_network_posts(req).await })
            .await
    }
}
