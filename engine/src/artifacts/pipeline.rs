//! X's `run_pipeline.py` (May 2026) over a released artifact directory:
//! hash the viewer and their history with each model's published hash,
//! retrieve the top K of the corpus by `user · post`, rank the retrieved
//! posts in chunks of the candidate slots, and order them by the script's
//! weighted score. Step by step as the fixture README describes it:
//!
//! * history: the first `history_seq_len` items in file order, each action
//!   value (`float(value)`, not only 0/1) at its proto index below A,
//!   product surface 0;
//! * retrieval: the bf16 (or f32) user tower, f32 scores, descending;
//! * ranking: chunks of `candidate_seq_len` in retrieval order, each one
//!   ranker call with the same viewer (slot = rank mod C), no post ages,
//!   dwell or IP;
//! * weighted score `((p1·1.0 + p4·0.5) + p6·0.3) + p11·0.2` with the
//!   columns taken by proto index; in bf16 every weight, product and sum is
//!   rounded to bf16 as NumPy does on a bfloat16 array, in f32 it is f32
//!   arithmetic;
//! * order: descending weighted score. The script's NumPy sort is
//!   unstable, so posts with equal scores may come out in another order
//!   there; ours keeps retrieval order among equals.

use std::path::Path;

use half::bf16;

use super::corpus::ArtifactCorpus;
use super::sequence::Sequence;
use crate::config::FpropDtype;
use crate::corpus::{Corpus, CorpusItem};
use crate::error::{EngineError, Result};
use crate::hash_embed::{CandidateItem, HistoryItem};
use crate::inputs::{RecsysInputs, UserInputs};
use crate::model::ranker::PhoenixRanker;
use crate::model::retriever::PhoenixRetriever;

/// Ranker columns the weighted score reads (proto action indices) and
/// their weights: favorite, reply, repost, dwell.
pub const WEIGHTED: [(usize, f32); 4] = [(1, 1.0), (4, 0.5), (6, 0.3), (11, 0.2)];

/// Columns the table prints after the score: Fav, Reply, RT, Dwell, VQV.
pub const DISPLAY_COLUMNS: [usize; 5] = [1, 4, 6, 11, 13];

/// Options of a run (the script's flags).
#[derive(Debug, Clone, Copy)]
pub struct PipelineOptions {
    /// Posts retrieved (the script's `--top_k_retrieval`, default 200).
    pub top_k_retrieval: usize,
    /// Rows printed (`--top_k_display`, default 30).
    pub top_k_display: usize,
    /// Forward dtype of both models (the script: bf16).
    pub dtype: FpropDtype,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            top_k_retrieval: 200,
            top_k_display: 30,
            dtype: FpropDtype::Bf16,
        }
    }
}

/// One retrieved post.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievedPost {
    /// Row of the corpus.
    pub corpus_index: usize,
    /// The post.
    pub post_id: i64,
    /// Its author.
    pub author_id: i64,
    /// `user · post`.
    pub score: f32,
    /// The corpus' topics string.
    pub topic: String,
}

/// What a run produced, indexed like the retrieved list.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineResult {
    /// The viewer.
    pub user_id: i64,
    /// History items in the sequence file (all of them, as printed).
    pub history_items: usize,
    /// Posts in the corpus.
    pub corpus_size: usize,
    /// The retrieved posts, best first.
    pub retrieved: Vec<RetrievedPost>,
    /// `[K][A]` ranker probabilities.
    pub ranker_probs: Vec<Vec<f32>>,
    /// `[K]` weighted scores.
    pub weighted: Vec<f32>,
    /// Indices into `retrieved`, by descending weighted score.
    pub ranked: Vec<usize>,
}

/// The history the script builds: the first `len` items (their ids; the
/// action values go in by [`action_values`]).
fn history(seq: &Sequence, len: usize) -> Vec<HistoryItem> {
    seq.history
        .iter()
        .take(len)
        .map(|item| HistoryItem {
            post_id: item.post_id,
            author_id: item.author_id,
            ..HistoryItem::default()
        })
        .collect()
}

/// Writes the sequence's action values into `user`'s `[1, S, A]` action
/// rows as the script does: `float(value)` at every index below A (so a
/// value other than 1 reaches the model as it is), slots past the history
/// left 0.
fn action_values(user: &mut UserInputs, seq: &Sequence, num_actions: usize) {
    for (slot, item) in seq.history.iter().take(user.history_len).enumerate() {
        let row = &mut user.history_actions[slot * num_actions..][..num_actions];
        row.copy_from_slice(&item.action_row(num_actions));
    }
}

