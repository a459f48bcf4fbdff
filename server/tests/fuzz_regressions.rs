//! Every kept fuzz input through its target's entry point
//! (`foryou_server::fuzz`): the seed and grown corpora under
//! `fuzz/corpus/<target>/` and the inputs that once crashed under
//! `fuzz/regressions/<target>/`. A panic fails the test and names the file.

use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn the_seed_inputs_pass_their_targets() {
    let seeds = foryou_server::fuzz::seeds();
    for (name, target) in foryou_server::fuzz::TARGETS {
        let mine: Vec<&Vec<u8>> = seeds
            .iter()
            .filter(|(t, _)| t == name)
            .map(|(_, b)| b)
            .collect();
        // npz seeds are files only (there is no npz writer in the build).
        if *name != "npz_archive" {
            assert!(mine.len() >= 3, "{name} has {} seeds", mine.len());
        }
        for data in mine {
            target(data);
        }
    }
}

#[test]
fn every_kept_fuzz_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    for (name, target) in foryou_server::fuzz::TARGETS {
        let corpus = inputs(&root.join("corpus").join(name));
        assert!(
            corpus.len() >= 3,
            "fuzz/corpus/{name} holds {} inputs; its seeds are missing",
            corpus.len()
        );
        let regressions = inputs(&root.join("regressions").join(name));
        for path in corpus.iter().chain(&regressions) {
            let data = std::fs::read(path).expect("read a kept input");
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{} panicked in {name}", path.display());
        }
    }
}
