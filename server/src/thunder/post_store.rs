//! [`PostStore`]: the in-memory store of recent posts (spec §3.1–3.3, §3.5
//! stats). Retrieval is in `retrieval.rs`, trimming in `maintenance.rs`.
//!
//! Layout: one concurrent map of posts by id, three per-author timelines
//! (originals, replies + retweets, video-eligible) ascending by creation
//! time, and the set of deleted ids. A delete does not remove timeline
//! entries: it flags them (`LightPost::deleted`) and readers skip flagged
//! entries, which saves a deleted-set lookup per entry on the read path.
//!
//! Deviation in representation, not behaviour: upstream timelines hold
//! [`TinyPost`] (id, time) and every read resolves each id in the posts map,
//! one cache miss per candidate (measured: 2.6 ms p50 at 1000 follows). Our
//! timeline entries carry the whole 72-byte post, so a read walks memory
//! sequentially. The map stays the source of truth for lookups (parents,
//! `get`); a duplicate insert that changes a post rewrites its timeline
//! copies, and a post leaves the map only when it is deleted (the read path
//! checks the deleted set) or trimmed (its entries are popped in the same
//! pass), so reads see what upstream's lookups would.
//!
//! Order: upstream appends, so a post that arrives after a newer one from
//! the same author (another partition, a late batch) sits out of order until
//! `finalize_init` sorts; we insert each entry in place (a short walk from
//! the back), so every timeline is ascending by creation time at all times.
//! Retrieval's newest-first walk and its early stop (`retrieval.rs`) and
//! trimming rely on that.
//!
//! Locking: the timelines sit in lock shards (see `timelines.rs`); a
//! request reads each shard it needs once. No code path holds a `posts`
//! guard while it takes a timeline guard, so the only nesting (a reader
//! resolving reply parents under a timeline read guard) cannot form a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use dashmap::{DashMap, DashSet};
use foldhash::fast::RandomState;

use super::feed::PostFeed;
use super::light_post::{LightPost, PostDelete, TinyPost};
use super::params::{DELETE_EVENT_KEY, ThunderParams};
use super::timelines::Timelines;
use crate::clock::Clock;

/// Concurrent map with a fast (non-DoS-resistant) hasher: keys are ids, not
/// attacker-chosen strings, and lookups dominate request latency.
pub(crate) type IdMap<V> = DashMap<i64, V, RandomState>;
/// Shards of the posts map: DashMap's default is 4 ×
/// cores (8 here), where two ingest threads met on a shard lock often.
const POST_SHARDS: usize = 64;

/// The in-network post store. Share it as `Arc<PostStore>`.
#[derive(Debug)]
pub struct PostStore {
    pub(crate) posts: IdMap<LightPost>,
    pub(crate) original_posts_by_user: Timelines,
    pub(crate) secondary_posts_by_user: Timelines,
    pub(crate) video_posts_by_user: Timelines,
    pub(crate) deleted_posts: DashSet<i64, RandomState>,
    pub(crate) params: ThunderParams,
    pub(crate) clock: Arc<dyn Clock>,
    /// Events applied by `apply_events`, for the ingest-rate gauge.
    pub(crate) events_applied: AtomicU64,
    /// Bumped by every delete after it records the id (see `insert_posts`):
    /// an insert re-checks the deleted set only when a delete ran meanwhile.
    delete_epoch: AtomicU64,
    /// Next offset to apply per (source, partition): what this store already
    /// holds from each Kafka partition (see `consumer_plan::resume_offset`).
    positions: super::event_sink::Positions,
    /// The stream's other consumer (the retrieval index), if any.
    feed: OnceLock<Arc<dyn PostFeed>>,
}

/// Timeline entries of a batch not inserted yet: indices into the batch,
/// in insertion order, and the delete epoch read before the first of them
/// was checked.
struct PendingEntries {
    original: Vec<u32>,
    secondary: Vec<u32>,
    video: Vec<u32>,
    epoch: u64,
}

