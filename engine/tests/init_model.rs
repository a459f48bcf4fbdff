//! `foryou phoenix init` weights: deterministic per seed, loadable, and giving
//! non-trivial outputs through the hash-embedding lookup.

mod common;

use foryou_engine::fixture::load_model_dir;
use foryou_engine::hash_embed::{CandidateItem, HistoryItem};
use foryou_engine::init::{Preset, preset_config, write_random_model};
use foryou_engine::inputs::RecsysInputs;
use foryou_engine::{FpropDtype, PhoenixRanker};

#[test]
fn same_seed_same_file_other_seed_other_file() {
    let cfg = preset_config(Preset::Demo);
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    for (dir, seed) in dirs.iter().zip([5u64, 5, 6]) {
        write_random_model(dir.path(), &cfg, seed, 256, &mut |_, _| {}).expect("write");
    }
    let read = |i: usize| std::fs::read(dirs[i].path().join("params.safetensors")).expect("read");
    assert_eq!(read(0), read(1));
    assert_ne!(read(0), read(2));
}

#[test]
fn demo_model_scores_are_not_trivial_and_padding_row_is_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut calls = 0;
    write_random_model(
        dir.path(),
        &preset_config(Preset::Demo),
        1,
        1024,
        &mut |done, total| {
            calls += 1;
            assert!(done <= total);
        },
    )
    .expect("write");
    assert!(calls >= 2, "progress must be reported");
    let (cfg, weights) = load_model_dir(dir.path()).expect("load");
    let tables = weights
        .hash_tables
        .clone()
        .expect("init writes hash tables");
    assert!(
        tables.post.data[..cfg.emb_size].iter().all(|&v| v == 0.0),
        "row 0 is padding"
    );
    let history: Vec<HistoryItem> = (1..20i64)
        .map(|i| HistoryItem {
            post_id: 1000 + i,
            author_id: 50 + i % 7,
            actions: if i % 3 == 0 { 0 } else { 1 << (i % 19) },
            product_surface: (i % 16) as u32,
            ..Default::default()
        })
        .collect();
    let cands: Vec<CandidateItem> = (0..8i64)
        .map(|i| CandidateItem {
            post_id: 5000 + i,
            author_id: 60 + i,
            product_surface: 2,
            ..Default::default()
        })
        .collect();
    let user = tables
        .user_inputs(&cfg, &[(42, &history)], cfg.history_seq_len)
        .expect("user");
    // 19 items padded to S = 32: slots 19.. are padding.
    assert!(user.history_valid(&cfg, 0, 18) && !user.history_valid(&cfg, 0, 19));
    let candidates = tables
        .candidate_inputs(&cfg, &[&cands], cfg.candidate_seq_len)
        .expect("cands");
    let ranker = PhoenixRanker::new(cfg, weights, FpropDtype::F32).expect("ranker");
    let out = ranker
        .forward(&RecsysInputs { user, candidates })
        .expect("forward");
    let mean = out.logits.iter().sum::<f32>() / out.logits.len() as f32;
    let std = (out.logits.iter().map(|x| (x - mean).powi(2)).sum::<f32>()
        / out.logits.len() as f32)
        .sqrt();
    assert!(std > 0.2, "logit std {std}: outputs are trivial");
    let (lo, hi) = out
        .probs
        .iter()
        .fold((1f32, 0f32), |(l, h), &p| (l.min(p), h.max(p)));
    assert!(
        lo < 0.35 && hi > 0.65,
        "probabilities span only [{lo}, {hi}]"
    );
}

#[test]
fn too_many_candidates_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_random_model(
        dir.path(),
        &preset_config(Preset::Demo),
        1,
        64,
        &mut |_, _| {},
    )
    .expect("write");
    let (cfg, weights) = load_model_dir(dir.path()).expect("load");
    let tables = weights.hash_tables.expect("tables");
    let cands = vec![
        CandidateItem {
            post_id: 1,
            author_id: 1,
            product_surface: 0,
            ..Default::default()
        };
        3
    ];
    let err = tables
        .candidate_inputs(&cfg, &[&cands], 2)
        .expect_err("3 > 2 slots");
    assert!(err.to_string().contains("more than the 2 slots"));
    let bad = vec![CandidateItem {
        post_id: 1,
        author_id: 1,
        product_surface: 99,
        ..Default::default()
    }];
    let err = tables
        .candidate_inputs(&cfg, &[&bad], 2)
        .expect_err("surface 99");
    assert!(err.to_string().contains("product-surface id 99"));
}

