//! The ranker behind the batcher: a request's answer does not depend on
//! the company it is batched with or on the padding of its bucket (bit for
//! bit in f32), and the batcher routes each answer to its caller.

use std::sync::Arc;

use foryou_engine::batcher::{
    BatchModel, BatchPolicy, Batcher, RankRequest, RankerBatch, candidate_bucket,
};
use foryou_engine::fixture::load_model_dir;
use foryou_engine::hash_embed::{CandidateItem, HistoryItem};
use foryou_engine::init::{Preset, preset_config, write_random_model};
use foryou_engine::{FpropDtype, PhoenixRanker};

fn ranker() -> (tempfile::TempDir, Arc<PhoenixRanker>) {
    let dir = tempfile::tempdir().expect("tempdir");
    write_random_model(
        dir.path(),
        &preset_config(Preset::Demo),
        3,
        1024,
        &mut |_, _| {},
    )
    .expect("model");
    let (cfg, weights) = load_model_dir(dir.path()).expect("load");
    let r = PhoenixRanker::new(cfg, weights, FpropDtype::F32).expect("ranker");
    (dir, Arc::new(r))
}

/// Viewer `u` with `h` history items and `c` candidates.
fn request(u: i64, h: i64, c: i64) -> RankRequest {
    RankRequest {
        user_id: u,
        history: (0..h)
            .map(|i| HistoryItem {
                post_id: 1000 * u + i + 1,
                author_id: 1 + (u + i) % 37,
                actions: 1 << (i % 19),
                product_surface: (i % 4) as u32,
                ..Default::default()
            })
            .collect(),
        candidates: (0..c)
            .map(|i| CandidateItem {
                post_id: 900_000 + 100 * u + i,
                author_id: 1 + (u * 3 + i) % 41,
                product_surface: 0,
                ..Default::default()
            })
            .collect(),
    }
}

#[test]
fn batched_answers_equal_unbatched_ones_bit_for_bit() {
    let (_dir, ranker) = ranker();
    let model = RankerBatch::new(ranker);
    // Same bucket (64), different candidate counts and history lengths.
    let reqs = vec![
        request(1, 32, 40),
        request(2, 5, 64),
        request(3, 0, 33),
        request(4, 17, 50),
    ];
    assert!(reqs.iter().all(|r| RankerBatch::bucket(r) == 64));
    let batched = model.run(reqs.clone()).expect("batch");
    for (r, got) in reqs.iter().zip(&batched) {
        let alone = model.run(vec![r.clone()]).expect("alone");
        assert_eq!(got.count, r.candidates.len());
        assert_eq!(got.logits, alone[0].logits, "user {}: logits", r.user_id);
        assert_eq!(got.probs, alone[0].probs, "user {}: probs", r.user_id);
    }
    // A request in a wider batch (padded to 128) answers the same too.
    let wide = model
        .run(vec![request(5, 8, 100), reqs[0].clone()])
        .expect("wide");
    assert_eq!(RankerBatch::bucket(&request(5, 8, 100)), 128);
    assert_eq!(wide[1].logits, batched[0].logits);
}

#[test]
fn buckets_are_powers_of_two_to_64_then_multiples_of_64() {
    assert_eq!(candidate_bucket(0), 8);
    assert_eq!(candidate_bucket(8), 8);
    assert_eq!(candidate_bucket(9), 16);
    assert_eq!(candidate_bucket(64), 64);
    assert_eq!(candidate_bucket(65), 128);
    assert_eq!(candidate_bucket(1000), 1024);
    assert_eq!(candidate_bucket(1025), 1088);
    assert_eq!(candidate_bucket(2200), 2240);
}

#[test]
fn the_batcher_routes_ranker_answers_to_their_callers() {
    let (_dir, ranker) = ranker();
    let reference: Vec<_> = {
        let m = RankerBatch::new(ranker.clone());
        (1..=6)
            .map(|u| {
                m.run(vec![request(u, 10, 20 + u)])
                    .expect("alone")
                    .remove(0)
            })
            .collect()
    };
    let batcher = Arc::new(
        Batcher::start(
            RankerBatch::new(ranker),
            BatchPolicy {
                max_batch_size: 4,
                max_queue_delay: std::time::Duration::from_millis(5),
                queue_capacity: 64,
                workers: 2,
            },
        )
        .expect("thread"),
    );
    let threads: Vec<_> = (1..=6i64)
        .map(|u| {
            let b = batcher.clone();
            std::thread::spawn(move || {
                b.submit(request(u, 10, 20 + u), None)
                    .expect("admitted")
                    .blocking_recv()
                    .expect("answered")
                    .expect("ok")
            })
        })
        .collect();
    for (t, want) in threads.into_iter().zip(reference) {
        let got = t.join().expect("no panic");
        assert_eq!(got.logits, want.logits);
    }
}