/// The viewer's user-side inputs under `tables` (one row).
fn user_inputs(
    cfg: &crate::config::ModelConfig,
    tables: &crate::hash_embed::HashTables,
    seq: &Sequence,
) -> Result<UserInputs> {
    let hist = history(seq, cfg.history_seq_len);
    let mut user = tables.user_inputs(cfg, &[(seq.user_id, &hist)], cfg.history_seq_len)?;
    action_values(&mut user, seq, cfg.num_actions);
    user.validate(cfg)?;
    Ok(user)
}

/// The weighted score of one candidate's probabilities.
pub fn weighted_score(probs: &[f32], dtype: FpropDtype) -> f32 {
    let p = |i: usize| probs.get(i).copied().unwrap_or(0.0);
    match dtype {
        FpropDtype::F32 => WEIGHTED.iter().fold(0.0f32, |acc, &(i, w)| acc + p(i) * w),
        FpropDtype::Bf16 => {
            let r = |x: f32| bf16::from_f32(x).to_f32();
            WEIGHTED
                .iter()
                .fold(0.0f32, |acc, &(i, w)| r(acc + r(r(p(i)) * r(w))))
        }
    }
}

/// Runs the pipeline: `models` are the artifact directory's retriever and
/// ranker (`artifacts::model::load_pair`), `seq` the viewer, `corpus` the
/// posts to retrieve from.
pub fn run(
    retriever: &PhoenixRetriever,
    ranker: &PhoenixRanker,
    seq: &Sequence,
    corpus: &ArtifactCorpus,
    opts: &PipelineOptions,
) -> Result<PipelineResult> {
    let cfg = retriever.config();
    let no_tables = || EngineError::Input("the artifact models carry no hash tables".into());
    let user = user_inputs(cfg, retriever.hash_tables().ok_or_else(no_tables)?, seq)?;
    let kcfg = ranker.config();
    let ranker_tables = ranker.hash_tables().ok_or_else(no_tables)?;
    let ranker_user = user_inputs(kcfg, ranker_tables, seq)?;
    let items: Vec<CorpusItem> = corpus
        .post_ids
        .iter()
        .zip(&corpus.author_ids)
        .map(|(&post_id, &author_id)| CorpusItem { post_id, author_id })
        .collect();
    let index = Corpus::from_representations(items, corpus.representations.clone(), corpus.dim)?;
    let rep = retriever.user_representation(&user)?;
    let k = opts.top_k_retrieval.min(index.len());
    let rows = index
        .search_rows(retriever, &rep, k)?
        .pop()
        .unwrap_or_default();
    let retrieved: Vec<RetrievedPost> = rows
        .into_iter()
        .map(|(row, score)| {
            let i = row as usize;
            RetrievedPost {
                corpus_index: i,
                post_id: corpus.post_ids[i],
                author_id: corpus.author_ids[i],
                score,
                topic: corpus.topics.get(i).cloned().unwrap_or_default(),
            }
        })
        .collect();
    let width = cfg.candidate_seq_len.max(1);
    let mut ranker_probs = Vec::with_capacity(retrieved.len());
    for chunk in retrieved.chunks(width) {
        let cands: Vec<CandidateItem> = chunk
            .iter()
            .map(|p| CandidateItem {
                post_id: p.post_id,
                author_id: p.author_id,
                ..CandidateItem::default()
            })
            .collect();
        let inputs = RecsysInputs {
            user: ranker_user.clone(),
            candidates: ranker_tables.candidate_inputs(kcfg, &[&cands], width)?,
        };
        let out = ranker.forward_chunked(&inputs, width)?;
        let a = out.num_actions;
        ranker_probs.extend((0..chunk.len()).map(|i| out.probs[i * a..(i + 1) * a].to_vec()));
    }
    let weighted: Vec<f32> = ranker_probs
        .iter()
        .map(|p| weighted_score(p, opts.dtype))
        .collect();
    let mut ranked: Vec<usize> = (0..weighted.len()).collect();
    ranked.sort_by(|&x, &y| weighted[y].total_cmp(&weighted[x]));
    Ok(PipelineResult {
        user_id: seq.user_id,
        history_items: seq.history.len(),
        corpus_size: corpus.len(),
        retrieved,
        ranker_probs,
        weighted,
        ranked,
    })
}