#[test]
fn hash_only_inputs_carry_the_same_ids_and_rank_ids_matches_forward() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_random_model(
        dir.path(),
        &preset_config(Preset::Demo),
        2,
        512,
        &mut |_, _| {},
    )
    .expect("write");
    let (cfg, weights) = load_model_dir(dir.path()).expect("load");
    let ranker = PhoenixRanker::new(cfg.clone(), weights, FpropDtype::F32).expect("ranker");
    let tables = ranker.hash_tables().expect("tables");
    let history: Vec<HistoryItem> = (1..=9u64)
        .map(|i| HistoryItem {
            post_id: i64::try_from(i * 11).expect("small"),
            author_id: i64::try_from(i).expect("small"),
            actions: i,
            product_surface: (i % 4) as u32,
            ..Default::default()
        })
        .collect();
    let cands: Vec<CandidateItem> = (1..=6)
        .map(|i| CandidateItem {
            post_id: 500 + i,
            author_id: 3 * i,
            product_surface: 1,
            ..Default::default()
        })
        .collect();
    // Viewer 0 is a padding user (the dense route).
    let users: Vec<(i64, &[HistoryItem])> = vec![(42, &history), (0, &history[..3])];
    let lists: Vec<&[CandidateItem]> = vec![&cands, &cands[..2]];
    let s = cfg.history_seq_len;

    let full = tables.user_inputs(&cfg, &users, s).expect("full");
    let ids = tables.user_hashes(&cfg, &users, s).expect("hash only");
    assert_eq!(ids.user_hashes, full.user_hashes);
    assert_eq!(ids.history_post_hashes, full.history_post_hashes);
    assert_eq!(ids.history_actions, full.history_actions);
    assert!(ids.user_embeddings.is_empty() && ids.history_post_embeddings.is_empty());
    let err = ids.validate(&cfg).expect_err("no embeddings").to_string();
    assert!(err.contains("user_embeddings"), "{err}");
    // Row selection keeps hash-only inputs hash-only.
    let picked = ids.select_rows(&cfg, &[1]);
    assert_eq!(picked.user_hashes, full.select_rows(&cfg, &[1]).user_hashes);
    assert!(picked.user_embeddings.is_empty());
    let cand_ids = tables.candidate_hashes(&cfg, &lists, 8).expect("hash only");
    let cand_full = tables.candidate_inputs(&cfg, &lists, 8).expect("full");
    assert_eq!(cand_ids.post_hashes, cand_full.post_hashes);
    assert_eq!(
        cand_ids.slots(&cfg, 2, 5).post_hashes,
        cand_full.slots(&cfg, 2, 5).post_hashes
    );
    assert!(cand_ids.slots(&cfg, 2, 5).post_embeddings.is_empty());

    let by_ids = ranker.rank_ids(&users, &lists, 8, 3).expect("by ids");
    let inputs = RecsysInputs {
        user: full,
        candidates: cand_full,
    };
    assert_eq!(by_ids, ranker.forward_chunked(&inputs, 3).expect("forward"));
    let err = ranker
        .rank_ids(&users, &lists[..1], 8, 3)
        .expect_err("mismatched lists")
        .to_string();
    assert!(err.contains("2 viewers but 1 candidate lists"), "{err}");
    let err = ranker
        .rank_ids(&users, &lists, 4, 3)
        .expect_err("too many candidates")
        .to_string();
    assert!(err.contains("more than the 4 slots"), "{err}");
}

