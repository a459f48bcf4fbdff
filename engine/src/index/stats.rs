//! Counters and sizes of a live index, read by the writer's owner (for
//! metrics) after any call.

/// What the index holds and what it has done since construction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexStats {
    /// Live posts (searchable).
    pub posts: usize,
    /// Sealed segments.
    pub segments: usize,
    /// Runs making up the open segment.
    pub open_runs: usize,
    /// Rows in the open segment.
    pub open_rows: usize,
    /// Rows stored, live or dead.
    pub stored_rows: usize,
    /// Deleted rows still stored (tombstones not yet compacted away).
    pub tombstones: usize,
    /// Posts inserted.
    pub inserted: u64,
    /// Live posts deleted.
    pub deleted: u64,
    /// Posts that left by age.
    pub expired: u64,
    /// Posts evicted by the capacity bound.
    pub evictions: u64,
    /// Inserts skipped: the post was live already.
    pub duplicates: u64,
    /// Inserts skipped: the post had been deleted.
    pub deleted_before_insert: u64,
    /// Inserts skipped: the post was past the retention window already.
    pub expired_on_insert: u64,
    /// Segments sealed.
    pub seals: u64,
    /// Segments rewritten without their dead rows.
    pub compactions: u64,
    /// Deleted ids remembered to skip their late inserts.
    pub remembered_deletes: usize,
    /// Snapshots published.
    pub publishes: u64,
    /// Heap bytes held by the writer (the segments, counted once, and its
    /// bookkeeping); snapshots readers still hold may keep more alive.
    pub bytes: usize,
}

impl IndexStats {
    /// `bytes / posts` (0 when empty).
    pub fn bytes_per_post(&self) -> f64 {
        if self.posts == 0 {
            0.0
        } else {
            self.bytes as f64 / self.posts as f64
        }
    }
}
