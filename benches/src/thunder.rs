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
/// alternating rounds (one, many, many apart, `rounds` times) so the VM's
/// slow drifts hit all alike.
#[derive(Debug, Clone, Copy)]
pub struct IngestRates {
    /// Events in the stream.
    pub events: usize,
    /// Median events/s on one thread.
    pub one: f64,
    /// Median events/s on `threads` sharing one store.
    pub many: f64,
    /// Median of the per-round ratios many / one.
    pub ratio: f64,
    /// Median events/s on `threads` that each apply the whole stream to a
    /// store of their own (the one-thread round's work, once per thread):
    /// nothing shared but the machine, so `apart_ratio` is what this
    /// machine allows for this work (its cores' shared cache, memory and
    /// page faults), the ceiling for `ratio`.
    pub apart: f64,
    /// Median of the per-round ratios apart / one.
    pub apart_ratio: f64,
}

/// Applies `events` (batches of 1000, round-robin over the threads) to a
/// fresh store on one thread, then on `threads` sharing a store, then the
/// whole stream on each of `threads` with a store each, `rounds` times.
pub fn ingest_rates(events: &[PostEvent], threads: usize, rounds: usize) -> IngestRates {
    let chunks: Vec<&[PostEvent]> = events.chunks(1000).collect();
    // `apart`: every thread applies the whole stream to a store of its own.
    let rate = |threads: usize, apart: bool| {
        let stores: Vec<Arc<PostStore>> = (0..if apart { threads } else { 1 })
            .map(|_| fresh_store())
            .collect();
        let t = std::time::Instant::now();
        std::thread::scope(|s| {
            for tid in 0..threads {
                let (store, chunks) = (&stores[tid % stores.len()], &chunks);
                let (skip, step) = if apart { (0, 1) } else { (tid, threads) };
                // Named by the round's kind, so a profile can tell the
                // rounds apart.
                std::thread::Builder::new()
                    .name(format!("ingest-{threads}-on-{}", stores.len()))
                    .spawn_scoped(s, move || {
                        for c in chunks.iter().skip(skip).step_by(step) {
                            apply_events(store, c.to_vec());
                        }
                    })
                    .expect("spawn an ingest thread");
            }
        });
        (stores.len() * events.len()) as f64 / t.elapsed().as_secs_f64()
    };
    let (mut one, mut many, mut apart) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        one.push(rate(1, false));
        many.push(rate(threads, false));
        apart.push(rate(threads, true));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratios = |v: &[f64]| v.iter().zip(&one).map(|(m, o)| m / o).collect::<Vec<_>>();
    IngestRates {
        events: events.len(),
        ratio: median(ratios(&many)),
        apart_ratio: median(ratios(&apart)),
        one: median(one.clone()),
        many: median(many),
        apart: median(apart),
    }
}
