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

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Failed(m) => write!(f, "failed: {m}"),
            Outcome::TimedOut => f.write_str("timed out (the component budget passed)"),
            Outcome::LengthMismatch { expected, got } => {
                write!(f, "length mismatch: {got} candidates for {expected}")
            }
        }
    }
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
    /// After hydration, before any filter (empty when the pipeline was
    /// built [`without_retrieved_snapshot`](super::CandidatePipeline::without_retrieved_snapshot)).
    pub retrieved_candidates: Vec<C>,
    /// How many candidates there were after hydration (kept or not).
    pub retrieved_count: usize,
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

impl<Q, C> PipelineResult<Q, C> {
    /// The time the run spent in its stages, as the trace records it: per
    /// stage, the slowest call for a concurrent stage (its calls overlap, so
    /// the stage lasts at least that long) and the sum of the calls for a
    /// sequential one ([`Stage::is_concurrent`]), added over the stages.
    /// Stages run one after another, so this never exceeds the run's wall
    /// time; what it leaves out is the framework's own work between calls
    /// (cloning inputs, applying updates, truncation).
    pub fn time_in_stages(&self) -> Duration {
        let mut per_stage: Vec<(Stage, Duration)> = Vec::new();
        for run in &self.trace {
            match per_stage.iter_mut().find(|(s, _)| *s == run.stage) {
                Some((s, d)) if s.is_concurrent() => *d = (*d).max(run.duration),
                Some((_, d)) => *d += run.duration,
                None => per_stage.push((run.stage, run.duration)),
            }
        }
        per_stage.iter().map(|(_, d)| *d).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stage: Stage, ms: u64) -> ComponentRun {
        ComponentRun {
            stage,
            component: "C",
            duration: Duration::from_millis(ms),
            outcome: Outcome::Ok,
            output_len: Some(0),
            removed: 0,
        }
    }

    #[test]
    fn time_in_stages_takes_the_slowest_concurrent_call_and_sums_sequential_ones() {
        let result = PipelineResult::<(), ()> {
            retrieved_candidates: Vec::new(),
            retrieved_count: 0,
            filtered_candidates: Vec::new(),
            selected_candidates: Vec::new(),
            query: Arc::new(()),
            trace: vec![
                run(Stage::QueryHydrator, 4),
                run(Stage::QueryHydrator, 9),
                run(Stage::Source, 30),
                run(Stage::Source, 12),
                run(Stage::Hydrator, 5),
                run(Stage::Filter, 2),
                run(Stage::Filter, 3),
                run(Stage::Scorer, 20),
                run(Stage::Scorer, 1),
                run(Stage::Selector, 1),
                run(Stage::PostSelectionHydrator, 6),
                run(Stage::PostSelectionHydrator, 7),
                run(Stage::PostSelectionFilter, 2),
            ],
        };
        // 9 + 30 + 5 + (2 + 3) + (20 + 1) + 1 + 7 + 2.
        assert_eq!(result.time_in_stages(), Duration::from_millis(80));
    }
}
