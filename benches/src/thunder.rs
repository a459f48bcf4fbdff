//! Thunder bench setup: a store filled with the seeded synthetic stream
//! (`follows` authors × ~`posts_per_author` posts over the last 47 h), and
//! the in-process request (retrieval + `score_recent` + proto conversion).

use std::sync::Arc;

use foryou_proto::v1 as pb;
use foryou_server::clock::{Clock, SystemClock};
use foryou_server::grpc::in_network_posts::retrieve_recent;
use foryou_server::thunder::events::{PostEvent, apply_events};
use foryou_server::thunder::synth::{SynthSpec, synth_events};
use foryou_server::thunder::{IdSet, PostStore, RetrievalQuery, ThunderParams, score_recent};

/// The synthetic event stream for `authors` × `posts_per_author`.
pub fn thunder_events(authors: u32, posts_per_author: u32, seed: u64) -> Vec<PostEvent> {
    let spec = SynthSpec {
        authors,
        posts_per_author,
        ..SynthSpec::new(SystemClock::new().unix_s(), seed)
    };
    synth_events(&spec)
}

/// A ready store (events applied, `finalize_init` run) with the CLI's
/// 100 ms request budget.
pub fn thunder_store(authors: u32, posts_per_author: u32, seed: u64) -> Arc<PostStore> {
    let params = ThunderParams {
        request_timeout: std::time::Duration::from_millis(100),
        ..ThunderParams::default()
    };
    let store = Arc::new(PostStore::new(params, Arc::new(SystemClock::new())));
    apply_events(&store, thunder_events(authors, posts_per_author, seed));
    store.finalize_init();
    store
}

/// One GetInNetworkPosts without the transport: default max_results (1200),
/// answered as the proto posts the service would send.
pub fn in_process_request(
    store: &PostStore,
    following: &[i64],
    exclude: &IdSet,
    requester: i64,
) -> Vec<pb::LightPost> {
    let max = store.params().max_posts_to_return;
    retrieve_recent(store, following, exclude, requester, false, max)
        .iter()
        .map(pb::LightPost::from)
        .collect()
}

/// The same request through the spec's reference passes: every survivor
/// collected, then `score_recent` (the baseline the fused walk is timed
/// against).
pub fn in_process_request_reference(
    store: &PostStore,
    following: &[i64],
    exclude: &IdSet,
    requester: i64,
) -> Vec<pb::LightPost> {
    let q = RetrievalQuery {
        user_ids: following,
        exclude,
        requester,
        start: store.clock().monotonic(),
    };
    let mut posts = store.get_all_posts_by_users(&q).posts;
    score_recent(&mut posts, store.params().max_posts_to_return);
    posts.iter().map(pb::LightPost::from).collect()
}

/// Current unix time (for callers that need "now" without a clock).
pub fn now_s() -> i64 {
    SystemClock::new().unix_s()
}

/// An empty store with the default parameters and the system clock.
pub fn fresh_store() -> Arc<PostStore> {
    Arc::new(PostStore::new(
        ThunderParams::default(),
        Arc::new(SystemClock::new()),
    ))
}

/// Ingest throughput of one thread against `threads`, measured in
/// alternating rounds (one, then each way of splitting the stream over
/// `threads`, `rounds` times) so the VM's slow drifts hit all alike.
#[derive(Debug, Clone, Copy)]
pub struct IngestRates {
    /// Events in the stream.
    pub events: usize,
    /// Median events/s on one thread.
    pub one: f64,
    /// Median events/s on `threads` sharing one store, each applying every
    /// `threads`-th batch of the stream: a topic whose partitions are not
    /// keyed by author, so both threads write every author's timeline.
    pub many: f64,
    /// Median of the per-round ratios many / one.
    pub ratio: f64,
    /// Median events/s on `threads` sharing one store, each applying the
    /// creates of its own authors (and the deletes of its own post ids) in
    /// batches of 1000: a topic keyed by author id, each thread reading
    /// its own partitions.
    pub by_author: f64,
    /// Median of the per-round ratios by_author / one.
    pub by_author_ratio: f64,
    /// Median events/s on `threads` that each apply the whole stream to a
    /// store of their own (the one-thread round's work, once per thread):
    /// nothing shared but the machine, so `apart_ratio` is what this
    /// machine allows for this work (its cores' shared cache, memory and
    /// page faults), the ceiling for the other ratios.
    pub apart: f64,
    /// Median of the per-round ratios apart / one.
    pub apart_ratio: f64,
}

