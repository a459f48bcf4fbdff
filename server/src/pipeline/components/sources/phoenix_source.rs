//! §2.4 PhoenixSource: out-of-network candidates from Phoenix retrieval.
//! Enabled unless `in_network_only`; needs the user action sequence (else
//! errors); asks for PHOENIX_MAX_RESULTS posts and turns each into a
//! candidate served as ForYouPhoenixRetrieval, without ancestors.
//!
//! Ours: the request excludes the viewer's and followed accounts' posts
//! (`excluded_author_ids`), so retrieval is out-of-network by construction.
//! Phoenix refuses more than MAX_EXCLUDED_IDS excluded authors (§4.4), so
//! the list carries the head of the follows (the store's order, as
//! ThunderSource) and then the viewer; posts of follows past the cut can
//! come back as out-of-network candidates.
//! The retrieval response carries no reply id, so `in_reply_to_tweet_id`
//! starts unset (upstream copies TweetInfo's, 0 included); CoreData sets it.

use std::sync::Arc;

use async_trait::async_trait;
use foryou_proto::v1 as pb;

use crate::clients::PhoenixRetrievalClient;
use crate::phoenix::engine::MAX_EXCLUDED_IDS;
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
        let followed = &q.user_features.followed_user_ids;
        let kept = followed.len().min(MAX_EXCLUDED_IDS - 1);
        if kept < followed.len() {
            tracing::warn!(
                request_id = q.request_id,
                followed = followed.len(),
                excluded = kept,
                "excluded authors cut to Phoenix's MAX_EXCLUDED_IDS"
            );
        }
        let mut excluded_author_ids = followed[..kept].to_vec();
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

#[cfg(test)]
mod tests {
    use parking_lot::Mutex;

    use super::*;
    use crate::clients::ClientError;
    use crate::pipeline::home_mixer::{UserActionSequence, UserFeatures};

    /// Keeps every request; retrieves nothing.
    #[derive(Debug, Default)]
    struct Recording(Mutex<Vec<pb::RetrieveRequest>>);

    #[async_trait]
    impl PhoenixRetrievalClient for Recording {
        async fn retrieve(
            &self,
            req: pb::RetrieveRequest,
        ) -> Result<pb::RetrieveResponse, ClientError> {
            self.0.lock().push(req);
            Ok(pb::RetrieveResponse::default())
        }
    }

    async fn excluded_authors(followed: Vec<i64>) -> Vec<i64> {
        let client = Arc::new(Recording::default());
        let source = PhoenixSource::new(client.clone(), &Params::default());
        let query = ScoredPostsQuery {
            user_id: 1,
            user_features: UserFeatures {
                followed_user_ids: followed,
                ..UserFeatures::default()
            },
            user_action_sequence: Some(Arc::new(UserActionSequence::default())),
            ..ScoredPostsQuery::default()
        };
        source.get_candidates(&query).await.expect("retrieved");
        let requests = client.0.lock();
        requests[0].excluded_author_ids.clone()
    }

    #[tokio::test]
    async fn excluded_authors_are_cut_to_phoenix_limit_keeping_the_viewer() {
        let followed: Vec<i64> = (10..10 + MAX_EXCLUDED_IDS as i64 + 5).collect();
        let sent = excluded_authors(followed.clone()).await;
        assert_eq!(sent.len(), MAX_EXCLUDED_IDS);
        assert_eq!(
            sent[..MAX_EXCLUDED_IDS - 1],
            followed[..MAX_EXCLUDED_IDS - 1]
        );
        assert_eq!(sent.last(), Some(&1), "the viewer is always excluded");
        let within: Vec<i64> = (10..10 + MAX_EXCLUDED_IDS as i64 - 1).collect();
        let sent = excluded_authors(within.clone()).await;
        assert_eq!(sent[..within.len()], within[..], "sent whole");
        assert_eq!(sent.len(), MAX_EXCLUDED_IDS);
    }
}
