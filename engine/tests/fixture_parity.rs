//! Every fixture set, both ranker paths: our outputs against the reference's.
//! f32: max |d logit| <= 1e-4, max |d prob| <= 1e-5; bf16: max |d logit| <= 5e-2;
//! retrieval: representations and scores <= 1e-5, top-k indices identical.

mod common;

use std::path::Path;

use common::*;
use foryou_engine::FpropDtype;
use foryou_engine::ModelConfig;
use foryou_engine::fixture::{EvalOptions, RankerPath, eval_dir, eval_dir_with_inputs};

fn check_ranker(dir: &Path, inputs: &Path, outputs: &Path, path: RankerPath, chunk: Option<usize>) {
    let cfg = ModelConfig::from_file(&dir.join("config.json")).expect("config");
    let opts = EvalOptions {
        path,
        chunk,
        ..EvalOptions::default()
    };
    let outs = eval_dir_with_inputs(dir, inputs, &opts).expect("eval");
    let (shape, want_logits) = expected(outputs, "logits");
    let got = find(&outs, "logits");
    assert_eq!(got.shape, shape, "logits shape");
    let dl = max_abs_diff(&out_f32(got), &want_logits);
    let (_, want_probs) = expected(outputs, "probs");
    let dp = max_abs_diff(&out_f32(find(&outs, "probs")), &want_probs);
    let (rshape, want_ranked) = expected(outputs, "ranked_indices");
    let ranked = find(&outs, "ranked_indices");
    assert_eq!(ranked.shape, rshape);
    eprintln!(
        "{} {path:?} chunk {chunk:?}: max|dlogit| {dl:.3e} max|dprob| {dp:.3e}",
        inputs.display()
    );
    match cfg.fprop_dtype {
        FpropDtype::F32 => {
            assert!(dl <= 1e-4, "{}: logits off by {dl}", inputs.display());
            assert!(dp <= 1e-5, "{}: probs off by {dp}", inputs.display());
            assert_eq!(out_f32(ranked), want_ranked, "ranked_indices");
        }
        FpropDtype::Bf16 => {
            assert!(dl <= 5e-2, "{}: bf16 logits off by {dl}", inputs.display());
            assert!(dp <= 2.5e-2, "{}: bf16 probs off by {dp}", inputs.display());
        }
    }
}

fn ranker_sets() -> Vec<std::path::PathBuf> {
    fixture_sets()
        .into_iter()
        .filter(|d| {
            std::fs::read_to_string(d.join("config.json"))
                .expect("config")
                .contains("\"ranker\"")
        })
        .collect()
}

#[test]
fn ranker_sets_match_reference_on_both_paths() {
    let sets = ranker_sets();
    assert!(
        sets.len() >= 4,
        "expected the four ranker sets, found {sets:?}"
    );
    for dir in sets {
        let (inputs, outputs) = (
            dir.join("inputs.safetensors"),
            dir.join("outputs.safetensors"),
        );
        check_ranker(&dir, &inputs, &outputs, RankerPath::Dense, None);
        check_ranker(&dir, &inputs, &outputs, RankerPath::Fast, None);
    }
}

#[test]
fn fast_path_matches_reference_in_any_chunk_size() {
    for dir in ranker_sets() {
        let (inputs, outputs) = (
            dir.join("inputs.safetensors"),
            dir.join("outputs.safetensors"),
        );
        for chunk in [1, 3, 7] {
            check_ranker(&dir, &inputs, &outputs, RankerPath::Fast, Some(chunk));
        }
    }
}

#[test]
fn invariance_variants_match_reference() {
    let dir = fixtures().join("ranker_invariance_f32");
    let mut n = 0;
    for entry in std::fs::read_dir(dir.join("variants")).expect("variants") {
        let v = entry.expect("entry").path();
        let (inputs, outputs) = (v.join("inputs.safetensors"), v.join("outputs.safetensors"));
        check_ranker(&dir, &inputs, &outputs, RankerPath::Dense, None);
        check_ranker(&dir, &inputs, &outputs, RankerPath::Fast, None);
        check_ranker(&dir, &inputs, &outputs, RankerPath::Fast, Some(2));
        n += 1;
    }
    assert_eq!(n, 6, "six variants");
}

#[test]
fn bf16_evaluation_of_f32_set_stays_near_reference() {
    // Same params and inputs as ranker_demo_bf16: running the f32 set in bf16
    // must land within the bf16 tolerance of the bf16 reference outputs.
    let f32_dir = fixtures().join("ranker_demo_f32");
    let bf16_out = fixtures().join("ranker_demo_bf16/outputs.safetensors");
    let opts = EvalOptions {
        dtype: Some(FpropDtype::Bf16),
        ..EvalOptions::default()
    };
    let outs = eval_dir(&f32_dir, &opts).expect("eval");
    let (_, want) = expected(&bf16_out, "logits");
    let d = max_abs_diff(&out_f32(find(&outs, "logits")), &want);
    eprintln!("f32 set run in bf16 vs bf16 reference: {d:.3e}");
    assert!(d <= 5e-2, "{d}");
}

#[test]
fn retrieval_set_matches_reference() {
    let dir = fixtures().join("retrieval_demo_f32");
    let outputs = dir.join("outputs.safetensors");
    let outs = eval_dir(&dir, &EvalOptions::default()).expect("eval");
    for name in [
        "user_representation",
        "top_k_scores",
        "candidate_representation",
        "tower_candidate_representation",
    ] {
        let (shape, want) = expected(&outputs, name);
        let got = find(&outs, name);
        assert_eq!(got.shape, shape, "{name} shape");
        let d = max_abs_diff(&out_f32(got), &want);
        eprintln!("{name}: {d:.3e}");
        assert!(d <= 1e-5, "{name} off by {d}");
    }
    for name in [
        "top_k_indices",
        "candidate_padding_mask",
        "tower_candidate_padding_mask",
    ] {
        let (shape, want) = expected(&outputs, name);
        let got = find(&outs, name);
        assert_eq!(got.shape, shape, "{name} shape");
        assert_eq!(out_f32(got), want, "{name}");
    }
}
