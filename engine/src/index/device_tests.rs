//! Contract tests of the device search (`device_search`) on the top-k
//! kernel's CPU twin ([`CpuRowDevice`]): the same posts and scores as the
//! CPU search across segment boundaries, tombstones, expiry, eviction,
//! compaction, exclusions, `k` above a segment and above the kernel's
//! limit, and for old snapshots.

use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::*;
use crate::corpus::{CorpusItem, Hit, Query};

const D: usize = 64;

/// `n` seeded random unit vectors of width `d`.
fn units(seed: u64, n: usize, d: usize) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let v: Vec<f32> = (0..d).map(|_| StandardNormal.sample(&mut rng)).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter().map(|x| x / norm).collect()
        })
        .collect()
}

fn config(format: Format, segment_rows: usize, capacity: usize) -> IndexConfig {
    IndexConfig {
        segment_rows,
        capacity,
        ..IndexConfig::new(D, format)
    }
}

/// Inserts `rows` as posts `first..`, author `id % 5`, created at
/// `id`, in batches of 100 at time `now_ms`.
fn insert(index: &mut LiveIndex, rows: &[Vec<f32>], first: i64, now_ms: i64) {
    let ids: Vec<i64> = (first..first + rows.len() as i64).collect();
    for chunk in ids.chunks(100) {
        let posts: Vec<NewPost<'_>> = chunk
            .iter()
            .map(|&id| NewPost {
                item: CorpusItem {
                    post_id: id,
                    author_id: id % 5,
                },
                created_ms: id,
                representation: &rows[(id - first) as usize],
            })
            .collect();
        index.insert(&posts, now_ms).expect("valid posts");
    }
}

fn device(config: &IndexConfig) -> Arc<DeviceSegments> {
    Arc::new(DeviceSegments::new(Box::new(CpuRowDevice::new()), config))
}

fn ask(k: usize) -> Query<'static> {
    Query {
        k,
        ..Default::default()
    }
}

/// Same posts in the same order, scores within rounding.
fn assert_same(got: &[Vec<Hit>], want: &[Vec<Hit>], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: queries");
    for (b, (g, w)) in got.iter().zip(want).enumerate() {
        let gi: Vec<i64> = g.iter().map(|h| h.post_id).collect();
        let wi: Vec<i64> = w.iter().map(|h| h.post_id).collect();
        assert_eq!(gi, wi, "{what}: query {b} posts");
        for (x, y) in g.iter().zip(w) {
            assert!((x.score - y.score).abs() <= 1e-5, "{what}: {x:?} vs {y:?}");
            assert_eq!(x.author_id, y.author_id);
        }
    }
}

