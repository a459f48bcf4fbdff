//! Store maintenance (spec §3.5): trimming expired entries, `finalize_init`
//! after catch-up, and the periodic auto-trim and stats tasks.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::light_post::LightPost;
use super::metrics as m;
use super::params::DELETE_EVENT_KEY;
use super::post_store::PostStore;
use super::timelines::{TIMELINE_SHARDS, Timelines};

/// How often the auto-trim task runs (spec: every 2 min, first tick at once).
pub const AUTO_TRIM_INTERVAL: Duration = Duration::from_secs(120);
/// Authors trimmed per shard write hold.
const TRIM_AUTHORS_PER_HOLD: usize = 256;
/// How often the stats task publishes gauges (spec: every 5 s).
pub const STATS_INTERVAL: Duration = Duration::from_secs(5);

impl PostStore {
    /// Spec §3.5 trim: for each timeline map, pop entries older than the
    /// retention from the front (removing their posts; for delete markers,
    /// forgetting the deleted id too), shrink deques holding more than twice
    /// their length, and drop authors whose deque is empty (under the same
    /// write hold). Relies on ascending order: it stops at the first
    /// unexpired entry. Returns the entries popped from the original and
    /// secondary maps (video entries are not counted, as upstream).
    pub fn trim_old_posts(&self) -> usize {
        let original = self.trim_map(&self.original_posts_by_user);
        let secondary = self.trim_map(&self.secondary_posts_by_user);
        self.trim_map(&self.video_posts_by_user);
        let popped = original + secondary;
        metrics::counter!(m::TRIMMED).increment(popped as u64);
        popped
    }

    fn trim_map(&self, timelines: &Timelines) -> usize {
        let now = self.clock.unix_s();
        let retention = self.params.retention_s;
        let mut popped_total = 0;
        let mut popped: Vec<(i64, i64)> = Vec::new();
        for shard in 0..TIMELINE_SHARDS {
            // Short write holds (TRIM_AUTHORS_PER_HOLD authors each), so a
            // shard of a large store never blocks requests for long.
            for authors in timelines.shard_authors(shard).chunks(TRIM_AUTHORS_PER_HOLD) {
                let mut guard = timelines.write_shard(shard);
                for author in authors {
                    let Some(timeline) = guard.get_mut(author) else {
                        continue;
                    };
                    let expired = |t: &LightPost| now.saturating_sub(t.created_at) > retention;
                    while let Some(t) = timeline.pop_oldest_if(expired) {
                        popped.push((*author, t.post_id));
                    }
                    timeline.shrink();
                    if timeline.len() == 0 {
                        guard.remove(author);
                    }
                }
                drop(guard);
                // The timeline guard is released: now touch `posts`.
                popped_total += popped.len();
                for (author, id) in popped.drain(..) {
                    self.posts.remove(&id);
                    if author == DELETE_EVENT_KEY {
                        self.deleted_posts.remove(&id);
                    }
                }
            }
        }
        popped_total
    }

    /// Sorts every timeline ascending by creation time (stable). Events can
    /// arrive out of order across batches and partitions; trimming needs order.
    pub fn sort_all_timelines(&self) {
        for timelines in [
            &self.original_posts_by_user,
            &self.secondary_posts_by_user,
            &self.video_posts_by_user,
        ] {
            timelines.for_each_mut(|_, deque| {
                deque.make_contiguous().sort_by_key(|t| t.created_at);
            });
        }
    }

    /// Spec §3.5 finalize_init, run once after the initial catch-up: sort,
    /// trim, then remove every deleted id from `posts` (upstream can deliver
    /// a create after its delete). Returns the entries trimmed.
    pub fn finalize_init(&self) -> usize {
        self.sort_all_timelines();
        let trimmed = self.trim_old_posts();
        for id in self.deleted_posts.iter() {
            self.posts.remove(&*id);
        }
        trimmed
    }

