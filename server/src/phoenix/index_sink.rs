//! [`IndexSink`]: the retrieval index as the Kafka consumer's sink, for a
//! `phoenix serve` that reads the post topic itself instead of receiving
//! the stream from Thunder. Batches go to the index writer as the Thunder
//! store's feed hands them over (`LiveRetrieval` as a `PostFeed`); the
//! applied offsets live here, in memory, so a fresh process rebuilds the
//! index from the earliest offset within retention, as Thunder does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::LiveRetrieval;
use crate::clock::Clock;
use crate::thunder::events::{PostEvent, split_events};
use crate::thunder::{EventSink, PostFeed};

/// The live index fed by a Kafka consumer.
#[derive(Debug)]
pub struct IndexSink {
    live: Arc<LiveRetrieval>,
    clock: Arc<dyn Clock>,
    retention_s: i64,
    min_video_duration_ms: u32,
    positions: Mutex<HashMap<(String, i32), i64>>,
}

impl IndexSink {
    /// A sink into `live` that reads `retention_s` back on `clock`.
    pub fn new(
        live: Arc<LiveRetrieval>,
        clock: Arc<dyn Clock>,
        retention_s: i64,
        min_video_duration_ms: u32,
    ) -> Self {
        Self {
            live,
            clock,
            retention_s,
            min_video_duration_ms,
            positions: Mutex::new(HashMap::new()),
        }
    }
}

impl EventSink for IndexSink {
    fn retention_s(&self) -> i64 {
        self.retention_s
    }

    fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn min_video_duration_ms(&self) -> u32 {
        self.min_video_duration_ms
    }

    fn apply(&self, events: Vec<PostEvent>) {
        let (creates, deletes) = split_events(events);
        self.live.publish(&creates, &deletes);
    }

    fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        let p = self.positions.lock().unwrap_or_else(|e| e.into_inner());
        p.get(&(topic.to_owned(), partition)).copied()
    }

    fn record_position(&self, topic: &str, partition: i32, next_offset: i64) {
        let mut p = self.positions.lock().unwrap_or_else(|e| e.into_inner());
        let e = p
            .entry((topic.to_owned(), partition))
            .or_insert(next_offset);
        *e = (*e).max(next_offset);
    }
}
