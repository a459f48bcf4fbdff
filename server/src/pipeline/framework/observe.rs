//! The one wrapper every component call goes through: a tracing span with
//! the request id, stage and component; the per-component time budget; a
//! latency histogram, an error counter and an output-size histogram per
//! (stage, component); and a [`ComponentRun`] for the request's trace.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use tracing::Instrument;

use super::component::ComponentError;
use super::result::{ComponentRun, Outcome};

/// Component latency, seconds, labelled by stage and component.
pub const COMPONENT_DURATION: &str = "foryou_pipeline_component_duration_seconds";
/// Component failures (errors, time-outs, length mismatches).
pub const COMPONENT_ERRORS: &str = "foryou_pipeline_component_errors_total";
/// Candidates a component returned (kept, for filters).
pub const COMPONENT_OUTPUT: &str = "foryou_pipeline_component_output_candidates";

/// The stage a component runs in (spec §1.4 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Query hydrators.
    QueryHydrator,
    /// Sources.
    Source,
    /// Pre-selection hydrators.
    Hydrator,
    /// Pre-selection filters.
    Filter,
    /// Scorers.
    Scorer,
    /// The selector.
    Selector,
    /// Post-selection hydrators.
    PostSelectionHydrator,
    /// Post-selection filters.
    PostSelectionFilter,
    /// Side effects.
    SideEffect,
}

impl Stage {
    /// The stage's name in logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::QueryHydrator => "QueryHydrator",
            Stage::Source => "Source",
            Stage::Hydrator => "Hydrator",
            Stage::Filter => "Filter",
            Stage::Scorer => "Scorer",
            Stage::Selector => "Selector",
            Stage::PostSelectionHydrator => "PostSelectionHydrator",
            Stage::PostSelectionFilter => "PostSelectionFilter",
            Stage::SideEffect => "SideEffect",
        }
    }

    /// Whether the stage's components run at once (spec §1.3): query
    /// hydrators, sources, hydrators (pre and post) and side effects. The
    /// others run one after another.
    pub fn is_concurrent(self) -> bool {
        match self {
            Stage::QueryHydrator
            | Stage::Source
            | Stage::Hydrator
            | Stage::PostSelectionHydrator
            | Stage::SideEffect => true,
            Stage::Filter | Stage::Scorer | Stage::Selector | Stage::PostSelectionFilter => false,
        }
    }
}

/// Runs one component call under the budget (`None`: no budget) and
/// records it. `size` gives the output size of a success for the metrics.
pub(crate) async fn observe<T>(
    stage: Stage,
    component: &'static str,
    request_id: &str,
    budget: Option<Duration>,
    size: impl FnOnce(&T) -> usize,
    call: impl Future<Output = Result<T, ComponentError>>,
) -> (Result<T, ComponentError>, ComponentRun) {
    let span = tracing::info_span!("component", request_id, stage = stage.as_str(), component);
    let started = Instant::now();
    let result = async {
        match budget {
            Some(b) => tokio::time::timeout(b, call)
                .await
                .unwrap_or(Err(ComponentError::TimedOut(b))),
            None => call.await,
        }
    }
    .instrument(span.clone())
    .await;
    let elapsed = started.elapsed();
    let labels = [("stage", stage.as_str()), ("component", component)];
    metrics::histogram!(COMPONENT_DURATION, &labels).record(elapsed.as_secs_f64());
    let (outcome, output_len) = match &result {
        Ok(v) => {
            let n = size(v);
            metrics::histogram!(COMPONENT_OUTPUT, &labels).record(n as f64);
            (Outcome::Ok, Some(n))
        }
        Err(e) => {
            metrics::counter!(COMPONENT_ERRORS, &labels).increment(1);
            (outcome_of(e), None)
        }
    };
    (
        result,
        ComponentRun {
            stage,
            component,
            duration: elapsed,
            outcome,
            output_len,
            removed: 0,
        },
    )
}

/// At most one failure line per (stage, component) in this window; the
/// rest are counted (every failure is in [`COMPONENT_ERRORS`]) and the
/// next line says how many were left out.
pub const FAILURE_LOG_WINDOW: Duration = Duration::from_secs(1);

/// Per (stage, component): when its last failure line was written and how
/// many failures were left out since.
type FailureLog = HashMap<(Stage, &'static str), (Instant, u64)>;
static FAILURE_LOG: LazyLock<Mutex<FailureLog>> = LazyLock::new(Default::default);

/// Whether a failure of (stage, component) at `now` gets a line, and how
/// many were left out before it.
fn failure_line_due(stage: Stage, component: &'static str, now: Instant) -> Option<u64> {
    let mut log = FAILURE_LOG.lock().unwrap_or_else(|p| p.into_inner());
    match log.get_mut(&(stage, component)) {
        Some((last, left_out)) if now.duration_since(*last) < FAILURE_LOG_WINDOW => {
            *left_out += 1;
            None
        }
        Some((last, left_out)) => {
            *last = now;
            Some(std::mem::take(left_out))
        }
        None => {
            log.insert((stage, component), (now, 0));
            Some(0)
        }
    }
}

/// Logs a failed call the way spec §1.4 asks: an error for a failure, a
/// warning for a length mismatch; rate-limited per component
/// ([`FAILURE_LOG_WINDOW`]), so a failing backend under load does not
/// flood the log.
pub(crate) fn log_failure(
    stage: Stage,
    component: &'static str,
    request_id: &str,
    e: &ComponentError,
) {
    let Some(left_out) = failure_line_due(stage, component, Instant::now()) else {
        return;
    };
    match e {
        ComponentError::LengthMismatch { expected, got } => tracing::warn!(
            request_id,
            stage = stage.as_str(),
            component,
            expected,
            got,
            left_out,
            "length_mismatch; skipped"
        ),
        _ => tracing::error!(
            request_id,
            stage = stage.as_str(),
            component,
            error = %e,
            left_out,
            "component failed"
        ),
    }
}

fn outcome_of(e: &ComponentError) -> Outcome {
    match e {
        ComponentError::Failed(m) => Outcome::Failed(m.clone()),
        ComponentError::TimedOut(_) => Outcome::TimedOut,
        ComponentError::LengthMismatch { expected, got } => Outcome::LengthMismatch {
            expected: *expected,
            got: *got,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_lines_are_one_per_window_per_component_and_count_the_rest() {
        let t0 = Instant::now();
        let (stage, a, b) = (Stage::Scorer, "RateLimitTestA", "RateLimitTestB");
        assert_eq!(failure_line_due(stage, a, t0), Some(0));
        for i in 1..=5 {
            let t = t0 + Duration::from_millis(100 * i);
            assert_eq!(failure_line_due(stage, a, t), None, "inside the window");
        }
        assert_eq!(
            failure_line_due(stage, b, t0 + Duration::from_millis(200)),
            Some(0),
            "another component has its own window"
        );
        let later = t0 + FAILURE_LOG_WINDOW + Duration::from_millis(1);
        assert_eq!(
            failure_line_due(stage, a, later),
            Some(5),
            "says what it left out"
        );
        assert_eq!(failure_line_due(stage, a, later), None);
    }
}
