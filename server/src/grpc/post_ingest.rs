//! [`IndexIngestService`]: `IngestEvents` for a Phoenix server of its own
//! (`foryou phoenix serve`), so the same post stream that feeds Thunder
//! (`foryou thunder replay --addr`, a producer's stream) also feeds the
//! retrieval index when the roles run apart. It keeps no posts:
//! `GetInNetworkPosts` is UNIMPLEMENTED.
//!
//! The summary counts what was handed to the index: `creates_applied` are
//! the creates it will encode (not retweets), `deletes_applied` the
//! deletes, `skipped` the malformed events and retweets. The index's own
//! outcomes (a replayed post, one past retention) show in its metrics
//! (`foryou_index_posts_offered_total`), since it applies them after the
//! acknowledgment.

use std::sync::Arc;

use foryou_proto::v1 as pb;
use foryou_proto::v1::in_network_posts_service_server::{
    InNetworkPostsService, InNetworkPostsServiceServer,
};
use tonic::{Request, Response, Status, Streaming};

use super::in_network_posts::{EventBatches, IngestStream};
use super::status::ServiceError;
use crate::phoenix::live_retrieval::indexed;
use crate::phoenix::{IndexedPost, LiveRetrieval};
use crate::thunder::events::PostEvent;

/// Events handed to the index per blocking call.
pub const INGEST_BATCH: usize = 1000;

/// Posts stream into a Phoenix server's live index.
#[derive(Debug, Clone)]
pub struct IndexIngestService {
    live: Arc<LiveRetrieval>,
    min_video_duration_ms: u32,
}

impl IndexIngestService {
    /// A service feeding `live`.
    pub fn new(live: Arc<LiveRetrieval>) -> Self {
        Self {
            live,
            min_video_duration_ms: crate::thunder::ThunderParams::default().min_video_duration_ms,
        }
    }

    /// The tonic server, with message limits.
    pub fn into_server(
        self,
        limits: super::limits::MessageLimits,
    ) -> InNetworkPostsServiceServer<Self> {
        InNetworkPostsServiceServer::new(self)
            .max_decoding_message_size(limits.request_bytes)
            .max_encoding_message_size(limits.response_bytes)
    }

    /// Hands a stream's events to the index in batches of
    /// [`INGEST_BATCH`]; malformed events are counted, logged and skipped.
    /// Acknowledges once every batch is queued for the encoder.
    pub async fn ingest_inner(
        &self,
        stream: impl IngestStream,
    ) -> Result<pb::IngestSummary, ServiceError> {
        let mut batches = EventBatches::new(stream, self.min_video_duration_ms, INGEST_BATCH);
        let (mut creates_sent, mut deletes_sent, mut retweets) = (0u64, 0u64, 0u64);
        while let Some(events) = batches.next_batch().await? {
            let (mut creates, mut deletes) = (Vec::<IndexedPost>::new(), Vec::new());
            for ev in events {
                match ev {
                    PostEvent::Create(p) => match indexed(&p) {
                        Some(post) => creates.push(post),
                        None => retweets += 1,
                    },
                    PostEvent::Delete(d) => deletes.push(d.post_id),
                }
            }
            creates_sent += creates.len() as u64;
            deletes_sent += deletes.len() as u64;
            let live = self.live.clone();
            let queued = tokio::task::spawn_blocking(move || live.send(creates, deletes))
                .await
                .map_err(|e| ServiceError::Internal(format!("ingest worker: {e}")))?;
            if !queued {
                return Err(ServiceError::Internal(
                    "the retrieval index writer has stopped".into(),
                ));
            }
        }
        Ok(pb::IngestSummary {
            creates_applied: creates_sent,
            deletes_applied: deletes_sent,
            skipped: retweets + batches.malformed(),
        })
    }
}

#[tonic::async_trait]
impl InNetworkPostsService for IndexIngestService {
    async fn get_in_network_posts(
        &self,
        _request: Request<pb::GetInNetworkPostsRequest>,
    ) -> Result<Response<pb::GetInNetworkPostsResponse>, Status> {
        Err(Status::unimplemented(
            "this is a Phoenix server: IngestEvents feeds its retrieval index; \
             in-network posts are served by Thunder",
        ))
    }

    async fn ingest_events(
        &self,
        request: Request<Streaming<pb::InNetworkEvent>>,
    ) -> Result<Response<pb::IngestSummary>, Status> {
        Ok(Response::new(
            self.ingest_inner(request.into_inner()).await?,
        ))
    }
}
