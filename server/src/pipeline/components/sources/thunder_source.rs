//! §2.4 ThunderSource: in-network candidates from Thunder (always enabled).
//! Request: the viewer, their follows, THUNDER_MAX_RESULTS, nothing
//! excluded, algorithm "default", not debug, not video. Each post becomes a
//! candidate served as ForYouInNetwork: reply id (dropped if negative) and
//! ancestors `[parent]` plus the conversation root when present and distinct.
//! Retweet fields are left to CoreData.

use std::sync::Arc;

use async_trait::async_trait;
use foryou_proto::v1 as pb;

use crate::clients::InNetworkPostsClient;
use crate::pipeline::framework::{ComponentError, Source};
use crate::pipeline::home_mixer::{Params, PostCandidate, ScoredPostsQuery, ServedType};

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
        ancestors,
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
        let req = pb::GetInNetworkPostsRequest {
            user_id: q.user_id,
            following_user_ids: q.user_features.followed_user_ids.clone(),
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
    use super::*;

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
        assert_eq!(c.ancestors, vec![20, 10]);
        assert_eq!(c.in_reply_to_tweet_id, Some(20));
        assert_eq!(c.served_type, Some(ServedType::ForYouInNetwork));

        let root_reply = pb::LightPost {
            conversation_id: Some(20),
            ..reply
        };
        assert_eq!(candidate(&root_reply).ancestors, vec![20], "root = parent");

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