/// How a round splits the stream over its threads (see [`IngestRates`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    Interleaved,
    ByAuthor,
    Apart,
}

/// The thread (of `threads`) whose partitions hold `event` when the topic
/// is keyed by author: creates by author id, deletes (which name no
/// author) by post id.
fn partition_of(event: &PostEvent, threads: usize) -> usize {
    let key = match event {
        PostEvent::Create(p) => p.author_id,
        PostEvent::Delete(d) => d.post_id,
    };
    ((key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % threads
}

/// Applies `events` in batches of 1000 to a fresh store on one thread,
/// then on `threads` split each way of [`Split`], `rounds` times.
/// An error when the OS refuses an ingest thread.
pub fn ingest_rates(
    events: &[PostEvent],
    threads: usize,
    rounds: usize,
) -> std::io::Result<IngestRates> {
    let threads = threads.max(1);
    let chunks: Vec<&[PostEvent]> = events.chunks(1000).collect();
    let keyed: Vec<Vec<PostEvent>> = (0..threads)
        .map(|t| {
            let mine = events.iter().filter(|e| partition_of(e, threads) == t);
            mine.cloned().collect()
        })
        .collect();
    let rate = |threads: usize, split: Split| -> std::io::Result<f64> {
        let stores: Vec<Arc<PostStore>> = (0..if split == Split::Apart { threads } else { 1 })
            .map(|_| fresh_store())
            .collect();
        let batches = |tid: usize| -> Vec<&[PostEvent]> {
            match split {
                Split::Interleaved => chunks.iter().copied().skip(tid).step_by(threads).collect(),
                Split::ByAuthor => keyed[tid].chunks(1000).collect(),
                Split::Apart => chunks.clone(),
            }
        };
        let plans: Vec<Vec<&[PostEvent]>> = (0..threads).map(batches).collect();
        let t = std::time::Instant::now();
        std::thread::scope(|s| -> std::io::Result<()> {
            for (tid, plan) in plans.into_iter().enumerate() {
                let store = &stores[tid % stores.len()];
                // Named by the round's kind, so a profile can tell the
                // rounds apart.
                std::thread::Builder::new()
                    .name(format!("ingest-{threads}-{split:?}"))
                    .spawn_scoped(s, move || {
                        for batch in plan {
                            apply_events(store, batch.to_vec());
                        }
                    })?;
            }
            Ok(())
        })?;
        Ok((stores.len() * events.len()) as f64 / t.elapsed().as_secs_f64())
    };
    let (mut one, mut many, mut by_author, mut apart) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds.max(1) {
        one.push(rate(1, Split::Interleaved)?);
        many.push(rate(threads, Split::Interleaved)?);
        by_author.push(rate(threads, Split::ByAuthor)?);
        apart.push(rate(threads, Split::Apart)?);
    }
    let median = |mut v: Vec<f64>| crate::median(&mut v);
    let ratios = |v: &[f64]| v.iter().zip(&one).map(|(m, o)| m / o).collect::<Vec<_>>();
    Ok(IngestRates {
        events: events.len(),
        ratio: median(ratios(&many)),
        by_author_ratio: median(ratios(&by_author)),
        apart_ratio: median(ratios(&apart)),
        one: median(one.clone()),
        many: median(many),
        by_author: median(by_author),
        apart: median(apart),
    })
}
