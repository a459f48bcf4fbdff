//! Runs only the GetInNetworkPosts request path in a loop, for profilers:
//! `perf record -g target/release/thunder-profile`. The requests are
//! thunder-report's at 1000 follows: the follow list shuffled and 100
//! random stored ids excluded per request. `thunder-profile ingest N`
//! instead measures thunder-report's ingest on one thread and on N
//! (sharing a store, batches interleaved or keyed by author; a store
//! each), seven rounds.

use foryou_benches::median;
use foryou_benches::thunder::{in_process_request, thunder_store};
use foryou_server::thunder::IdSet;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::io::Result<()> {
    // The server's allocator settings (the `foryou` binary applies them too).
    foryou_server::allocator::delay_mimalloc_purge();
    if std::env::args().nth(1).as_deref() == Some("ingest") {
        let threads = std::env::args()
            .nth(2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        return ingest(threads);
    }
    let store = thunder_store(1000, 50, 1);
    let ids: Vec<i64> = store.snapshot().posts.keys().copied().collect();
    let mut rng = ChaCha8Rng::seed_from_u64(1000);
    let mut following: Vec<i64> = (1..=1000).collect();
    let requests: Vec<(Vec<i64>, IdSet)> = (0..200)
        .map(|_| {
            following.shuffle(&mut rng);
            let exclude = (0..100)
                .map(|_| ids[rng.random_range(0..ids.len())])
                .collect();
            (following.clone(), exclude)
        })
        .collect();
    let mut us = Vec::with_capacity(5000);
    let mut n = 0;
    for i in 0..5000 {
        let (following, exclude) = &requests[i % requests.len()];
        let t = std::time::Instant::now();
        n += in_process_request(&store, following, exclude, 5000 + i as i64).len();
        us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    // The median of each run of 500 requests, in time order: the VM has
    // been seen to switch between a fast and a ~1.5x slower state for whole
    // seconds, which moves the p99 of the run with it.
    let windows: Vec<String> = us
        .chunks(500)
        .map(|w| format!("{:.0}", median(&mut w.to_vec())))
        .collect();
    us.sort_by(f64::total_cmp);
    let at = |q: f64| us[((us.len() - 1) as f64 * q) as usize];
    println!(
        "{n} posts; per request p50 {:.1} p90 {:.1} p99 {:.1} max {:.1} us; \
         p50 of each 500 requests in order: {}",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0),
        windows.join(" ")
    );
    Ok(())
}

/// Ingest of ~1M events on one thread against `threads` split each way
/// of `ingest_rates`, seven alternating rounds.
fn ingest(threads: usize) -> std::io::Result<()> {
    let events = foryou_benches::thunder::thunder_events(20_000, 50, 3);
    let r = foryou_benches::thunder::ingest_rates(&events, threads, 7)?;
    println!(
        "{} events; 1 thread {:.0}/s; {threads} threads, one store: batches interleaved \
         {:.0}/s (ratio {:.2}), keyed by author {:.0}/s (ratio {:.2}); a store each {:.0}/s \
         (ratio {:.2}) (medians of 7 alternating rounds)",
        r.events, r.one, r.many, r.ratio, r.by_author, r.by_author_ratio, r.apart, r.apart_ratio
    );
    Ok(())
}
