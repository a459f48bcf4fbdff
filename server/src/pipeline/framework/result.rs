//! What a pipeline run returns (spec §1.4), plus a per-component trace for
//! debug responses.

use std::sync::Arc;
use std::time::Duration;

use super::observe::Stage;

/// How one component call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its output was used.
    Ok,
    /// It failed; its output was ignored (filters: their input restored).
    Failed(String),
    /// It overran the per-component budget and counts as failed.
    TimedOut,
    /// A hydrator or scorer returned the wrong number of candidates.
    LengthMismatch {
        /// Candidates given.
        expected: usize,
        /// Candidates returned.
        got: usize,
    },
}

/// One component call of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentRun {
    /// Its stage.
    pub stage: Stage,
    /// Its name.
    pub component: &'static str,
    /// Wall time of the call.
    pub duration: Duration,
    /// How it ended.
    pub outcome: Outcome,
    /// Candidates it returned (kept, for filters) when it succeeded.
    pub output_len: Option<usize>,
    /// Candidates it removed (filters only).
    pub removed: usize,
}

/// The result of one `execute`.
#[derive(Debug, Clone)]
pub struct PipelineResult<Q, C> {
    /// After hydration, before any filter.
    pub retrieved_candidates: Vec<C>,
    /// Pre-selection removals then post-selection removals, in removal
    /// order (selector and final truncation losses are not included).
    pub filtered_candidates: Vec<C>,
    /// The final list.
    pub selected_candidates: Vec<C>,
    /// The hydrated query.
    pub query: Arc<Q>,
    /// Every component call in the order it finished its stage (side
    /// effects excluded: they run after the result is formed).
    pub trace: Vec<ComponentRun>,
}
