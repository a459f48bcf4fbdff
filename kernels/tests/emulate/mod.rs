//! Building the host emulations (`tests/emulate/*.cpp`): the real kernel
//! sources compiled as C++ with `cuda_host.h`, AddressSanitizer and
//! UndefinedBehaviorSanitizer on where the toolchain has them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Compiles `tests/emulate/{name}.cpp` into the test's temp dir; `None`
/// (the caller skips) when there is no `c++`, unless FORYOU_REQUIRE_CXX is
/// set.
pub fn build(name: &str) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/emulate/{name}.cpp"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let compile = |extra: &[&str]| {
        Command::new("c++")
            .args(["-std=c++20", "-O1", "-g", "-pthread"])
            .args(extra)
            .arg(&src)
            .arg("-o")
            .arg(&out)
            .status()
    };
    match compile(&["-fsanitize=address,undefined"]) {
        Ok(s) if s.success() => Some(out),
        Ok(_) => {
            // A toolchain without the sanitizer runtimes: build plainly.
            eprintln!("c++ could not build {name} with sanitizers; building without");
            let s = compile(&[]).expect("c++ ran once already");
            assert!(s.success(), "{name}.cpp does not compile");
            Some(out)
        }
        Err(why) => {
            assert!(
                std::env::var_os("FORYOU_REQUIRE_CXX").is_none(),
                "FORYOU_REQUIRE_CXX is set but c++ cannot run: {why}"
            );
            eprintln!("skipped: no C++ compiler ({why})");
            None
        }
    }
}

/// A fresh directory under the test's temp dir for one case's files.
pub fn case_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs a harness on `dir`; panics with its stderr when it fails.
pub fn run(exe: &Path, dir: &Path) {
    let run = Command::new(exe)
        .arg(dir)
        .output()
        .expect("run the harness");
    assert!(
        run.status.success(),
        "{} failed: {}",
        exe.display(),
        String::from_utf8_lossy(&run.stderr)
    );
}
