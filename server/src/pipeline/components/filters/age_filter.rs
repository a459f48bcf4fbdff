//! §2.6.3: keep iff the snowflake age of the candidate's own tweet_id (a
//! retweet's own id) is known and ≤ MAX_POST_AGE; invalid or future ids are
//! removed.

use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::pipeline::framework::{ComponentError, Filter, FilterOutput};
use crate::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};
use crate::pipeline::util::snowflake;

/// Drops posts older than `max_age_s`.
#[derive(Debug)]
pub struct AgeFilter {
    max_age_ms: i64,
    clock: Arc<dyn Clock>,
}

impl AgeFilter {
    /// Keeps posts at most `max_age_s` seconds old by `clock`.
    pub fn new(max_age_s: u64, clock: Arc<dyn Clock>) -> Self {
        Self {
            max_age_ms: i64::try_from(max_age_s.saturating_mul(1000)).unwrap_or(i64::MAX),
            clock,
        }
    }
}

#[async_trait]
impl Filter<ScoredPostsQuery, PostCandidate> for AgeFilter {
    async fn filter(
        &self,
        _q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<FilterOutput, ComponentError> {
        let now = self.clock.unix_ms();
        Ok(FilterOutput::partition(candidates, |c| {
            snowflake::age_ms(c.tweet_id, now).is_some_and(|age| age <= self.max_age_ms)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn keeps_known_ages_up_to_the_limit() {
        let now_s = 1_800_000_000;
        let f = AgeFilter::new(100, Arc::new(ManualClock::new(now_s)));
        let at = |s: i64| snowflake::id_at(s * 1000);
        let edge = at(now_s - 100);
        let old = at(now_s - 101);
        let future = at(now_s + 1);
        let (kept, removed) = run(
            &f,
            &query(),
            vec![post(edge, 9), post(old, 9), post(future, 9), post(-3, 9)],
        );
        assert_eq!(kept, vec![edge]);
        assert_eq!(removed, vec![old, future, -3]);
    }
}
