//! §2.5 VideoDurationCandidateHydrator (TES media): the duration of the
//! first media entity that has video info, else None.

use std::sync::Arc;

use async_trait::async_trait;

use crate::clients::TweetEntityClient;
use crate::pipeline::framework::{ComponentError, Hydrator};
use crate::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};

/// Sets `video_duration_ms`.
#[derive(Debug, Clone)]
pub struct VideoDurationCandidateHydrator {
    client: Arc<dyn TweetEntityClient>,
}

impl VideoDurationCandidateHydrator {
    /// Over this client.
    pub fn new(client: Arc<dyn TweetEntityClient>) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Hydrator<ScoredPostsQuery, PostCandidate> for VideoDurationCandidateHydrator {
    /// `video_duration_ms`.
    type Output = Option<i32>;

    async fn hydrate(
        &self,
        _q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<Vec<Option<i32>>, ComponentError> {
        let ids: Vec<i64> = candidates.iter().map(|c| c.tweet_id).collect();
        let media = self
            .client
            .media(&ids)
            .await
            .map_err(|e| ComponentError::failed(e.to_string()))?;
        Ok(candidates
            .iter()
            .map(|c| {
                media
                    .get(&c.tweet_id)
                    .and_then(|m| m.iter().find_map(|e| e.video_duration_ms))
            })
            .collect())
    }

    fn update(&self, c: &mut PostCandidate, duration_ms: Option<i32>) {
        c.video_duration_ms = duration_ms;
    }
}
