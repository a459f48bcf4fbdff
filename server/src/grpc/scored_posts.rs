//! `ScoredPostsService.GetScoredPosts` (spec §2.2): validate, run the home
//! mixer pipeline, turn the final candidates into `ScoredPost`s.
//!
//! viewer_id 0 is INVALID_ARGUMENT, and so (ours, spec §4.4) is a request
//! over one of the size limits below or with a malformed bloom filter entry
//! ([`QueryError`]); there is no other error path: pipeline trouble yields
//! fewer posts (or none) with OK. An unknown viewer is not an error either:
//! with no features and no history every source comes back empty, so the
//! feed is empty (our choice, tested end to end).
//!
//! The limits bound what one request can make the filters do on an async
//! worker. Real clients send at most a few thousand ids and a handful of
//! filters; the message-size limit alone (128 MiB) would let a request
//! carry ~15 M ids or filters that probe 2³² − 1 bits per candidate id.
//!
//! Timing (ours; spec §1.4 leaves observability to us). Every request
//! records two histograms and, for a debug request, two extra `stage_ms`
//! entries next to the per-component "Stage/Component" ones:
//! - `total` ([`TOTAL_KEY`], histogram [`REQUEST_DURATION`]): from entry
//!   into [`HomeMixerService::get_scored_posts_inner`] (the request decoded)
//!   to the `ScoredPost` list built, just before the debug block is
//!   assembled. The impression lookup, query building, the pipeline and
//!   the conversion to proto are inside; the transport (HTTP/2, compression,
//!   proto decoding and encoding) is not.
//! - `outside_stages` ([`OUTSIDE_STAGES_KEY`], histogram
//!   [`OUTSIDE_STAGES`]): `max(0, total − time in stages)`, where the time
//!   in stages is [`PipelineResult::time_in_stages`]: per stage, the
//!   slowest component call for a concurrent stage (query hydrators,
//!   sources, hydrators) and the sum of the calls for a sequential one
//!   (filters, scorers, selector), added over the stages. Summing every
//!   `stage_ms` entry instead would count overlapping calls twice and could
//!   exceed `total`. It is the shell's own time: everything around the
//!   component calls, the framework's glue between them included. The
//!   stages never overlap one another, so the difference is not negative
//!   except by clock rounding, which the clamp absorbs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use foryou_proto::v1 as pb;
use foryou_proto::v1::scored_posts_service_server::{ScoredPostsService, ScoredPostsServiceServer};
use tonic::codec::CompressionEncoding::{Gzip, Zstd};
use tonic::{Request, Response, Status};

use super::status::ServiceError;
use crate::clients::ImpressionStore;
use crate::pipeline::framework::{Outcome, PipelineResult, Stage};
use crate::pipeline::home_mixer::{
    Action, BloomFilterEntry, HomeMixerPipeline, PostCandidate, ScoredPostsQuery,
};
use crate::pipeline::util::bloom::BloomFilterError;

/// Request latency, seconds: `total` of the module doc.
pub const REQUEST_DURATION: &str = "foryou_home_mixer_request_duration_seconds";
/// Time outside the pipeline's stages, seconds: `outside_stages` of the
/// module doc.
pub const OUTSIDE_STAGES: &str = "foryou_home_mixer_outside_stages_seconds";
/// The `stage_ms` key of the request's total, ms.
pub const TOTAL_KEY: &str = "total";
/// The `stage_ms` key of the time outside the stages, ms.
pub const OUTSIDE_STAGES_KEY: &str = "outside_stages";
/// Posts returned per request.
pub const POSTS_RETURNED: &str = "foryou_home_mixer_posts_returned";

/// Most `seen_ids` a request may carry: real clients send at most a few
/// thousand (the posts shown this session); 10 000 leaves room and keeps
/// the filter's id set under a millisecond to build. The viewer's stored
/// impressions are added after this check and do not count.
pub const MAX_SEEN_IDS: usize = 10_000;

/// Most `served_ids` a request may carry: as [`MAX_SEEN_IDS`], a session
/// serves a few thousand posts at most.
pub const MAX_SERVED_IDS: usize = 10_000;

