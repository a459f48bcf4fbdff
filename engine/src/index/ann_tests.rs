//! Scenario tests of approximate search (`IndexConfig::ann`): recall
//! against the exact f32 scan on a seeded corpus, and the scan's rules
//! (deletes, expiry, exclusions, depth, order, exact scores) kept by the
//! graphs' answers.

use std::collections::{HashMap, HashSet};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::*;
use crate::corpus::{CorpusItem, Hit, Query};

const D: usize = 32;

/// A seeded random unit vector of width `d`.
fn unit(rng: &mut ChaCha8Rng, d: usize) -> Vec<f32> {
    let v: Vec<f32> = (0..d).map(|_| StandardNormal.sample(rng)).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter().map(|x| x / norm).collect()
}

/// `n` seeded unit vectors around `clusters` random centres
/// (`normalise(centre + 0.7 · u)`, `u` a random unit vector): embeddings
/// have neighbourhoods, uniform random vectors of this width hardly do.
fn clustered(seed: u64, n: usize, d: usize, clusters: usize) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..clusters).map(|_| unit(&mut rng, d)).collect();
    (0..n)
        .map(|_| {
            let c = &centres[rng.random_range(0..clusters)];
            let u = unit(&mut rng, d);
            let v: Vec<f32> = c.iter().zip(&u).map(|(a, b)| a + 0.7 * b).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(|x| x / norm).collect()
        })
        .collect()
}

/// Both structures: every scenario below holds for each.
const METHODS: [AnnMethod; 2] = [
    AnnMethod::Hnsw,
    AnnMethod::Ivf {
        lists: 0,
        probes: DEFAULT_IVF_PROBES,
    },
];

fn ann_config(segment_rows: usize, method: AnnMethod) -> IndexConfig {
    IndexConfig {
        segment_rows,
        ann: Some(AnnConfig {
            method,
            ..AnnConfig::default()
        }),
        ..IndexConfig::new(D, Format::F32)
    }
}

/// An index of `config` holding `rows` as posts `0..`, author `id % 7`,
/// created at `id`, inserted in batches of 500 at time `now_ms`.
fn filled(config: IndexConfig, rows: &[Vec<f32>], now_ms: i64) -> LiveIndex {
    let mut index = LiveIndex::new(config).expect("valid config");
    let ids: Vec<i64> = (0..rows.len() as i64).collect();
    for chunk in ids.chunks(500) {
        let posts: Vec<NewPost<'_>> = chunk
            .iter()
            .map(|&id| NewPost {
                item: CorpusItem {
                    post_id: id,
                    author_id: id % 7,
                },
                created_ms: id,
                representation: &rows[id as usize],
            })
            .collect();
        index.insert(&posts, now_ms).expect("valid posts");
    }
    index
}

fn ask(k: usize) -> Query<'static> {
    Query {
        k,
        ..Default::default()
    }
}

fn search(s: &Snapshot, q: &[f32], query: Query<'_>) -> Vec<Hit> {
    s.search(q, &[query]).expect("query of width D").remove(0)
}

/// Every hit's score is the f32 product with its post's row, and the
/// hits are best first.
fn assert_exact_scores_best_first(hits: &[Hit], rows: &[Vec<f32>], q: &[f32]) {
    for h in hits {
        let row = &rows[h.post_id as usize];
        let exact: f32 = q.iter().zip(row).map(|(a, b)| a * b).sum();
        assert!((h.score - exact).abs() <= 1e-5, "post {}", h.post_id);
    }
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
}

#[test]
fn ann_recall_at_100_is_at_least_095_against_exact_f32_on_a_seeded_corpus() {
    for method in METHODS {
        // Queries around the corpus's centres: the last 32 draws, not
        // inserted.
        let mut rows = clustered(7, 20_032, D, 64);
        let queries = rows.split_off(20_000);
        // 4 sealed segments of 4 096 rows searched through graphs, 3 616 rows
        // in the open segment scanned exactly.
        let ann = filled(ann_config(4096, method), &rows, 0);
        let exact = filled(IndexConfig::new(D, Format::F32), &rows, 0);
        assert_eq!(ann.stats().segments, 4);
        let (ann, exact) = (ann.snapshot(), exact.snapshot());
        let (mut found, mut wanted) = (0, 0);
        for q in &queries {
            let truth: HashSet<i64> = search(&exact, q, ask(100))
                .iter()
                .map(|h| h.post_id)
                .collect();
            let hits = search(&ann, q, ask(100));
            assert_eq!(hits.len(), 100);
            assert_exact_scores_best_first(&hits, &rows, q);
            found += hits.iter().filter(|h| truth.contains(&h.post_id)).count();
            wanted += truth.len();
        }
        let recall = found as f64 / wanted as f64;
        assert!(recall >= 0.95, "{method:?}: recall@100 {recall}");
    }
}

