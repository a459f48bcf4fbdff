//! Helpers shared by the retrieval-index benchmarks (`index-scale`,
//! `index-ann`, `index-freshness`): seeded unit vectors, comma lists of
//! flag values, percentiles.

use anyhow::Context;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// A unit vector of width `D` (even): Box-Muller normals, normalised.
pub fn unit_vector<const D: usize>(rng: &mut ChaCha8Rng) -> [f32; D] {
    let mut v = [0.0f32; D];
    for pair in v.chunks_exact_mut(2) {
        let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
        let u2: f64 = rng.random();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        pair[0] = (r * t.cos()) as f32;
        pair[1] = (r * t.sin()) as f32;
    }
    normalise(&mut v);
    v
}

/// Scales `v` to unit length (a zero vector stays zero).
pub fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

/// A comma list of `flag`'s values, e.g. `--k 100,1000`.
pub fn list<T: std::str::FromStr>(flag: &str, v: &str) -> anyhow::Result<Vec<T>> {
    v.split(',')
        .map(|x| x.parse().ok().with_context(|| format!("{flag} {x}")))
        .collect()
}

/// The `p`-quantile (0..=1) of `sorted` by nearest rank; NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}