/// The device search and the CPU search of `snap` for `qs`.
fn compare(dev: &DeviceSegments, snap: &Snapshot, queries: &[f32], qs: &[Query<'_>], what: &str) {
    let got = dev.search(snap, queries, qs).expect("device search");
    let want = snap.search(queries, qs).expect("cpu search");
    assert_same(&got, &want, what);
}

#[test]
fn the_device_finds_what_the_cpu_search_finds_for_every_format_and_depth() {
    let rows = units(1, 2_000, D);
    let queries: Vec<f32> = units(2, 6, D).concat();
    for format in [Format::F32, Format::Bf16, Format::Int8] {
        let cfg = config(format, 256, 1_000_000);
        let mut index = LiveIndex::new(cfg.clone()).expect("valid config");
        insert(&mut index, &rows, 0, 2_000);
        let snap = index.snapshot();
        // Seven sealed segments on the device, the open runs on the CPU.
        assert_eq!(snap.segments.iter().filter(|s| s.sealed).count(), 7);
        let dev = device(&cfg);
        for k in [1, 10, 100, 700] {
            let qs = vec![ask(k); 6];
            compare(&dev, &snap, &queries, &qs, &format!("{format:?} k {k}"));
        }
        let stats = dev.stats();
        assert_eq!((stats.segments, stats.rows), (7, 7 * 256));
        assert_eq!(stats.segment_uploads, 7, "each segment uploaded once");
        assert_eq!(stats.mask_uploads, 1, "the mask is sent once per change");
    }
}

#[test]
fn ties_across_segment_boundaries_go_to_the_older_post_and_k_spans_segments() {
    // Every post has the same representation: all scores tie.
    let rows = vec![units(3, 1, D)[0].clone(); 700];
    let cfg = config(Format::F32, 128, 1_000_000);
    let mut index = LiveIndex::new(cfg.clone()).expect("valid config");
    insert(&mut index, &rows, 0, 700);
    let snap = index.snapshot();
    let dev = device(&cfg);
    let got = dev.search(&snap, &rows[0], &[ask(400)]).expect("search");
    let ids: Vec<i64> = got[0].iter().map(|h| h.post_id).collect();
    assert_eq!(ids, (0..400).collect::<Vec<i64>>());
    // More than every sealed segment together: all 700, oldest first.
    let all = dev.search(&snap, &rows[0], &[ask(5_000)]).expect("search");
    assert_eq!(all[0].len(), 700);
    assert!(all[0].iter().zip(0..).all(|(h, i)| h.post_id == i));
}

#[test]
fn deleted_expired_and_evicted_rows_never_come_back_from_the_device() {
    let rows = units(4, 1_500, D);
    let q = units(5, 1, D).concat();
    let cfg = IndexConfig {
        retention_ms: 10_000,
        ..config(Format::F32, 256, 1_200)
    };
    let mut index = LiveIndex::new(cfg.clone()).expect("valid config");
    insert(&mut index, &rows, 0, 1_500);
    let dev = device(&cfg);
    let before = index.snapshot();
    compare(&dev, &before, &q, &[ask(50)], "evicted past capacity");
    // The capacity (1 200) evicted the oldest 300.
    let first = dev.search(&before, &q, &[ask(1_500)]).expect("search");
    assert!(first[0].iter().all(|h| h.post_id >= 300));
    assert_eq!(first[0].len(), 1_200);
    // Delete the ten best.
    let best: Vec<i64> = first[0].iter().take(10).map(|h| h.post_id).collect();
    index.delete(&best, 1_500);
    let masks = dev.stats().mask_uploads;
    let after = index.snapshot();
    compare(&dev, &after, &q, &[ask(50)], "after deletes");
    let hits = dev.search(&after, &q, &[ask(50)]).expect("search");
    assert!(hits[0].iter().all(|h| !best.contains(&h.post_id)));
    assert!(dev.stats().mask_uploads > masks, "the mask follows deletes");
    // Expiry: the clock moves so posts created before 800 expire.
    index.advance(10_800);
    let expired = index.snapshot();
    compare(&dev, &expired, &q, &[ask(2_000)], "after expiry");
    let hits = dev.search(&expired, &q, &[ask(2_000)]).expect("search");
    assert!(hits[0].iter().all(|h| h.post_id >= 800));
    let deleted_late = best.iter().filter(|&&id| id >= 800).count();
    assert_eq!(hits[0].len(), 700 - deleted_late);
    // The old snapshot still answers as it did.
    compare(&dev, &before, &q, &[ask(50)], "old snapshot");
}

#[test]
fn author_exclusions_that_empty_a_device_list_ask_the_device_again() {
    // The 600 posts nearest the query are all by author 1.
    let q = units(6, 1, D)[0].clone();
    let mut rows = units(7, 1_200, D);
    for (i, r) in rows.iter_mut().enumerate() {
        if i % 2 == 0 {
            let near: Vec<f32> = q.iter().zip(r.iter()).map(|(a, b)| a + 0.1 * b).collect();
            let n = near.iter().map(|x| x * x).sum::<f32>().sqrt();
            *r = near.iter().map(|x| x / n).collect();
        }
    }
    let cfg = config(Format::F32, 256, 1_000_000);
    let mut index = LiveIndex::new(cfg.clone()).expect("valid config");
    let mut posts = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        posts.push(NewPost {
            item: CorpusItem {
                post_id: i as i64,
                author_id: if i % 2 == 0 { 1 } else { 2 + i as i64 },
            },
            created_ms: 0,
            representation: r,
        });
    }
    index.insert(&posts, 0).expect("valid posts");
    let snap = index.snapshot();
    let dev = device(&cfg);
    let excluded_authors = [1i64];
    let excluded_posts = [1i64, 3];
    let qs = [Query {
        k: 20,
        excluded_authors: &excluded_authors,
        excluded_posts: &excluded_posts,
    }];
    compare(&dev, &snap, &q, &qs, "author exclusions");
    let hits = dev.search(&snap, &q, &qs).expect("search");
    assert_eq!(hits[0].len(), 20);
    assert!(
        hits[0]
            .iter()
            .all(|h| h.author_id != 1 && h.post_id % 2 == 1)
    );
    assert!(!hits[0].iter().any(|h| h.post_id == 1 || h.post_id == 3));
    assert_eq!(dev.stats().cpu_fallbacks, 0);
}

#[test]
fn compaction_and_eviction_free_ranges_and_a_full_arena_is_rebuilt() {
    // Capacity 600 + 2 segments of 128: the arena may hold 856 rows, so
    // steady inserts with eviction must reuse freed ranges and repack.
    let cfg = config(Format::Int8, 128, 600);
    let mut index = LiveIndex::new(cfg.clone()).expect("valid config");
    let dev = device(&cfg);
    let q = units(8, 2, D).concat();
    let qs = [ask(30), ask(200)];
    for round in 0..12i64 {
        let rows = units(100 + round as u64, 250, D);
        insert(&mut index, &rows, round * 250, round * 250 + 250);
        if round % 3 == 1 {
            // Thin a sealed segment so compaction rewrites it.
            let dead: Vec<i64> = (round * 250 - 200..round * 250 - 120).collect();
            index.delete(&dead, round * 250 + 250);
        }
        compare(&dev, &index.snapshot(), &q, &qs, &format!("round {round}"));
    }
    let stats = dev.stats();
    assert!(stats.capacity_rows <= 864, "{stats:?}");
    assert!(
        stats.repacks >= 1 && stats.segment_uploads > 12,
        "{stats:?}"
    );
    assert_eq!(stats.unplaced_searches, 0, "{stats:?}");
}