    /// Publishes the stats gauges once (spec §3.5 stats).
    pub fn publish_stats(&self) {
        let s = self.stats();
        metrics::gauge!(m::AUTHORS).set(s.users as f64);
        metrics::gauge!(m::POSTS).set(s.posts as f64);
        metrics::gauge!(m::DELETED_POSTS).set(s.deleted_posts as f64);
        for (entity, n) in [
            ("users", s.users),
            ("posts", s.posts),
            ("original_posts", s.original_posts),
            ("secondary_posts", s.secondary_posts),
            ("video_posts", s.video_posts),
            ("deleted_posts", s.deleted_posts),
        ] {
            metrics::gauge!(m::ENTITIES, "entity" => entity).set(n as f64);
        }
    }

    /// Events applied so far (creates and deletes), for the ingest rate.
    pub fn events_applied(&self) -> u64 {
        self.events_applied.load(Ordering::Relaxed)
    }
}

/// Starts the auto-trim task: every [`AUTO_TRIM_INTERVAL`] (first tick at
/// once) trims on a blocking worker and logs when anything was trimmed.
/// Abort the handle to stop it.
pub fn spawn_auto_trim(store: Arc<PostStore>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(AUTO_TRIM_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let s = store.clone();
            match tokio::task::spawn_blocking(move || s.trim_old_posts()).await {
                Ok(n) if n > 0 => tracing::info!(trimmed = n, "trimmed expired posts"),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "trim worker failed"),
            }
        }
    })
}