impl PendingEntries {
    fn with_capacity(n: usize, epoch: u64) -> Self {
        Self {
            original: Vec::with_capacity(n),
            secondary: Vec::with_capacity(n),
            video: Vec::with_capacity(n),
            epoch,
        }
    }
}

/// What one `insert_posts` call did with its batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsertSummary {
    /// New posts stored.
    pub inserted: u64,
    /// Dropped: created more than `max_future_skew_s` ahead of the clock
    /// (counted as `outcome="in_future"` of `foryou_thunder_ingest_events_total`).
    pub in_future: u64,
    /// Dropped: older than the retention window (`outcome="expired"`).
    pub expired: u64,
    /// Dropped: the id was deleted earlier.
    pub deleted: u64,
    /// Already stored (the value was refreshed, no new timeline entry).
    pub duplicate: u64,
}

impl InsertSummary {
    /// Posts of the batch that did not become new entries.
    pub fn skipped(&self) -> u64 {
        self.in_future + self.expired + self.deleted + self.duplicate
    }
}

/// Entity counts (spec §3.5 stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Keys of the originals map (the delete sentinel included, as upstream).
    pub users: usize,
    /// Stored posts.
    pub posts: usize,
    /// Entries in all original timelines (delete markers included).
    pub original_posts: usize,
    /// Entries in all reply/retweet timelines.
    pub secondary_posts: usize,
    /// Entries in all video timelines.
    pub video_posts: usize,
    /// Deleted ids remembered.
    pub deleted_posts: usize,
}

/// A canonical, ordered copy of the whole store, for equality checks in tests
/// and for debugging. Timelines are sorted, so two stores that hold the same
/// data compare equal whatever order their events arrived in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreSnapshot {
    /// Posts by id.
    pub posts: BTreeMap<i64, LightPost>,
    /// Original timelines (delete markers under the sentinel key).
    pub original: BTreeMap<i64, Vec<TinyPost>>,
    /// Reply/retweet timelines.
    pub secondary: BTreeMap<i64, Vec<TinyPost>>,
    /// Video timelines.
    pub video: BTreeMap<i64, Vec<TinyPost>>,
    /// Deleted ids.
    pub deleted: BTreeSet<i64>,
}

impl PostStore {
    /// An empty store with these parameters and clock.
    pub fn new(params: ThunderParams, clock: Arc<dyn Clock>) -> Self {
        Self {
            posts: IdMap::with_hasher_and_shard_amount(RandomState::default(), POST_SHARDS),
            original_posts_by_user: Timelines::default(),
            secondary_posts_by_user: Timelines::default(),
            video_posts_by_user: Timelines::default(),
            deleted_posts: DashSet::default(),
            params,
            clock,
            events_applied: AtomicU64::new(0),
            delete_epoch: AtomicU64::new(0),
            positions: Default::default(),
            feed: OnceLock::new(),
        }
    }

    /// Attaches the post stream's other consumer: every batch
    /// `events::apply_events` applies (and [`Self::forward`]) is passed on
    /// to it.
    /// One feed per store; a second is refused and returned.
    pub fn set_feed(&self, feed: Arc<dyn PostFeed>) -> Result<(), Arc<dyn PostFeed>> {
        self.feed.set(feed)
    }

    /// Passes a batch on to the feed, if one is attached.
    pub fn forward(&self, creates: &[LightPost], deletes: &[PostDelete]) {
        if let Some(feed) = self.feed.get() {
            feed.publish(creates, deletes);
        }
    }

    /// The store's parameters.
    pub fn params(&self) -> &ThunderParams {
        &self.params
    }