fn retriever() -> (tempfile::TempDir, Arc<foryou_engine::PhoenixRetriever>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = preset_config(Preset::Demo);
    cfg.model_kind = foryou_engine::ModelKind::Retrieval;
    write_random_model(dir.path(), &cfg, 5, 1024, &mut |_, _| {}).expect("model");
    let (cfg, weights) = load_model_dir(dir.path()).expect("load");
    let r = foryou_engine::PhoenixRetriever::new(cfg, weights, FpropDtype::F32).expect("retriever");
    (dir, Arc::new(r))
}

#[test]
fn batched_retrieval_matches_unbatched_and_skips_excluded_posts_and_authors() {
    use foryou_engine::batcher::{RetrieveRequest, RetrieverBatch};
    use foryou_engine::{Corpus, CorpusItem};
    let (_dir, retriever) = retriever();
    // Post 5000 + i by author 1 + i % 23 is corpus row i.
    let items: Vec<CorpusItem> = (0..300)
        .map(|i| CorpusItem {
            post_id: 5_000 + i,
            author_id: 1 + i % 23,
        })
        .collect();
    let corpus = Arc::new(Corpus::build(&retriever, items).expect("corpus"));
    let model = RetrieverBatch::new(retriever, corpus);
    let req = |u: i64, posts: Vec<i64>, authors: Vec<i64>| RetrieveRequest {
        user_id: u,
        history: request(u, 12, 0).history,
        k: 20,
        excluded_posts: posts,
        excluded_authors: authors,
    };
    let reqs = vec![
        req(1, vec![], vec![]),
        // The first viewer again, with three posts (and an unknown id) left out.
        req(1, vec![5_000, 5_005, 5_007, 77], vec![]),
        req(3, (5_000..5_290).collect(), vec![]),
        req(4, vec![], vec![2, 3]),
    ];
    let batched = model.run(reqs.clone()).expect("batch");
    for (r, got) in reqs.iter().zip(&batched) {
        let alone = model.run(vec![r.clone()]).expect("alone");
        // The corpus product of a batch is one gemm instead of a gemv per
        // viewer, so scores may differ in the last bits; posts may not.
        let ids = |v: &[foryou_engine::Hit]| v.iter().map(|x| x.post_id).collect::<Vec<_>>();
        assert_eq!(ids(got), ids(&alone[0]), "user {}", r.user_id);
        for (a, b) in got.iter().zip(&alone[0]) {
            assert!(
                (a.score - b.score).abs() <= 1e-6,
                "user {}: {} vs {}",
                r.user_id,
                a.score,
                b.score
            );
        }
        assert!(got.iter().all(|h| !r.excluded_posts.contains(&h.post_id)));
        assert!(
            got.iter()
                .all(|h| !r.excluded_authors.contains(&h.author_id))
        );
        assert!(
            got.iter()
                .all(|h| h.author_id == 1 + (h.post_id - 5_000) % 23)
        );
        assert!(
            got.windows(2).all(|w| w[0].score >= w[1].score),
            "best first"
        );
    }
    assert_eq!(batched[0].len(), 20);
    assert_eq!(batched[2].len(), 10, "only 10 posts are left to return");
    assert_eq!(
        batched[3].len(),
        20,
        "other authors fill the excluded ones' places"
    );
    // Excluding posts never changes the order of the others (same viewer).
    let unexcluded: Vec<i64> = batched[0]
        .iter()
        .map(|h| h.post_id)
        .filter(|p| ![5_000, 5_005, 5_007].contains(p))
        .collect();
    let with_exclusions: Vec<i64> = batched[1].iter().map(|h| h.post_id).collect();
    assert_eq!(&with_exclusions[..unexcluded.len()], &unexcluded[..]);
}

#[test]
fn warm_up_runs_each_bucket_once_and_changes_no_answer() {
    let (_dir, ranker) = ranker();
    let model = RankerBatch::new(ranker);
    let cold = model.run(vec![request(4, 12, 20)]).expect("cold");
    let warmed = model.warm_up(&[3, 8, 20, 64, 65, 100]).expect("warm");
    assert_eq!(warmed, vec![8, 32, 64, 128]);
    let warm = model.run(vec![request(4, 12, 20)]).expect("warm");
    assert_eq!(cold[0].logits, warm[0].logits);
}
