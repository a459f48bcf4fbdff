//! §2.5 InNetworkCandidateHydrator: `in_network` = the author is the viewer
//! or an account the viewer follows.

use std::collections::HashSet;

use async_trait::async_trait;

use crate::pipeline::framework::{ComponentError, Hydrator};
use crate::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};

/// Sets `in_network`.
#[derive(Debug, Clone, Copy, Default)]
pub struct InNetworkCandidateHydrator;

#[async_trait]
impl Hydrator<ScoredPostsQuery, PostCandidate> for InNetworkCandidateHydrator {
    async fn hydrate(
        &self,
        q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<Vec<PostCandidate>, ComponentError> {
        let followed: HashSet<i64> = q.user_features.followed_user_ids.iter().copied().collect();
        Ok(candidates
            .iter()
            .map(|c| PostCandidate {
                in_network: Some(c.author_id == q.user_id || followed.contains(&c.author_id)),
                ..PostCandidate::default()
            })
            .collect())
    }

    fn update(&self, c: &mut PostCandidate, h: PostCandidate) {
        c.in_network = h.in_network;
    }
}