/// Most impression bloom filters a request may carry. Clients keep a
/// handful (one per time window); each filter costs every candidate's
/// related ids up to `MAX_BLOOM_HASHES` probes, so 8 filters bound a
/// 2 200-candidate feed to 2 200 × 3 × 8 × 64 ≈ 3.4 M probes.
pub const MAX_BLOOM_FILTER_ENTRIES: usize = 8;

/// Why a GetScoredPosts request is refused; always INVALID_ARGUMENT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// viewer_id is 0 (spec §2.2).
    #[error("viewer_id must be specified")]
    NoViewer,
    /// A list longer than its limit.
    #[error("{field} has {count} entries; the limit is {limit}")]
    TooMany {
        /// The request field.
        field: &'static str,
        /// Its length.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A malformed bloom filter entry.
    #[error("bloom_filter_entries[{index}].{source}")]
    BloomFilter {
        /// The entry's index in the request.
        index: usize,
        /// What is wrong with it.
        source: BloomFilterError,
    },
}

/// `count` entries of `field` against `limit`.
fn at_most(field: &'static str, count: usize, limit: usize) -> Result<(), QueryError> {
    if count > limit {
        return Err(QueryError::TooMany {
            field,
            count,
            limit,
        });
    }
    Ok(())
}

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
    pub fn into_server(
        self,
        limits: super::limits::MessageLimits,
    ) -> ScoredPostsServiceServer<Self> {
        ScoredPostsServiceServer::new(self)
            .accept_compressed(Gzip)
            .accept_compressed(Zstd)
            .send_compressed(Zstd)
            .send_compressed(Gzip)
            .max_decoding_message_size(limits.request_bytes)
            .max_encoding_message_size(limits.response_bytes)
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
        Ok(self.get_scored_posts_traced(req).await?.0)
    }

    /// [`Self::get_scored_posts_inner`], and whether a component failed
    /// (the feed is degraded: for admission control, a call that missed).
    async fn get_scored_posts_traced(
        &self,
        req: pb::ScoredPostsQuery,
    ) -> Result<(pb::ScoredPostsResponse, bool), ServiceError> {
        let started = Instant::now();
        let mut query = self.query(req)?;
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
        let timing = RequestTiming::new(started.elapsed(), &result);
        metrics::histogram!(REQUEST_DURATION).record(timing.total.as_secs_f64());
        metrics::histogram!(OUTSIDE_STAGES).record(timing.outside_stages.as_secs_f64());
        metrics::histogram!(POSTS_RETURNED).record(scored_posts.len() as f64);
        tracing::info!(
            request_id,
            posts = scored_posts.len(),
            elapsed_ms = ms(timing.total),
            outside_stages_ms = ms(timing.outside_stages),
            "GetScoredPosts"
        );
        let degraded = result.trace.iter().any(|run| run.outcome != Outcome::Ok);
        let response = pb::ScoredPostsResponse {
            scored_posts,
            debug: debug.then(|| pipeline_debug(&result, timing)),
        };
        Ok((response, degraded))
    }

    /// Validates the request (viewer, limits, bloom filters) and turns it
    /// into the pipeline's query.
    fn query(&self, req: pb::ScoredPostsQuery) -> Result<ScoredPostsQuery, QueryError> {
        query_from_request(req, self.result_size)
    }
}

