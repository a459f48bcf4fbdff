//! Runs only the GetInNetworkPosts request path (1000 follows, the
//! thunder-report setup) in a loop, for profilers:
//! `perf record -g target/release/thunder-profile`.

use foryou_benches::thunder::{in_process_request, thunder_store};
use foryou_server::thunder::IdSet;

fn main() {
    let store = thunder_store(1000, 50, 1);
    let following: Vec<i64> = (1..=1000).collect();
    let exclude = IdSet::default();
    let t = std::time::Instant::now();
    let mut n = 0;
    for i in 0..5000 {
        n += in_process_request(&store, &following, &exclude, 5000 + i).len();
    }
    println!(
        "{n} posts, {:.1} us per request",
        t.elapsed().as_secs_f64() * 1e6 / 5000.0
    );
}