    /// The store's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Spec §3.2: keeps posts created within retention and no further ahead
    /// of the clock than `max_future_skew_s`, in ascending creation order;
    /// skips deleted ids; a duplicate id refreshes the stored value but adds
    /// no timeline entry (and is ignored if it names another author or
    /// kind); routes each new post to its author's original or
    /// secondary timeline, and to the video timeline when it is
    /// video-eligible.
    pub fn insert_posts(&self, mut posts: Vec<LightPost>) -> InsertSummary {
        let now = self.clock.unix_s();
        let (oldest, newest) = self.params.window(now);
        let mut summary = InsertSummary::default();
        // Deliberate fixes (spec §4.3 note 6, §4.4): the original keeps a
        // post only if `created_at < now`, so a post stamped in the current
        // second, or by a producer whose clock runs a little ahead, is lost
        // for good. We accept `created_at <= now + max_future_skew_s`. The
        // window is compared, never subtracted from: `now - created_at`
        // wraps for a garbage `created_at` such as i64::MIN.
        posts.retain(|p| {
            if p.created_at > newest {
                summary.in_future += 1;
                false
            } else if p.created_at < oldest {
                summary.expired += 1;
                false
            } else {
                true
            }
        });
        // Stable, so equal timestamps keep their arrival order.
        posts.sort_by_key(|p| p.created_at);
        // A delete may land between a post's checks and its insert.
        // `mark_as_deleted` records the id, then bumps the epoch, then
        // removes the post: either it removes what we inserted, or the
        // epoch moved and we find the id. A deleted post never stays
        // stored. (Unchanged epoch: no delete ran in between, and one that
        // ran before was caught by the first check.)
        let raced = |s: &Self, post: &LightPost, epoch: u64| {
            s.delete_epoch.load(Ordering::SeqCst) != epoch
                && s.deleted_posts.contains(&post.post_id)
        };
        let mut pending =
            PendingEntries::with_capacity(posts.len(), self.delete_epoch.load(Ordering::SeqCst));
        for (i, &post) in posts.iter().enumerate() {
            let epoch = self.delete_epoch.load(Ordering::SeqCst);
            if self.deleted_posts.contains(&post.post_id) {
                summary.deleted += 1;
                continue;
            }
            match self.posts.entry(post.post_id) {
                dashmap::Entry::Occupied(mut stored) => {
                    summary.duplicate += 1;
                    let old = *stored.get();
                    // Deliberate deviation: a duplicate that would move the
                    // post to another author's or kind's timeline is
                    // ignored. A post's author and kind cannot change, and
                    // upstream's refresh would leave the timeline entries
                    // where the map no longer points, so a later delete
                    // could not find them (found by fuzzing `post_events`).
                    if old != post
                        && old.author_id == post.author_id
                        && old.is_original() == post.is_original()
                    {
                        stored.insert(post);
                        drop(stored);
                        // The copy to refresh may still be pending here.
                        self.flush_entries(&posts, &mut pending);
                        self.refresh_timeline_copies(&old, &post);
                    }
                    continue;
                }
                dashmap::Entry::Vacant(slot) => {
                    slot.insert(post);
                }
            }
            if raced(self, &post, epoch) {
                self.posts.remove(&post.post_id);
                summary.deleted += 1;
                continue;
            }
            summary.inserted += 1;
            let home = if post.is_original() {
                &mut pending.original
            } else {
                &mut pending.secondary
            };
            home.push(i as u32);
            if self.is_video_eligible(&post) {
                pending.video.push(i as u32);
            }
        }
        // A delete that removed a post before its entries existed could not
        // flag them: `flush_entries` checks each entry under its lock.
        self.flush_entries(&posts, &mut pending);
        summary
    }

    /// Inserts the batch's pending timeline entries, each timeline shard
    /// locked once (a lock per post made two ingest threads trade the
    /// locks' cache lines: 1.1-1.3x for two threads, measured).
    ///
    /// Entries land after their posts are in the map, as before, only a
    /// batch later: a concurrent duplicate from another thread that
    /// refreshes a post in between finds no copy to refresh, and the entry
    /// keeps the first version (a reader of `get` sees the new one).
    ///
    /// A delete that lands while the entries wait: it records the id before
    /// it bumps the epoch and then flags the post's entries under their
    /// shard's lock. Each entry is checked under that lock too: either the
    /// check sees the epoch moved and the id recorded (the entry goes in
    /// flagged), or the delete's flagging comes after the entry is in.
    fn flush_entries(&self, posts: &[LightPost], pending: &mut PendingEntries) {
        let epoch = pending.epoch;
        let deleted = |p: &LightPost| {
            self.delete_epoch.load(Ordering::SeqCst) != epoch
                && self.deleted_posts.contains(&p.post_id)
        };
        self.original_posts_by_user
            .insert_all(posts, &pending.original, deleted);
        self.secondary_posts_by_user
            .insert_all(posts, &pending.secondary, deleted);
        self.video_posts_by_user
            .insert_all(posts, &pending.video, deleted);
        pending.original.clear();
        pending.secondary.clear();
        pending.video.clear();
        pending.epoch = self.delete_epoch.load(Ordering::SeqCst);
    }

