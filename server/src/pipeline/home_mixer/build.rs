//! The home-mixer pipeline, wired in the spec's order (§2.3–2.9), over
//! whatever implementations of the external services it is given.

use std::sync::Arc;
use std::time::Duration;

use super::{Params, PostCandidate, ScoredPostsQuery};
use crate::clients::{
    GizmoduckClient, InNetworkPostsClient, PhoenixRankerClient, PhoenixRetrievalClient,
    RequestInfoStore, TweetEntityClient, UserActionSequenceClient, UserFeaturesClient,
    VisibilityClient,
};
use crate::clock::Clock;
use crate::pipeline::components::filters::{
    AgeFilter, AuthorSocialgraphFilter, CoreDataHydrationFilter, DedupConversationFilter,
    DropDuplicatesFilter, IneligibleSubscriptionFilter, MutedKeywordFilter,
    PreviouslySeenPostsFilter, PreviouslyServedPostsFilter, RetweetDeduplicationFilter,
    SelfTweetFilter, VfFilter,
};
use crate::pipeline::components::hydrators::{
    CoreDataCandidateHydrator, GizmoduckCandidateHydrator, InNetworkCandidateHydrator,
    SubscriptionHydrator, VfCandidateHydrator, VideoDurationCandidateHydrator,
};
use crate::pipeline::components::query_hydrators::{
    UserActionSeqQueryHydrator, UserFeaturesQueryHydrator,
};
use crate::pipeline::components::scorers::{
    AuthorDiversityScorer, OonScorer, PhoenixScorer, WeightedScorer,
};
use crate::pipeline::components::selectors::TopKScoreSelector;
use crate::pipeline::components::side_effects::CacheRequestInfoSideEffect;
use crate::pipeline::components::sources::{PhoenixSource, ThunderSource};
use crate::pipeline::framework::CandidatePipeline;

/// The home-mixer pipeline type.
pub type HomeMixerPipeline = CandidatePipeline<ScoredPostsQuery, PostCandidate>;

/// Every external service the pipeline calls.
#[derive(Debug, Clone)]
pub struct HomeMixerDeps {
    /// User action sequences.
    pub user_actions: Arc<dyn UserActionSequenceClient>,
    /// User features.
    pub user_features: Arc<dyn UserFeaturesClient>,
    /// Thunder.
    pub thunder: Arc<dyn InNetworkPostsClient>,
    /// Phoenix retrieval.
    pub phoenix_retrieval: Arc<dyn PhoenixRetrievalClient>,
    /// Phoenix ranker.
    pub phoenix_ranker: Arc<dyn PhoenixRankerClient>,
    /// Post entities.
    pub tweet_entities: Arc<dyn TweetEntityClient>,
    /// Profiles.
    pub gizmoduck: Arc<dyn GizmoduckClient>,
    /// Visibility filtering.
    pub visibility: Arc<dyn VisibilityClient>,
    /// Request-info cache.
    pub request_info: Arc<dyn RequestInfoStore>,
    /// The clock (ages, timestamps).
    pub clock: Arc<dyn Clock>,
    /// APP_ENV ("prod" turns the request-info side effect on).
    pub app_env: Option<String>,
}

/// Builds the pipeline: query hydrators, sources (Phoenix then Thunder),
/// five hydrators, ten filters in spec order, four scorers, top-K, VF
/// hydrator and filter, conversation dedup, the side effect.
pub fn build_pipeline(p: &Params, d: &HomeMixerDeps) -> HomeMixerPipeline {
    let budget = (p.component_budget_ms > 0).then(|| Duration::from_millis(p.component_budget_ms));
    CandidatePipeline::new()
        .with_budget(budget)
        // The server reads only the count of the hydrated list.
        .without_retrieved_snapshot()
        .query_hydrator(UserActionSeqQueryHydrator::new(
            d.user_actions.clone(),
            d.clock.clone(),
            p,
        ))
        .query_hydrator(UserFeaturesQueryHydrator::new(d.user_features.clone()))
        .source(PhoenixSource::new(d.phoenix_retrieval.clone(), p))
        .source(ThunderSource::new(d.thunder.clone(), p))
        .hydrator(InNetworkCandidateHydrator)
        .hydrator(CoreDataCandidateHydrator::new(d.tweet_entities.clone()))
        .hydrator(VideoDurationCandidateHydrator::new(
            d.tweet_entities.clone(),
        ))
        .hydrator(SubscriptionHydrator::new(d.tweet_entities.clone()))
        .hydrator(GizmoduckCandidateHydrator::new(d.gizmoduck.clone()))
        .filter(DropDuplicatesFilter)
        .filter(CoreDataHydrationFilter)
        .filter(AgeFilter::new(p.max_post_age_s, d.clock.clone()))
        .filter(SelfTweetFilter)
        .filter(RetweetDeduplicationFilter)
        .filter(IneligibleSubscriptionFilter)
        .filter(PreviouslySeenPostsFilter)
        .filter(PreviouslyServedPostsFilter)
        .filter(MutedKeywordFilter)
        .filter(AuthorSocialgraphFilter)
        .scorer(PhoenixScorer::new(
            d.phoenix_ranker.clone(),
            d.clock.clone(),
        ))
        .scorer(WeightedScorer::new(p))
        .scorer(AuthorDiversityScorer::new(
            p.author_diversity_decay,
            p.author_diversity_floor,
        ))
        .scorer(OonScorer::new(p.oon_weight_factor))
        .selector(TopKScoreSelector::new(p.top_k_candidates_to_select))
        .post_selection_hydrator(VfCandidateHydrator::new(d.visibility.clone()))
        .post_selection_filter(VfFilter)
        .post_selection_filter(DedupConversationFilter)
        .side_effect(CacheRequestInfoSideEffect::new(
            d.request_info.clone(),
            d.app_env.as_deref(),
        ))
}
