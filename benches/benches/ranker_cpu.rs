//! Ranker latency on CPU: dense (reference) vs fast (cached context,
//! candidate isolation) path, demo and mid shapes, batch 1 and 8.
//!
//! Run: `cargo bench -p foryou-benches --bench ranker_cpu`.
//! IDs: `ranker/cpu/<path>/<shape>/b=<batch>`.

use criterion::{Criterion, criterion_group, criterion_main};
use foryou_benches::{bench_ranker, full_batch};
use foryou_engine::FpropDtype;
use foryou_engine::init::Preset;

fn ranker(c: &mut Criterion) {
    for (name, preset) in [("demo", Preset::Demo), ("mid", Preset::Mid)] {
        let (_dir, ranker) = bench_ranker(preset, FpropDtype::F32).expect("bench model");
        let mut group = c.benchmark_group(format!("ranker/cpu/{name}"));
        group.sample_size(10);
        for batch in [1usize, 8] {
            let inputs = full_batch(&ranker, batch).expect("bench inputs");
            group.bench_function(format!("dense/b={batch}"), |b| {
                b.iter(|| ranker.forward_dense(&inputs).expect("dense"))
            });
            group.bench_function(format!("fast/b={batch}"), |b| {
                b.iter(|| ranker.forward(&inputs).expect("fast"))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, ranker);
criterion_main!(benches);
