//! The embedded external services: every client trait of `clients/`
//! answered from a [`World`] in memory.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::model::{LabelAction, LabelScope, World};
use crate::clients::{
    ClientError, CoreData, FollowingLookup, GizmoduckClient, ImpressionStore, LookupError,
    MediaEntity, RawAction, SafetyAction, SafetyLevel, TweetEntityClient, UserActionSequenceClient,
    UserFeaturesClient, UserProfile, ViewerContext, VisibilityClient, VisibilityReason,
};
use crate::pipeline::home_mixer::UserFeatures;

/// All embedded services over one shared world.
#[derive(Debug, Clone)]
pub struct WorldServices {
    world: Arc<World>,
}

impl WorldServices {
    /// Services answering from `world`.
    pub fn new(world: Arc<World>) -> Self {
        Self { world }
    }

    /// The world.
    pub fn world(&self) -> &Arc<World> {
        &self.world
    }
}

#[async_trait]
impl UserActionSequenceClient for WorldServices {
    async fn fetch(&self, user_id: i64) -> Result<Vec<RawAction>, ClientError> {
        let w = &self.world;
        Ok(World::list(&w.engagements, user_id)
            .iter()
            .filter_map(|e| {
                let post = w.posts.get(&e.post)?;
                Some(RawAction {
                    post_id: e.post,
                    author_id: post.author,
                    actions: e.actions,
                    impressed_ms: e.at_ms,
                    surface: e.surface,
                })
            })
            .collect())
    }
}

#[async_trait]
impl UserFeaturesClient for WorldServices {
    async fn user_features(&self, user_id: i64) -> Result<Option<UserFeatures>, ClientError> {
        let w = &self.world;
        if !w.users.contains_key(&user_id) {
            return Ok(None);
        }
        Ok(Some(UserFeatures {
            muted_keywords: World::list(&w.muted_keywords, user_id).to_vec(),
            blocked_user_ids: World::list(&w.blocks, user_id).to_vec(),
            muted_user_ids: World::list(&w.mutes, user_id).to_vec(),
            followed_user_ids: World::list(&w.follows, user_id).to_vec(),
            subscribed_user_ids: World::list(&w.subscriptions, user_id).to_vec(),
        }))
    }
}

#[async_trait]
impl TweetEntityClient for WorldServices {
    async fn core_data(&self, ids: &[i64]) -> Result<HashMap<i64, CoreData>, ClientError> {
        let w = &self.world;
        Ok(ids
            .iter()
            .filter_map(|id| {
                let p = w.posts.get(id)?;
                let source = p.retweet_of.and_then(|s| w.posts.get(&s));
                Some((
                    *id,
                    CoreData {
                        text: w.display_text(p),
                        retweeted_tweet_id: p.retweet_of,
                        retweeted_user_id: source.map(|s| s.author),
                        in_reply_to_tweet_id: p.in_reply_to,
                    },
                ))
            })
            .collect())
    }

    async fn media(&self, ids: &[i64]) -> Result<HashMap<i64, Vec<MediaEntity>>, ClientError> {
        let w = &self.world;
        Ok(ids
            .iter()
            .filter_map(|id| {
                let p = w.posts.get(id)?;
                // A retweet shows its source's media.
                let shown = p.retweet_of.and_then(|s| w.posts.get(&s)).unwrap_or(p);
                let media = shown
                    .video_duration_ms
                    .map(|d| MediaEntity {
                        video_duration_ms: Some(d),
                    })
                    .into_iter()
                    .collect();
                Some((*id, media))
            })
            .collect())
    }

    async fn subscription_author_ids(&self, ids: &[i64]) -> Result<HashMap<i64, i64>, ClientError> {
        let w = &self.world;
        Ok(ids
            .iter()
            .filter_map(|id| {
                let p = w.posts.get(id)?;
                p.subscriber_only.then_some((*id, p.author))
            })
            .collect())
    }
}

#[async_trait]
impl GizmoduckClient for WorldServices {
    async fn users(&self, ids: &[i64]) -> Result<HashMap<i64, UserProfile>, ClientError> {
        let w = &self.world;
        Ok(ids
            .iter()
            .filter_map(|id| {
                let u = w.users.get(id)?;
                Some((
                    *id,
                    UserProfile {
                        screen_name: u.screen_name.clone(),
                        followers_count: w.followers_count(*id),
                    },
                ))
            })
            .collect())
    }
}

#[async_trait]
impl VisibilityClient for WorldServices {
    async fn check(
        &self,
        _viewer: &ViewerContext,
        level: SafetyLevel,
        ids: &[i64],
    ) -> Result<HashMap<i64, VisibilityReason>, ClientError> {
        let w = &self.world;
        Ok(ids
            .iter()
            .filter_map(|id| {
                let l = w.labels.get(id)?;
                let applies = match (l.scope, level) {
                    (LabelScope::All, _) => true,
                    (LabelScope::Recommendations, lvl) => {
                        lvl == SafetyLevel::TimelineHomeRecommendations
                    }
                };
                applies.then(|| {
                    let action = match l.action {
                        LabelAction::Drop => SafetyAction::Drop,
                        LabelAction::Interstitial => SafetyAction::Interstitial,
                        LabelAction::Label => SafetyAction::Label,
                    };
                    (
                        *id,
                        VisibilityReason::Safety {
                            reason: l.reason.clone(),
                            action,
                        },
                    )
                })
            })
            .collect())
    }
}

#[async_trait]
impl ImpressionStore for WorldServices {
    async fn seen_ids(&self, user_id: i64) -> Result<Vec<i64>, ClientError> {
        Ok(World::list(&self.world.seen, user_id).to_vec())
    }
}

impl FollowingLookup for WorldServices {
    fn following(&self, user_id: i64, limit: usize) -> Result<Vec<i64>, LookupError> {
        Ok(World::list(&self.world.follows, user_id)
            .iter()
            .take(limit)
            .copied()
            .collect())
    }
}
