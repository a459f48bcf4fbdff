//! The `foryou phoenix` and `foryou world` commands end to end, through the
//! built binary.

use std::path::{Path, PathBuf};
use std::process::Command;

fn foryou() -> Command {
    Command::new(env!("CARGO_BIN_EXE_foryou"))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../engine/tests/fixtures/phoenix-reference")
        .join(name)
}

fn read_f32(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).expect("read output");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
    let t = st.tensor(name).expect("tensor present");
    assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name} dtype");
    let data = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (t.shape().to_vec(), data)
}

#[test]
fn eval_writes_reference_named_outputs_within_tolerance() {
    let dir = tempfile::tempdir().expect("tempdir");
    for path in ["dense", "fast"] {
        let out = dir.path().join(format!("{path}.safetensors"));
        let status = foryou()
            .args(["phoenix", "eval", "--fixture"])
            .arg(fixture("ranker_gqa_f32"))
            .arg("--out")
            .arg(&out)
            .args(["--path", path])
            .status()
            .expect("run foryou");
        assert!(status.success());
        let (shape, got) = read_f32(&out, "logits");
        let (want_shape, want) = read_f32(&fixture("ranker_gqa_f32/outputs.safetensors"), "logits");
        assert_eq!(shape, want_shape);
        let d = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(d <= 1e-4, "{path}: {d}");
        let bytes = std::fs::read(&out).expect("read");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid");
        let ranked = st.tensor("ranked_indices").expect("ranked_indices");
        assert_eq!(ranked.dtype(), safetensors::Dtype::I32);
        assert_eq!(ranked.shape(), &[3, 40]);
    }
}

#[test]
fn eval_of_missing_dir_fails_with_the_path() {
    let out = tempfile::tempdir().expect("tempdir");
    let output = foryou()
        .args(["phoenix", "eval", "--fixture", "/no/such/fixture", "--out"])
        .arg(out.path().join("x.safetensors"))
        .output()
        .expect("run foryou");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/no/such/fixture/config.json"), "{stderr}");
}

#[test]
fn init_demo_then_eval_of_a_fixture_shaped_dir_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let status = foryou()
        .args([
            "phoenix",
            "init",
            "--preset",
            "demo",
            "--seed",
            "3",
            "--table-rows",
            "128",
            "--out",
        ])
        .arg(dir.path())
        .status()
        .expect("run foryou");
    assert!(status.success());
    // The demo preset has the fixtures' demo shape, so the demo inputs run on it.
    std::fs::copy(
        fixture("ranker_demo_f32/inputs.safetensors"),
        dir.path().join("inputs.safetensors"),
    )
    .expect("copy inputs");
    let out = dir.path().join("out.safetensors");
    let status = foryou()
        .args(["phoenix", "eval", "--fixture"])
        .arg(dir.path())
        .arg("--out")
        .arg(&out)
        .status()
        .expect("run foryou");
    assert!(status.success());
    let (shape, probs) = read_f32(&out, "probs");
    assert_eq!(shape, vec![2, 8, 19]);
    assert!(probs.iter().all(|p| (0.0..=1.0).contains(p)));
    assert!(
        probs.iter().any(|&p| p < 0.4) && probs.iter().any(|&p| p > 0.6),
        "trivial outputs"
    );
}

#[test]
fn world_check_refuses_a_surface_the_ranker_has_no_row_for_naming_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let world = |surface: u32| {
        let path = dir.path().join(format!("w{surface}.jsonl"));
        let lines = [
            r#"{"type":"header","format":"foryou-world","version":1,"now_ms":1800000000000}"#
                .to_owned(),
            r#"{"type":"user","id":1,"screen_name":"a"}"#.to_owned(),
            r#"{"type":"post","id":4194304,"author":1}"#.to_owned(),
            format!(
                r#"{{"type":"engagement","user":1,"post":4194304,"actions":["favorite"],"at_ms":1,"surface":{surface}}}"#
            ),
        ];
        std::fs::write(&path, lines.join("\n")).expect("write");
        path
    };
    let v2 = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../engine/tests/fixtures/phoenix-v2/v2_artifacts");
    // The demo ranker and the May-2026 checkpoint both have 16 surfaces.
    for model in [None, Some(v2.as_path())] {
        let check = |path: &Path| {
            let mut cmd = foryou();
            cmd.args(["world", "check"]).arg(path);
            if let Some(m) = model {
                cmd.arg("--model").arg(m);
            }
            cmd.env_remove("FORYOU_MODEL").output().expect("run foryou")
        };
        let ok = check(&world(15));
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
        assert!(
            String::from_utf8_lossy(&ok.stdout).contains("within the ranker's 16"),
            "{}",
            String::from_utf8_lossy(&ok.stdout)
        );
        let bad = check(&world(16));
        assert!(!bad.status.success());
        let stderr = String::from_utf8_lossy(&bad.stderr);
        assert!(
            stderr.contains("w16.jsonl:4: field `surface`: 16 is outside"),
            "{stderr}"
        );
    }
    let missing = foryou()
        .args(["world", "check"])
        .arg(world(0))
        .args(["--model", "/no/such/model"])
        .output()
        .expect("run foryou");
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("/no/such/model/ranker/config.json"),
        "{stderr}"
    );
}
