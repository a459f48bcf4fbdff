//! The May 2026 (v2) fixture sets, both ranker paths, every chunk size:
//! f32 max |d logit| <= 1e-4, probs and continuous_preds <= 1e-5; bf16
//! logits <= 5e-2; retrieval representations and scores <= 1e-5 with
//! identical top-k indices. The January sets keep their own test.

mod common;

use std::path::Path;

use common::*;
use foryou_engine::fixture::{EvalOptions, RankerPath, eval_dir};
use foryou_engine::{FpropDtype, ModelConfig};

/// Our outputs against the set's `outputs.safetensors`: the max abs
/// difference of `name`, after checking the shapes agree.
fn diff(outs: &[foryou_engine::tensor_io::OutTensor], outputs: &Path, name: &str) -> f32 {
    let (shape, want) = expected(outputs, name);
    let got = find(outs, name);
    assert_eq!(got.shape, shape, "{name} shape");
    max_abs_diff(&out_f32(got), &want)
}

fn check_ranker(dir: &Path, path: RankerPath, chunk: Option<usize>) {
    let cfg = ModelConfig::from_file(&dir.join("config.json")).expect("config");
    let outputs = dir.join("outputs.safetensors");
    let opts = EvalOptions {
        path,
        chunk,
        ..EvalOptions::default()
    };
    let outs = eval_dir(dir, &opts).expect("eval");
    let (dl, dp, dc) = (
        diff(&outs, &outputs, "logits"),
        diff(&outs, &outputs, "probs"),
        diff(&outs, &outputs, "continuous_preds"),
    );
    eprintln!(
        "{} {path:?} chunk {chunk:?}: max|dlogit| {dl:.3e} max|dprob| {dp:.3e} max|dcont| {dc:.3e}",
        dir.display()
    );
    let (tl, tp) = match cfg.fprop_dtype {
        FpropDtype::F32 => (1e-4, 1e-5),
        FpropDtype::Bf16 => (5e-2, 2.5e-2),
    };
    assert!(dl <= tl, "{}: logits off by {dl}", dir.display());
    assert!(dp <= tp, "{}: probs off by {dp}", dir.display());
    assert!(dc <= tp, "{}: continuous_preds off by {dc}", dir.display());
    if cfg.fprop_dtype == FpropDtype::F32 {
        let (_, want) = expected(&outputs, "ranked_indices");
        assert_eq!(
            out_f32(find(&outs, "ranked_indices")),
            want,
            "ranked_indices"
        );
    }
}

fn sets(kind: &str) -> Vec<std::path::PathBuf> {
    sets_in(&fixtures_v2())
        .into_iter()
        .filter(|d| {
            std::fs::read_to_string(d.join("config.json"))
                .expect("config")
                .contains(&format!("\"{kind}\""))
        })
        .collect()
}

#[test]
fn v2_ranker_sets_match_on_the_dense_and_fast_paths() {
    let sets = sets("ranker");
    assert_eq!(sets.len(), 3, "the three v2 ranker sets: {sets:?}");
    for dir in sets {
        check_ranker(&dir, RankerPath::Dense, None);
        check_ranker(&dir, RankerPath::Fast, None);
    }
}

#[test]
fn v2_fast_path_matches_in_any_chunk_size() {
    for dir in sets("ranker") {
        for chunk in [1, 3, 7] {
            check_ranker(&dir, RankerPath::Fast, Some(chunk));
        }
    }
}

#[test]
fn v2_retrieval_sets_match_with_and_without_the_tower_projection() {
    let sets = sets("retrieval");
    assert_eq!(sets.len(), 2, "the two v2 retrieval sets: {sets:?}");
    for dir in sets {
        let outputs = dir.join("outputs.safetensors");
        let outs = eval_dir(&dir, &EvalOptions::default()).expect("eval");
        for name in [
            "user_representation",
            "top_k_scores",
            "candidate_representation",
            "tower_candidate_representation",
        ] {
            let d = diff(&outs, &outputs, name);
            eprintln!("{} {name}: {d:.3e}", dir.display());
            assert!(d <= 1e-5, "{}: {name} off by {d}", dir.display());
        }
        let (_, want) = expected(&outputs, "top_k_indices");
        assert_eq!(out_f32(find(&outs, "top_k_indices")), want, "top_k_indices");
    }
}