/// The table `run_pipeline.py` prints, byte for byte in its format.
pub fn table(r: &PipelineResult, top_k_display: usize) -> String {
    let rule = "=".repeat(120);
    let mut s = format!(
        "\n{rule}\nPIPELINE RESULTS — User {}\nHistory: {} items | Corpus: {} posts\nRetrieved top {} → Ranked by engagement model\n{rule}\n",
        r.user_id,
        r.history_items,
        r.corpus_size,
        r.retrieved.len()
    );
    s.push_str(&format!(
        "{:<5} {:<8} {:<7} {:<7} {:<7} {:<7} {:<7} {:<7} {:<30} Post URL\n{}\n",
        "Rank",
        "Score",
        "Ret",
        "Fav",
        "Reply",
        "RT",
        "Dwell",
        "VQV",
        "Topics",
        "-".repeat(120)
    ));
    for (rank, &i) in r.ranked.iter().take(top_k_display).enumerate() {
        let post = &r.retrieved[i];
        let p = |c: usize| r.ranker_probs[i].get(c).copied().unwrap_or(0.0);
        let topic: String = post.topic.chars().take(28).collect();
        s.push_str(&format!(
            "{:<5} {:<8.4} {:<7.4} {:<7.4} {:<7.4} {:<7.4} {:<7.4} {:<7.4} {:<30} https://x.com/a/status/{}\n",
            rank + 1,
            r.weighted[i],
            post.score,
            p(DISPLAY_COLUMNS[0]),
            p(DISPLAY_COLUMNS[1]),
            p(DISPLAY_COLUMNS[2]),
            p(DISPLAY_COLUMNS[3]),
            p(DISPLAY_COLUMNS[4]),
            topic,
            post.post_id
        ));
    }
    let (lo, hi) = r
        .weighted
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &w| {
            (lo.min(w), hi.max(w))
        });
    s.push_str(&format!(
        "\nWeighted score range: [{lo:.4}, {hi:.4}]\n{rule}\n"
    ));
    s
}

/// Loads the directory's models in `opts.dtype`, its default sequence and
/// corpus unless given, and runs the pipeline.
pub fn run_dir(
    root: &Path,
    sequence: Option<&Path>,
    corpus: Option<&Path>,
    opts: &PipelineOptions,
) -> Result<PipelineResult> {
    let art = |e: super::ArtifactError| EngineError::Input(e.to_string());
    let ((rcfg, rw), (kcfg, kw)) = super::model::load_pair(root, opts.dtype)?;
    let retriever = PhoenixRetriever::new(rcfg, rw, opts.dtype)?;
    let ranker = PhoenixRanker::new(kcfg, kw, opts.dtype)?;
    let dir = super::ArtifactDir::open(root).map_err(art)?;
    let seq = match sequence {
        Some(p) => Sequence::open(p).map_err(art)?,
        None => dir.default_sequence().map_err(art)?,
    };
    let corpus_path = corpus.map_or_else(|| dir.default_corpus_path(), Path::to_path_buf);
    let corpus = dir.corpus(&corpus_path).map_err(art)?;
    run(&retriever, &ranker, &seq, &corpus, opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::sequence::HistoryItem as SeqItem;

    #[test]
    fn action_values_reach_the_model_as_written_not_as_flags() -> Result<()> {
        let root =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/phoenix-v2/v2_artifacts");
        let ((_, _), (kcfg, kw)) = super::super::model::load_pair(&root, FpropDtype::F32)?;
        let tables = kw.hash_tables.as_ref().expect("tables");
        let seq = Sequence {
            user_id: 7,
            history: vec![
                SeqItem {
                    post_id: 11,
                    author_id: 3,
                    actions: vec![(1, 1.0), (11, 0.5), (40, 1.0)],
                },
                SeqItem {
                    post_id: 12,
                    author_id: 3,
                    actions: Vec::new(),
                },
            ],
        };
        let user = user_inputs(&kcfg, tables, &seq)?;
        let a = kcfg.num_actions;
        assert_eq!(user.history_actions[1], 1.0);
        assert_eq!(user.history_actions[11], 0.5, "a fractional value stays");
        assert_eq!(user.history_actions[a..2 * a].iter().sum::<f32>(), 0.0);
        // Two items fill slots 0 and 1; the rest is padding.
        assert!(user.history_valid(&kcfg, 0, 1) && !user.history_valid(&kcfg, 0, 2));
        Ok(())
    }

    #[test]
    fn the_bf16_weighted_score_rounds_every_step_like_numpy() {
        let mut p = vec![0f32; 19];
        (p[1], p[4], p[6], p[11]) = (0.7266, 0.7266, 0.6797, 0.6719);
        // bf16 weights 1.0, 0.5, bf16(0.3) = 0.30078125, bf16(0.2) =
        // 0.2001953125; every product and sum rounded.
        let r = |x: f32| bf16::from_f32(x).to_f32();
        let want = r(
            r(r(r(r(0.7266) * 1.0) + r(r(0.7266) * 0.5)) + r(r(0.6797) * r(0.3)))
                + r(r(0.6719) * r(0.2)),
        );
        assert_eq!(weighted_score(&p, FpropDtype::Bf16), want);
        assert_eq!(
            want, 1.4296875,
            "the script's 1.4297 (its table's first row)"
        );
        let f = 0.7266 + 0.7266 * 0.5 + 0.6797 * 0.3 + 0.6719 * 0.2;
        assert!((weighted_score(&p, FpropDtype::F32) - f).abs() < 1e-6);
    }
}
