//! `run_pipeline.py` on the released-artifact miniature (`v2_artifacts`):
//! in f32 against the float32 shadow run (retrieved ids identical and in
//! order, ranked order identical up to the listed ties, probs <= 1e-4); in
//! bf16, as the script runs, against its output (>= 99 % of the retrieved
//! ids shared, the printed table in the same format).

use std::path::{Path, PathBuf};

use foryou_engine::FpropDtype;
use foryou_engine::artifacts::pipeline::{PipelineOptions, run_dir, table};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/phoenix-v2/v2_artifacts")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(root().join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("json")
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_i64().expect("int"))
        .collect()
}

/// Whether `got` equals `want` once each tie group (indices sharing one
/// score) is compared as a set at its place in the order.
fn same_up_to_ties(got: &[i64], want: &[i64], groups: &Value) -> bool {
    let group_of = |i: i64| {
        groups
            .as_array()
            .expect("groups")
            .iter()
            .position(|g| ints(g).contains(&i))
    };
    got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(&a, &b)| a == b || (group_of(a).is_some() && group_of(a) == group_of(b)))
}

#[test]
fn f32_run_matches_the_float32_shadow() {
    let opts = PipelineOptions {
        dtype: FpropDtype::F32,
        ..PipelineOptions::default()
    };
    let r = run_dir(&root(), None, None, &opts).expect("pipeline");
    let shadow = &expected()["float32_shadow"];
    let ids: Vec<i64> = r.retrieved.iter().map(|p| p.post_id).collect();
    assert_eq!(
        ids,
        ints(&shadow["retrieved_post_ids"]),
        "retrieved ids, in order"
    );
    let want_probs = shadow["ranker_probs"].as_array().expect("probs");
    let mut worst = 0f32;
    for (got, want) in r.ranker_probs.iter().zip(want_probs) {
        for (g, w) in got.iter().zip(want.as_array().expect("row")) {
            worst = worst.max((g - w.as_f64().expect("f") as f32).abs());
        }
    }
    eprintln!("f32 pipeline: max |dprob| {worst:.3e}");
    assert!(worst <= 1e-4, "probs off by {worst}");
    let ranked: Vec<i64> = r.ranked.iter().map(|&i| i as i64).collect();
    assert!(
        same_up_to_ties(
            &ranked,
            &ints(&shadow["ranked_order"]),
            &shadow["ranked_weighted_tie_groups"]
        ),
        "ranked order"
    );
}

#[test]
fn bf16_run_shares_the_scripts_retrievals_and_prints_its_table() {
    let r = run_dir(&root(), None, None, &PipelineOptions::default()).expect("pipeline");
    let want = ints(&expected()["retrieved_post_ids"]);
    let shared = r
        .retrieved
        .iter()
        .filter(|p| want.contains(&p.post_id))
        .count();
    let share = shared as f64 / want.len() as f64;
    eprintln!(
        "bf16 pipeline: {shared}/{} retrieved ids shared",
        want.len()
    );
    assert!(share >= 0.99, "only {share} of the retrieved ids shared");
    let ours = table(&r, 30);
    let theirs = std::fs::read_to_string(root().join("expected_stdout.txt")).expect("stdout");
    let (ol, tl): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), theirs.lines().collect());
    assert_eq!(ol.len(), tl.len(), "line count");
    // Header and rules identical; every row in the same column layout.
    assert_eq!(ol[..8], tl[..8], "header");
    assert_eq!(ol[ol.len() - 1], tl[tl.len() - 1]);
    for (o, t) in ol[8..38].iter().zip(&tl[8..38]) {
        let cols = |l: &str| l.char_indices().filter(|(_, c)| *c == ' ').count() > 0;
        assert!(cols(o) && o.len().abs_diff(t.len()) <= 24, "{o}\nvs\n{t}");
        assert_eq!(o.find("https://"), t.find("https://"), "URL column: {o}");
    }
    let identical = ol.iter().zip(&tl).filter(|(a, b)| a == b).count();
    eprintln!(
        "bf16 table: {identical}/{} lines identical to the script's",
        tl.len()
    );
}
