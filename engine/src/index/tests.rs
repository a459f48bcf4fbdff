//! Scenario tests of the live index, one per rule: what a search sees
//! after inserts, deletes, expiry and eviction; snapshot isolation under
//! a concurrent writer; parity of the segmented scan with one exact f32
//! scan; recall of the quantised formats.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::kernel::dot;
use super::*;
use crate::corpus::{CorpusItem, Hit, Query};
use crate::topk::top_k;

/// `n` values in [-0.5, 0.5) from a 64-bit LCG seeded with `seed` (the
/// kernels' unit tests; no rand dependency in their inner loops).
pub(crate) fn pseudo(seed: u64, n: usize) -> Vec<f32> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

/// A post with ids `(post_id, author_id)`.
fn post(post_id: i64, author_id: i64, created_ms: i64, rep: &[f32]) -> NewPost<'_> {
    NewPost {
        item: CorpusItem { post_id, author_id },
        created_ms,
        representation: rep,
    }
}

/// Unit vector along dimension `i` of `d`.
fn axis(i: usize, d: usize) -> Vec<f32> {
    let mut v = vec![0.0; d];
    v[i % d] = 1.0;
    v
}

/// `n` seeded random unit vectors of width `d`, row-major.
fn unit_vectors(seed: u64, n: usize, d: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n * d);
    for _ in 0..n {
        let v: Vec<f32> = (0..d).map(|_| StandardNormal.sample(&mut rng)).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        out.extend(v.iter().map(|x| x / norm));
    }
    out
}

fn config(dim: usize, format: Format, segment_rows: usize) -> IndexConfig {
    IndexConfig {
        segment_rows,
        ..IndexConfig::new(dim, format)
    }
}

fn ask(k: usize) -> Query<'static> {
    Query {
        k,
        ..Default::default()
    }
}

fn ids(hits: &[Hit]) -> Vec<i64> {
    hits.iter().map(|h| h.post_id).collect()
}

/// One query's post ids.
fn search_ids(s: &Snapshot, q: &[f32], k: usize) -> Vec<i64> {
    let hits = s.search(q, &[ask(k)]).expect("query of width D");
    ids(&hits[0])
}

/// The exact f32 top-k of `query` over `live` (insertion order): the
/// scan's arithmetic per row, ties to the earlier inserted.
fn exact_scan(live: &[(CorpusItem, Vec<f32>)], query: &[f32], k: usize) -> Vec<(i64, f32)> {
    let scores: Vec<f32> = live
        .iter()
        .map(|(_, x)| dot(query, x.iter().copied()))
        .collect();
    top_k(&scores, k)
        .into_iter()
        .map(|(i, s)| (live[i as usize].0.post_id, s))
        .collect()
}

#[test]
fn an_inserted_post_is_found_by_the_next_snapshot() {
    let mut index = LiveIndex::new(config(4, Format::Int8, 64)).expect("valid config");
    let before = index.snapshot();
    let report = index
        .insert(&[post(1, 9, 0, &axis(0, 4))], 0)
        .expect("valid post");
    assert_eq!(report.inserted, 1);
    let hits = index
        .snapshot()
        .search(&axis(0, 4), &[ask(5)])
        .expect("shape");
    assert_eq!(
        hits[0],
        vec![Hit {
            post_id: 1,
            author_id: 9,
            score: 1.0
        }]
    );
    assert!(search_ids(&before, &axis(0, 4), 5).is_empty());
}

#[test]
fn a_deleted_post_disappears_from_the_next_search_at_once() {
    let mut index = LiveIndex::new(config(4, Format::F32, 64)).expect("valid config");
    let reps: Vec<Vec<f32>> = (0..3)
        .map(|i| vec![1.0, 0.1 * i as f32, 0.0, 0.0])
        .collect();
    let posts: Vec<NewPost<'_>> = (0..3)
        .map(|i| post(i + 1, 0, 0, &reps[i as usize]))
        .collect();
    index.insert(&posts, 0).expect("valid posts");
    assert_eq!(index.delete(&[2, 404], 1), 1);
    assert_eq!(search_ids(&index.snapshot(), &axis(1, 4), 10), vec![3, 1]);
    let stats = index.stats();
    assert_eq!((stats.posts, stats.deleted, stats.tombstones), (2, 1, 1));
}