    /// Marks the timeline copies of `post` deleted (readers skip them).
    fn flag_deleted(&self, post: &LightPost) {
        let home = if post.is_original() {
            &self.original_posts_by_user
        } else {
            &self.secondary_posts_by_user
        };
        for timelines in [home, &self.video_posts_by_user] {
            timelines.with_mut(post.author_id, |timeline| {
                if let Some(e) = timeline
                    .iter_mut()
                    .rev()
                    .find(|e| e.post_id == post.post_id)
                {
                    e.deleted = true;
                }
            });
        }
    }

    /// Checks that a timeline entry is flagged deleted exactly when its id
    /// is in the deleted set (a consistency check for tests and debugging;
    /// O(store)).
    pub fn check_deleted_flags(&self) -> Result<(), String> {
        for timelines in [
            &self.original_posts_by_user,
            &self.secondary_posts_by_user,
            &self.video_posts_by_user,
        ] {
            let mut first_error = None;
            timelines.for_each(|author, timeline| {
                if author == DELETE_EVENT_KEY || first_error.is_some() {
                    return;
                }
                for e in timeline {
                    let deleted = self.deleted_posts.contains(&e.post_id);
                    if e.deleted != deleted {
                        first_error = Some(format!(
                            "post {} of author {author}: flag {} but deleted set says {deleted}",
                            e.post_id, e.deleted
                        ));
                        return;
                    }
                }
            });
            if let Some(e) = first_error {
                return Err(e);
            }
        }
        Ok(())
    }

    /// A duplicate insert refreshed `old` to `new` in the map: rewrite the
    /// copies in the author's timelines (rare; O(timeline length)).
    fn refresh_timeline_copies(&self, old: &LightPost, new: &LightPost) {
        for timelines in [
            &self.original_posts_by_user,
            &self.secondary_posts_by_user,
            &self.video_posts_by_user,
        ] {
            timelines.with_mut(old.author_id, |timeline| {
                for e in timeline.iter_mut().filter(|e| e.post_id == old.post_id) {
                    // Keep the entry's position key so the deque stays sorted.
                    *e = LightPost {
                        created_at: e.created_at,
                        deleted: e.deleted,
                        ..*new
                    };
                }
            });
        }
    }

    /// Spec §3.2 step 3.4: a post with a video; or a retweet whose source is
    /// stored right now, is not a reply and has a video. A reply never is.
    fn is_video_eligible(&self, post: &LightPost) -> bool {
        if post.is_reply {
            return false;
        }
        if post.has_video {
            return true;
        }
        post.is_retweet
            && post.source_post_id.is_some_and(|src| {
                self.posts
                    .get(&src.get())
                    .is_some_and(|s| !s.is_reply && s.has_video)
            })
    }

    /// Spec §3.3: removes each post, remembers its id as deleted, and appends
    /// a marker (id, deleted_at) under [`DELETE_EVENT_KEY`] so the memory of
    /// the deletion expires one retention later. Timeline entries stay; reads
    /// skip them. Returns the number of new deletions.
    ///
    /// A `deleted_at` beyond `now + max_future_skew_s` is stamped at that
    /// limit instead (ours): the delete still applies, but a bad clock cannot
    /// keep the id in memory forever.
    ///
    /// A repeated delete of an id already remembered is a no-op (the original
    /// appends a second marker): re-delivered events, e.g. after a consumer
    /// restart, then leave the store exactly as one delivery would.
    pub fn mark_as_deleted(&self, deletes: &[PostDelete]) -> u64 {
        let newest = self
            .clock
            .unix_s()
            .saturating_add(self.params.max_future_skew_s);
        let mut new = 0;
        for d in deletes {
            // Record first, then remove (see the re-check in `insert_posts`).
            let fresh = self.deleted_posts.insert(d.post_id);
            self.delete_epoch.fetch_add(1, Ordering::SeqCst);
            if let Some((_, post)) = self.posts.remove(&d.post_id) {
                self.flag_deleted(&post);
            }
            if fresh {
                new += 1;
                self.original_posts_by_user.insert_sorted(
                    DELETE_EVENT_KEY,
                    LightPost {
                        post_id: d.post_id,
                        created_at: d.deleted_at.min(newest),
                        ..LightPost::default()
                    },
                );
            }
        }
        new
    }

