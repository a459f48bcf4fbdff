//! [`IndexSink`]: the retrieval index as the Kafka consumer's sink, for a
//! `phoenix serve` that reads the post topic itself instead of receiving
//! the stream from Thunder. Batches go to the index writer as the Thunder
//! store's feed hands them over (`LiveRetrieval` as a `PostFeed`); the
//! applied offsets live here, in memory, so a fresh process rebuilds the
//! index from the earliest offset within retention, as Thunder does.

use std::sync::Arc;

use super::LiveRetrieval;
use crate::clock::Clock;
use crate::thunder::event_sink::Positions;
use crate::thunder::events::{PostEvent, split_events};
use crate::thunder::{EventSink, PostFeed};

/// The live index fed by a Kafka consumer.
#[derive(Debug)]
pub struct IndexSink {
    live: Arc<LiveRetrieval>,
    clock: Arc<dyn Clock>,
    retention_s: i64,
    min_video_duration_ms: u32,
    positions: Positions,
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
            positions: Positions::default(),
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
        self.positions.get(topic, partition)
    }

    fn record_position(&self, topic: &str, partition: i32, next_offset: i64) {
        self.positions.record(topic, partition, next_offset);
    }
}
