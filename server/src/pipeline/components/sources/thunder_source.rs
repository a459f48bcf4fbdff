//! §2.4 ThunderSource: in-network candidates from Thunder (always enabled).
//! Request: the viewer, their follows, THUNDER_MAX_RESULTS, nothing
//! excluded, algorithm "default", not debug, not video. Each post becomes a
//! candidate served as ForYouInNetwork: reply id (dropped if negative) and
//! ancestors `[parent]` plus the conversation root when present and distinct.
//! Retweet fields are left to CoreData.
//!
//! Large follow lists: the request carries at most MAX_INPUT_LIST_SIZE
//! (5000, §3.6 step 4, §4.2) followed accounts, the **head** of
//! `user_features.followed_user_ids` in the order the user-features store
//! gives it (§2.3). Upstream Thunder cut longer lists to that head and
//! served; ours rejects them with INVALID_ARGUMENT (§4.4), which for a
//! viewer following more than 5000 accounts silently left the feed
//! out-of-network only, so the source cuts the list itself (§4.4) and
//! logs a warning, as upstream's Thunder did.
//!
//! Why the head: it is the upstream cut, and the one Thunder's own
//! follow lookup makes (§3.6 step 2, `FollowingLookup::following` with
//! MAX_INPUT_LIST_SIZE), so both paths ask about the same accounts. It is
//! deterministic, so a viewer's in-network pool does not change from one
//! request to the next. Which follows come first is the store's call: our
//! world lists follows in the order they were recorded (the world file's
//! record order; the generator writes them by account index), with no
//! follow time to sort by; a store that lists the follows that matter most
//! first (most recent, highest affinity) has those kept. Only the Thunder
//! request is cut: in-network marking (§2.5) and PhoenixSource's excluded
//! authors still use the whole list.

use std::sync::Arc;

use async_trait::async_trait;
use foryou_proto::v1 as pb;

use crate::clients::InNetworkPostsClient;
use crate::pipeline::framework::{ComponentError, Source};
use crate::pipeline::home_mixer::{Params, PostCandidate, ScoredPostsQuery, ServedType};
use crate::thunder::MAX_INPUT_LIST_SIZE;

/// Fetches the newest posts of followed accounts.
#[derive(Debug, Clone)]
pub struct ThunderSource {
    client: Arc<dyn InNetworkPostsClient>,
    max_results: usize,
}

impl ThunderSource {
    /// Over this client, asking for THUNDER_MAX_RESULTS.
    pub fn new(client: Arc<dyn InNetworkPostsClient>, p: &Params) -> Self {
        Self {
            client,
            max_results: p.thunder_max_results,
        }
    }
}

/// The candidate of one Thunder post.
pub fn candidate(p: &pb::LightPost) -> PostCandidate {
    let parent = p.in_reply_to_post_id.filter(|id| *id >= 0);
    let mut ancestors = Vec::new();
    if let Some(parent) = parent.filter(|_| p.is_reply) {
        ancestors.push(parent);
        if let Some(root) = p.conversation_id.filter(|r| *r != parent) {
            ancestors.push(root);
        }
    }
    PostCandidate {
        tweet_id: p.post_id,
        author_id: p.author_id,
        in_reply_to_tweet_id: parent,
        ancestors: ancestors.into(),
        served_type: Some(ServedType::ForYouInNetwork),
        ..PostCandidate::default()
    }
}

#[async_trait]
impl Source<ScoredPostsQuery, PostCandidate> for ThunderSource {
    async fn get_candidates(
        &self,
        q: &ScoredPostsQuery,
    ) -> Result<Vec<PostCandidate>, ComponentError> {
        let followed = &q.user_features.followed_user_ids;
        let sent = &followed[..followed.len().min(MAX_INPUT_LIST_SIZE)];
        if sent.len() < followed.len() {
            tracing::warn!(
                request_id = q.request_id,
                followed = followed.len(),
                sent = sent.len(),
                "following list cut to Thunder's MAX_INPUT_LIST_SIZE"
            );
        }
        let req = pb::GetInNetworkPostsRequest {
            user_id: q.user_id,
            following_user_ids: sent.to_vec(),
            max_results: u32::try_from(self.max_results).unwrap_or(u32::MAX),
            exclude_tweet_ids: Vec::new(),
            algorithm: "default".into(),
            debug: false,
            is_video_request: false,
        };
        let resp = self
            .client
            .get_in_network_posts(req)
            .await
            .map_err(|e| ComponentError::failed(e.to_string()))?;
        Ok(resp.posts.iter().map(candidate).collect())
    }
}

#[cfg(test)]
mod tests {
    use parking_lot::Mutex;

    use super::*;
    use crate::clients::{ClientError, EmbeddedThunder};
    use crate::clock::ManualClock;
    use crate::grpc::in_network_posts::ThunderService;
    use crate::pipeline::home_mixer::UserFeatures;
    use crate::thunder::{LightPost, PostStore, ThunderParams};

    const NOW: i64 = 1_800_000_000;