    /// Spec §3.5: empties the posts and the timelines, but remembers deleted
    /// ids (a deleted post must not come back).
    pub fn clear(&self) {
        self.posts.clear();
        self.original_posts_by_user.clear();
        self.secondary_posts_by_user.clear();
        self.video_posts_by_user.clear();
    }

    /// The stored post with this id, if any (deleted ids are never stored
    /// after `finalize_init`; see `retrieval.rs` for the read-path check).
    pub fn get(&self, post_id: i64) -> Option<LightPost> {
        self.posts.get(&post_id).map(|p| *p)
    }

    /// True when `post_id` is remembered as deleted.
    pub fn is_deleted(&self, post_id: i64) -> bool {
        self.deleted_posts.contains(&post_id)
    }

    /// Records that every event of `source`/`partition` before `next_offset`
    /// has been applied to this store.
    pub fn record_position(&self, source: &str, partition: i32, next_offset: i64) {
        self.positions.record(source, partition, next_offset);
    }

    /// The next offset of `source`/`partition` this store has not applied;
    /// `None` if it has applied nothing from it.
    pub fn position(&self, source: &str, partition: i32) -> Option<i64> {
        self.positions.get(source, partition)
    }

    /// Entity counts (O(authors)).
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            users: self.original_posts_by_user.authors(),
            posts: self.posts.len(),
            original_posts: self.original_posts_by_user.entries(),
            secondary_posts: self.secondary_posts_by_user.entries(),
            video_posts: self.video_posts_by_user.entries(),
            deleted_posts: self.deleted_posts.len(),
        }
    }

    /// A canonical copy of the whole store (O(n log n)); see [`StoreSnapshot`].
    pub fn snapshot(&self) -> StoreSnapshot {
        let timelines = |m: &Timelines| {
            let mut out = BTreeMap::new();
            m.for_each(|author, timeline| {
                let mut v: Vec<TinyPost> = timeline.iter().map(LightPost::tiny).collect();
                v.sort();
                out.insert(author, v);
            });
            out
        };
        StoreSnapshot {
            posts: self.posts.iter().map(|e| (*e.key(), *e.value())).collect(),
            original: timelines(&self.original_posts_by_user),
            secondary: timelines(&self.secondary_posts_by_user),
            video: timelines(&self.video_posts_by_user),
            deleted: self.deleted_posts.iter().map(|e| *e).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    const NOW: i64 = 1_800_000_000;

    fn store() -> (PostStore, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(NOW));
        (
            PostStore::new(ThunderParams::default(), clock.clone()),
            clock,
        )
    }

    fn ids(v: &[TinyPost]) -> Vec<i64> {
        v.iter().map(|t| t.post_id).collect()
    }

    #[test]
    fn insert_keeps_posts_within_retention_only() {
        let (s, _) = store();
        let r = s.params.retention_s;
        let sum = s.insert_posts(vec![
            LightPost::original(1, 10, NOW - r), // exactly at the edge: kept
            LightPost::original(2, 10, NOW - r - 1), // one second too old
            LightPost::original(3, 10, NOW + 1 + s.params.max_future_skew_s), // too far ahead
            LightPost::original(4, 10, NOW + s.params.max_future_skew_s), // within the skew: kept
        ]);
        assert_eq!(sum.inserted, 2);
        assert_eq!(sum.expired, 1);
        assert_eq!(sum.in_future, 1);
        assert!(s.get(1).is_some() && s.get(2).is_none() && s.get(3).is_none());
        assert!(s.get(4).is_some());
    }

    #[test]
    fn insert_skips_and_counts_created_at_outside_the_window_without_wrapping() {
        // i64::MIN used to wrap `now - created_at` to a negative age: the post
        // was stored, served, never trimmed, and it stopped the trim of its
        // author's timeline. Both extremes are now out of the window.
        let (s, clock) = store();
        let sum = s.insert_posts(vec![
            LightPost::original(1, 10, i64::MIN),
            LightPost::original(2, 10, i64::MAX),
            LightPost::original(3, 10, NOW - 5),
        ]);
        assert_eq!((sum.inserted, sum.expired, sum.in_future), (1, 1, 1));
        assert!(s.get(1).is_none() && s.get(2).is_none());
        assert_eq!(ids(&s.snapshot().original[&10]), vec![3]);
        // The author's timeline still trims.
        clock.advance(Duration::from_secs(s.params.retention_s as u64 + 10));
        assert_eq!(s.trim_old_posts(), 1);
        assert!(s.get(3).is_none());
    }

    #[test]
    fn insert_accepts_post_created_this_second() {
        // Our deliberate fix of spec §4.3 note 6.
        let (s, _) = store();
        assert_eq!(
            s.insert_posts(vec![LightPost::original(1, 10, NOW)])
                .inserted,
            1
        );
    }

    #[test]
    fn duplicate_insert_adds_no_timeline_entry() {
        let (s, _) = store();
        s.insert_posts(vec![LightPost::original(1, 10, NOW - 5)]);
        let sum = s.insert_posts(vec![
            LightPost::original(1, 10, NOW - 5).with_video(),
            LightPost::original(1, 10, NOW - 5),
        ]);
        assert_eq!(sum.duplicate, 2);
        let snap = s.snapshot();
        assert_eq!(ids(&snap.original[&10]), vec![1]);
        assert!(
            snap.video.is_empty(),
            "a duplicate must not reach the video timeline"
        );
        assert_eq!(s.stats().original_posts, 1);
    }

    #[test]
    fn a_duplicate_that_changes_author_or_kind_is_ignored_so_a_delete_still_finds_the_post() {
        let (s, _) = store();
        let reply = LightPost {
            in_reply_to_user_id: std::num::NonZeroI64::new(5),
            is_reply: true,
            ..LightPost::original(1, 5, NOW - 5)
        };
        s.insert_posts(vec![reply, LightPost::original(2, 1, NOW - 5)]);
        let sum = s.insert_posts(vec![
            LightPost::original(1, 5, NOW - 5),
            LightPost::original(2, 33, NOW - 5),
        ]);
        assert_eq!(sum.duplicate, 2);
        assert_eq!(s.get(1), Some(reply), "still the reply it was");
        assert_eq!(s.get(2).map(|p| p.author_id), Some(1), "still author 1's");
        s.mark_as_deleted(&[
            PostDelete {
                post_id: 1,
                deleted_at: NOW,
            },
            PostDelete {
                post_id: 2,
                deleted_at: NOW,
            },
        ]);
        s.check_deleted_flags()
            .expect("every entry of a deleted post flagged");
    }

    #[test]
    fn insert_after_delete_is_ignored() {
        let (s, _) = store();
        s.mark_as_deleted(&[PostDelete {
            post_id: 1,
            deleted_at: NOW,
        }]);
        let sum = s.insert_posts(vec![LightPost::original(1, 10, NOW - 5)]);
        assert_eq!(sum.deleted, 1);
        assert!(s.get(1).is_none());
        assert!(!s.snapshot().original.contains_key(&10));
    }

    #[test]
    fn delete_after_insert_removes_post_and_leaves_marker() {
        let (s, _) = store();
        s.insert_posts(vec![LightPost::original(1, 10, NOW - 5)]);
        assert_eq!(
            s.mark_as_deleted(&[PostDelete {
                post_id: 1,
                deleted_at: NOW - 1
            }]),
            1
        );
        assert!(s.get(1).is_none() && s.is_deleted(1));
        let snap = s.snapshot();
        assert_eq!(ids(&snap.original[&10]), vec![1], "timeline entry stays");
        assert_eq!(
            snap.original[&DELETE_EVENT_KEY],
            vec![TinyPost {
                post_id: 1,
                created_at: NOW - 1
            }]
        );
    }

    #[test]
    fn repeated_delete_leaves_one_marker() {
        let (s, _) = store();
        let d = PostDelete {
            post_id: 7,
            deleted_at: NOW,
        };
        assert_eq!(s.mark_as_deleted(&[d, d]), 1);
        assert_eq!(s.mark_as_deleted(&[d]), 0);
        assert_eq!(s.snapshot().original[&DELETE_EVENT_KEY].len(), 1);
    }

    #[test]
    fn posts_route_to_their_timelines() {
        let (s, _) = store();
        s.insert_posts(vec![
            LightPost::original(1, 10, NOW - 9),
            LightPost::reply(2, 10, NOW - 8, 1, 10, 1),
            LightPost::retweet(3, 10, NOW - 7, 99, 20),
            LightPost::original(4, 10, NOW - 6).with_video(),
        ]);
        let snap = s.snapshot();
        assert_eq!(ids(&snap.original[&10]), vec![1, 4]);
        assert_eq!(ids(&snap.secondary[&10]), vec![2, 3]);
        assert_eq!(ids(&snap.video[&10]), vec![4]);
    }

    #[test]
    fn video_eligibility_covers_retweets_of_stored_videos_and_never_replies() {
        let (s, _) = store();
        s.insert_posts(vec![
            LightPost::original(1, 20, NOW - 20).with_video(), // video source
            LightPost::reply(2, 20, NOW - 19, 50, 30, 50).with_video(), // reply with video
        ]);
        s.insert_posts(vec![
            LightPost::retweet(3, 10, NOW - 10, 1, 20), // of a stored video: eligible
            LightPost::retweet(4, 10, NOW - 9, 2, 20),  // of a reply with video: not
            LightPost::retweet(5, 10, NOW - 8, 77, 20), // source not stored: not
            LightPost::reply(6, 10, NOW - 7, 1, 20, 1).with_video(), // a reply: never
        ]);
        let snap = s.snapshot();
        assert_eq!(ids(&snap.video[&20]), vec![1]);
        assert_eq!(ids(&snap.video[&10]), vec![3]);
    }

    #[test]
    fn batch_is_applied_in_creation_order() {
        // The retweet's source arrives later in the batch but was created
        // earlier: sorting first makes the retweet video-eligible.
        let (s, _) = store();
        s.insert_posts(vec![
            LightPost::retweet(3, 10, NOW - 5, 1, 20),
            LightPost::original(1, 20, NOW - 50).with_video(),
        ]);
        assert_eq!(ids(&s.snapshot().video[&10]), vec![3]);
    }

    #[test]
    fn clear_keeps_deleted_ids() {
        let (s, clock) = store();
        s.insert_posts(vec![LightPost::original(1, 10, NOW - 5)]);
        s.mark_as_deleted(&[PostDelete {
            post_id: 2,
            deleted_at: NOW,
        }]);
        s.clear();
        assert_eq!(s.stats().posts, 0);
        assert_eq!(s.stats().users, 0);
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            s.insert_posts(vec![LightPost::original(2, 10, NOW - 5)])
                .deleted,
            1
        );
    }

    #[test]
    fn stats_count_every_entity() {
        let (s, _) = store();
        s.insert_posts(vec![
            LightPost::original(1, 10, NOW - 9).with_video(),
            LightPost::reply(2, 11, NOW - 8, 1, 10, 1),
        ]);
        s.mark_as_deleted(&[PostDelete {
            post_id: 9,
            deleted_at: NOW,
        }]);
        assert_eq!(
            s.stats(),
            StoreStats {
                users: 2, // author 10 and the delete sentinel
                posts: 2,
                original_posts: 2,
                secondary_posts: 1,
                video_posts: 1,
                deleted_posts: 1,
            }
        );
    }
}