#[test]
fn a_query_deeper_than_the_kernel_allows_is_answered_by_the_cpu_search() {
    // Five sealed segments: more rows than one kernel call returns.
    let rows = units(9, 5 * 4_096 + 100, D);
    let cfg = config(Format::F32, 4_096, 1_000_000);
    let mut index = LiveIndex::new(cfg.clone()).expect("valid config");
    insert(&mut index, &rows, 0, 0);
    let snap = index.snapshot();
    let dev = device(&cfg);
    let q = units(10, 2, D).concat();
    let qs = [ask(17_000), ask(5)];
    compare(&dev, &snap, &q, &qs, "deeper than the kernel");
    assert_eq!(dev.stats().cpu_fallbacks, 1);
}

#[test]
fn widths_the_kernel_lacks_stay_on_the_cpu() {
    let rows = units(11, 600, 32);
    let cfg = IndexConfig {
        segment_rows: 128,
        ..IndexConfig::new(32, Format::F32)
    };
    let mut index = LiveIndex::new(cfg.clone()).expect("valid config");
    let posts: Vec<NewPost<'_>> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| NewPost {
            item: CorpusItem {
                post_id: i as i64,
                author_id: 0,
            },
            created_ms: 0,
            representation: r,
        })
        .collect();
    index.insert(&posts, 0).expect("valid posts");
    let dev = device(&cfg);
    let q = units(12, 1, 32).concat();
    compare(&dev, &index.snapshot(), &q, &[ask(40)], "width 32");
    assert_eq!(dev.stats().segments, 0);
    // A query of the wrong width is refused, not searched.
    assert!(matches!(
        dev.search(&index.snapshot(), &q[..31], &[ask(1)]),
        Err(IndexError::QueryShape { .. })
    ));
}

#[test]
fn a_reader_on_a_device_searches_through_it() {
    let rows = units(13, 900, D);
    let cfg = config(Format::F32, 256, 1_000_000);
    let mut index = LiveIndex::new(cfg.clone()).expect("valid config");
    insert(&mut index, &rows, 0, 900);
    let dev = device(&cfg);
    let reader = index.reader().on_device(Arc::clone(&dev));
    let q = units(14, 1, D).concat();
    let got = reader.search_latest(&q, &[ask(25)]).expect("search");
    let want = index.snapshot().search(&q, &[ask(25)]).expect("search");
    assert_same(&got, &want, "reader");
    assert_eq!(dev.stats().segments, 3);
}

/// The twin, failing its top-k calls while `fail` is set.
#[derive(Debug)]
struct Flaky {
    inner: CpuRowDevice,
    fail: Arc<std::sync::atomic::AtomicBool>,
}

impl RowDevice for Flaky {
    fn allocate(&mut self, rows: usize, dim: usize) -> Result<(), IndexError> {
        self.inner.allocate(rows, dim)
    }
    fn capacity(&self) -> usize {
        self.inner.capacity()
    }
    fn write(&mut self, first: usize, bits: &[u16]) -> Result<(), IndexError> {
        self.inner.write(first, bits)
    }
    fn set_eligible(&mut self, words: &[u32]) -> Result<(), IndexError> {
        self.inner.set_eligible(words)
    }
    fn top_k(&self, rows: usize, q: &[f32], k: usize) -> Result<Vec<Vec<(u32, f32)>>, IndexError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(IndexError::Device("lost context".into()));
        }
        self.inner.top_k(rows, q, k)
    }
    fn device_bytes(&self) -> usize {
        self.inner.device_bytes()
    }
}

#[test]
fn a_failing_device_leaves_the_search_to_the_cpu_and_is_counted() {
    let rows = units(15, 700, D);
    let cfg = config(Format::F32, 128, 1_000_000);
    let mut index = LiveIndex::new(cfg.clone()).expect("valid config");
    insert(&mut index, &rows, 0, 700);
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flaky = Flaky {
        inner: CpuRowDevice::new(),
        fail: Arc::clone(&fail),
    };
    let dev = DeviceSegments::new(Box::new(flaky), &cfg);
    let q = units(16, 2, D).concat();
    let snap = index.snapshot();
    compare(&dev, &snap, &q, &[ask(20), ask(3)], "device failing");
    assert_eq!(dev.stats().device_errors, 1);
    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    compare(&dev, &snap, &q, &[ask(20), ask(3)], "device back");
    assert_eq!(dev.stats().device_errors, 1);
}
