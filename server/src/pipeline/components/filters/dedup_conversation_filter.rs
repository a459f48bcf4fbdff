//! §2.8.4 (post-selection): one candidate per conversation. Key =
//! min(ancestors), or the tweet_id without ancestors. In one pass, the first
//! candidate of a key takes a slot; a later one with a strictly higher score
//! (None = 0) replaces it in that slot and the occupant is removed;
//! otherwise the later one is removed. No re-sort.

use async_trait::async_trait;

use crate::clients::IdMap;
use crate::pipeline::framework::{ComponentError, Filter, FilterOutput};
use crate::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};

/// Keeps the best-scored candidate of each conversation.
#[derive(Debug, Default)]
pub struct DedupConversationFilter;

fn conversation_key(c: &PostCandidate) -> i64 {
    c.ancestors.iter().copied().min().unwrap_or(c.tweet_id)
}

#[async_trait]
impl Filter<ScoredPostsQuery, PostCandidate> for DedupConversationFilter {
    async fn filter(
        &self,
        _q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<FilterOutput, ComponentError> {
        // Positions: `kept[slot]` is the candidate holding a slot.
        let mut kept: Vec<usize> = Vec::with_capacity(candidates.len());
        let mut removed = Vec::new();
        let mut slot_of: IdMap<usize> =
            IdMap::with_capacity_and_hasher(candidates.len(), Default::default());
        let score = |i: usize| candidates[i].score.unwrap_or(0.0);
        for (i, c) in candidates.iter().enumerate() {
            let key = conversation_key(c);
            match slot_of.get(&key) {
                None => {
                    slot_of.insert(key, kept.len());
                    kept.push(i);
                }
                Some(&slot) => {
                    if score(i) > score(kept[slot]) {
                        removed.push(std::mem::replace(&mut kept[slot], i));
                    } else {
                        removed.push(i);
                    }
                }
            }
        }
        Ok(FilterOutput { kept, removed })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn in_conv(id: i64, ancestors: &[i64], score: Option<f64>) -> PostCandidate {
        PostCandidate {
            ancestors: ancestors.into(),
            score,
            ..post(id, 9)
        }
    }

    #[test]
    fn best_of_each_conversation_takes_the_first_slot() {
        let (kept, removed) = run(
            &DedupConversationFilter,
            &query(),
            vec![
                in_conv(10, &[3, 1], Some(0.5)), // conversation 1
                in_conv(20, &[], Some(0.9)),     // its own key
                in_conv(11, &[1], Some(0.7)),    // higher: replaces 10 in slot 0
                in_conv(12, &[5, 1], Some(0.7)), // equal: removed
                in_conv(1, &[], None),           // the root itself, None = 0
            ],
        );
        assert_eq!(kept, vec![11, 20]);
        assert_eq!(removed, vec![10, 12, 1]);
    }
}
