//! How home mixer reaches Thunder: in-process (`foryou serve`'s embedded
//! store) or over gRPC (`--thunder-addr`).

use async_trait::async_trait;
use foryou_proto::v1 as pb;
use foryou_proto::v1::in_network_posts_service_client::InNetworkPostsServiceClient;
use tonic::transport::Channel;

use super::ClientError;
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
/// the start-up.
#[derive(Debug, Clone)]
pub struct RemoteThunder {
    client: InNetworkPostsServiceClient<Channel>,
}

impl RemoteThunder {
    /// A client of `addr` (e.g. `http://10.0.0.5:50051`) with a per-call timeout.
    pub fn new(
        addr: &str,
        timeout: std::time::Duration,
        max_message_bytes: usize,
    ) -> Result<Self, ClientError> {
        let channel = super::error::lazy_channel("thunder", addr, timeout)?;
        let client = InNetworkPostsServiceClient::new(channel)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes)
            .accept_compressed(tonic::codec::CompressionEncoding::Zstd);
        Ok(Self { client })
    }
}

#[async_trait]
impl InNetworkPostsClient for RemoteThunder {
    async fn get_in_network_posts(
        &self,
        req: pb::GetInNetworkPostsRequest,
    ) -> Result<pb::GetInNetworkPostsResponse, ClientError> {
        self.client
            .clone()
            .get_in_network_posts(req)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| super::error::from_status("thunder", s))
    }
}
