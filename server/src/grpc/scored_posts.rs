//! `ScoredPostsService.GetScoredPosts` (spec §2.2): validate, run the home
//! mixer pipeline, turn the final candidates into `ScoredPost`s.
//!
//! viewer_id 0 is INVALID_ARGUMENT; there is no other error path: pipeline
//! trouble yields fewer posts (or none) with OK. An unknown viewer is not an
//! error either: with no features and no history every source comes back
//! empty, so the feed is empty (our choice, tested end to end).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use foryou_proto::v1 as pb;
use foryou_proto::v1::scored_posts_service_server::{ScoredPostsService, ScoredPostsServiceServer};
use tonic::codec::CompressionEncoding::{Gzip, Zstd};
use tonic::{Request, Response, Status};

use super::status::ServiceError;
use crate::clients::ImpressionStore;
use crate::pipeline::framework::{Outcome, PipelineResult};
use crate::pipeline::home_mixer::{
    Action, BloomFilterEntry, HomeMixerPipeline, PostCandidate, ScoredPostsQuery,
};

/// Request latency, seconds.
pub const REQUEST_DURATION: &str = "foryou_home_mixer_request_duration_seconds";
/// Posts returned per request.
pub const POSTS_RETURNED: &str = "foryou_home_mixer_posts_returned";

/// The home-mixer service.
#[derive(Clone)]
pub struct HomeMixerService {
    pipeline: Arc<HomeMixerPipeline>,
    result_size: usize,
    impressions: Option<Arc<dyn ImpressionStore>>,
}

impl std::fmt::Debug for HomeMixerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HomeMixerService")
            .field("result_size", &self.result_size)
            .finish_non_exhaustive()
    }
}

impl HomeMixerService {
    /// A service running `pipeline`, returning at most `result_size` posts.
    pub fn new(pipeline: Arc<HomeMixerPipeline>, result_size: usize) -> Self {
        Self {
            pipeline,
            result_size,
            impressions: None,
        }
    }

    /// Adds the viewer's stored impressions to every request's `seen_ids`
    /// (ours; a failed lookup is logged and the request goes on).
    pub fn with_impressions(mut self, store: Arc<dyn ImpressionStore>) -> Self {
        self.impressions = Some(store);
        self
    }

    /// The tonic service with compression and message limits.
    pub fn into_server(self, max_message_bytes: usize) -> ScoredPostsServiceServer<Self> {
        ScoredPostsServiceServer::new(self)
            .accept_compressed(Gzip)
            .accept_compressed(Zstd)
            .send_compressed(Zstd)
            .send_compressed(Gzip)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes)
    }

    /// The request without the transport, in a `get_scored_posts` span
    /// carrying the viewer id and, once generated, the request id; the
    /// pipeline's component spans nest under it.
    #[tracing::instrument(
        name = "get_scored_posts",
        skip_all,
        fields(viewer_id = req.viewer_id, request_id = tracing::field::Empty)
    )]
    pub async fn get_scored_posts_inner(
        &self,
        req: pb::ScoredPostsQuery,
    ) -> Result<pb::ScoredPostsResponse, ServiceError> {
        let started = Instant::now();
        if req.viewer_id == 0 {
            return Err(ServiceError::InvalidArgument(
                "viewer_id must be specified".into(),
            ));
        }
        let mut query = self.query(req);
        tracing::Span::current().record("request_id", query.request_id.as_str());
        if let Some(store) = &self.impressions {
            match store.seen_ids(query.user_id).await {
                Ok(ids) => query.seen_ids.extend(ids),
                Err(e) => {
                    tracing::warn!(request_id = query.request_id, error = %e, "impression lookup failed")
                }
            }
        }
        let (request_id, debug) = (query.request_id.clone(), query.debug);
        let result = self.pipeline.execute(query).await;
        let scored_posts: Vec<pb::ScoredPost> = result
            .selected_candidates
            .iter()
            .map(|c| scored_post(c, debug))
            .collect();
        let elapsed = started.elapsed();
        metrics::histogram!(REQUEST_DURATION).record(elapsed.as_secs_f64());
        metrics::histogram!(POSTS_RETURNED).record(scored_posts.len() as f64);
        tracing::info!(
            request_id,
            posts = scored_posts.len(),
            elapsed_ms = elapsed.as_secs_f64() * 1e3,
            "GetScoredPosts"
        );
        Ok(pb::ScoredPostsResponse {
            scored_posts,
            debug: debug.then(|| pipeline_debug(&result)),
        })
    }

    fn query(&self, req: pb::ScoredPostsQuery) -> ScoredPostsQuery {
        let result_size = match req.result_size as usize {
            0 => self.result_size,
            n => n.min(self.result_size),
        };
        ScoredPostsQuery {
            user_id: req.viewer_id,
            client_app_id: req.client_app_id,
            country_code: req.country_code,
            language_code: req.language_code,
            seen_ids: req.seen_ids,
            served_ids: req.served_ids,
            in_network_only: req.in_network_only,
            is_bottom_request: req.is_bottom_request,
            bloom_filter_entries: req
                .bloom_filter_entries
                .into_iter()
                .map(|b| BloomFilterEntry {
                    bits: b.bitset,
                    num_bits: b.num_bits,
                    num_hashes: b.num_hashes,
                })
                .collect(),
            request_id: ScoredPostsQuery::make_request_id(rand::random(), req.viewer_id),
            result_size,
            debug: req.debug,
            ..ScoredPostsQuery::default()
        }
    }
}

