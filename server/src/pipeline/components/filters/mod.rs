//! Pre-scoring filters in spec order (§2.6), and the post-selection VF
//! filter (§2.8.3) and conversation dedup (§2.8.4).

pub mod age_filter;
pub mod author_socialgraph_filter;
pub mod core_data_hydration_filter;
pub mod dedup_conversation_filter;
pub mod drop_duplicates_filter;
pub mod ineligible_subscription_filter;
pub mod muted_keyword_filter;
pub mod previously_seen_posts_filter;
pub mod previously_served_posts_filter;
pub mod retweet_deduplication_filter;
pub mod self_tweet_filter;
pub mod vf_filter;

pub use age_filter::AgeFilter;
pub use author_socialgraph_filter::AuthorSocialgraphFilter;
pub use core_data_hydration_filter::CoreDataHydrationFilter;
pub use dedup_conversation_filter::DedupConversationFilter;
pub use drop_duplicates_filter::DropDuplicatesFilter;
pub use ineligible_subscription_filter::IneligibleSubscriptionFilter;
pub use muted_keyword_filter::MutedKeywordFilter;
pub use previously_seen_posts_filter::PreviouslySeenPostsFilter;
pub use previously_served_posts_filter::PreviouslyServedPostsFilter;
pub use retweet_deduplication_filter::RetweetDeduplicationFilter;
pub use self_tweet_filter::SelfTweetFilter;
pub use vf_filter::VfFilter;

#[cfg(test)]
pub(crate) mod test_support {
    use crate::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};

    /// The viewer in filter tests.
    pub const VIEWER: i64 = 1;

    pub fn query() -> ScoredPostsQuery {
        ScoredPostsQuery {
            user_id: VIEWER,
            request_id: "t-1".into(),
            result_size: 35,
            ..ScoredPostsQuery::default()
        }
    }

    pub fn post(id: i64, author: i64) -> PostCandidate {
        PostCandidate {
            tweet_id: id,
            author_id: author,
            tweet_text: format!("post {id}").into(),
            ..PostCandidate::default()
        }
    }

    pub fn retweet(id: i64, author: i64, source: i64, source_author: i64) -> PostCandidate {
        PostCandidate {
            retweeted_tweet_id: Some(source),
            retweeted_user_id: Some(source_author),
            ..post(id, author)
        }
    }

    pub fn ids(v: &[PostCandidate]) -> Vec<i64> {
        v.iter().map(|c| c.tweet_id).collect()
    }

    /// Runs a filter to completion.
    pub fn run<F: crate::pipeline::framework::Filter<ScoredPostsQuery, PostCandidate>>(
        f: &F,
        q: &ScoredPostsQuery,
        c: Vec<PostCandidate>,
    ) -> (Vec<i64>, Vec<i64>) {
        let out = futures_util::FutureExt::now_or_never(f.filter(q, &c))
            .expect("filters do not wait")
            .expect("filter ok");
        assert!(out.is_valid_for(c.len()), "each position once: {out:?}");
        let (kept, removed) = out.apply(c);
        (ids(&kept), ids(&removed))
    }
}
