//! Deleted post ids remembered for the retention window, so that a post
//! deleted before it arrives (events out of order) or delivered again
//! after its delete (a replay) is not inserted.

use std::collections::{HashMap, VecDeque};

/// Post ids by the time (`now_ms` of the delete call) they were deleted.
#[derive(Debug, Default)]
pub(crate) struct RecentDeletes {
    at: HashMap<i64, i64>,
    /// `(deleted_ms, post_id)` in call order, to forget the oldest first.
    order: VecDeque<(i64, i64)>,
}

impl RecentDeletes {
    /// Remembers `post_id` as deleted at `now_ms`.
    pub fn record(&mut self, post_id: i64, now_ms: i64) {
        self.at.insert(post_id, now_ms);
        self.order.push_back((now_ms, post_id));
    }

    /// Whether `post_id` was deleted and is still remembered.
    pub fn contains(&self, post_id: i64) -> bool {
        self.at.contains_key(&post_id)
    }

    /// Forgets deletes made before `cutoff_ms` (a re-delete keeps the id).
    pub fn forget_before(&mut self, cutoff_ms: i64) {
        while let Some(&(ms, id)) = self.order.front() {
            if ms >= cutoff_ms {
                break;
            }
            self.order.pop_front();
            if self.at.get(&id) == Some(&ms) {
                self.at.remove(&id);
            }
        }
    }

    /// Ids remembered.
    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// Heap bytes held (hash table buckets with their control byte).
    pub fn heap_bytes(&self) -> usize {
        self.at.capacity() * (16 + 1) + self.order.capacity() * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delete_is_forgotten_after_the_window_unless_repeated() {
        let mut d = RecentDeletes::default();
        d.record(1, 100);
        d.record(2, 100);
        d.record(1, 300);
        d.forget_before(200);
        assert!(d.contains(1) && !d.contains(2));
        d.forget_before(301);
        assert_eq!(d.len(), 0);
    }
}
