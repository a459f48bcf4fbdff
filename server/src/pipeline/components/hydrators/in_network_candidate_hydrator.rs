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
    /// `in_network`.
    type Output = bool;

    async fn hydrate(
        &self,
        q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<Vec<bool>, ComponentError> {
        let followed: HashSet<i64> = q.user_features.followed_user_ids.iter().copied().collect();
        Ok(candidates
            .iter()
            .map(|c| c.author_id == q.user_id || followed.contains(&c.author_id))
            .collect())
    }

    fn update(&self, c: &mut PostCandidate, in_network: bool) {
        c.in_network = Some(in_network);
    }
}