#[test]
fn posts_expire_by_the_callers_clock() {
    let cfg = IndexConfig {
        retention_ms: 1000,
        ..config(2, Format::Bf16, 2)
    };
    let mut index = LiveIndex::new(cfg).expect("valid config");
    let rep = [1.0, 0.0];
    let posts = [
        post(1, 0, 0, &rep),
        post(2, 0, 500, &rep),
        post(3, 0, 900, &rep),
    ];
    index.insert(&posts, 1000).expect("valid posts");
    assert_eq!(search_ids(&index.snapshot(), &rep, 10), vec![1, 2, 3]);
    // Cutoff 500: post 1 leaves; post 2, created exactly at the cutoff, stays.
    index.advance(1500);
    assert_eq!(search_ids(&index.snapshot(), &rep, 10), vec![2, 3]);
    // Cutoff 600: the sealed segment of posts 1 and 2 is dropped whole.
    index.advance(1600);
    assert_eq!(search_ids(&index.snapshot(), &rep, 10), vec![3]);
    let stats = index.stats();
    assert_eq!(
        (stats.expired, stats.stored_rows, stats.segments),
        (2, 1, 0)
    );
    // A post already past the window is not inserted.
    let late = index.insert(&[post(4, 0, 100, &rep)], 1600).expect("valid");
    assert_eq!((late.inserted, late.expired_on_insert), (0, 1));
}

#[test]
fn capacity_evicts_the_oldest_inserted_first() {
    let cfg = IndexConfig {
        capacity: 10,
        ..config(2, Format::F32, 4)
    };
    let mut index = LiveIndex::new(cfg).expect("valid config");
    let rep = [1.0, 0.0];
    let batch = |ids: std::ops::RangeInclusive<i64>| -> Vec<NewPost<'_>> {
        ids.map(|i| post(i, 0, 0, &rep)).collect()
    };
    index.insert(&batch(1..=10), 0).expect("valid");
    index.delete(&[3], 0);
    // 12 live after this insert: the two oldest live (1, 2) go; 3 was dead.
    index.insert(&batch(11..=13), 0).expect("valid");
    let want: Vec<i64> = (4..=13).collect();
    assert_eq!(search_ids(&index.snapshot(), &rep, 100), want);
    assert_eq!(index.stats().evictions, 2);
    index.insert(&batch(14..=15), 0).expect("valid");
    let want: Vec<i64> = (6..=15).collect();
    assert_eq!(search_ids(&index.snapshot(), &rep, 100), want);
    let stats = index.stats();
    assert_eq!((stats.posts, stats.evictions), (10, 4));
    assert_eq!(
        index
            .snapshot()
            .live_items()
            .map(|i| i.post_id)
            .collect::<Vec<_>>(),
        want
    );
}

#[test]
fn a_snapshot_taken_before_a_publish_keeps_answering_with_the_old_contents() {
    let mut index = LiveIndex::new(config(2, Format::Int8, 8)).expect("valid config");
    let rep = [0.0, 1.0];
    index.insert(&[post(1, 0, 0, &rep)], 0).expect("valid");
    let old = index.reader().snapshot();
    index.insert(&[post(2, 0, 0, &rep)], 0).expect("valid");
    index.delete(&[1], 0);
    assert_eq!(search_ids(&old, &rep, 10), vec![1]);
    assert_eq!(old.len(), 1);
    let new = index.reader().snapshot();
    assert_eq!(search_ids(&new, &rep, 10), vec![2]);
    assert!(new.version() > old.version());
}

#[test]
fn concurrent_readers_never_see_a_batch_partly_published() {
    const D: usize = 8;
    const PER_BATCH: i64 = 6;
    const BATCHES: i64 = 150;
    let mut index = LiveIndex::new(config(D, Format::Int8, 32)).expect("valid config");
    let reader = index.reader();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (reader, done) = (reader.clone(), &done);
                scope.spawn(move || {
                    let mut checked = 0usize;
                    while !done.load(Ordering::Acquire) || checked == 0 {
                        let snap = reader.snapshot();
                        // All D directions at once: every live post is found.
                        let queries: Vec<f32> = (0..D).flat_map(|t| axis(t, D)).collect();
                        let hits = snap
                            .search(&queries, &[ask(10_000); D])
                            .expect("queries of width D");
                        let mut by_author: HashMap<i64, i64> = HashMap::new();
                        let mut total = 0;
                        for (t, hits) in hits.iter().enumerate() {
                            for h in hits.iter().filter(|h| h.score > 0.5) {
                                // Post j*100+i is batch j's, along axis j % D.
                                assert_eq!(h.author_id, h.post_id / 100, "{h:?}");
                                assert_eq!(h.author_id as usize % D, t, "{h:?}");
                                assert!((h.score - 1.0).abs() < 1e-6, "{h:?}");
                                *by_author.entry(h.author_id).or_default() += 1;
                                total += 1;
                            }
                        }
                        for (author, n) in by_author {
                            assert_eq!(n, PER_BATCH, "batch {author} torn");
                        }
                        assert_eq!(total, snap.len());
                        checked += 1;
                    }
                    checked
                })
            })
            .collect();
        for j in 1..=BATCHES {
            let rep = axis(j as usize, D);
            let posts: Vec<NewPost<'_>> = (0..PER_BATCH)
                .map(|i| post(j * 100 + i, j, 0, &rep))
                .collect();
            index.insert(&posts, 0).expect("valid posts");
            if j % 2 == 0 && j > 3 {
                let gone: Vec<i64> = (0..PER_BATCH).map(|i| (j - 3) * 100 + i).collect();
                assert_eq!(index.delete(&gone, 0), PER_BATCH as usize);
            }
        }
        done.store(true, Ordering::Release);
        for r in readers {
            assert!(r.join().expect("reader panicked") > 0);
        }
    });
    assert!(index.stats().seals > 0);
}

