//! Post events: decoding the `InNetworkEvent` payload (Kafka, the ingest
//! stream and event files share it) and applying a batch to the store with
//! the serving listener's rules (spec §3.7): creates via `insert_posts`, then
//! deletes via `mark_as_deleted`; the batch also goes to the store's feed
//! (the retrieval index), if one is attached.

use std::num::NonZeroU32;

use foryou_proto::v1::{InNetworkEvent, in_network_event::EventVariant};

use super::light_post::{LightPost, PostDelete, opt_id};
use super::metrics as m;
use super::post_store::{InsertSummary, PostStore};

/// A decoded post event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostEvent {
    /// A new post.
    Create(LightPost),
    /// A deletion.
    Delete(PostDelete),
}

/// Why an event was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    /// The oneof is empty.
    #[error("event has neither tweet_create_event nor tweet_delete_event")]
    Empty,
    /// An id that must be set is 0 or negative.
    #[error("{field} must be a positive id, got {value}")]
    BadId {
        /// The field.
        field: &'static str,
        /// Its value.
        value: i64,
    },
    /// A negative video duration.
    #[error("video_duration_ms must be ≥ 0, got {0}")]
    BadDuration(i32),
    /// The payload is not an `InNetworkEvent`.
    #[error("payload is not an InNetworkEvent: {0}")]
    Decode(String),
}

fn positive(field: &'static str, value: i64) -> Result<i64, EventError> {
    if value > 0 {
        Ok(value)
    } else {
        Err(EventError::BadId { field, value })
    }
}

impl PostEvent {
    /// Decodes a protobuf payload (a Kafka message value).
    pub fn decode(bytes: &[u8], min_video_duration_ms: u32) -> Result<Self, EventError> {
        let ev = <InNetworkEvent as prost::Message>::decode(bytes)
            .map_err(|e| EventError::Decode(e.to_string()))?;
        Self::from_proto(ev, min_video_duration_ms)
    }

    /// Converts the wire event. As in the serving listener, a create is a
    /// reply when `is_reply` is set or either reply field is present. A video
    /// whose known duration is below `min_video_duration_ms` does not count
    /// as a video (the feeder's rule, spec §3.7, applied here because events
    /// reach us without a feeder). Optional ids of 0 mean absent.
    pub fn from_proto(ev: InNetworkEvent, min_video_duration_ms: u32) -> Result<Self, EventError> {
        match ev.event_variant {
            None => Err(EventError::Empty),
            Some(EventVariant::TweetCreateEvent(c)) => {
                let duration = match c.video_duration_ms {
                    None => None,
                    Some(d) => Some(u32::try_from(d).map_err(|_| EventError::BadDuration(d))?),
                };
                let long_enough = duration.is_none_or(|d| d >= min_video_duration_ms);
                Ok(Self::Create(LightPost {
                    post_id: positive("tweet_create_event.post_id", c.post_id)?,
                    author_id: positive("tweet_create_event.author_id", c.author_id)?,
                    created_at: c.created_at,
                    in_reply_to_post_id: c.in_reply_to_post_id.and_then(opt_id),
                    in_reply_to_user_id: c.in_reply_to_user_id.and_then(opt_id),
                    source_post_id: c.source_post_id.and_then(opt_id),
                    source_user_id: c.source_user_id.and_then(opt_id),
                    conversation_id: c.conversation_id.and_then(opt_id),
                    video_duration_ms: duration.and_then(NonZeroU32::new),
                    is_retweet: c.is_retweet,
                    is_reply: c.is_reply
                        || c.in_reply_to_post_id.is_some()
                        || c.in_reply_to_user_id.is_some(),
                    has_video: c.has_video && long_enough,
                    deleted: false,
                }))
            }
            Some(EventVariant::TweetDeleteEvent(d)) => Ok(Self::Delete(PostDelete {
                post_id: positive("tweet_delete_event.post_id", d.post_id)?,
                deleted_at: d.deleted_at,
            })),
        }
    }
}

/// What applying one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplySummary {
    /// The creates' outcomes.
    pub creates: InsertSummary,
    /// Deletes that were new.
    pub deletes_applied: u64,
    /// Deletes of ids already deleted.
    pub deletes_repeated: u64,
}

