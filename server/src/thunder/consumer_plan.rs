//! The broker-independent half of Kafka ingestion, compiled and tested in
//! every build: how partitions are split across threads, where each
//! partition resumes, when the consumer has caught up, and the permit pool
//! that keeps catch-up from starving request serving.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

/// Spec §3.7: partitions 0..n split over `threads` tasks, `per = ⌈n/threads⌉`;
/// task t reads `[t·per, min((t+1)·per, n))`; empty ranges are not started.
pub fn split_partitions(n: i32, threads: usize) -> Vec<Range<i32>> {
    if n <= 0 {
        return Vec::new();
    }
    let threads = i32::try_from(threads.max(1)).unwrap_or(i32::MAX);
    let per = (n + threads - 1) / threads;
    (0..threads)
        .map(|t| (t * per).min(n)..((t + 1) * per).min(n))
        .filter(|r| !r.is_empty())
        .collect()
}

/// Where a partition starts reading.
///
/// The store lives in memory, so a store that has applied nothing from this
/// partition (a fresh process) must rebuild it: it starts at the earliest
/// offset within retention (`retention_start`), whatever the group has
/// committed. A store that has applied events from it (a consumer restarted
/// inside the same process) resumes from the group's committed offset, which
/// is never past what the store applied (commits follow applies); a missing
/// commit falls back to the store's own position. Re-reading events between
/// the commit and the store's position is harmless: creates of stored ids
/// and repeated deletes leave the store unchanged.
pub fn resume_offset(committed: Option<i64>, applied: Option<i64>, retention_start: i64) -> i64 {
    match (applied, committed) {
        (None, _) => retention_start,
        (Some(a), Some(c)) if c <= a => c,
        (Some(a), _) => a,
    }
}

/// Tracks catch-up to the high watermarks seen at start. Each partition is
/// done once its next offset reaches its target; when the last one is done,
/// [`CatchUp::mark`] returns true exactly once (the signal is never lost,
/// unlike upstream's, and partitions that no thread reads are not waited on).
#[derive(Debug)]
pub struct CatchUp {
    targets: HashMap<i32, i64>,
    done: Mutex<HashMap<i32, bool>>,
    remaining: AtomicUsize,
    fired: AtomicBool,
}

impl CatchUp {
    /// Targets: partition → high watermark at start; `starts`: partition →
    /// the offset reading begins at (a partition already at its target is
    /// done from the start).
    pub fn new(targets: HashMap<i32, i64>, starts: &HashMap<i32, i64>) -> Self {
        let done: HashMap<i32, bool> = targets
            .iter()
            .map(|(p, t)| (*p, starts.get(p).is_some_and(|s| s >= t)))
            .collect();
        let remaining = done.values().filter(|d| !**d).count();
        Self {
            targets,
            done: Mutex::new(done),
            remaining: AtomicUsize::new(remaining),
            fired: AtomicBool::new(false),
        }
    }

    /// Records that `partition` will next read `next_offset`; returns true
    /// the one time the whole consumer becomes caught up (including when it
    /// already was at construction, on the first call).
    pub fn mark(&self, partition: i32, next_offset: i64) -> bool {
        if let Some(target) = self.targets.get(&partition)
            && next_offset >= *target
        {
            let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(d) = done.get_mut(&partition)
                && !*d
            {
                *d = true;
                self.remaining.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.check()
    }

    /// Returns true the one time the consumer is found caught up.
    pub fn check(&self) -> bool {
        self.is_caught_up() && !self.fired.swap(true, Ordering::SeqCst)
    }

    /// True when every partition has reached its target.
    pub fn is_caught_up(&self) -> bool {
        self.remaining.load(Ordering::SeqCst) == 0
    }

    /// The start-time target of a partition.
    pub fn target(&self, partition: i32) -> Option<i64> {
        self.targets.get(&partition).copied()
    }
}

/// A counting semaphore for OS threads (the Kafka consumers never run on the
/// async runtime).
#[derive(Debug)]
pub struct BlockingSemaphore {
    free: Mutex<usize>,
    cv: Condvar,
}

/// A held permit; released on drop.
#[derive(Debug)]
pub struct Permit<'a>(&'a BlockingSemaphore);

impl BlockingSemaphore {
    /// A pool of `n` permits (at least 1).
    pub fn new(n: usize) -> Self {
        Self {
            free: Mutex::new(n.max(1)),
            cv: Condvar::new(),
        }
    }

    /// Waits for a permit.
    pub fn acquire(&self) -> Permit<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        Permit(self)
    }

    /// Permits free right now.
    pub fn available(&self) -> usize {
        *self.free.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut free = self.0.free.lock().unwrap_or_else(|p| p.into_inner());
        *free += 1;
        self.0.cv.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[test]
    fn partitions_split_as_upstream() {
        assert_eq!(split_partitions(8, 4), vec![0..2, 2..4, 4..6, 6..8]);
        assert_eq!(split_partitions(10, 4), vec![0..3, 3..6, 6..9, 9..10]);
        // per = 2 for 5 partitions on 4 threads: the last thread has nothing.
        assert_eq!(split_partitions(5, 4), vec![0..2, 2..4, 4..5]);
        assert_eq!(split_partitions(2, 4), vec![0..1, 1..2]);
        assert_eq!(split_partitions(3, 1), vec![0..3]);
        assert!(split_partitions(0, 4).is_empty());
    }

    #[test]
    fn resume_rules() {
        // Fresh store: rebuild from retention, ignoring the group's commit.
        assert_eq!(resume_offset(Some(500), None, 40), 40);
        assert_eq!(resume_offset(None, None, 40), 40);
        // Restarted consumer: the committed offset.
        assert_eq!(resume_offset(Some(480), Some(500), 40), 480);
        // No commit (or a commit ahead of the store): the store's position.
        assert_eq!(resume_offset(None, Some(500), 40), 500);
        assert_eq!(resume_offset(Some(900), Some(500), 40), 500);
    }

    #[test]
    fn catch_up_fires_once_when_every_partition_reaches_its_target() {
        let targets = HashMap::from([(0, 10), (1, 5), (2, 0)]);
        let starts = HashMap::from([(0, 0), (1, 0), (2, 0)]);
        let c = CatchUp::new(targets, &starts);
        assert!(!c.is_caught_up());
        assert!(!c.mark(0, 10));
        assert!(!c.mark(1, 4));
        assert!(c.mark(1, 5));
        assert!(c.is_caught_up());
        assert!(!c.mark(1, 6), "fires once");
        // Nothing to read at all: caught up at once, signalled on first check.
        let c = CatchUp::new(HashMap::from([(0, 3)]), &HashMap::from([(0, 3)]));
        assert!(c.check());
        assert!(!c.check());
    }

    #[test]
    fn semaphore_bounds_concurrency() {
        let sem = Arc::new(BlockingSemaphore::new(2));
        let inside = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (sem, inside, peak) = (sem.clone(), inside.clone(), peak.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let _p = sem.acquire();
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("worker");
        }
        assert!(peak.load(Ordering::SeqCst) <= 2);
        assert_eq!(sem.available(), 2);
    }
}
