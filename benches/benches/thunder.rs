//! Thunder: GetInNetworkPosts in-process at 100 / 1000 / 5000 follows (50
//! posts each), and ingest throughput on one thread. The p99 and the
//! all-cores and memory figures come from `thunder-report`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use foryou_benches::thunder::{in_process_request, thunder_events, thunder_store};
use foryou_server::clock::SystemClock;
use foryou_server::thunder::events::apply_events;
use foryou_server::thunder::{IdSet, PostStore, ThunderParams};
use std::sync::Arc;

fn get_in_network_posts(c: &mut Criterion) {
    let mut g = c.benchmark_group("thunder/get_in_network_posts/cpu");
    for follows in [100u32, 1000, 5000] {
        let store = thunder_store(follows, 50, 1);
        let following: Vec<i64> = (1..=i64::from(follows)).collect();
        let exclude = IdSet::default();
        g.bench_with_input(
            BenchmarkId::new("follows", follows),
            &following,
            |b, following| b.iter(|| in_process_request(&store, following, &exclude, 0)),
        );
    }
    g.finish();
}

fn ingest(c: &mut Criterion) {
    let mut g = c.benchmark_group("thunder/ingest/cpu");
    let events = thunder_events(1000, 50, 2);
    g.throughput(Throughput::Elements(events.len() as u64));
    g.sample_size(10);
    g.bench_function("one_thread/events=51k", |b| {
        b.iter_batched(
            || {
                (
                    Arc::new(PostStore::new(
                        ThunderParams::default(),
                        Arc::new(SystemClock::new()),
                    )),
                    events.clone(),
                )
            },
            |(store, evs)| {
                for chunk in evs.chunks(1000) {
                    apply_events(&store, chunk.to_vec());
                }
                store
            },
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, get_in_network_posts, ingest);
criterion_main!(benches);