impl ApplySummary {
    /// Adds another batch's counts.
    pub fn add(&mut self, o: &ApplySummary) {
        let (a, b) = (&mut self.creates, &o.creates);
        a.inserted += b.inserted;
        a.in_future += b.in_future;
        a.expired += b.expired;
        a.deleted += b.deleted;
        a.duplicate += b.duplicate;
        self.deletes_applied += o.deletes_applied;
        self.deletes_repeated += o.deletes_repeated;
    }
}

/// Applies a batch: every create (sorted by `insert_posts`), then every
/// delete, as the serving listener does. Blocking; call it off the async
/// runtime for large batches.
pub fn apply_events(store: &PostStore, events: Vec<PostEvent>) -> ApplySummary {
    let (creates, deletes) = split_events(events);
    let n = (creates.len() + deletes.len()) as u64;
    // The feed's consumer keeps its own state with its own rules, so it may
    // take the batch before the store applies it (no copy of the creates).
    store.forward(&creates, &deletes);
    let creates = store.insert_posts(creates);
    let deletes_applied = store.mark_as_deleted(&deletes);
    let summary = ApplySummary {
        creates,
        deletes_applied,
        deletes_repeated: deletes.len() as u64 - deletes_applied,
    };
    store
        .events_applied
        .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    for (outcome, count) in [
        ("inserted", creates.inserted),
        ("duplicate", creates.duplicate),
        ("expired", creates.expired),
        ("in_future", creates.in_future),
        ("deleted", creates.deleted),
        ("deleted_new", summary.deletes_applied),
        ("deleted_repeat", summary.deletes_repeated),
    ] {
        if count > 0 {
            metrics::counter!(m::INGEST_EVENTS, "outcome" => outcome).increment(count);
        }
    }
    summary
}

/// A batch's creates and deletes, each in arrival order.
pub fn split_events(events: Vec<PostEvent>) -> (Vec<LightPost>, Vec<PostDelete>) {
    let mut creates = Vec::with_capacity(events.len());
    let mut deletes = Vec::new();
    for ev in events {
        match ev {
            PostEvent::Create(p) => creates.push(p),
            PostEvent::Delete(d) => deletes.push(d),
        }
    }
    (creates, deletes)
}

/// Counts a malformed event (logged by the caller with its context).
pub fn count_malformed() {
    metrics::counter!(m::INGEST_EVENTS, "outcome" => "malformed").increment(1);
}

/// The wire form of a create event (for event files, producers and tests).
pub fn create_event(p: &LightPost) -> InNetworkEvent {
    use foryou_proto::v1::TweetCreateEvent;
    InNetworkEvent {
        event_variant: Some(EventVariant::TweetCreateEvent(TweetCreateEvent {
            post_id: p.post_id,
            author_id: p.author_id,
            created_at: p.created_at,
            in_reply_to_post_id: p.in_reply_to_post_id.map(|v| v.get()),
            in_reply_to_user_id: p.in_reply_to_user_id.map(|v| v.get()),
            is_retweet: p.is_retweet,
            is_reply: p.is_reply,
            source_post_id: p.source_post_id.map(|v| v.get()),
            source_user_id: p.source_user_id.map(|v| v.get()),
            has_video: p.has_video,
            conversation_id: p.conversation_id.map(|v| v.get()),
            video_duration_ms: p
                .video_duration_ms
                .map(|v| i32::try_from(v.get()).unwrap_or(i32::MAX)),
        })),
    }
}

