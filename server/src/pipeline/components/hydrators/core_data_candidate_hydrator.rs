//! §2.5 CoreDataCandidateHydrator (TES core data, one batch): text, retweet
//! source (id and author) and reply id. A post TES does not know gets None
//! and "" (overwriting the source's reply id); `author_id` is not copied.
//! A failed call skips the hydrator, so every text stays empty and
//! CoreDataHydrationFilter then removes everything (spec §4.3 note 1).
//!
//! With the text come its tokens for MutedKeywordFilter (§2.6.9), from a
//! [`TweetTokenCache`] the hydrator keeps across requests: a post's text is
//! tokenised the first time it is a candidate, not on every request. A post
//! TES does not know gets no tokens.

use std::sync::Arc;

use async_trait::async_trait;

use crate::clients::TweetEntityClient;
use crate::pipeline::framework::{ComponentError, Hydrator};
use crate::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};
use crate::pipeline::util::tokenizer::TweetTokens;
use crate::pipeline::util::tweet_token_cache::TweetTokenCache;

/// Sets text (and its tokens), retweet source and reply id.
#[derive(Debug, Clone)]
pub struct CoreDataCandidateHydrator {
    client: Arc<dyn TweetEntityClient>,
    tokens: Arc<TweetTokenCache>,
}

impl CoreDataCandidateHydrator {
    /// Over this client, with a token cache of the default size.
    pub fn new(client: Arc<dyn TweetEntityClient>) -> Self {
        Self::with_token_cache(client, Arc::new(TweetTokenCache::default()))
    }

    /// Over this client, keeping tokens in `tokens`.
    pub fn with_token_cache(
        client: Arc<dyn TweetEntityClient>,
        tokens: Arc<TweetTokenCache>,
    ) -> Self {
        Self { client, tokens }
    }
}

#[async_trait]
impl Hydrator<ScoredPostsQuery, PostCandidate> for CoreDataCandidateHydrator {
    type Output = CoreFields;

    async fn hydrate(
        &self,
        _q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<Vec<CoreFields>, ComponentError> {
        let ids: Vec<i64> = candidates.iter().map(|c| c.tweet_id).collect();
        let data = self
            .client
            .core_data(&ids)
            .await
            .map_err(|e| ComponentError::failed(e.to_string()))?;
        let found: Vec<_> = candidates.iter().map(|c| data.get(&c.tweet_id)).collect();
        let texts: Vec<(i64, &std::sync::Arc<str>)> = candidates
            .iter()
            .zip(&found)
            .filter_map(|(c, d)| d.map(|d| (c.tweet_id, &d.text)))
            .collect();
        // One per known post, in candidate order.
        let mut tokens = self.tokens.tokens(&texts).into_iter();
        Ok(found
            .into_iter()
            .map(|d| CoreFields {
                text: d.map(|d| d.text.clone()),
                tokens: d.and_then(|_| tokens.next()),
                retweeted_tweet_id: d.and_then(|d| d.retweeted_tweet_id),
                retweeted_user_id: d.and_then(|d| d.retweeted_user_id),
                in_reply_to_tweet_id: d.and_then(|d| d.in_reply_to_tweet_id),
            })
            .collect())
    }

    fn update(&self, c: &mut PostCandidate, h: CoreFields) {
        // A post TES does not know gets "" (the candidate's own default).
        c.tweet_text = h.text.unwrap_or_default();
        c.tweet_tokens = h.tokens;
        c.retweeted_tweet_id = h.retweeted_tweet_id;
        c.retweeted_user_id = h.retweeted_user_id;
        c.in_reply_to_tweet_id = h.in_reply_to_tweet_id;
    }
}

/// The core-data fields of one candidate (`text` `None`: TES does not
/// know the post).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CoreFields {
    /// The post's text.
    pub text: Option<Arc<str>>,
    /// Its tokens for MutedKeywordFilter.
    pub tokens: Option<Arc<TweetTokens>>,
    /// For a retweet, the source post.
    pub retweeted_tweet_id: Option<i64>,
    /// For a retweet, the source post's author.
    pub retweeted_user_id: Option<i64>,
    /// For a reply, the parent post.
    pub in_reply_to_tweet_id: Option<i64>,
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;
    use crate::world::{Post, World, WorldServices};

    /// Candidates `ids` as the framework leaves them after the hydrator.
    fn hydrate(h: &CoreDataCandidateHydrator, ids: &[i64]) -> Vec<PostCandidate> {
        let mut candidates: Vec<PostCandidate> = ids
            .iter()
            .map(|&tweet_id| PostCandidate {
                tweet_id,
                ..PostCandidate::default()
            })
            .collect();
        let out = h
            .hydrate(&ScoredPostsQuery::default(), &candidates)
            .now_or_never()
            .expect("the embedded services answer at once")
            .expect("core data");
        assert_eq!(out.len(), candidates.len());
        for (c, o) in candidates.iter_mut().zip(out) {
            h.update(c, o);
        }
        candidates
    }

    #[test]
    fn tokens_come_with_the_text_and_are_made_once_per_post() {
        let mut w = World::new(0);
        w.add_user(1, "ann");
        for (id, text, retweet_of) in [(10, "Red Wedding!", None), (11, "", Some(10))] {
            w.add_post(Post {
                id,
                author: 1,
                text: text.into(),
                retweet_of,
                ..Post::default()
            });
        }
        let h = CoreDataCandidateHydrator::new(Arc::new(WorldServices::new(Arc::new(w))));
        let first = hydrate(&h, &[10, 11, 99]);
        let texts: Vec<(&str, Option<Vec<&str>>)> = first
            .iter()
            .map(|c| {
                let tokens = c.tweet_tokens.as_ref().map(|t| t.iter().collect());
                (&*c.tweet_text, tokens)
            })
            .collect();
        assert_eq!(
            texts,
            [
                ("Red Wedding!", Some(vec!["red", "wedding"])),
                (
                    "RT @ann: Red Wedding!",
                    Some(vec!["rt", "ann", "red", "wedding"])
                ),
                ("", None),
            ]
        );
        let again = hydrate(&h, &[11, 10]);
        let shared = |a: &PostCandidate, b: &PostCandidate| match (&a.tweet_tokens, &b.tweet_tokens)
        {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        assert!(shared(&first[0], &again[1]) && shared(&first[1], &again[0]));
        // A retweet's shown text is made once too, not per request.
        assert!(Arc::ptr_eq(&first[1].tweet_text, &again[0].tweet_text));
    }
}
