//! Writes the fuzz targets' seed inputs (`foryou_server::fuzz::seeds`) to
//! `fuzz/corpus/<target>/seed-<n>`.

fn main() -> std::io::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut n = std::collections::HashMap::<&str, usize>::new();
    for (target, bytes) in foryou_server::fuzz::seeds() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        let i = n.entry(target).or_default();
        std::fs::write(dir.join(format!("seed-{i}")), bytes)?;
        *i += 1;
    }
    for (target, count) in &n {
        println!("{target}: {count} seeds");
    }
    Ok(())
}
