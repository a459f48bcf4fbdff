//! The embedded external services: every client trait of `clients/`
//! answered from a [`World`] in memory. Posts streamed in after start
//! (`IngestEvents`, Kafka) are not in the world; with the Thunder store
//! attached ([`WorldServices::with_stream_store`]) the tweet-entity
//! service answers for them from the store, with a text that names the
//! post (the event carries none), so they can reach feeds as X's would.

use std::sync::Arc;

use async_trait::async_trait;

use super::model::{LabelAction, LabelScope, World};
use crate::clients::{
    ClientError, CoreData, FollowingLookup, GizmoduckClient, IdMap, ImpressionStore, LookupError,
    MediaEntity, RawAction, SafetyAction, SafetyLevel, TweetEntityClient, UserActionSequenceClient,
    UserFeaturesClient, UserProfile, ViewerContext, VisibilityClient, VisibilityReason,
};
use crate::pipeline::home_mixer::UserFeatures;
use crate::thunder::PostStore;

/// All embedded services over one shared world.
#[derive(Debug, Clone)]
pub struct WorldServices {
    world: Arc<World>,
    answers: Arc<Precomputed>,
    streamed: Option<Arc<PostStore>>,
}

/// Answers made once from the (immutable) world instead of on every
/// request: each feed request asks for ~1150 posts' texts and authors.
#[derive(Debug, Default)]
struct Precomputed {
    /// "RT @source: text" of every retweet (formatting it per request was
    /// the largest item of the request threads' profile), shared like an
    /// original's text so the token cache recognises it by pointer.
    retweet_texts: IdMap<Arc<str>>,
    /// Every user's profile, screen name shared.
    profiles: IdMap<UserProfile>,
}

impl Precomputed {
    fn of(w: &World) -> Self {
        Self {
            retweet_texts: w
                .posts
                .values()
                .filter(|p| p.retweet_of.is_some())
                .map(|p| (p.id, w.display_text(p)))
                .collect(),
            profiles: w
                .users
                .values()
                .map(|u| {
                    let profile = UserProfile {
                        screen_name: u.screen_name.as_str().into(),
                        followers_count: w.followers_count(u.id),
                    };
                    (u.id, profile)
                })
                .collect(),
        }
    }
}

/// `pairs` as a map sized for `n` entries (no rehash while it fills).
fn sized_map<V>(n: usize, pairs: impl Iterator<Item = (i64, V)>) -> IdMap<V> {
    let mut map = IdMap::with_capacity_and_hasher(n, Default::default());
    map.extend(pairs);
    map
}

impl WorldServices {
    /// Services answering from `world`.
    pub fn new(world: Arc<World>) -> Self {
        Self {
            answers: Arc::new(Precomputed::of(&world)),
            world,
            streamed: None,
        }
    }

    /// Also answers core data for posts of `store` that the world lacks.
    pub fn with_stream_store(mut self, store: Arc<PostStore>) -> Self {
        self.streamed = Some(store);
        self
    }

    /// Core data of a streamed post the world does not hold.
    fn streamed_core_data(&self, id: i64) -> Option<CoreData> {
        let p = self.streamed.as_ref()?.get(id)?;
        let get = |v: Option<std::num::NonZeroI64>| v.map(std::num::NonZeroI64::get);
        Some(CoreData {
            text: format!("streamed post {id}").into(),
            retweeted_tweet_id: get(p.source_post_id).filter(|_| p.is_retweet),
            retweeted_user_id: get(p.source_user_id).filter(|_| p.is_retweet),
            in_reply_to_tweet_id: get(p.in_reply_to_post_id),
        })
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
    async fn core_data(&self, ids: &[i64]) -> Result<IdMap<CoreData>, ClientError> {
        let w = &self.world;
        let pairs = ids.iter().filter_map(|id| {
            let data = match w.posts.get(id) {
                None => self.streamed_core_data(*id),
                Some(p) => Some(CoreData {
                    // A retweet's shown text was made at start; any other
                    // post shows its own.
                    text: match self.answers.retweet_texts.get(id) {
                        Some(shown) => shown.clone(),
                        None => p.text.clone(),
                    },
                    retweeted_tweet_id: p.retweet_of,
                    retweeted_user_id: p.retweet_of.and_then(|s| w.posts.get(&s)).map(|s| s.author),
                    in_reply_to_tweet_id: p.in_reply_to,
                }),
            };
            Some((*id, data?))
        });
        Ok(sized_map(ids.len(), pairs))
    }

    async fn media(&self, ids: &[i64]) -> Result<IdMap<Vec<MediaEntity>>, ClientError> {
        let w = &self.world;
        let pairs = ids.iter().filter_map(|id| {
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
        });
        Ok(sized_map(ids.len(), pairs))
    }

    async fn subscription_author_ids(&self, ids: &[i64]) -> Result<IdMap<i64>, ClientError> {
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
    async fn users(&self, ids: &[i64]) -> Result<IdMap<UserProfile>, ClientError> {
        let profiles = &self.answers.profiles;
        let pairs = ids
            .iter()
            .filter_map(|id| Some((*id, profiles.get(id)?.clone())));
        Ok(sized_map(ids.len(), pairs))
    }
}

#[async_trait]
impl VisibilityClient for WorldServices {
    async fn check(
        &self,
        _viewer: &ViewerContext,
        level: SafetyLevel,
        ids: &[i64],
    ) -> Result<IdMap<VisibilityReason>, ClientError> {
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
