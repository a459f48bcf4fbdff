//! [`EventSink`]: what a Kafka consumer applies post events to. The
//! Thunder store is one; `phoenix serve` reading the topic for its
//! retrieval index alone is the other (`crate::phoenix::IndexSink`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::events::{PostEvent, apply_events};
use super::post_store::PostStore;
use crate::clock::Clock;

/// Where consumed post events go, and how far the consumer has got.
pub trait EventSink: Send + Sync + 'static {
    /// How far back a fresh consumer reads, seconds.
    fn retention_s(&self) -> i64;
    /// The clock the retention window is measured on.
    fn clock(&self) -> &Arc<dyn Clock>;
    /// Videos shorter than this are not videos (the decoding rule).
    fn min_video_duration_ms(&self) -> u32;
    /// Applies one batch: its creates, then its deletes.
    fn apply(&self, events: Vec<PostEvent>);
    /// The next offset of (topic, partition) after what this sink has
    /// applied; `None` for a partition it has never read (a fresh process).
    fn position(&self, topic: &str, partition: i32) -> Option<i64>;
    /// Records that every event of (topic, partition) before `next_offset`
    /// is applied.
    fn record_position(&self, topic: &str, partition: i32, next_offset: i64);
}

impl EventSink for PostStore {
    fn retention_s(&self) -> i64 {
        self.params().retention_s
    }

    fn clock(&self) -> &Arc<dyn Clock> {
        PostStore::clock(self)
    }

    fn min_video_duration_ms(&self) -> u32 {
        self.params().min_video_duration_ms
    }

    fn apply(&self, events: Vec<PostEvent>) {
        apply_events(self, events);
    }

    fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        PostStore::position(self, topic, partition)
    }

    fn record_position(&self, topic: &str, partition: i32, next_offset: i64) {
        PostStore::record_position(self, topic, partition, next_offset);
    }
}

/// How far a sink has applied each (source, partition): the next offset,
/// which only grows.
#[derive(Debug, Default)]
pub struct Positions(Mutex<HashMap<(String, i32), i64>>);

impl Positions {
    /// Records that everything before `next_offset` is applied.
    pub fn record(&self, source: &str, partition: i32, next_offset: i64) {
        let mut pos = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let e = pos
            .entry((source.to_owned(), partition))
            .or_insert(next_offset);
        *e = (*e).max(next_offset);
    }

    /// The next offset not applied; `None` if nothing was.
    pub fn get(&self, source: &str, partition: i32) -> Option<i64> {
        let pos = self.0.lock().unwrap_or_else(|p| p.into_inner());
        pos.get(&(source.to_owned(), partition)).copied()
    }
}
