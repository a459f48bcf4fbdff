//! Bad input gives a clear error naming the file, tensor or field, never a panic.

mod common;

use std::path::Path;

use common::*;
use foryou_engine::fixture::{EvalOptions, eval_dir};
use safetensors::SafeTensors;

/// Copies a fixture set to a temp dir so a test can damage one file.
fn copy_set(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for f in ["config.json", "params.safetensors", "inputs.safetensors"] {
        std::fs::copy(fixtures().join(name).join(f), dir.path().join(f)).expect("copy");
    }
    dir
}

/// Rewrites a safetensors file, letting `edit` change (name, dtype, shape, bytes) entries.
fn rewrite(
    path: &Path,
    edit: impl Fn(&mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>),
) {
    let bytes = std::fs::read(path).expect("read");
    let st = SafeTensors::deserialize(&bytes).expect("parse");
    let mut items: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut items);
    let outs: Vec<foryou_engine::tensor_io::OutTensor> = items
        .into_iter()
        .map(
            |(name, dtype, shape, bytes)| foryou_engine::tensor_io::OutTensor {
                name,
                dtype,
                shape,
                bytes,
            },
        )
        .collect();
    foryou_engine::tensor_io::write_tensors(path, &outs).expect("write");
}

fn eval_err(dir: &Path) -> String {
    match eval_dir(dir, &EvalOptions::default()) {
        Ok(_) => panic!("evaluation should have failed"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn malformed_config_json_names_the_file() {
    let dir = copy_set("ranker_demo_f32");
    std::fs::write(dir.path().join("config.json"), "{\"emb_size\": 128,").expect("write");
    assert!(eval_err(dir.path()).contains("config.json"));
}

#[test]
fn missing_tensor_is_named_with_expected_shape() {
    let dir = copy_set("ranker_demo_f32");
    rewrite(&dir.path().join("params.safetensors"), |items| {
        items.retain(|t| t.0 != "transformer/decoder_layer_1/linear_v/w");
    });
    let err = eval_err(dir.path());
    assert!(
        err.contains("missing tensor 'transformer/decoder_layer_1/linear_v/w'"),
        "{err}"
    );
    assert!(err.contains("[128, 176]"), "{err}");
}

#[test]
fn misshaped_tensor_is_named_with_both_shapes() {
    let dir = copy_set("ranker_demo_f32");
    rewrite(&dir.path().join("params.safetensors"), |items| {
        let t = items
            .iter_mut()
            .find(|t| t.0 == "phoenix_model/unembeddings")
            .expect("present");
        t.2 = vec![19, 128];
    });
    let err = eval_err(dir.path());
    assert!(
        err.contains("'phoenix_model/unembeddings' has shape [19, 128], expected [128, 19]"),
        "{err}"
    );
}

#[test]
fn extra_tensor_is_named() {
    let dir = copy_set("ranker_demo_f32");
    rewrite(&dir.path().join("params.safetensors"), |items| {
        items.push((
            "phoenix_model/bias".into(),
            safetensors::Dtype::F32,
            vec![1],
            vec![0; 4],
        ));
    });
    assert!(eval_err(dir.path()).contains("unexpected tensor 'phoenix_model/bias'"));
}

#[test]
fn nan_embedding_is_rejected() {
    let dir = copy_set("ranker_demo_f32");
    rewrite(&dir.path().join("inputs.safetensors"), |items| {
        let t = items
            .iter_mut()
            .find(|t| t.0 == "candidate_post_embeddings")
            .expect("present");
        t.3[40..44].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    let err = eval_err(dir.path());
    assert!(
        err.contains("candidate_post_embeddings") && err.contains("non-finite"),
        "{err}"
    );
}

#[test]
fn negative_hash_is_rejected() {
    let dir = copy_set("ranker_gqa_f32");
    rewrite(&dir.path().join("inputs.safetensors"), |items| {
        let t = items
            .iter_mut()
            .find(|t| t.0 == "history_post_hashes")
            .expect("present");
        t.3[8..12].copy_from_slice(&(-5i32).to_le_bytes());
    });
    let err = eval_err(dir.path());
    assert!(
        err.contains("history_post_hashes") && err.contains("-5"),
        "{err}"
    );
}

#[test]
fn out_of_range_product_surface_is_rejected() {
    let dir = copy_set("ranker_demo_f32");
    rewrite(&dir.path().join("inputs.safetensors"), |items| {
        let t = items
            .iter_mut()
            .find(|t| t.0 == "candidate_product_surface")
            .expect("present");
        t.3[0..4].copy_from_slice(&16i32.to_le_bytes());
    });
    let err = eval_err(dir.path());
    assert!(
        err.contains("candidate_product_surface") && err.contains("[0, 16)"),
        "{err}"
    );
}

#[test]
fn misshaped_input_is_named() {
    let dir = copy_set("ranker_demo_f32");
    rewrite(&dir.path().join("inputs.safetensors"), |items| {
        let t = items
            .iter_mut()
            .find(|t| t.0 == "history_actions")
            .expect("present");
        t.2 = vec![2, 19, 32];
    });
    let err = eval_err(dir.path());
    assert!(
        err.contains("'history_actions' has shape [2, 19, 32]"),
        "{err}"
    );
}

#[test]
fn truncated_safetensors_is_a_clear_error() {
    let dir = copy_set("ranker_demo_f32");
    let p = dir.path().join("inputs.safetensors");
    let bytes = std::fs::read(&p).expect("read");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).expect("write");
    let err = eval_err(dir.path());
    assert!(err.contains("inputs.safetensors"), "{err}");
}

#[test]
fn non_finite_hash_table_value_is_rejected_at_load_naming_tensor_and_element() {
    use foryou_engine::fixture::load_model_dir;
    use foryou_engine::init::{Preset, preset_config, write_random_model};
    use foryou_engine::weights::HASH_TABLE_NAMES;
    // Such a model used to load, and then every request failed in the
    // forward pass's input check.
    for (value, table) in [
        (f32::NAN, HASH_TABLE_NAMES[1]),
        (f32::INFINITY, HASH_TABLE_NAMES[2]),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        write_random_model(
            dir.path(),
            &preset_config(Preset::Demo),
            1,
            64,
            &mut |_, _| {},
        )
        .expect("write");
        rewrite(&dir.path().join("params.safetensors"), |items| {
            let t = items
                .iter_mut()
                .find(|t| t.0 == table)
                .expect("init writes hash tables");
            assert_eq!(t.1, safetensors::Dtype::F32);
            t.3[4 * 300..4 * 301].copy_from_slice(&value.to_le_bytes());
        });
        let err = match load_model_dir(dir.path()) {
            Ok(_) => panic!("a {value} in '{table}' must not load"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(&format!(
                "tensor '{table}' holds a non-finite value at element 300"
            )),
            "{err}"
        );
        assert!(err.contains("params.safetensors"), "{err}");
    }
}
