//! `foryou bench batch` end to end: it writes one JSON row per stage and
//! batch size, and rejects bad flags with a message naming them.

mod common;

/// The rows of the one JSON file `bench batch` wrote under `out`.
fn json_rows(out: &std::path::Path) -> Vec<serde_json::Value> {
    let json = std::fs::read_dir(out)
        .expect("out dir")
        .filter_map(Result::ok)
        .find(|e| e.path().extension().is_some_and(|x| x == "json"))
        .expect("a json file");
    serde_json::from_str(&std::fs::read_to_string(json.path()).expect("read")).expect("json")
}

#[test]
fn bench_batch_writes_a_row_per_stage_and_batch_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("results");
    let cache = dir.path().join("models");
    let st = common::foryou()
        .args([
            "bench",
            "batch",
            "--batch",
            "1,3",
            "--requests",
            "5",
            "--corpus",
            "200",
        ])
        .args(["--top-k", "10", "--model-cache"])
        .arg(&cache)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let rows = json_rows(&out);
    let keys: Vec<(String, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["stage"].as_str().expect("stage").to_owned(),
                r["batch"].as_u64().expect("batch"),
            )
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            ("ranker".into(), 1),
            ("ranker".into(), 3),
            ("retriever".into(), 1),
            ("retriever".into(), 3)
        ]
    );
    for r in &rows {
        let (p50, p99) = (
            r["p50_ms"].as_f64().expect("p50"),
            r["p99_ms"].as_f64().expect("p99"),
        );
        assert!(p50 > 0.0 && p99 >= p50, "{r}");
    }
    // The table and both plots sit beside the JSON.
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(&out)
        .expect("out dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    for ext in ["md", "svg", "png"] {
        assert!(
            files
                .iter()
                .any(|f| f.extension().is_some_and(|x| x == ext)),
            "no .{ext} in {files:?}"
        );
    }
    let png = files
        .iter()
        .find(|f| f.extension().is_some_and(|x| x == "png"))
        .expect("png");
    let bytes = std::fs::read(png).expect("read png");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
}

#[test]
fn bench_batch_rejects_bad_flags_by_name() {
    for (args, want) in [
        (vec!["--batch", "0,2"], "--batch"),
        (vec!["--device", "cuda:0"], "--device cuda:0"),
    ] {
        let st = common::foryou()
            .args(["bench", "batch"])
            .args(&args)
            .output()
            .expect("run");
        assert!(!st.status.success());
        let err = String::from_utf8_lossy(&st.stderr);
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn bench_batch_on_one_model_times_that_stage_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("ranker-only");
    let out = dir.path().join("results");
    let init = common::foryou()
        .args(["phoenix", "init", "--preset", "demo", "--seed", "3"])
        .args(["--table-rows", "256", "--out"])
        .arg(&model)
        .output()
        .expect("run init");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let st = common::foryou()
        .args([
            "bench",
            "batch",
            "--batch",
            "2",
            "--requests",
            "5",
            "--model",
        ])
        .arg(&model)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run bench");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let rows = json_rows(&out);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["stage"], "ranker");
    assert_eq!(rows[0]["batch"], 2);
}