/// The test's own model of the live set: insertion order, with deletes,
/// expiry and the capacity bound applied by the rules.
struct Model {
    live: Vec<(CorpusItem, i64, Vec<f32>)>,
    deleted: HashSet<i64>,
    retention_ms: i64,
    capacity: usize,
}

impl Model {
    fn insert(&mut self, posts: &[NewPost<'_>], now_ms: i64) {
        self.expire(now_ms);
        for p in posts {
            let id = p.item.post_id;
            if p.created_ms >= now_ms - self.retention_ms
                && !self.deleted.contains(&id)
                && self.live.iter().all(|(it, _, _)| it.post_id != id)
            {
                self.live
                    .push((p.item, p.created_ms, p.representation.to_vec()));
            }
        }
        let over = self.live.len().saturating_sub(self.capacity);
        self.live.drain(..over);
    }

    fn delete(&mut self, ids: &[i64], now_ms: i64) {
        self.expire(now_ms);
        self.deleted.extend(ids);
        self.live.retain(|(it, _, _)| !ids.contains(&it.post_id));
    }

    fn expire(&mut self, now_ms: i64) {
        let cutoff = now_ms - self.retention_ms;
        self.live.retain(|(_, c, _)| *c >= cutoff);
    }

    fn rows(&self) -> Vec<(CorpusItem, Vec<f32>)> {
        self.live.iter().map(|(i, _, x)| (*i, x.clone())).collect()
    }
}

/// Random batches, deletes, a moving clock and a capacity bound over
/// small segments, mirrored in a [`Model`].
fn churned_index(format: Format, rescore: Rescore, seed: u64) -> (LiveIndex, Model) {
    const D: usize = 24;
    let cfg = IndexConfig {
        rescore,
        retention_ms: 5_000,
        capacity: 1_500,
        ..config(D, format, 100)
    };
    let mut model = Model {
        live: Vec::new(),
        deleted: HashSet::new(),
        retention_ms: cfg.retention_ms,
        capacity: cfg.capacity,
    };
    let mut index = LiveIndex::new(cfg).expect("valid config");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let reps = unit_vectors(seed, 2_400, D);
    let mut next = 0usize;
    let mut now = 10_000i64;
    while next < 2_400 {
        let n = rng.random_range(1..60usize).min(2_400 - next);
        let posts: Vec<NewPost<'_>> = (next..next + n)
            .map(|i| {
                let created = now - rng.random_range(0..6_000i64);
                post(
                    i as i64,
                    (i % 37) as i64,
                    created,
                    &reps[i * D..(i + 1) * D],
                )
            })
            .collect();
        index.insert(&posts, now).expect("valid posts");
        model.insert(&posts, now);
        next += n;
        if rng.random_bool(0.3) {
            let ids: Vec<i64> = (0..5).map(|_| rng.random_range(0..next as i64)).collect();
            index.delete(&ids, now);
            model.delete(&ids, now);
        }
        now += rng.random_range(0..40i64);
    }
    (index, model)
}

#[test]
fn search_across_many_segments_equals_one_exact_f32_scan() {
    let (index, model) = churned_index(Format::F32, Rescore::Stored, 7);
    let snap = index.snapshot();
    let live = model.rows();
    assert_eq!(
        snap.live_items().map(|i| i.post_id).collect::<Vec<_>>(),
        live.iter().map(|(i, _)| i.post_id).collect::<Vec<_>>()
    );
    assert_eq!(snap.len(), live.len());
    let stats = index.stats();
    assert!(stats.segments >= 5, "{stats:?}");
    assert!(
        stats.expired > 0 && stats.evictions > 0 && stats.deleted > 0,
        "{stats:?}"
    );
    let queries = unit_vectors(99, 20, 24);
    for k in [1, 10, 150, 5_000] {
        // B = 20: one group of 16 and one of 4 (padded from 4).
        let hits = snap.search(&queries, &[ask(k); 20]).expect("shape");
        for (b, hits) in hits.iter().enumerate() {
            let want = exact_scan(&live, &queries[b * 24..(b + 1) * 24], k);
            let got: Vec<(i64, f32)> = hits.iter().map(|h| (h.post_id, h.score)).collect();
            assert_eq!(got, want, "k {k}, query {b}");
        }
    }
}

/// Mean recall@k of `format` against the exact f32 scan.
fn recall(format: Format, rescore: Rescore) -> f64 {
    let (index, model) = churned_index(format, rescore, 11);
    let snap = index.snapshot();
    let live = model.rows();
    let k = 10;
    let queries = unit_vectors(5, 32, 24);
    let hits = snap.search(&queries, &[ask(k); 32]).expect("shape");
    let mut found = 0;
    for (b, hits) in hits.iter().enumerate() {
        let q = &queries[b * 24..(b + 1) * 24];
        let want: HashSet<i64> = exact_scan(&live, q, k).into_iter().map(|p| p.0).collect();
        found += hits.iter().filter(|h| want.contains(&h.post_id)).count();
        if rescore == Rescore::F32Rows {
            // Re-scored candidates carry the exact f32 score.
            let exact: HashMap<i64, f32> = exact_scan(&live, q, live.len()).into_iter().collect();
            for h in hits {
                assert_eq!(Some(&h.score), exact.get(&h.post_id));
            }
        }
    }
    found as f64 / (32 * k) as f64
}

#[test]
fn quantised_formats_reach_recall_of_099_against_exact_f32() {
    for (format, rescore) in [
        (Format::Bf16, Rescore::Stored),
        (Format::Int8, Rescore::Stored),
        (Format::Bf16, Rescore::F32Rows),
        (Format::Int8, Rescore::F32Rows),
        (Format::Int8, Rescore::Bf16Rows),
    ] {
        let r = recall(format, rescore);
        assert!(r >= 0.99, "{format:?} {rescore:?}: recall@10 {r}");
    }
}

#[test]
fn k_larger_than_a_segment_returns_every_live_post_in_order() {
    let mut index = LiveIndex::new(config(3, Format::F32, 16)).expect("valid config");
    let reps = unit_vectors(3, 100, 3);
    let posts: Vec<NewPost<'_>> = (0..100)
        .map(|i| post(i, 0, 0, &reps[i as usize * 3..(i as usize + 1) * 3]))
        .collect();
    for chunk in posts.chunks(7) {
        index.insert(chunk, 0).expect("valid posts");
    }
    let live: Vec<(CorpusItem, Vec<f32>)> = posts
        .iter()
        .map(|p| (p.item, p.representation.to_vec()))
        .collect();
    let q = [0.3, -0.5, 0.8];
    for k in [40, 100, 400] {
        let got = search_ids(&index.snapshot(), &q, k);
        let want: Vec<i64> = exact_scan(&live, &q, k).into_iter().map(|p| p.0).collect();
        assert_eq!(got, want, "k {k}");
    }
    assert_eq!(index.stats().segments, 6);
}

#[test]
fn exclusions_leave_out_posts_and_every_post_of_an_author() {
    let mut index = LiveIndex::new(config(2, Format::Bf16, 4)).expect("valid config");
    let reps: Vec<Vec<f32>> = (0..10).map(|i| vec![1.0 - 0.05 * i as f32, 0.0]).collect();
    // Post i+1 by author (i+1) % 3; scores fall with i.
    let posts: Vec<NewPost<'_>> = (0..10)
        .map(|i| post(i + 1, (i + 1) % 3, 0, &reps[i as usize]))
        .collect();
    index.insert(&posts, 0).expect("valid posts");
    let q = Query {
        k: 4,
        excluded_posts: &[1, 5, 999],
        excluded_authors: &[2],
    };
    let hits = index
        .snapshot()
        .search(&[1.0, 0.0, 1.0, 0.0], &[q, ask(2)])
        .expect("shape");
    // Author 2 wrote 2, 5 and 8; posts 1 and 5 are excluded by id.
    assert_eq!(ids(&hits[0]), vec![3, 4, 6, 7]);
    assert_eq!(ids(&hits[1]), vec![1, 2]);
}

#[test]
fn ties_go_to_the_older_post_across_segments() {
    let mut index = LiveIndex::new(config(2, Format::Int8, 3)).expect("valid config");
    let rep = [0.6, 0.8];
    for id in [50, 10, 40, 20, 30] {
        index.insert(&[post(id, 0, 0, &rep)], 0).expect("valid");
    }
    assert_eq!(search_ids(&index.snapshot(), &rep, 4), vec![50, 10, 40, 20]);
}

#[test]
fn non_finite_scores_are_dropped() {
    let mut index = LiveIndex::new(config(2, Format::F32, 8)).expect("valid config");
    index
        .insert(&[post(1, 0, 0, &[1.0, 0.0]), post(2, 0, 0, &[0.0, 1.0])], 0)
        .expect("valid");
    let got = index
        .snapshot()
        .search(&[f32::NAN, 0.0, f32::INFINITY, 0.0], &[ask(5), ask(5)])
        .expect("shape");
    assert!(got[0].is_empty());
    // inf · 1 = inf is dropped; inf · 0 is NaN, dropped too.
    assert!(got[1].is_empty());
}

#[test]
fn an_invalid_post_leaves_the_index_unchanged() {
    let mut index = LiveIndex::new(config(2, Format::F32, 8)).expect("valid config");
    let err = index
        .insert(&[post(1, 0, 0, &[1.0, 0.0]), post(2, 0, 0, &[1.0])], 0)
        .expect_err("post 2 is one value short");
    assert_eq!(
        err,
        IndexError::RepresentationWidth {
            post_id: 2,
            len: 1,
            dim: 2
        }
    );
    assert!(index.snapshot().is_empty());
    assert_eq!(index.stats().publishes, 0);
}

#[test]
fn replays_and_posts_deleted_before_arriving_are_skipped() {
    let mut index = LiveIndex::new(config(2, Format::F32, 8)).expect("valid config");
    let rep = [1.0, 0.0];
    index.delete(&[7], 0);
    let r = index
        .insert(
            &[
                post(1, 0, 0, &rep),
                post(1, 0, 0, &rep),
                post(7, 0, 0, &rep),
            ],
            0,
        )
        .expect("valid");
    assert_eq!(
        r,
        InsertReport {
            inserted: 1,
            duplicates: 1,
            deleted_before_insert: 1,
            expired_on_insert: 0
        }
    );
    assert_eq!(search_ids(&index.snapshot(), &rep, 5), vec![1]);
}

#[test]
fn compaction_rewrites_a_segment_without_its_dead_rows() {
    let mut index = LiveIndex::new(config(2, Format::Int8, 8)).expect("valid config");
    let reps = unit_vectors(1, 16, 2);
    let posts: Vec<NewPost<'_>> = (0..16)
        .map(|i| post(i, 0, 0, &reps[i as usize * 2..(i as usize + 1) * 2]))
        .collect();
    index.insert(&posts, 0).expect("valid posts");
    index.delete(&[1], 0);
    assert_eq!(index.stats().tombstones, 1);
    index.delete(&[2, 3], 0);
    let stats = index.stats();
    // 3 of 8 dead passed a quarter: the segment was rewritten with its
    // 5 live rows, tombstones gone.
    assert_eq!(
        (stats.compactions, stats.tombstones, stats.stored_rows),
        (1, 0, 13)
    );
    let all: HashSet<i64> = search_ids(&index.snapshot(), &[1.0, 0.0], 100)
        .into_iter()
        .collect();
    assert_eq!(all, (0..16).filter(|i| ![1, 2, 3].contains(i)).collect());
}

#[test]
fn query_values_must_fill_one_row_per_query() {
    let index = LiveIndex::new(config(3, Format::F32, 8)).expect("valid config");
    let err = index
        .snapshot()
        .search(&[0.0; 5], &[ask(1), ask(1)])
        .expect_err("5 values for 2 rows of 3");
    assert_eq!(err.to_string(), "5 query values for 2 queries of width 3");
}

#[test]
fn bytes_per_post_counts_rows_metadata_and_bookkeeping() {
    let mut index = LiveIndex::new(config(128, Format::Int8, 1024)).expect("valid config");
    let reps = unit_vectors(2, 4096, 128);
    let posts: Vec<NewPost<'_>> = (0..4096)
        .map(|i| post(i as i64, 0, 0, &reps[i * 128..(i + 1) * 128]))
        .collect();
    index.insert(&posts, 0).expect("valid posts");
    let per_post = index.bytes_per_post();
    let floor = index.config().segment_bytes_per_post() as f64;
    // Rows (128 + 4) and metadata (32) plus bookkeeping: creation order
    // (4), bitsets, the id map (17 bytes a bucket, 1 to 2 buckets a post).
    assert!(
        per_post >= floor && per_post <= floor + 48.0,
        "{per_post} vs {floor}"
    );
}
