//! The live retrieval index (issue 16): posts are searchable right after
//! insertion, deletes hide a post at once, posts leave after a retention
//! window and past a capacity bound, and searches never wait for writes.
//! The server's retrieval searches it through [`crate::corpus::PostSearch`]
//! (`post_search`); [`crate::corpus::Corpus`] remains the immutable corpus
//! the fixtures use.
//!
//! Design:
//!
//! * **Segments.** Posts live in immutable segments, in insertion order,
//!   each holding ids, creation times, insertion sequence numbers and the
//!   representations in the scan's layout (blocks of 16 rows,
//!   dimension-major, see `kernel`). A writer's micro-batch becomes a run
//!   of the open segment; runs merge like a binary counter and seal into
//!   one segment of `segment_rows` rows (`live_index`).
//! * **Snapshots.** A [`Snapshot`] lists the segments (`Arc`s) with the
//!   tombstones, expiry cutoff and eviction watermark of one publish. The
//!   writer swaps in a new one at the end of each call (`arc-swap`: a
//!   reader's load is a few atomic operations, never a lock, so ingestion
//!   never blocks a search and a search sees one whole publish).
//! * **Deletes** set a bit in the segment's tombstone set, copied on write
//!   (a segment of 65 536 rows copies 8 KiB), so older snapshots keep
//!   theirs. A search checks it for rows that would enter its results.
//! * **Expiry and capacity.** Rows created before `now_ms - retention`
//!   (the caller's clock; the index never reads one) or inserted before
//!   the eviction watermark are dead; the writer walks them in creation
//!   and insertion order to keep an exact live count. A segment with no
//!   live row is dropped; one whose dead fraction reaches
//!   `compact_dead_fraction` is rewritten without its dead rows. "Oldest
//!   first" for eviction means inserted first.
//! * **Formats** ([`Format`]): f32, bf16, or int8 with a per-row scale
//!   (`s = max|x| / 127`, `q = round(x / s)`). f32 and bf16 are scanned
//!   exactly in f32 (`kernel`: stored values widened, the query never
//!   quantised). int8 is scanned with integer dot products against the
//!   query quantised the same way (`int8_kernel`, AVX-512 VNNI: 64
//!   multiply-adds an instruction), keeping a deeper list
//!   (`k + max(64, k/4)`) that is then re-scored in f32.
//! * **Re-scoring** ([`Rescore`]): "re-scored in f32" means an f32 dot
//!   product of the exact query with either the stored row (int8 widened
//!   times its scale: no extra memory, the default) or a kept copy of the
//!   row that is never scanned: f32 rows (`4·D` bytes a post; the scores
//!   then equal an exact f32 scan's) or bf16 rows (`2·D` bytes a post).
//! * **Search** ([`Snapshot::search`], `search`): rayon tasks over
//!   segment ranges, per-query bounded candidate lists with thresholds
//!   shared across threads, exclusions by post and author checked at list
//!   entry, best first with ties to the older post.
//!
//! * **Approximate search** (`IndexConfig::ann`, off by default): each
//!   sealed segment gets inverted lists over centroids shared by the
//!   whole index (`ivf`) or an HNSW graph (`ann`), searched instead of
//!   scanned (`ann_search`); the open segment is still scanned exactly
//!   and every candidate is re-scored as the scan would score it.
//! * **On a device** ([`DeviceSegments`], `device_search`): a reader can
//!   hold the sealed segments in one device arena (the GPU's memory,
//!   [`RowDevice`]) searched by its top-k kernel in one launch sequence,
//!   the snapshot's liveness as the kernel's eligibility bitset; the open
//!   segment is still scanned here and the candidates merged.
//!
//! Files: `config` (settings), `error`, `post` (a post to insert),
//! `element` and `block_rows` (stored values and layout), `kernel` (the
//! f32/bf16 scan loop), `int8_kernel`, `kept_rows` (re-scoring copies),
//! `bitset`, `segment` (immutable rows), `segment_state` (the
//! writer's per-segment bookkeeping), `recent_deletes`, `snapshot`,
//! `select` (bounded candidate lists), `search`, `stats`, `live_index` (the writer),
//! `ann`, `ivf` and `ann_search` (approximate search), `row_device` and
//! `device_search` (sealed segments on a device).

mod ann;
mod ann_search;
mod bitset;
mod block_rows;
mod config;
mod device_search;
mod element;
mod error;
mod int8_kernel;
mod ivf;
mod kept_rows;
mod kernel;
mod live_index;
mod post;
mod post_search;
mod recent_deletes;
mod row_device;
mod search;
mod segment;
mod segment_state;
mod select;
mod snapshot;
mod stats;

#[cfg(test)]
mod ann_tests;
#[cfg(test)]
mod device_tests;
#[cfg(test)]
mod tests;

pub use ann::{
    AnnConfig, AnnMethod, AnnScalar, DEFAULT_ANN_CONNECTIVITY, DEFAULT_ANN_EXPANSION_ADD,
    DEFAULT_ANN_EXPANSION_SEARCH, DEFAULT_IVF_PROBES,
};
pub use config::{
    DEFAULT_CAPACITY, DEFAULT_COMPACT_DEAD_FRACTION, DEFAULT_RETENTION_MS, DEFAULT_SEGMENT_ROWS,
    Format, IndexConfig, Rescore,
};
pub use device_search::{DeviceIndexStats, DeviceSegments};
pub use error::IndexError;
pub use ivf::auto_lists;
pub use live_index::{IndexReader, InsertReport, LiveIndex};
pub use post::NewPost;
pub use row_device::{CpuRowDevice, DEVICE_DIMS, DEVICE_MAX_K, RowDevice};
pub use search::{RESCORE_MARGIN, rescore_depth};
pub use snapshot::Snapshot;
pub use stats::IndexStats;