/// Validates a request (viewer, limits, bloom filters) and turns it into
/// the pipeline's query; `max_result_size` caps (and stands in for an
/// unset) `result_size`.
pub fn query_from_request(
    req: pb::ScoredPostsQuery,
    max_result_size: usize,
) -> Result<ScoredPostsQuery, QueryError> {
    if req.viewer_id == 0 {
        return Err(QueryError::NoViewer);
    }
    at_most("seen_ids", req.seen_ids.len(), MAX_SEEN_IDS)?;
    at_most("served_ids", req.served_ids.len(), MAX_SERVED_IDS)?;
    at_most(
        "bloom_filter_entries",
        req.bloom_filter_entries.len(),
        MAX_BLOOM_FILTER_ENTRIES,
    )?;
    let bloom_filter_entries = req
        .bloom_filter_entries
        .into_iter()
        .enumerate()
        .map(|(index, b)| {
            BloomFilterEntry::try_from(b)
                .map_err(|source| QueryError::BloomFilter { index, source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let result_size = match req.result_size as usize {
        0 => max_result_size,
        n => n.min(max_result_size),
    };
    Ok(ScoredPostsQuery {
        user_id: req.viewer_id,
        client_app_id: req.client_app_id,
        country_code: req.country_code,
        language_code: req.language_code,
        seen_ids: req.seen_ids,
        served_ids: req.served_ids,
        in_network_only: req.in_network_only,
        is_bottom_request: req.is_bottom_request,
        bloom_filter_entries,
        request_id: ScoredPostsQuery::make_request_id(rand::random(), req.viewer_id),
        result_size,
        debug: req.debug,
        ..ScoredPostsQuery::default()
    })
}

/// One final candidate on the wire (spec §2.2 defaults).
pub fn scored_post(c: &PostCandidate, debug: bool) -> pb::ScoredPost {
    let mut screen_names = HashMap::new();
    if let Some(name) = &c.author_screen_name {
        screen_names.insert(c.author_id, name.to_string());
    }
    if let (Some(id), Some(name)) = (c.retweeted_user_id, &c.retweeted_screen_name) {
        screen_names.insert(id, name.to_string());
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
        ancestors: c.ancestors.to_vec(),
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
        dwell_time: s.dwell_time(),
    }
}

/// A request's `total` and `outside_stages` (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTiming {
    /// Entry into the handler to the response's posts built.
    pub total: Duration,
    /// `total` less the run's time in stages, clamped at 0.
    pub outside_stages: Duration,
}

impl RequestTiming {
    /// The timing of a request that took `total` and ran `result`.
    pub fn new<Q, C>(total: Duration, result: &PipelineResult<Q, C>) -> Self {
        Self {
            total,
            outside_stages: total.saturating_sub(result.time_in_stages()),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The `stage_counts` / `stage_ms` key of one component: "Stage/Component".
pub fn stage_key(stage: Stage, component: &str) -> String {
    format!("{}/{component}", stage.as_str())
}

/// The scorer whose failure leaves a feed unranked.
pub const RANKER_SCORER: &str = "PhoenixScorer";

/// Per-stage counts, removals by filter and timings from the run's trace.
/// Keys are "Stage/Component"; "retrieved" and "selected" are the
/// candidates after hydration and the final list. A failed component is
/// counted under "failed/Stage/Component" = 1 and described in `failures`;
/// `ranking_skipped` says the ranker's scorer failed. `stage_ms` also holds
/// [`TOTAL_KEY`] and [`OUTSIDE_STAGES_KEY`] from `timing`.
pub fn pipeline_debug(
    r: &PipelineResult<ScoredPostsQuery, PostCandidate>,
    timing: RequestTiming,
) -> pb::PipelineDebug {
    let mut stage_counts: BTreeMap<String, u32> = BTreeMap::new();
    let mut removed_by_filter = HashMap::new();
    let mut stage_ms = HashMap::new();
    let mut failures = HashMap::new();
    stage_counts.insert("retrieved".into(), r.retrieved_count as u32);
    stage_counts.insert("selected".into(), r.selected_candidates.len() as u32);
    stage_ms.insert(TOTAL_KEY.to_owned(), ms(timing.total));
    stage_ms.insert(OUTSIDE_STAGES_KEY.to_owned(), ms(timing.outside_stages));
    for run in &r.trace {
        let key = stage_key(run.stage, run.component);
        if let Some(n) = run.output_len {
            stage_counts.insert(key.clone(), n as u32);
        }
        if run.outcome != Outcome::Ok {
            stage_counts.insert(format!("failed/{key}"), 1);
            failures.insert(key.clone(), run.outcome.to_string());
        }
        if run.removed > 0 {
            removed_by_filter.insert(run.component.to_string(), run.removed as u32);
        }
        stage_ms.insert(key, ms(run.duration));
    }
    let ranking_skipped = r
        .trace
        .iter()
        .any(|run| run.component == RANKER_SCORER && run.outcome != Outcome::Ok);
    pb::PipelineDebug {
        stage_counts: stage_counts.into_iter().collect(),
        removed_by_filter,
        stage_ms,
        failures,
        ranking_skipped,
    }
}

#[tonic::async_trait]
impl ScoredPostsService for HomeMixerService {
    async fn get_scored_posts(
        &self,
        request: Request<pb::ScoredPostsQuery>,
    ) -> Result<Response<pb::ScoredPostsResponse>, Status> {
        let (answer, degraded) = self.get_scored_posts_traced(request.into_inner()).await?;
        let mut response = Response::new(answer);
        if degraded {
            response.extensions_mut().insert(super::admission::Degraded);
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use tracing_subscriber::layer::SubscriberExt;

    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;
    use crate::pipeline::framework::{
        CandidatePipeline, ComponentError, Filter, FilterOutput, Source,
    };
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

    /// A source that takes `ms` and returns one candidate.
    struct SlowSource {
        name: &'static str,
        ms: u64,
        id: i64,
    }
    #[async_trait]
    impl Source<ScoredPostsQuery, PostCandidate> for SlowSource {
        fn name(&self) -> &'static str {
            self.name
        }
        async fn get_candidates(
            &self,
            _: &ScoredPostsQuery,
        ) -> Result<Vec<PostCandidate>, ComponentError> {
            tokio::time::sleep(Duration::from_millis(self.ms)).await;
            Ok(vec![PostCandidate {
                tweet_id: self.id,
                ..PostCandidate::default()
            }])
        }
    }

    /// A filter that takes `ms` and keeps everything.
    struct SlowFilter {
        name: &'static str,
        ms: u64,
    }
    #[async_trait]
    impl Filter<ScoredPostsQuery, PostCandidate> for SlowFilter {
        fn name(&self) -> &'static str {
            self.name
        }
        async fn filter(
            &self,
            _: &ScoredPostsQuery,
            kept: &[PostCandidate],
        ) -> Result<FilterOutput, ComponentError> {
            tokio::time::sleep(Duration::from_millis(self.ms)).await;
            Ok(FilterOutput::keep_all(kept.len()))
        }
    }

    /// Two concurrent sources (30 and 10 ms) and two sequential filters
    /// (5 ms each).
    fn timed_service() -> HomeMixerService {
        let pipeline = CandidatePipeline::new()
            .source(SlowSource {
                name: "Slow",
                ms: 30,
                id: 1,
            })
            .source(SlowSource {
                name: "Fast",
                ms: 10,
                id: 2,
            })
            .filter(SlowFilter { name: "A", ms: 5 })
            .filter(SlowFilter { name: "B", ms: 5 });
        HomeMixerService::new(Arc::new(pipeline), 10)
    }

    fn ask(debug: bool) -> pb::ScoredPostsQuery {
        pb::ScoredPostsQuery {
            viewer_id: 42,
            debug,
            ..pb::ScoredPostsQuery::default()
        }
    }

    /// A scorer named like the ranker's that always fails.
    struct FailingRanker;
    #[async_trait]
    impl crate::pipeline::framework::Scorer<ScoredPostsQuery, PostCandidate> for FailingRanker {
        type Output = ();
        fn name(&self) -> &'static str {
            RANKER_SCORER
        }
        async fn score(
            &self,
            _: &ScoredPostsQuery,
            _: &[PostCandidate],
        ) -> Result<Vec<()>, ComponentError> {
            Err(ComponentError::Failed("ranker: status INTERNAL".into()))
        }
        fn update(&self, _: &mut PostCandidate, _: ()) {}
    }

    #[tokio::test]
    async fn a_failed_ranker_leaves_the_feed_answered_and_its_debug_says_ranking_was_skipped() {
        let failing = CandidatePipeline::new()
            .source(OnePost)
            .scorer(FailingRanker);
        let service = HomeMixerService::new(Arc::new(failing), 10);
        let response = service
            .get_scored_posts_inner(ask(true))
            .await
            .expect("a feed, unranked");
        assert_eq!(response.scored_posts.len(), 1);
        let debug = response.debug.expect("debug asked for");
        assert!(debug.ranking_skipped);
        let why = &debug.failures["Scorer/PhoenixScorer"];
        assert!(why.contains("failed: ranker: status INTERNAL"), "{why}");
        assert_eq!(debug.stage_counts["failed/Scorer/PhoenixScorer"], 1);

        // Through the tonic handler the answer is marked degraded for
        // admission control; a healthy feed is not.
        use crate::grpc::admission::Degraded;
        use pb::scored_posts_service_server::ScoredPostsService as _;
        let answer = service
            .get_scored_posts(Request::new(ask(false)))
            .await
            .expect("answered");
        assert!(answer.extensions().get::<Degraded>().is_some());

        let healthy = HomeMixerService::new(Arc::new(CandidatePipeline::new().source(OnePost)), 10);
        let answer = healthy
            .get_scored_posts(Request::new(ask(false)))
            .await
            .expect("answered");
        assert!(answer.extensions().get::<Degraded>().is_none());
        let debug = healthy
            .get_scored_posts_inner(ask(true))
            .await
            .expect("a feed")
            .debug
            .expect("debug asked for");
        assert!(!debug.ranking_skipped);
        assert!(debug.failures.is_empty(), "{:?}", debug.failures);
    }

    /// The message of the INVALID_ARGUMENT `req` gets from a one-post service.
    async fn rejected(req: pb::ScoredPostsQuery) -> String {
        let service = HomeMixerService::new(Arc::new(CandidatePipeline::new().source(OnePost)), 10);
        match service.get_scored_posts_inner(req).await {
            Err(ServiceError::InvalidArgument(m)) => m,
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    fn bloom(bits: usize, num_bits: u64, num_hashes: u32) -> pb::ImpressionBloomFilterEntry {
        pb::ImpressionBloomFilterEntry {
            bitset: vec![0xff; bits],
            num_bits,
            num_hashes,
        }
    }

    #[tokio::test]
    async fn bloom_entry_with_more_hashes_than_the_limit_is_invalid_argument() {
        // All bits set and k = u32::MAX used to pin a core for seconds per
        // candidate id inside the async runtime.
        let m = rejected(pb::ScoredPostsQuery {
            bloom_filter_entries: vec![bloom(8, 64, 3), bloom(512, 4096, u32::MAX)],
            ..ask(false)
        })
        .await;
        assert!(
            m.contains("bloom_filter_entries[1].num_hashes")
                && m.contains("4294967295")
                && m.contains("64"),
            "{m}"
        );
    }

    #[tokio::test]
    async fn id_lists_and_filter_counts_over_their_limits_are_invalid_argument_and_at_them_pass() {
        let service = HomeMixerService::new(Arc::new(CandidatePipeline::new().source(OnePost)), 10);
        let ids = |n: usize| (1..=n as i64).collect::<Vec<_>>();
        let with = |n: usize, field: &str| {
            let mut q = ask(false);
            match field {
                "seen_ids" => q.seen_ids = ids(n),
                "served_ids" => q.served_ids = ids(n),
                _ => q.bloom_filter_entries = vec![bloom(8, 64, 3); n],
            }
            q
        };
        for (field, limit) in [
            ("seen_ids", MAX_SEEN_IDS),
            ("served_ids", MAX_SERVED_IDS),
            ("bloom_filter_entries", MAX_BLOOM_FILTER_ENTRIES),
        ] {
            let m = rejected(with(limit + 1, field)).await;
            assert_eq!(
                m,
                format!("{field} has {} entries; the limit is {limit}", limit + 1)
            );
            let at_limit = service.get_scored_posts_inner(with(limit, field)).await;
            assert!(at_limit.is_ok(), "{field} at its limit: {at_limit:?}");
        }
    }

    #[tokio::test]
    async fn malformed_bloom_entries_are_invalid_argument_naming_field_value_and_limit() {
        use crate::pipeline::util::bloom::{MAX_BLOOM_BITS, MAX_BLOOM_HASHES};
        let big = MAX_BLOOM_BITS.div_ceil(8) as usize;
        for (entry, expected) in [
            (
                bloom(8, 0, 3),
                "bloom_filter_entries[0].num_bits is 0".to_string(),
            ),
            (
                bloom(big, MAX_BLOOM_BITS + 1, 3),
                format!(
                    "bloom_filter_entries[0].num_bits is {}; the limit is {MAX_BLOOM_BITS}",
                    MAX_BLOOM_BITS + 1
                ),
            ),
            (
                bloom(8, 64, 0),
                "bloom_filter_entries[0].num_hashes is 0, expected 1 to 64".into(),
            ),
            (
                bloom(7, 64, 3),
                "bloom_filter_entries[0].bitset has 7 bytes, expected 8 to 15 for num_bits 64"
                    .into(),
            ),
            (
                bloom(1 << 20, 64, 3),
                "bloom_filter_entries[0].bitset has 1048576 bytes".into(),
            ),
        ] {
            let m = rejected(pb::ScoredPostsQuery {
                bloom_filter_entries: vec![entry],
                ..ask(false)
            })
            .await;
            assert!(m.starts_with(&expected), "{m:?} should start {expected:?}");
        }
        // At the limits: the largest filter with the most hashes is served.
        let service = HomeMixerService::new(Arc::new(CandidatePipeline::new().source(OnePost)), 10);
        let at_limit = service
            .get_scored_posts_inner(pb::ScoredPostsQuery {
                bloom_filter_entries: vec![bloom(big + 7, MAX_BLOOM_BITS, MAX_BLOOM_HASHES)],
                ..ask(false)
            })
            .await;
        assert!(at_limit.is_ok(), "{at_limit:?}");
    }

    #[tokio::test]
    async fn viewer_id_zero_is_invalid_argument_with_the_spec_message() {
        let m = rejected(pb::ScoredPostsQuery {
            viewer_id: 0,
            ..ask(false)
        })
        .await;
        assert_eq!(m, "viewer_id must be specified");
    }

    #[tokio::test]
    async fn stage_ms_total_bounds_every_stage_and_outside_is_total_less_the_stages() {
        let response = timed_service()
            .get_scored_posts_inner(ask(true))
            .await
            .expect("a valid request");
        let stage_ms = response.debug.expect("debug asked for").stage_ms;
        let total = stage_ms[TOTAL_KEY];
        let outside = stage_ms[OUTSIDE_STAGES_KEY];
        for (key, ms) in &stage_ms {
            assert!(total >= *ms, "total {total} ms < {key} {ms} ms");
        }
        // The stages from the "Stage/Component" entries: the slowest call
        // of a concurrent stage, the sum of a sequential one.
        let stages = [Stage::Source, Stage::Filter];
        let in_stage = |stage: Stage| {
            stage_ms
                .iter()
                .filter(move |(k, _)| k.split_once('/').is_some_and(|(s, _)| s == stage.as_str()))
                .map(|(_, ms)| *ms)
        };
        assert_eq!(
            stage_ms.len(),
            2 + 4,
            "total, outside and one entry per component: {stage_ms:?}"
        );
        let source = in_stage(Stage::Source).fold(0.0, f64::max);
        let filter: f64 = in_stage(Stage::Filter).sum();
        assert!(Stage::Source.is_concurrent() && !Stage::Filter.is_concurrent());
        assert!(source >= 30.0 && filter >= 10.0, "{stage_ms:?}");
        let in_stages = source + filter;
        assert!(
            (outside - (total - in_stages).max(0.0)).abs() < 1e-6,
            "outside {outside} ms, total {total} ms, stages {in_stages} ms ({stages:?})"
        );
        assert!(outside >= 0.0);
        // Summing every entry would count the overlapping sources twice.
        let naive: f64 = stages.iter().flat_map(|s| in_stage(*s)).sum();
        assert!(naive > in_stages);
    }

    /// The values histogram `name` recorded.
    fn histogram(
        recorded: &[(
            metrics_util::CompositeKey,
            Option<metrics::Unit>,
            Option<metrics::SharedString>,
            DebugValue,
        )],
        name: &str,
    ) -> Vec<f64> {
        recorded
            .iter()
            .filter(|(k, ..)| k.key().name() == name)
            .flat_map(|(.., v)| match v {
                DebugValue::Histogram(v) => v.iter().map(|f| f.0).collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    #[tokio::test]
    async fn every_request_records_its_total_and_outside_stages_histograms() {
        let recorder = DebuggingRecorder::new();
        let snapshots = recorder.snapshotter();
        let _recorder = metrics::set_default_local_recorder(&recorder);
        let service = timed_service();
        for debug in [false, true] {
            service
                .get_scored_posts_inner(ask(debug))
                .await
                .expect("a valid request");
        }
        let recorded = snapshots.snapshot().into_vec();
        let total = histogram(&recorded, REQUEST_DURATION);
        let outside = histogram(&recorded, OUTSIDE_STAGES);
        assert_eq!(total.len(), 2, "one total per request, debug or not");
        assert_eq!(outside.len(), 2, "one outside_stages per request");
        for (t, o) in total.iter().zip(&outside) {
            // Seconds: the slow source alone takes 30 ms.
            assert!(*t >= 0.040 && *t < 10.0, "total {t} s");
            assert!(*o >= 0.0 && o < t, "outside {o} s of {t} s");
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
