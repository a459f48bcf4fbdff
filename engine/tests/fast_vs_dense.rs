//! The fast path against the dense oracle on random configs and inputs:
//! shapes, GQA ratios, layer counts, paddings (padded users included) and
//! chunk sizes, with and without the May 2026 inputs; and the RoPE modes'
//! slot behaviour.

mod common;

use common::*;
use foryou_engine::{CandidatePositions, PhoenixRanker, RankerOutput};
use proptest::prelude::*;

fn scores_of(out: &RankerOutput, b: usize, c: usize) -> &[f32] {
    let row = out.count * out.num_actions;
    &out.logits[b * row + c * out.num_actions..b * row + (c + 1) * out.num_actions]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn fast_equals_dense_on_random_configs(
        seed in any::<u64>(),
        d in prop::sample::select(vec![16usize, 32, 48]),
        k in prop::sample::select(vec![4usize, 8, 16]),
        hkv in 1usize..=2,
        group in 1usize..=3,
        layers in 1usize..=3,
        b in 1usize..=3,
        s in 1usize..=12,
        c in 1usize..=9,
        chunk in 1usize..=9,
        pad in prop::sample::select(vec![0.0f32, 0.3, 0.6]),
        shared in any::<bool>(),
        may in any::<bool>(),
        use_log in any::<bool>(),
        granularity in prop::sample::select(vec![7u32, 60, 1440]),
    ) {
        let mut cfg = small_config(d, k, hkv * group, hkv, layers);
        if shared {
            cfg.candidate_positions = CandidatePositions::Shared;
        }
        if may {
            // Every May 2026 input on: post age, dwell (linear or log),
            // IP embeddings, right-anchored RoPE, the continuous head.
            may_2026(&mut cfg, granularity, use_log);
        }
        let (_dir, ranker) = random_ranker(&cfg, seed);
        let mut rng = Rng(seed ^ 0x5555);
        let inputs = random_inputs(ranker.config(), &mut rng, b, s, c, pad, 0.2);
        let dense = ranker.forward_dense(&inputs).expect("dense");
        let fast = ranker.forward_chunked(&inputs, chunk).expect("fast");
        let dl = max_abs_diff(&dense.logits, &fast.logits);
        prop_assert!(dl <= 1e-5, "logits differ by {dl}");
        prop_assert!(max_abs_diff(&dense.probs, &fast.probs) <= 1e-5);
        prop_assert_eq!(dense.continuous.len(), fast.continuous.len());
        prop_assert!(max_abs_diff(&dense.continuous, &fast.continuous) <= 1e-5);
        if may {
            prop_assert_eq!(fast.continuous.len(), b * c * 8);
        }
    }
}

fn gqa_ranker(positions: CandidatePositions) -> (tempfile::TempDir, PhoenixRanker) {
    let mut cfg = small_config(32, 8, 4, 2, 2);
    cfg.candidate_positions = positions;
    random_ranker(&cfg, 7)
}

#[test]
fn shared_positions_make_scores_independent_of_slot_chunk_and_company() {
    let (_dir, ranker) = gqa_ranker(CandidatePositions::Shared);
    let cfg = ranker.config().clone();
    let mut rng = Rng(99);
    let base = random_inputs(&cfg, &mut rng, 1, 10, 6, 0.0, 0.0);
    let reference = ranker.forward(&base).expect("base");
    // Candidate 0 alone, in slot 0 of a batch of one.
    let alone = foryou_engine::inputs::RecsysInputs {
        user: base.user.clone(),
        candidates: base.candidates.slots(&cfg, 0, 1),
    };
    let out_alone = ranker.forward(&alone).expect("alone");
    // Reversed slots and scored in chunks of 4, with a different batch company.
    let rev: Vec<usize> = (0..6).rev().collect();
    let mut reversed = base.clone();
    reversed.candidates = base.candidates.gather_slots(&cfg, &rev);
    let out_rev = ranker.forward_chunked(&reversed, 4).expect("reversed");
    let dense_rev = ranker.forward_dense(&reversed).expect("dense reversed");
    for (slot, &cand) in rev.iter().enumerate() {
        let want = scores_of(&reference, 0, cand);
        assert!(
            max_abs_diff(scores_of(&out_rev, 0, slot), want) <= 1e-6,
            "candidate {cand} in slot {slot}"
        );
        assert!(max_abs_diff(scores_of(&dense_rev, 0, slot), want) <= 1e-5);
    }
    assert!(max_abs_diff(scores_of(&out_alone, 0, 0), scores_of(&reference, 0, 0)) <= 1e-6);
}

#[test]
fn absolute_positions_keep_the_reference_slot_dependence() {
    let (_dir, ranker) = gqa_ranker(CandidatePositions::Absolute);
    let cfg = ranker.config().clone();
    let mut rng = Rng(99);
    let base = random_inputs(&cfg, &mut rng, 1, 10, 6, 0.0, 0.0);
    // Copy candidate 0 into every slot: in absolute mode the slot moves its score.
    let mut replicated = base.clone();
    replicated.candidates = base.candidates.gather_slots(&cfg, &[0; 6]);
    let out = ranker.forward(&replicated).expect("replicated");
    let spread = (1..6)
        .map(|slot| max_abs_diff(scores_of(&out, 0, slot), scores_of(&out, 0, 0)))
        .fold(0.0, f32::max);
    assert!(
        spread > 1e-3,
        "slot should change the score in absolute mode, spread {spread}"
    );
    // And the slot-0 copy equals the original candidate 0 exactly as in the reference.
    let orig = ranker.forward(&base).expect("base");
    assert!(max_abs_diff(scores_of(&out, 0, 0), scores_of(&orig, 0, 0)) <= 1e-6);
}

#[test]
fn empty_history_and_empty_candidate_lists_do_not_panic() {
    let (_dir, ranker) = gqa_ranker(CandidatePositions::Absolute);
    let cfg = ranker.config().clone();
    let mut rng = Rng(3);
    for (s, c) in [(0, 3), (4, 0), (0, 0)] {
        let inputs = random_inputs(&cfg, &mut rng, 2, s, c, 0.0, 0.0);
        let fast = ranker.forward(&inputs);
        let dense = ranker.forward_dense(&inputs);
        match (fast, dense) {
            (Ok(f), Ok(d)) => {
                assert_eq!(f.logits.len(), 2 * c * cfg.num_actions);
                assert!(max_abs_diff(&f.logits, &d.logits) <= 1e-5, "s={s} c={c}");
            }
            (f, d) => panic!("s={s} c={c}: fast {:?} dense {:?}", f.err(), d.err()),
        }
    }
}