#[test]
fn ann_results_leave_out_deleted_and_expired_posts() {
    for method in METHODS {
        let rows = clustered(11, 3000, D, 16);
        let mut index = filled(ann_config(512, method), &rows, 0);
        let q = &rows[42];
        let before = search(&index.snapshot(), q, ask(50));
        let deleted: Vec<i64> = before.iter().step_by(2).map(|h| h.post_id).collect();
        index.delete(&deleted, 0);
        // Posts created before 1 000 expire (retention is the default 48 h).
        index.advance(DEFAULT_RETENTION_MS + 1000);
        let snap = index.snapshot();
        let hits = search(&snap, q, ask(50));
        assert_eq!(hits.len(), 50);
        assert_exact_scores_best_first(&hits, &rows, q);
        for h in &hits {
            assert!(!deleted.contains(&h.post_id), "deleted post {}", h.post_id);
            assert!(h.post_id >= 1000, "expired post {}", h.post_id);
        }
    }
}

#[test]
fn ann_results_leave_out_excluded_posts_and_authors() {
    for method in METHODS {
        let rows = clustered(12, 3000, D, 16);
        let index = filled(ann_config(512, method), &rows, 0);
        let snap = index.snapshot();
        let q = &rows[7];
        let top: Vec<i64> = search(&snap, q, ask(20))
            .iter()
            .map(|h| h.post_id)
            .collect();
        let excluded_posts = &top[..5];
        let excluded_authors = [3i64];
        let query = Query {
            k: 20,
            excluded_posts,
            excluded_authors: &excluded_authors,
        };
        let hits = search(&snap, q, query);
        assert_eq!(hits.len(), 20);
        for h in &hits {
            assert!(!excluded_posts.contains(&h.post_id));
            assert_ne!(h.author_id, 3);
        }
    }
}

#[test]
fn ann_k_larger_than_a_segment_returns_every_live_post_best_first() {
    for method in METHODS {
        let rows = clustered(13, 300, D, 8);
        let mut index = filled(ann_config(64, method), &rows, 0);
        index.delete(&[5, 70, 150], 0);
        let snap = index.snapshot();
        let q = &rows[0];
        let hits = search(&snap, q, ask(1000));
        assert_eq!(hits.len(), 297);
        assert_exact_scores_best_first(&hits, &rows, q);
        let seen: HashMap<i64, usize> = hits.iter().map(|h| (h.post_id, 1)).collect();
        assert_eq!(seen.len(), 297);
    }
}

#[test]
fn ann_compaction_rebuilds_the_graph_without_dead_rows() {
    for method in METHODS {
        let rows = clustered(14, 1200, D, 8);
        let mut index = filled(ann_config(512, method), &rows, 0);
        let compactions = index.stats().compactions;
        // Half of the first segment: past the 25 % that triggers a rewrite.
        let dead: Vec<i64> = (0..256).collect();
        index.delete(&dead, 0);
        assert_eq!(index.stats().compactions, compactions + 1);
        let q = &rows[3];
        let hits = search(&index.snapshot(), q, ask(1000));
        assert_eq!(hits.len(), 1200 - 256);
        assert!(hits.iter().all(|h| h.post_id >= 256));
    }
}

#[test]
fn ann_config_names_the_bad_field() {
    let mut c = ann_config(64, AnnMethod::Hnsw);
    if let Some(a) = &mut c.ann {
        a.connectivity = 1;
    }
    assert!(matches!(
        c.validate(),
        Err(IndexError::Config {
            field: "ann.connectivity",
            ..
        })
    ));
}

#[test]
fn ivf_config_names_the_bad_field() {
    let c = ann_config(
        64,
        AnnMethod::Ivf {
            lists: 0,
            probes: 0,
        },
    );
    assert!(matches!(
        c.validate(),
        Err(IndexError::Config {
            field: "ann.probes",
            ..
        })
    ));
}

#[test]
fn ivf_with_one_probe_scans_more_lists_until_it_has_k_rows() {
    // Segments of 512 rows in 32 lists of ~16 rows: one list cannot
    // hold 200 results, so the search must go on to the next lists.
    let rows = clustered(15, 2048, D, 16);
    let cfg = ann_config(
        512,
        AnnMethod::Ivf {
            lists: 0,
            probes: 1,
        },
    );
    let index = filled(cfg, &rows, 0);
    let exact = filled(IndexConfig::new(D, Format::F32), &rows, 0);
    let q = &rows[9];
    let hits = search(&index.snapshot(), q, ask(200));
    assert_eq!(hits.len(), 200);
    assert_exact_scores_best_first(&hits, &rows, q);
    // All 2048 asked for: every post comes back, in the exact order.
    let all = search(&index.snapshot(), q, ask(5000));
    let want = search(&exact.snapshot(), q, ask(5000));
    assert_eq!(
        all.iter().map(|h| h.post_id).collect::<Vec<_>>(),
        want.iter().map(|h| h.post_id).collect::<Vec<_>>()
    );
}
