//! Whether the ranker can score, judged from its answers: a run of
//! internal failures marks it unable (health then reports NOT_SERVING for
//! the services that need it, `roles/readiness.rs`); one success, a
//! request's or a probe's, marks it able again.
//!
//! Refused requests (INVALID_ARGUMENT), shed ones (RESOURCE_EXHAUSTED) and
//! ones whose deadline passed say nothing about the model and are not
//! counted.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::watch;

/// Internal failures in a row that mark the ranker unable.
pub const FAILURES_TO_UNABLE: u32 = 3;
/// How often an unable ranker is probed with a one-candidate request.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Gauge: 1 while the ranker can score, 0 while it cannot.
pub const RANKER_ABLE: &str = "foryou_ranker_able";
/// Counter: Predict calls that failed inside the engine (INTERNAL).
pub const RANKER_FAILURES: &str = "foryou_ranker_internal_failures_total";

/// Registers the metrics' help texts.
pub fn describe() {
    metrics::describe_gauge!(
        RANKER_ABLE,
        "1 while the ranker can score, 0 while it cannot"
    );
    metrics::describe_counter!(
        RANKER_FAILURES,
        "Predict calls that failed inside the engine (INTERNAL)"
    );
}

/// The ranker's health, shared by the Phoenix service (which records) and
/// the health reporter (which watches).
#[derive(Debug)]
pub struct ScoringHealth {
    in_a_row: AtomicU32,
    threshold: u32,
    able: watch::Sender<bool>,
}

impl Default for ScoringHealth {
    fn default() -> Self {
        Self::new(FAILURES_TO_UNABLE)
    }
}

impl ScoringHealth {
    /// Able at first; `threshold` failures in a row (at least 1) make it
    /// unable.
    pub fn new(threshold: u32) -> Self {
        metrics::gauge!(RANKER_ABLE).set(1.0);
        Self {
            in_a_row: AtomicU32::new(0),
            threshold: threshold.max(1),
            able: watch::Sender::new(true),
        }
    }

    /// A scored request: the run of failures ends, and an unable ranker is
    /// able again.
    pub fn record_success(&self) {
        self.in_a_row.store(0, Ordering::Relaxed);
        self.set(true, "");
    }

    /// An internal failure; the threshold-th in a row marks it unable.
    pub fn record_failure(&self, why: &str) {
        metrics::counter!(RANKER_FAILURES).increment(1);
        let n = self
            .in_a_row
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if n >= self.threshold {
            self.set(false, why);
        }
    }

    /// Marks it unable at once (a failed start-up probe).
    pub fn mark_unable(&self, why: &str) {
        self.in_a_row.store(self.threshold, Ordering::Relaxed);
        self.set(false, why);
    }

    /// Whether it can score now.
    pub fn is_able(&self) -> bool {
        *self.able.borrow()
    }

    /// A receiver that sees every change.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.able.subscribe()
    }

    fn set(&self, able: bool, why: &str) {
        let changed = self.able.send_if_modified(|v| {
            let changed = *v != able;
            *v = able;
            changed
        });
        // Every Predict lands here: touch the gauge and the log on a change
        // only.
        if !changed {
            return;
        }
        metrics::gauge!(RANKER_ABLE).set(if able { 1.0 } else { 0.0 });
        if able {
            tracing::info!("the ranker scores again");
        } else {
            tracing::error!(why, "the ranker cannot score; health reports NOT_SERVING");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_failures_makes_it_unable_and_one_success_able_again() {
        let h = ScoringHealth::new(3);
        let mut rx = h.watch();
        h.record_failure("a");
        h.record_failure("b");
        assert!(h.is_able(), "two failures are not a run of three");
        h.record_success();
        h.record_failure("c");
        h.record_failure("d");
        assert!(h.is_able(), "a success restarts the count");
        assert!(!rx.has_changed().expect("sender alive"));
        h.record_failure("e");
        assert!(!h.is_able());
        assert!(rx.has_changed().expect("sender alive"));
        assert!(!*rx.borrow_and_update());
        h.record_success();
        assert!(h.is_able());
        assert!(*rx.borrow_and_update());
        h.mark_unable("probe failed");
        assert!(!h.is_able(), "a failed probe counts at once");
    }
}
