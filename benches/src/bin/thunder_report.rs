//! Thunder report: GetInNetworkPosts in-process latency (p50 / p90 / p99) at
//! 100, 1000 and 5000 follows with ~50 posts each, ingest throughput on one
//! thread and on all cores, and heap bytes per stored post. Prints a markdown
//! table and writes `thunder_<date>.{md,json}` to the directory given as the
//! first argument (default `benches/results`).
//!
//! Each request draws a random requester, a random order of the
//! follows and 100 random excluded ids from the store, so no two requests
//! walk memory identically.

use std::alloc::{GlobalAlloc, Layout};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::Instant;

use anyhow::Context;
use foryou_benches::thunder::{
    fresh_store, in_process_request, in_process_request_reference, ingest_rates, thunder_events,
    thunder_store,
};
use foryou_server::thunder::IdSet;
use foryou_server::thunder::events::apply_events;
use mimalloc::MiMalloc;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// mimalloc (the server's allocator) that, while [`COUNTING`] is set,
/// counts live heap bytes so the store's footprint can be measured. Off
/// during the timed parts: a shared counter bumped by every allocation
/// would be a contended cache line for the ingest threads.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

fn count(delta: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE.fetch_add(delta, Ordering::Relaxed);
    }
}

// SAFETY: forwards to mimalloc unchanged; only counts sizes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(l.size() as isize);
        // SAFETY: same layout contract as the caller's.
        unsafe { MiMalloc.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count(-(l.size() as isize));
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { MiMalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        count(new as isize - l.size() as isize);
        // SAFETY: same contract as `GlobalAlloc::realloc`.
        unsafe { MiMalloc.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct LatencyRow {
    follows: u32,
    posts: usize,
    returned: usize,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    /// The reference passes + `score_recent`, same requests, same process.
    ref_p50_us: f64,
    ref_p99_us: f64,
}

fn latency(follows: u32, requests: usize) -> LatencyRow {
    let store = thunder_store(follows, 50, 1);
    let ids: Vec<i64> = store.snapshot().posts.keys().copied().collect();
    let mut rng = ChaCha8Rng::seed_from_u64(u64::from(follows));
    let mut following: Vec<i64> = (1..=i64::from(follows)).collect();
    // Warm-up.
    let mut returned = 0;
    for _ in 0..50 {
        returned = in_process_request(&store, &following, &IdSet::default(), 0).len();
    }
    // The same random requests for both paths, each path in its own loop
    // (as a server answering only that path would run), fused first.
    let requests: Vec<(Vec<i64>, IdSet, i64)> = (0..requests)
        .map(|_| {
            following.shuffle(&mut rng);
            let exclude: IdSet = (0..100)
                .map(|_| ids[rng.random_range(0..ids.len())])
                .collect();
            (
                following.clone(),
                exclude,
                rng.random_range(1..=i64::from(follows)),
            )
        })
        .collect();
    let time = |fused: bool| -> Vec<f64> {
        requests
            .iter()
            .map(|(following, exclude, requester)| {
                let t = Instant::now();
                let out = if fused {
                    in_process_request(&store, following, exclude, *requester)
                } else {
                    in_process_request_reference(&store, following, exclude, *requester)
                };
                let dt = t.elapsed().as_secs_f64() * 1e6;
                std::hint::black_box(out);
                dt
            })
            .collect()
    };
    let mut us = time(true);
    let mut ref_us = time(false);
    us.sort_by(f64::total_cmp);
    ref_us.sort_by(f64::total_cmp);
    LatencyRow {
        follows,
        posts: store.stats().posts,
        returned,
        p50_us: percentile(&us, 0.5),
        p90_us: percentile(&us, 0.9),
        p99_us: percentile(&us, 0.99),
        ref_p50_us: percentile(&ref_us, 0.5),
        ref_p99_us: percentile(&ref_us, 0.99),
    }
}

fn main() -> anyhow::Result<()> {
    // The server's allocator settings (the `foryou` binary applies them too).
    foryou_server::allocator::delay_mimalloc_purge();
    let out_dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "benches/results".into()),
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let rows: Vec<LatencyRow> = [100u32, 1000, 5000]
        .iter()
        .map(|f| latency(*f, if *f == 5000 { 400 } else { 2000 }))
        .collect();

    let ingest = ingest_rates(&thunder_events(20_000, 50, 3), cores, 7)?;

    let events = thunder_events(2000, 50, 3);
    COUNTING.store(true, Ordering::SeqCst);
    let before = LIVE.load(Ordering::SeqCst);
    let store = fresh_store();
    for c in events.chunks(1000) {
        apply_events(&store, c.to_vec());
    }
    store.finalize_init();
    let bytes = LIVE.load(Ordering::SeqCst) - before;
    COUNTING.store(false, Ordering::SeqCst);
    let posts = store.stats().posts;
    let per_post = bytes as f64 / posts as f64;

    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let date = std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();

    let mut md = format!(
        "# Thunder benchmarks\n\nDevice: CPU, {cores} cores (this VM). Commit {commit}, {date}.\n\
         Command: `cargo run --release -p foryou-benches --bin thunder-report`\n\n\
         ## GetInNetworkPosts in-process (retrieval, newest 1200, proto conversion)\n\n\
         Request path: the fused newest-first walk. Reference: every survivor of the spec's \
         passes, then `score_recent` (same requests, each in its own loop, same process).\n\n\
         | follows | stored posts | returned | p50 µs | p90 µs | p99 µs | reference p50 µs | reference p99 µs | p50 speed-up |\n\
         |---|---|---|---|---|---|---|---|---|\n"
    );
    for r in &rows {
        md += &format!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1}× |\n",
            r.follows,
            r.posts,
            r.returned,
            r.p50_us,
            r.p90_us,
            r.p99_us,
            r.ref_p50_us,
            r.ref_p99_us,
            r.ref_p50_us / r.p50_us
        );
    }
    md += &format!(
        "\n## Ingest (batches of 1000, {} events: creates + deletes, a fresh store each run)\n\n\
         One thread, then {cores} threads three ways: sharing a store with the batches \
         interleaved (a topic not keyed by author: both threads write every author's \
         timeline); sharing a store with the stream keyed by author (creates by author, \
         deletes by post id; each thread its own authors); and a store each, each applying \
         the whole stream (nothing shared but the machine: this machine's ceiling). Seven \
         alternating rounds; medians, and medians of the per-round ratios.\n\n\
         | threads | events/s | / 1 thread |\n|---|---|---|\n| 1 | {:.0} | |\n\
         | {cores}, one store, batches interleaved | {:.0} | **{:.2}x** |\n\
         | {cores}, one store, keyed by author | {:.0} | **{:.2}x** |\n\
         | {cores}, a store each | {:.0} | {:.2}x |\n\n\
         ## Memory\n\n{posts} posts stored: {:.1} MB live heap, **{per_post:.0} bytes per post** \
         (post map, three timelines, deleted set).\n",
        ingest.events,
        ingest.one,
        ingest.many,
        ingest.ratio,
        ingest.by_author,
        ingest.by_author_ratio,
        ingest.apart,
        ingest.apart_ratio,
        bytes as f64 / 1e6
    );
    print!("{md}");
    let json = serde_json::json!({
        "device": format!("cpu x{cores}"),
        "commit": commit,
        "date": date,
        "latency": rows.iter().map(|r| serde_json::json!({
            "follows": r.follows, "stored_posts": r.posts, "returned": r.returned,
            "p50_us": r.p50_us, "p90_us": r.p90_us, "p99_us": r.p99_us,
            "reference_p50_us": r.ref_p50_us, "reference_p99_us": r.ref_p99_us,
        })).collect::<Vec<_>>(),
        "ingest_events": ingest.events,
        "ingest_events_per_s": {"threads_1": ingest.one, format!("threads_{cores}"): ingest.many},
        "ingest_ratio": ingest.ratio,
        "ingest_by_author_events_per_s": ingest.by_author,
        "ingest_by_author_ratio": ingest.by_author_ratio,
        "ingest_apart_events_per_s": ingest.apart,
        "ingest_apart_ratio": ingest.apart_ratio,
        "bytes_per_post": per_post,
        "posts": posts,
    });
    std::fs::create_dir_all(&out_dir).with_context(|| format!("create {}", out_dir.display()))?;
    let stem = out_dir.join(format!("thunder_{date}"));
    std::fs::write(stem.with_extension("md"), &md).context("write markdown")?;
    std::fs::write(
        stem.with_extension("json"),
        serde_json::to_string_pretty(&json)?,
    )
    .context("write json")?;
    Ok(())
}
