//! The selector (spec §2.8.1).

pub mod top_k_score_selector;

pub use top_k_score_selector::TopKScoreSelector;
