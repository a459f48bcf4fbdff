//! Shared setup of the foryou benchmarks: seeded models at the bench shapes and
//! full (unpadded) request batches built through the hash-embedding lookup.

pub mod index_data;
pub mod thunder;

use foryou_engine::fixture::load_model_dir;
use foryou_engine::hash_embed::{CandidateItem, HistoryItem};
use foryou_engine::init::{Preset, preset_config, write_random_model};
use foryou_engine::inputs::RecsysInputs;
use foryou_engine::{FpropDtype, PhoenixRanker};

/// The middle value of `v` after sorting it (the upper middle for an even
/// count), as every bench here quotes medians.
///
/// # Panics
/// When `v` is empty (a bench that measured nothing).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A ranker with seeded random weights at `preset`'s shape (its temp dir
/// lives as long as the returned guard).
pub fn bench_ranker(
    preset: Preset,
    dtype: FpropDtype,
) -> foryou_engine::Result<(tempfile::TempDir, PhoenixRanker)> {
    let dir = tempfile::tempdir().map_err(|e| foryou_engine::EngineError::io("tempdir", e))?;
    write_random_model(dir.path(), &preset_config(preset), 7, 4096, &mut |_, _| {})?;
    let (cfg, weights) = load_model_dir(dir.path())?;
    Ok((dir, PhoenixRanker::new(cfg, weights, dtype)?))
}

/// `batch` users, each with a full history and a full candidate list at the
/// config's nominal sizes (no padding), distinct per user.
pub fn full_batch(ranker: &PhoenixRanker, batch: usize) -> foryou_engine::Result<RecsysInputs> {
    let cfg = ranker.config();
    let weights_tables = ranker.hash_tables().ok_or_else(|| {
        foryou_engine::EngineError::Input("bench model has no hash tables".into())
    })?;
    let (s, c) = (cfg.history_seq_len, cfg.candidate_seq_len);
    let histories: Vec<Vec<HistoryItem>> = (0..)
        .take(batch)
        .map(|u: i64| {
            (0..)
                .take(s)
                .map(|i: i64| HistoryItem {
                    post_id: 1 + u * 100_000 + i,
                    author_id: 1 + (u * 31 + i) % 997,
                    actions: 1 << (i % 19),
                    product_surface: (i % 16) as u32,
                    ..Default::default()
                })
                .collect()
        })
        .collect();
    let candidates: Vec<Vec<CandidateItem>> = (0..)
        .take(batch)
        .map(|u: i64| {
            (0..)
                .take(c)
                .map(|i: i64| CandidateItem {
                    post_id: 50_000_000 + u * 100_000 + i,
                    author_id: 1 + (u * 17 + i) % 991,
                    product_surface: (i % 16) as u32,
                    ..Default::default()
                })
                .collect()
        })
        .collect();
    let rows: Vec<(i64, &[HistoryItem])> = (1..)
        .zip(&histories)
        .map(|(u, h)| (u, h.as_slice()))
        .collect();
    let cand_rows: Vec<&[CandidateItem]> = candidates.iter().map(|c| c.as_slice()).collect();
    Ok(RecsysInputs {
        user: weights_tables.user_inputs(cfg, &rows, s)?,
        candidates: weights_tables.candidate_inputs(cfg, &cand_rows, c)?,
    })
}
