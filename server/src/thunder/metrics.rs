//! Thunder's metric names (`foryou_thunder_<what>_<unit>`) and their
//! descriptions. Recording goes through the `metrics` facade; the process
//! installs a Prometheus recorder (see `crate::telemetry`).

/// Gauge: stored posts.
pub const POSTS: &str = "foryou_thunder_posts";
/// Gauge: authors with an originals timeline (the delete sentinel included).
pub const AUTHORS: &str = "foryou_thunder_authors";
/// Gauge: deleted ids remembered.
pub const DELETED_POSTS: &str = "foryou_thunder_deleted_posts";
/// Gauge with label `entity`: users, posts, original_posts, secondary_posts,
/// video_posts, deleted_posts (spec §3.5 stats).
pub const ENTITIES: &str = "foryou_thunder_entities";
/// Counter with label `outcome`: inserted, duplicate, expired, in_future,
/// deleted (create events) and deleted_new, deleted_repeat (delete events),
/// malformed.
pub const INGEST_EVENTS: &str = "foryou_thunder_ingest_events_total";
/// Gauge: events applied per second over the last stats interval.
pub const INGEST_RATE: &str = "foryou_thunder_ingest_events_per_second";
/// Gauge with labels `topic`, `partition`: Kafka messages not yet applied.
pub const CONSUMER_LAG: &str = "foryou_thunder_consumer_lag_messages";
/// Counter: Kafka poll errors.
pub const POLL_ERRORS: &str = "foryou_thunder_kafka_poll_errors_total";
/// Histogram: GetInNetworkPosts latency, seconds.
pub const REQUEST_DURATION: &str = "foryou_thunder_request_duration_seconds";
/// Counter: requests turned away with RESOURCE_EXHAUSTED.
pub const REQUESTS_REJECTED: &str = "foryou_thunder_requests_rejected_total";
/// Gauge: requests being served.
pub const REQUESTS_IN_FLIGHT: &str = "foryou_thunder_requests_in_flight";
/// Counter: requests cut short by the time budget.
pub const REQUEST_TIMEOUTS: &str = "foryou_thunder_request_timeouts_total";
/// Histogram: posts found per request before `score_recent`.
pub const POSTS_RETRIEVED: &str = "foryou_thunder_posts_retrieved";
/// Histogram: posts returned per request.
pub const POSTS_RETURNED: &str = "foryou_thunder_posts_returned";
/// Histogram with label `stage`: returned / timeline length per pass.
pub const RETURNED_RATIO: &str = "foryou_thunder_posts_returned_ratio";
/// Counter: timeline entries expired by trimming.
pub const TRIMMED: &str = "foryou_thunder_trimmed_posts_total";

/// Registers help texts with the installed recorder (call once at start).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(POSTS, Unit::Count, "stored posts");
    describe_gauge!(AUTHORS, Unit::Count, "authors with an originals timeline");
    describe_gauge!(DELETED_POSTS, Unit::Count, "deleted post ids remembered");
    describe_gauge!(ENTITIES, Unit::Count, "store entity counts by kind");
    describe_counter!(INGEST_EVENTS, Unit::Count, "post events by outcome");
    describe_gauge!(INGEST_RATE, "post events applied per second");
    describe_gauge!(CONSUMER_LAG, Unit::Count, "kafka messages not yet applied");
    describe_counter!(POLL_ERRORS, Unit::Count, "kafka poll errors");
    describe_histogram!(REQUEST_DURATION, Unit::Seconds, "GetInNetworkPosts latency");
    describe_counter!(
        REQUESTS_REJECTED,
        Unit::Count,
        "requests rejected at capacity"
    );
    describe_gauge!(REQUESTS_IN_FLIGHT, Unit::Count, "requests being served");
    describe_counter!(
        REQUEST_TIMEOUTS,
        Unit::Count,
        "requests cut by the time budget"
    );
    describe_histogram!(POSTS_RETRIEVED, Unit::Count, "posts found per request");
    describe_histogram!(POSTS_RETURNED, Unit::Count, "posts returned per request");
    describe_histogram!(RETURNED_RATIO, "returned over timeline length, per pass");
    describe_counter!(TRIMMED, Unit::Count, "timeline entries expired");
}
