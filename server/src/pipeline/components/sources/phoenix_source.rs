//! §2.4 PhoenixSource: out-of-network candidates from Phoenix retrieval.
//! Enabled unless `in_network_only`; needs the user action sequence (else
//! errors); asks for PHOENIX_MAX_RESULTS posts and turns each into a
//! candidate served as ForYouPhoenixRetrieval, without ancestors.
//!
//! Ours: the request excludes the viewer's and followed accounts' posts
//! (`excluded_author_ids`), so retrieval is out-of-network by construction.
//! The retrieval response carries no reply id, so `in_reply_to_tweet_id`
//! starts unset (upstream copies TweetInfo's, 0 included); CoreData sets it.

use std::sync::Arc;

use async_trait::async_trait;
use foryou_proto::v1 as pb;

use crate::clients::PhoenixRetrievalClient;
use crate::pipeline::framework::{ComponentError, Source};
use crate::pipeline::home_mixer::{Params, PostCandidate, ScoredPostsQuery, ServedType};

/// Retrieves out-of-network posts.
#[derive(Debug, Clone)]
pub struct PhoenixSource {
    client: Arc<dyn PhoenixRetrievalClient>,
    max_results: usize,
}

impl PhoenixSource {
    /// Over this client, asking for PHOENIX_MAX_RESULTS.
    pub fn new(client: Arc<dyn PhoenixRetrievalClient>, p: &Params) -> Self {
        Self {
            client,
            max_results: p.phoenix_max_results,
        }
    }
}

#[async_trait]
impl Source<ScoredPostsQuery, PostCandidate> for PhoenixSource {
    fn enable(&self, q: &ScoredPostsQuery) -> bool {
        !q.in_network_only
    }

    async fn get_candidates(
        &self,
        q: &ScoredPostsQuery,
    ) -> Result<Vec<PostCandidate>, ComponentError> {
        let seq = q
            .user_action_sequence
            .as_ref()
            .ok_or_else(|| ComponentError::failed("no user action sequence"))?;
        let mut excluded_author_ids = q.user_features.followed_user_ids.clone();
        excluded_author_ids.push(q.user_id);
        let req = pb::RetrieveRequest {
            user_id: q.user_id,
            history: seq.to_history(),
            top_k: u32::try_from(self.max_results).unwrap_or(u32::MAX),
            excluded_post_ids: Vec::new(),
            excluded_author_ids,
        };
        let resp = self
            .client
            .retrieve(req)
            .await
            .map_err(|e| ComponentError::failed(e.to_string()))?;
        Ok(resp
            .posts
            .into_iter()
            .map(|p| PostCandidate {
                tweet_id: p.post_id,
                author_id: p.author_id,
                served_type: Some(ServedType::ForYouPhoenixRetrieval),
                ..PostCandidate::default()
            })
            .collect())
    }
}