/// One final candidate on the wire (spec §2.2 defaults).
pub fn scored_post(c: &PostCandidate, debug: bool) -> pb::ScoredPost {
    let mut screen_names = HashMap::new();
    if let Some(name) = &c.author_screen_name {
        screen_names.insert(c.author_id, name.clone());
    }
    if let (Some(id), Some(name)) = (c.retweeted_user_id, &c.retweeted_screen_name) {
        screen_names.insert(id, name.clone());
    }
    pb::ScoredPost {
        tweet_id: c.tweet_id,
        author_id: c.author_id,
        retweeted_tweet_id: Some(c.retweeted_tweet_id.unwrap_or(0)),
        retweeted_user_id: Some(c.retweeted_user_id.unwrap_or(0)),
        in_reply_to_tweet_id: Some(c.in_reply_to_tweet_id.unwrap_or(0)),
        score: c.score.unwrap_or(0.0) as f32,
        in_network: c.in_network.unwrap_or(false),
        served_type: c.served_type.map_or(0, |s| s as i32),
        last_scored_timestamp_ms: c.last_scored_at_ms.unwrap_or(0),
        prediction_request_id: c.prediction_request_id.unwrap_or(0),
        ancestors: c.ancestors.clone(),
        screen_names,
        visibility_reason: c.visibility_reason.as_ref().map(|r| r.describe()),
        phoenix_scores: debug.then(|| phoenix_scores(c)),
    }
}

fn phoenix_scores(c: &PostCandidate) -> pb::PhoenixScores {
    let s = &c.phoenix_scores;
    pb::PhoenixScores {
        favorite_score: s.get(Action::Favorite),
        reply_score: s.get(Action::Reply),
        repost_score: s.get(Action::Retweet),
        photo_expand_score: s.get(Action::PhotoExpand),
        click_score: s.get(Action::Click),
        profile_click_score: s.get(Action::ProfileClick),
        vqv_score: s.get(Action::Vqv),
        share_score: s.get(Action::Share),
        share_via_dm_score: s.get(Action::ShareViaDm),
        share_via_copy_link_score: s.get(Action::ShareViaCopyLink),
        dwell_score: s.get(Action::Dwell),
        quote_score: s.get(Action::Quote),
        quoted_click_score: s.get(Action::QuotedClick),
        follow_author_score: s.get(Action::FollowAuthor),
        not_interested_score: s.get(Action::NotInterested),
        block_author_score: s.get(Action::BlockAuthor),
        mute_author_score: s.get(Action::MuteAuthor),
        report_score: s.get(Action::Report),
        dwell_time: s.dwell_time,
    }
}

