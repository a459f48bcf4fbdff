//! §2.5 CoreDataCandidateHydrator (TES core data, one batch): text, retweet
//! source (id and author) and reply id. A post TES does not know gets None
//! and "" (overwriting the source's reply id); `author_id` is not copied.
//! A failed call skips the hydrator, so every text stays empty and
//! CoreDataHydrationFilter then removes everything (spec §4.3 note 1).

use std::sync::Arc;

use async_trait::async_trait;

use crate::clients::TweetEntityClient;
use crate::pipeline::framework::{ComponentError, Hydrator};
use crate::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};

/// Sets text, retweet source and reply id.
#[derive(Debug, Clone)]
pub struct CoreDataCandidateHydrator {
    client: Arc<dyn TweetEntityClient>,
}

impl CoreDataCandidateHydrator {
    /// Over this client.
    pub fn new(client: Arc<dyn TweetEntityClient>) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Hydrator<ScoredPostsQuery, PostCandidate> for CoreDataCandidateHydrator {
    async fn hydrate(
        &self,
        _q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<Vec<PostCandidate>, ComponentError> {
        let ids: Vec<i64> = candidates.iter().map(|c| c.tweet_id).collect();
        let data = self
            .client
            .core_data(&ids)
            .await
            .map_err(|e| ComponentError::failed(e.to_string()))?;
        Ok(candidates
            .iter()
            .map(|c| {
                let d = data.get(&c.tweet_id);
                PostCandidate {
                    tweet_text: d.map(|d| d.text.clone()).unwrap_or_default(),
                    retweeted_tweet_id: d.and_then(|d| d.retweeted_tweet_id),
                    retweeted_user_id: d.and_then(|d| d.retweeted_user_id),
                    in_reply_to_tweet_id: d.and_then(|d| d.in_reply_to_tweet_id),
                    ..PostCandidate::default()
                }
            })
            .collect())
    }

    fn update(&self, c: &mut PostCandidate, h: PostCandidate) {
        c.tweet_text = h.tweet_text;
        c.retweeted_tweet_id = h.retweeted_tweet_id;
        c.retweeted_user_id = h.retweeted_user_id;
        c.in_reply_to_tweet_id = h.in_reply_to_tweet_id;
    }
}