#[test]
fn a_may_2026_model_served_by_ids_reads_post_age_and_dwell_and_predicts_continuous() {
    let mut pc = preset_config(Preset::Demo);
    common::may_2026(&mut pc, 60, false);
    pc.num_ip_hashes = 0; // requests by ids carry no IP embeddings
    let dir = tempfile::tempdir().expect("tempdir");
    write_random_model(dir.path(), &pc, 4, 512, &mut |_, _| {}).expect("write");
    let (cfg, weights) = load_model_dir(dir.path()).expect("load");
    let ranker = PhoenixRanker::new(cfg, weights, FpropDtype::F32).expect("ranker");
    let now = 1_800_000_000;
    let history = |dwell_s: f32| -> Vec<HistoryItem> {
        (1..=6)
            .map(|i| HistoryItem {
                post_id: 100 + i,
                author_id: i,
                actions: 1,
                dwell_s,
                ..Default::default()
            })
            .collect()
    };
    let cands = |age_s: i64| -> Vec<CandidateItem> {
        (1..=4)
            .map(|i| CandidateItem {
                post_id: 900 + i,
                author_id: 7,
                created_s: now - age_s,
                impression_s: now,
                ..Default::default()
            })
            .collect()
    };
    let rank = |dwell_s: f32, age_s: i64| {
        let (h, c) = (history(dwell_s), cands(age_s));
        ranker
            .rank_ids(&[(42, h.as_slice())], &[c.as_slice()], 4, 4)
            .expect("rank")
    };
    let base = rank(0.0, 600);
    assert_eq!((base.num_continuous, base.continuous.len()), (8, 4 * 8));
    assert!(base.continuous.iter().all(|p| (0.0..=1.0).contains(p)));
    // Same hour bucket: same scores; another bucket or another dwell: not.
    assert_eq!(
        rank(0.0, 1200).logits,
        base.logits,
        "10 and 20 min share bucket 1"
    );
    assert_ne!(rank(0.0, 7200).logits, base.logits, "2 h is bucket 3");
    assert_ne!(
        rank(12.5, 600).logits,
        base.logits,
        "dwell feeds the history"
    );
}

#[test]
fn the_token_cache_gives_the_uncached_scores_cold_and_warm() {
    for may_2026 in [false, true] {
        let mut pc = preset_config(Preset::Demo);
        if may_2026 {
            common::may_2026(&mut pc, 60, false);
            pc.num_ip_hashes = 0;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        write_random_model(dir.path(), &pc, 3, 512, &mut |_, _| {}).expect("write");
        let (cfg, weights) = load_model_dir(dir.path()).expect("load");
        let plain = PhoenixRanker::new(cfg, weights, FpropDtype::F32).expect("ranker");
        let cached = plain.clone().with_token_cache(1_000);
        let now = 1_800_000_000;
        let history: Vec<HistoryItem> = (1..=7)
            .map(|i| HistoryItem {
                post_id: 40 + i,
                author_id: i,
                actions: 1 << (i % 5),
                ..Default::default()
            })
            .collect();
        // Overlapping lists, repeats within a list, a short (padded) list,
        // and the same post at two ages.
        let cands = |age_s: i64| -> Vec<CandidateItem> {
            (0..9)
                .map(|i| CandidateItem {
                    post_id: 700 + i % 6,
                    author_id: 3 + i % 6,
                    product_surface: (i % 3) as u32,
                    created_s: now - age_s,
                    impression_s: now,
                })
                .collect()
        };
        let (young, old) = (cands(600), cands(7_200));
        let users: Vec<(i64, &[HistoryItem])> = vec![(42, &history), (43, &history[..4])];
        for (lists, chunk) in [
            (vec![&young[..], &young[2..6]], 16),
            (vec![&young[..], &old[..]], 4),
            (vec![&old[3..], &young[..]], 16),
        ] {
            let want = plain.rank_ids(&users, &lists, 10, chunk).expect("plain");
            let got = cached.rank_ids(&users, &lists, 10, chunk).expect("cached");
            assert_eq!(got.logits.len(), want.logits.len());
            for (g, w) in got.logits.iter().zip(&want.logits) {
                assert!((g - w).abs() <= 1e-6, "may {may_2026}: {g} vs {w}");
            }
            assert_eq!(got.continuous.len(), want.continuous.len());
        }
        let s = cached.token_cache_stats().expect("cache on");
        assert!(s.hits > 0 && s.misses > 0, "{s:?}");
        // Distinct tokens: 6 posts x (2 ages with a post-age block, else 1)
        // plus the padding slot.
        let distinct = if may_2026 { 13 } else { 7 };
        assert_eq!(s.entries, distinct, "{s:?}");
        assert!(plain.token_cache_stats().is_none());
    }
}