/// Per-stage counts, removals by filter and timings from the run's trace.
/// Keys are "Stage/Component"; "retrieved" and "selected" are the
/// candidates after hydration and the final list. A failed component is
/// counted under "failed/Stage/Component" = 1.
pub fn pipeline_debug(r: &PipelineResult<ScoredPostsQuery, PostCandidate>) -> pb::PipelineDebug {
    let mut stage_counts: BTreeMap<String, u32> = BTreeMap::new();
    let mut removed_by_filter = HashMap::new();
    let mut stage_ms = HashMap::new();
    stage_counts.insert("retrieved".into(), r.retrieved_candidates.len() as u32);
    stage_counts.insert("selected".into(), r.selected_candidates.len() as u32);
    for run in &r.trace {
        let key = format!("{}/{}", run.stage.as_str(), run.component);
        if let Some(n) = run.output_len {
            stage_counts.insert(key.clone(), n as u32);
        }
        if run.outcome != Outcome::Ok {
            stage_counts.insert(format!("failed/{key}"), 1);
        }
        if run.removed > 0 {
            removed_by_filter.insert(run.component.to_string(), run.removed as u32);
        }
        stage_ms.insert(key, run.duration.as_secs_f64() * 1e3);
    }
    pb::PipelineDebug {
        stage_counts: stage_counts.into_iter().collect(),
        removed_by_filter,
        stage_ms,
    }
}

#[tonic::async_trait]
impl ScoredPostsService for HomeMixerService {
    async fn get_scored_posts(
        &self,
        request: Request<pb::ScoredPostsQuery>,
    ) -> Result<Response<pb::ScoredPostsResponse>, Status> {
        Ok(Response::new(
            self.get_scored_posts_inner(request.into_inner()).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::pipeline::framework::{CandidatePipeline, ComponentError, Source};
    use crate::telemetry::testing::SpanCapture;

    /// One candidate, whatever the query.
    struct OnePost;
    #[async_trait]
    impl Source<ScoredPostsQuery, PostCandidate> for OnePost {
        async fn get_candidates(
            &self,
            _: &ScoredPostsQuery,
        ) -> Result<Vec<PostCandidate>, ComponentError> {
            Ok(vec![PostCandidate {
                tweet_id: 7,
                ..PostCandidate::default()
            }])
        }
    }

    #[tokio::test]
    async fn the_request_span_carries_request_and_viewer_ids_and_wraps_the_pipeline() {
        let capture = SpanCapture::default();
        let _guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
        let service = HomeMixerService::new(Arc::new(CandidatePipeline::new().source(OnePost)), 10);
        let response = service
            .get_scored_posts_inner(pb::ScoredPostsQuery {
                viewer_id: 42,
                ..pb::ScoredPostsQuery::default()
            })
            .await
            .expect("a valid request");
        assert_eq!(response.scored_posts.len(), 1);

        let spans = capture.spans();
        let request: Vec<_> = spans
            .iter()
            .filter(|s| s.name == "get_scored_posts")
            .collect();
        assert_eq!(request.len(), 1, "one request span: {spans:?}");
        let request = request[0];
        assert_eq!(request.field("viewer_id"), "42");
        let request_id = request.field("request_id");
        assert!(
            request_id.ends_with("-42"),
            "request_id is ⟨random⟩-⟨viewer⟩, got {request_id:?}"
        );
        let source = spans
            .iter()
            .find(|s| s.name == "component" && s.field("component") == "OnePost")
            .expect("the source's component span");
        assert_eq!(
            source.parent,
            Some("get_scored_posts"),
            "the pipeline runs inside the request span"
        );
        assert_eq!(source.field("request_id"), request_id);
    }
}