/// Starts the stats task: every [`STATS_INTERVAL`] publishes the entity
/// gauges and the ingest rate, and logs a summary line at debug level.
pub fn spawn_stats_logger(store: Arc<PostStore>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(STATS_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = (store.clock().monotonic(), store.events_applied());
        loop {
            tick.tick().await;
            let s = store.clone();
            let stats = match tokio::task::spawn_blocking(move || {
                s.publish_stats();
                s.stats()
            })
            .await
            {
                Ok(stats) => stats,
                Err(e) => {
                    tracing::error!(error = %e, "stats worker failed");
                    continue;
                }
            };
            let now = (store.clock().monotonic(), store.events_applied());
            let secs = now.0.saturating_sub(last.0).as_secs_f64();
            if secs > 0.0 {
                let rate = now.1.saturating_sub(last.1) as f64 / secs;
                metrics::gauge!(m::INGEST_RATE).set(rate);
            }
            last = now;
            tracing::debug!(
                posts = stats.posts,
                users = stats.users,
                original = stats.original_posts,
                secondary = stats.secondary_posts,
                video = stats.video_posts,
                deleted = stats.deleted_posts,
                "post store stats"
            );
        }
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;
    use crate::thunder::light_post::{LightPost, PostDelete, TinyPost};
    use crate::thunder::params::ThunderParams;

    const NOW: i64 = 1_800_000_000;

    fn store(retention_s: i64) -> (PostStore, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(NOW));
        let params = ThunderParams {
            retention_s,
            ..ThunderParams::default()
        };
        (PostStore::new(params, clock.clone()), clock)
    }

    #[test]
    fn trim_pops_expired_fronts_and_removes_their_posts() {
        let (s, clock) = store(100);
        s.insert_posts(vec![
            LightPost::original(1, 10, NOW - 90),
            LightPost::original(2, 10, NOW - 30).with_video(),
            LightPost::reply(3, 10, NOW - 80, 1, 10, 1),
            LightPost::original(4, 10, NOW - 10),
        ]);
        clock.advance(Duration::from_secs(60)); // 1 and 3 now older than 100 s
        assert_eq!(s.trim_old_posts(), 2);
        assert!(s.get(1).is_none() && s.get(3).is_none());
        assert!(s.get(2).is_some() && s.get(4).is_some());
        let snap = s.snapshot();
        assert_eq!(snap.original[&10].len(), 2);
        assert!(!snap.secondary.contains_key(&10), "empty author removed");
        assert_eq!(snap.video[&10].len(), 1);
    }

    #[test]
    fn video_entries_are_trimmed_but_not_counted() {
        let (s, clock) = store(100);
        s.insert_posts(vec![LightPost::original(1, 10, NOW - 90).with_video()]);
        clock.advance(Duration::from_secs(20));
        assert_eq!(s.trim_old_posts(), 1, "the original entry only");
        assert!(s.snapshot().video.is_empty());
    }

    #[test]
    fn delete_markers_expire_one_retention_after_deletion() {
        let (s, clock) = store(100);
        s.mark_as_deleted(&[PostDelete {
            post_id: 9,
            deleted_at: NOW,
        }]);
        clock.advance(Duration::from_secs(100));
        s.trim_old_posts();
        assert!(s.is_deleted(9), "kept for exactly one retention");
        clock.advance(Duration::from_secs(1));
        s.trim_old_posts();
        assert!(!s.is_deleted(9));
        assert!(!s.snapshot().original.contains_key(&DELETE_EVENT_KEY));
    }

    #[test]
    fn delete_markers_with_extreme_deleted_at_do_not_wrap_or_pin_the_trim() {
        let (s, clock) = store(100);
        let d = |post_id, deleted_at| PostDelete {
            post_id,
            deleted_at,
        };
        s.mark_as_deleted(&[d(7, i64::MIN), d(8, NOW), d(9, i64::MAX)]);
        assert!(s.is_deleted(7) && s.is_deleted(8) && s.is_deleted(9));
        // The i64::MIN marker sorts first: it must expire, not stop the trim.
        s.trim_old_posts();
        assert!(!s.is_deleted(7), "a marker older than retention expires");
        clock.advance(Duration::from_secs(101));
        s.trim_old_posts();
        assert!(!s.is_deleted(8));
        // i64::MAX is remembered from the skew limit, not forever.
        let skew = s.params.max_future_skew_s as u64;
        clock.advance(Duration::from_secs(skew));
        s.trim_old_posts();
        assert!(!s.is_deleted(9), "a future deletion expires too");
        assert!(!s.snapshot().original.contains_key(&DELETE_EVENT_KEY));
    }

    #[test]
    fn trim_shrinks_oversized_deques() {
        let (s, clock) = store(1000);
        s.insert_posts(
            (0..64)
                .map(|i| LightPost::original(i + 1, 10, NOW - 900 + i))
                .collect(),
        );
        clock.advance(Duration::from_secs(160)); // the oldest 60 expire
        s.trim_old_posts();
        let cap = s
            .original_posts_by_user
            .with(10, |t| (t.len(), t.capacity()));
        let (len, cap) = cap.expect("author 10 still has posts");
        assert_eq!(len, 4);
        assert!(cap <= 2 * len, "capacity {cap} for {len} entries");
    }

    #[test]
    fn out_of_order_arrival_is_trimmed_in_time_order() {
        // Upstream appends, so an expired entry behind a fresh one waits for
        // finalize_init's sort; our timelines are kept in time order, so
        // trim pops it at once and stops at the fresh one.
        let (s, clock) = store(100);
        s.insert_posts(vec![LightPost::original(2, 10, NOW - 10)]);
        s.insert_posts(vec![LightPost::original(1, 10, NOW - 99)]);
        clock.advance(Duration::from_secs(5));
        assert_eq!(s.trim_old_posts(), 1);
        assert_eq!(s.finalize_init(), 0);
        assert_eq!(
            s.snapshot().original[&10],
            vec![TinyPost {
                post_id: 2,
                created_at: NOW - 10
            }]
        );
    }

    #[test]
    fn finalize_init_purges_posts_created_after_their_delete() {
        let (s, _) = store(1000);
        s.insert_posts(vec![LightPost::original(1, 10, NOW - 5)]);
        // A delete that raced the create: the id is marked but the post was
        // (re)inserted afterwards.
        s.deleted_posts.insert(1);
        assert!(s.get(1).is_some());
        s.finalize_init();
        assert!(s.get(1).is_none());
    }
}