    /// The embedded Thunder, keeping a copy of every request it is sent.
    #[derive(Debug)]
    struct RecordingThunder {
        thunder: EmbeddedThunder,
        requests: Mutex<Vec<pb::GetInNetworkPostsRequest>>,
    }

    #[async_trait]
    impl InNetworkPostsClient for RecordingThunder {
        async fn get_in_network_posts(
            &self,
            req: pb::GetInNetworkPostsRequest,
        ) -> Result<pb::GetInNetworkPostsResponse, ClientError> {
            self.requests.lock().push(req.clone());
            self.thunder.get_in_network_posts(req).await
        }
    }

    #[tokio::test]
    async fn a_viewer_following_6000_accounts_gets_in_network_posts_from_the_list_head() {
        // Accounts 1001..=7000, in the store's order; one post each by the
        // first, the 5000th (last kept) and the 5001st (first cut) account.
        let followed: Vec<i64> = (1001..=7000).collect();
        let (first, last_kept, first_cut) = (followed[0], followed[4999], followed[5000]);
        let store = Arc::new(PostStore::new(
            ThunderParams::default(),
            Arc::new(ManualClock::new(NOW)),
        ));
        store.insert_posts(vec![
            LightPost::original(1, first, NOW - 30),
            LightPost::original(2, last_kept, NOW - 20),
            LightPost::original(3, first_cut, NOW - 10),
        ]);
        let thunder = Arc::new(RecordingThunder {
            thunder: EmbeddedThunder(ThunderService::new(store)),
            requests: Mutex::new(Vec::new()),
        });
        let source = ThunderSource::new(thunder.clone(), &Params::default());
        let query = ScoredPostsQuery {
            user_id: 1,
            request_id: "7-1".into(),
            user_features: UserFeatures {
                followed_user_ids: followed.clone(),
                ..UserFeatures::default()
            },
            ..ScoredPostsQuery::default()
        };

        let got = source
            .get_candidates(&query)
            .await
            .expect("Thunder accepts the cut list");

        let requests = thunder.requests.lock();
        assert_eq!(requests.len(), 1);
        let sent = &requests[0].following_user_ids;
        assert!(sent.len() <= MAX_INPUT_LIST_SIZE, "sent {}", sent.len());
        assert_eq!(
            sent[..],
            followed[..MAX_INPUT_LIST_SIZE],
            "the head, in order"
        );
        let ids: Vec<i64> = got.iter().map(|c| c.tweet_id).collect();
        assert_eq!(
            ids,
            vec![2, 1],
            "in-network posts of kept accounts, newest first"
        );
        assert!(
            got.iter()
                .all(|c| c.served_type == Some(ServedType::ForYouInNetwork))
        );
    }

    #[tokio::test]
    async fn a_following_list_within_the_limit_is_sent_whole() {
        let store = Arc::new(PostStore::new(
            ThunderParams::default(),
            Arc::new(ManualClock::new(NOW)),
        ));
        let thunder = Arc::new(RecordingThunder {
            thunder: EmbeddedThunder(ThunderService::new(store)),
            requests: Mutex::new(Vec::new()),
        });
        let source = ThunderSource::new(thunder.clone(), &Params::default());
        let followed: Vec<i64> = (1..=MAX_INPUT_LIST_SIZE as i64).rev().collect();
        let query = ScoredPostsQuery {
            user_id: 1,
            user_features: UserFeatures {
                followed_user_ids: followed.clone(),
                ..UserFeatures::default()
            },
            ..ScoredPostsQuery::default()
        };
        source.get_candidates(&query).await.expect("accepted");
        assert_eq!(thunder.requests.lock()[0].following_user_ids, followed);
    }

    #[test]
    fn replies_get_parent_then_distinct_root_as_ancestors() {
        let reply = pb::LightPost {
            post_id: 30,
            author_id: 3,
            is_reply: true,
            in_reply_to_post_id: Some(20),
            conversation_id: Some(10),
            ..Default::default()
        };
        let c = candidate(&reply);
        assert_eq!(*c.ancestors, [20, 10]);
        assert_eq!(c.in_reply_to_tweet_id, Some(20));
        assert_eq!(c.served_type, Some(ServedType::ForYouInNetwork));

        let root_reply = pb::LightPost {
            conversation_id: Some(20),
            ..reply
        };
        assert_eq!(*candidate(&root_reply).ancestors, [20], "root = parent");

        let original = pb::LightPost {
            post_id: 5,
            author_id: 3,
            ..Default::default()
        };
        assert!(candidate(&original).ancestors.is_empty());
        let negative = pb::LightPost {
            in_reply_to_post_id: Some(-4),
            is_reply: true,
            ..original
        };
        assert_eq!(candidate(&negative).in_reply_to_tweet_id, None);
        assert!(candidate(&negative).ancestors.is_empty());
        assert_eq!(
            candidate(&negative).retweeted_tweet_id,
            None,
            "left to CoreData"
        );
    }
}