/// The wire form of a delete event.
pub fn delete_event(d: &PostDelete) -> InNetworkEvent {
    use foryou_proto::v1::TweetDeleteEvent;
    InNetworkEvent {
        event_variant: Some(EventVariant::TweetDeleteEvent(TweetDeleteEvent {
            post_id: d.post_id,
            deleted_at: d.deleted_at,
        })),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use foryou_proto::v1::TweetCreateEvent;

    use super::*;
    use crate::clock::ManualClock;
    use crate::thunder::params::ThunderParams;

    const NOW: i64 = 1_800_000_000;

    fn create(c: TweetCreateEvent) -> InNetworkEvent {
        InNetworkEvent {
            event_variant: Some(EventVariant::TweetCreateEvent(c)),
        }
    }

    #[test]
    fn create_round_trips_through_the_wire_form() {
        let p = LightPost::reply(5, 6, NOW, 3, 4, 1).with_video();
        assert_eq!(
            PostEvent::from_proto(create_event(&p), 0),
            Ok(PostEvent::Create(p))
        );
        let d = PostDelete {
            post_id: 5,
            deleted_at: NOW,
        };
        assert_eq!(
            PostEvent::from_proto(delete_event(&d), 0),
            Ok(PostEvent::Delete(d))
        );
    }

    #[test]
    fn reply_fields_make_a_reply() {
        let ev = create(TweetCreateEvent {
            post_id: 2,
            author_id: 3,
            in_reply_to_user_id: Some(9),
            ..Default::default()
        });
        let Ok(PostEvent::Create(p)) = PostEvent::from_proto(ev, 0) else {
            panic!("a valid create");
        };
        assert!(p.is_reply);
    }

    #[test]
    fn short_videos_are_not_videos() {
        let mk = |ms| {
            create(TweetCreateEvent {
                post_id: 2,
                author_id: 3,
                has_video: true,
                video_duration_ms: ms,
                ..Default::default()
            })
        };
        let has_video = |ev| match PostEvent::from_proto(ev, 10_000) {
            Ok(PostEvent::Create(p)) => p.has_video,
            other => panic!("unexpected {other:?}"),
        };
        assert!(!has_video(mk(Some(9_999))));
        assert!(has_video(mk(Some(10_000))), "inclusive");
        assert!(has_video(mk(None)), "unknown duration trusts has_video");
    }

    #[test]
    fn malformed_events_are_errors_naming_the_field() {
        assert_eq!(
            PostEvent::from_proto(InNetworkEvent::default(), 0),
            Err(EventError::Empty)
        );
        let e = PostEvent::from_proto(
            create(TweetCreateEvent {
                post_id: 0,
                author_id: 3,
                ..Default::default()
            }),
            0,
        )
        .expect_err("id 0 rejected");
        assert!(e.to_string().contains("tweet_create_event.post_id"), "{e}");
        assert!(matches!(
            PostEvent::decode(&[0xff, 0xff, 0xff], 0),
            Err(EventError::Decode(_))
        ));
    }

    #[test]
    fn apply_skips_and_counts_created_at_outside_the_window_by_outcome() {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};
        let recorder = DebuggingRecorder::new();
        let snapshots = recorder.snapshotter();
        let _recorder = metrics::set_default_local_recorder(&recorder);
        let s = PostStore::new(ThunderParams::default(), Arc::new(ManualClock::new(NOW)));
        let sum = apply_events(
            &s,
            vec![
                PostEvent::Create(LightPost::original(1, 10, i64::MIN)),
                PostEvent::Create(LightPost::original(2, 10, i64::MAX)),
                PostEvent::Create(LightPost::original(3, 10, NOW)),
            ],
        );
        assert_eq!(
            (
                sum.creates.inserted,
                sum.creates.expired,
                sum.creates.in_future
            ),
            (1, 1, 1)
        );
        assert_eq!(sum.creates.skipped(), 2, "the ingest summary's skipped");
        let recorded = snapshots.snapshot().into_vec();
        let counted = |outcome: &str| {
            recorded
                .iter()
                .find(|(k, ..)| {
                    k.key().name() == m::INGEST_EVENTS
                        && k.key()
                            .labels()
                            .any(|l| l.key() == "outcome" && l.value() == outcome)
                })
                .and_then(|entry| match entry.3 {
                    DebugValue::Counter(n) => Some(n),
                    _ => None,
                })
        };
        assert_eq!(counted("expired"), Some(1));
        assert_eq!(counted("in_future"), Some(1));
    }

    #[test]
    fn batch_applies_creates_before_deletes() {
        let s = PostStore::new(ThunderParams::default(), Arc::new(ManualClock::new(NOW)));
        let d = PostDelete {
            post_id: 1,
            deleted_at: NOW,
        };
        // The delete precedes the create in the batch but still wins.
        let sum = apply_events(
            &s,
            vec![
                PostEvent::Delete(d),
                PostEvent::Create(LightPost::original(1, 10, NOW - 1)),
                PostEvent::Create(LightPost::original(2, 10, NOW - 1)),
            ],
        );
        assert_eq!(sum.creates.inserted, 2);
        assert_eq!(sum.deletes_applied, 1);
        assert!(s.get(1).is_none() && s.get(2).is_some());
        assert_eq!(s.events_applied(), 3);
    }
}
