//! The retrieval index's metric names (`foryou_index_<what>_<unit>`) and
//! their descriptions; the writer (`index_writer`) records them.

/// Gauge: live (searchable) posts.
pub const POSTS: &str = "foryou_index_posts";
/// Gauge: sealed segments.
pub const SEGMENTS: &str = "foryou_index_segments";
/// Gauge: rows of the open segment.
pub const OPEN_ROWS: &str = "foryou_index_open_rows";
/// Gauge: deleted rows still stored (tombstones not yet compacted).
pub const TOMBSTONES: &str = "foryou_index_tombstones";
/// Gauge: heap bytes of the writer's segments and bookkeeping.
pub const BYTES: &str = "foryou_index_bytes";
/// Gauge: bytes per live post.
pub const BYTES_PER_POST: &str = "foryou_index_bytes_per_post";
/// Counter with label `outcome`: inserted, duplicate, deleted_before,
/// expired, in_future, retweet, invalid (posts offered to the index).
pub const POSTS_OFFERED: &str = "foryou_index_posts_offered_total";
/// Counter: live posts deleted.
pub const DELETED: &str = "foryou_index_deleted_total";
/// Counter: posts that left by age.
pub const EXPIRED: &str = "foryou_index_expired_total";
/// Counter: posts evicted by the capacity bound.
pub const EVICTIONS: &str = "foryou_index_evictions_total";
/// Counter: posts run through the candidate tower (its rate is the encode
/// throughput).
pub const ENCODED: &str = "foryou_index_encoded_posts_total";
/// Counter: posts the candidate tower failed on (dropped, logged).
pub const ENCODE_FAILURES: &str = "foryou_index_encode_failures_total";
/// Histogram: candidate-tower time per micro-batch, seconds.
pub const ENCODE_DURATION: &str = "foryou_index_encode_duration_seconds";
/// Histogram: time from a batch's hand-off by the ingest path to its
/// posts being searchable (or its deletes applied), seconds.
pub const ENCODE_LAG: &str = "foryou_index_encode_lag_seconds";

/// Gauge: rows of sealed segments held on the device (`--device cuda`).
pub const DEVICE_ROWS: &str = "foryou_index_device_rows";
/// Gauge: device bytes of the sealed segments' arena and bitset.
pub const DEVICE_BYTES: &str = "foryou_index_device_bytes";
/// Counter: sealed segments uploaded to the device.
pub const DEVICE_UPLOADS: &str = "foryou_index_device_segment_uploads_total";
/// Counter: times the device arena was rebuilt (grown or defragmented).
pub const DEVICE_REPACKS: &str = "foryou_index_device_repacks_total";
/// Counter: queries too deep for the device's top-k, answered on the CPU.
pub const DEVICE_CPU_FALLBACKS: &str = "foryou_index_device_cpu_fallbacks_total";

/// Counter: searches the device failed, answered on the CPU instead.
pub const DEVICE_ERRORS: &str = "foryou_index_device_errors_total";

/// Registers help texts with the installed recorder (call once at start).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(POSTS, Unit::Count, "searchable posts");
    describe_gauge!(
        super::live_retrieval::WRITER_UP,
        "1 while the index writer runs, 0 once it has stopped"
    );
    describe_gauge!(SEGMENTS, Unit::Count, "sealed index segments");
    describe_gauge!(OPEN_ROWS, Unit::Count, "rows of the open segment");
    describe_gauge!(TOMBSTONES, Unit::Count, "deleted rows still stored");
    describe_gauge!(BYTES, Unit::Bytes, "index heap bytes");
    describe_gauge!(BYTES_PER_POST, Unit::Bytes, "index bytes per live post");
    describe_counter!(POSTS_OFFERED, Unit::Count, "posts offered, by outcome");
    describe_counter!(DELETED, Unit::Count, "live posts deleted");
    describe_counter!(EXPIRED, Unit::Count, "posts expired by age");
    describe_counter!(EVICTIONS, Unit::Count, "posts evicted at capacity");
    describe_counter!(ENCODED, Unit::Count, "posts encoded");
    describe_counter!(ENCODE_FAILURES, Unit::Count, "posts the encoder failed on");
    describe_histogram!(
        ENCODE_DURATION,
        Unit::Seconds,
        "encode time per micro-batch"
    );
    describe_histogram!(ENCODE_LAG, Unit::Seconds, "hand-off to searchable");
    describe_gauge!(DEVICE_ROWS, Unit::Count, "sealed rows on the device");
    describe_gauge!(DEVICE_BYTES, Unit::Bytes, "device bytes of sealed rows");
    describe_counter!(
        DEVICE_UPLOADS,
        Unit::Count,
        "segments uploaded to the device"
    );
    describe_counter!(DEVICE_REPACKS, Unit::Count, "device arena rebuilds");
    describe_counter!(
        DEVICE_CPU_FALLBACKS,
        Unit::Count,
        "queries too deep for the device, answered on the CPU"
    );
    describe_counter!(
        DEVICE_ERRORS,
        Unit::Count,
        "searches the device failed, answered on the CPU"
    );
}
