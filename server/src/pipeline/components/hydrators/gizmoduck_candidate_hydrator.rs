//! §2.5 GizmoduckCandidateHydrator: profiles of the authors and of the
//! retweeted users present in the snapshot; sets the author's follower
//! count and screen name and the retweeted user's screen name.
//!
//! All hydrators see the same snapshot and no source sets
//! `retweeted_user_id`, so `retweeted_screen_name` stays None, as in the
//! original (spec §4.3 note 5).

use std::sync::Arc;

use async_trait::async_trait;

use crate::clients::GizmoduckClient;
use crate::pipeline::framework::{ComponentError, Hydrator};
use crate::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};

/// Sets follower count and screen names.
#[derive(Debug, Clone)]
pub struct GizmoduckCandidateHydrator {
    client: Arc<dyn GizmoduckClient>,
}

impl GizmoduckCandidateHydrator {
    /// Over this client.
    pub fn new(client: Arc<dyn GizmoduckClient>) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Hydrator<ScoredPostsQuery, PostCandidate> for GizmoduckCandidateHydrator {
    type Output = AuthorFields;

    async fn hydrate(
        &self,
        _q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<Vec<AuthorFields>, ComponentError> {
        let mut ids: Vec<i64> = candidates
            .iter()
            .flat_map(|c| std::iter::once(c.author_id).chain(c.retweeted_user_id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let users = self
            .client
            .users(&ids)
            .await
            .map_err(|e| ComponentError::failed(e.to_string()))?;
        Ok(candidates
            .iter()
            .map(|c| {
                let author = users.get(&c.author_id);
                AuthorFields {
                    followers_count: author.map(|u| u.followers_count),
                    screen_name: author.map(|u| Arc::clone(&u.screen_name)),
                    retweeted_screen_name: c
                        .retweeted_user_id
                        .and_then(|u| users.get(&u))
                        .map(|u| Arc::clone(&u.screen_name)),
                }
            })
            .collect())
    }

    fn update(&self, c: &mut PostCandidate, h: AuthorFields) {
        c.author_followers_count = h.followers_count;
        c.author_screen_name = h.screen_name;
        c.retweeted_screen_name = h.retweeted_screen_name;
    }
}

/// The author fields of one candidate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthorFields {
    /// The author's followers.
    pub followers_count: Option<i64>,
    /// The author's screen name.
    pub screen_name: Option<Arc<str>>,
    /// The retweeted post's author's screen name.
    pub retweeted_screen_name: Option<Arc<str>>,
}
