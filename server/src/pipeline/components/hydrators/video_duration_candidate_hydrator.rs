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
    async fn hydrate(
        &self,
        _q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<Vec<PostCandidate>, ComponentError> {
        let ids: Vec<i64> = candidates.iter().map(|c| c.tweet_id).collect();
        let media = self
            .client
            .media(&ids)
            .await
            .map_err(|e| ComponentError::failed(e.to_string()))?;
        Ok(candidates
            .iter()
            .map(|c| PostCandidate {
                video_duration_ms: media
                    .get(&c.tweet_id)
                    .and_then(|m| m.iter().find_map(|e| e.video_duration_ms)),
                ..PostCandidate::default()
            })
            .collect())
    }

    fn update(&self, c: &mut PostCandidate, h: PostCandidate) {
        c.video_duration_ms = h.video_duration_ms;
    }
}
