//! [`CircuitBreaker`]: calls to a remote backend fail at once while it is
//! down or hung, instead of each waiting out `--client-timeout-ms`.
//!
//! States (spec §4.4, issue 18):
//! - **closed**: calls go through. Each failed call adds one to a count of
//!   consecutive failures, each successful one resets it; at
//!   [`BreakerPolicy::failures`] the breaker opens.
//! - **open**: calls fail at once with [`BreakerOpen`] (no request is sent)
//!   until [`BreakerPolicy::cooldown`] has passed since it opened.
//! - **half-open**: the first call after the cool-down is let through as
//!   the probe; the others fail at once while it is in flight. Its success
//!   closes the breaker; its failure opens it for another cool-down.
//!
//! What counts as a failure ([`counts_as_failure`]): the codes that say
//! the backend is unreachable, slow or broken: CANCELLED (tonic's client
//! timeout), DEADLINE_EXCEEDED, UNAVAILABLE (cannot connect), UNKNOWN and
//! INTERNAL (transport or server faults), DATA_LOSS. An answer that shows
//! the backend alive and quick does not: a rejected request
//! (INVALID_ARGUMENT and the like) or load shed at once
//! (RESOURCE_EXHAUSTED, which already costs no wait).
//!
//! **Background probe** ([`CircuitBreaker::probe_in_background`], what the
//! remote clients use): instead of letting a caller's call through as the
//! probe, a task makes a small real request of the service
//! ([`call_prober`]: a one-candidate Predict, a one-author Thunder query)
//! every cool-down while the breaker is open, and closes it when the
//! request is answered. A real request rather than a health check: a
//! backend whose process answers health but whose handlers hang stays
//! cut off. No caller ever waits on a hung backend once the breaker is
//! open, and one that returns is used again within a cool-down plus one
//! probe (the half-open state is then never entered).
//!
//! Concurrency: outcomes count only in the state their call was admitted
//! under (each transition starts a new epoch), so calls that were in
//! flight when the breaker opened cannot close or re-open it later; only
//! the probe decides the half-open state. A probe whose caller gives up
//! before it settles counts as failed, so the breaker never waits on a
//! probe that will not report. A call admitted while closed and abandoned
//! counts nothing.
//!
//! Cost: one uncontended `parking_lot` mutex lock to admit a call and one
//! to record its outcome, never held across an await; one clock read each.
//!
//! Metrics (label `service`: the breaker's name, e.g. `thunder`,
//! `phoenix_ranker`): [`REJECTED`], [`TRANSITIONS`] and [`STATE`].
//!
//! Hand-written rather than a crate: `failsafe` 1.3 (the common Rust
//! breaker) lets every call through while half-open instead of one probe,
//! reads time through its own clock module rather than an injected
//! [`Clock`], and would bring a second `rand` (0.8; we use 0.10). The
//! state machine here is small, on the crate's [`Clock`], with the probe
//! and epoch rules above and our metrics.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::ClientError;
use crate::clock::{Clock, SystemClock};

/// Counter with label `service`: calls failed at once by an open breaker.
pub const REJECTED: &str = "foryou_client_breaker_rejected_total";
/// Counter with labels `service`, `state` (the state entered: closed, open,
/// half_open): breaker state changes.
pub const TRANSITIONS: &str = "foryou_client_breaker_transitions_total";
/// Gauge with label `service`: the breaker's state, 0 closed, 1 open,
/// 2 half-open.
pub const STATE: &str = "foryou_client_breaker_state";

/// Registers the breaker metrics' help texts (call once at start).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_counter!(
        REJECTED,
        Unit::Count,
        "remote calls failed at once by an open circuit breaker"
    );
    describe_counter!(TRANSITIONS, Unit::Count, "circuit breaker state changes");
    describe_gauge!(
        STATE,
        "circuit breaker state: 0 closed, 1 open, 2 half-open"
    );
}

/// When a breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the breaker; 0 never opens it.
    pub failures: u32,
    /// How long an open breaker fails calls before letting a probe through.
    pub cooldown: Duration,
}

impl Default for BreakerPolicy {
    /// 5 failures, 250 ms (the `foryou serve` defaults; see `config.rs`).
    fn default() -> Self {
        Self {
            failures: 5,
            cooldown: Duration::from_millis(250),
        }
    }
}

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail at once until the cool-down has passed.
    Open,
    /// One probe call is in flight; the others fail at once.
    HalfOpen,
}

impl BreakerState {
    /// The `state` label.
    pub fn name(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// The [`STATE`] gauge's value.
    fn gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::Open => 1.0,
            Self::HalfOpen => 2.0,
        }
    }
}

/// Why a call was failed without being made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BreakerOpen {
    /// Open, cooling down.
    #[error(
        "circuit breaker {breaker} is open after {failures} consecutive failures: \
         next probe in {} ms, no call made",
        retry_in.as_millis()
    )]
    CoolingDown {
        /// The breaker's name.
        breaker: &'static str,
        /// Failures since the last success.
        failures: u32,
        /// Time left until a probe is let through.
        retry_in: Duration,
    },
    /// Half-open, with the probe in flight.
    #[error("circuit breaker {breaker} is open: a probe call is in flight, no call made")]
    Probing {
        /// The breaker's name.
        breaker: &'static str,
    },
}

/// Whether a call that ended with `code` counts against the backend (see
/// the module doc).
pub fn counts_as_failure(code: tonic::Code) -> bool {
    use tonic::Code;
    matches!(
        code,
        Code::Cancelled
            | Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unavailable
            | Code::Internal
            | Code::DataLoss
    )
}

/// Asks whether the backend is back (true: close the breaker). It must
/// bound its own wait.
pub type Prober = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// A [`Prober`] that makes `call` (a small real request of the service)
/// and says the backend is back when it answers in a way that does not
/// count as a failure ([`counts_as_failure`]). The call's channel timeout
/// bounds the wait.
pub fn call_prober<F>(call: impl Fn() -> F + Send + Sync + 'static) -> Prober
where
    F: Future<Output = Result<(), tonic::Status>> + Send + 'static,
{
    Arc::new(move || {
        let call = call();
        Box::pin(async move {
            match call.await {
                Ok(()) => true,
                Err(s) => !counts_as_failure(s.code()),
            }
        })
    })
}

/// A circuit breaker around one remote service (see the module doc).
/// Share it with `Arc` (or a `Clone` client holding one).
#[derive(Debug)]
pub struct CircuitBreaker {
    /// The metrics label and the name in messages.
    name: &'static str,
    /// The service named in the [`ClientError`]s of [`Self::call`].
    service: &'static str,
    policy: BreakerPolicy,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
    /// A background task probes while open; callers are never the probe.
    background_probe: AtomicBool,
    /// Wakes the probe task when the breaker opens (or is dropped).
    opened: Arc<Notify>,
}

impl Drop for CircuitBreaker {
    fn drop(&mut self) {
        // Lets a waiting probe task see the breaker is gone and end.
        self.opened.notify_one();
    }
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// Failures since the last success.
    failures: u32,
    /// Bumped on every transition; a permit's outcome counts only in its
    /// own epoch.
    epoch: u64,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed,
    /// Opened at this monotonic time.
    Open {
        since: Duration,
    },
    HalfOpen,
}

impl State {
    fn public(self) -> BreakerState {
        match self {
            Self::Closed => BreakerState::Closed,
            Self::Open { .. } => BreakerState::Open,
            Self::HalfOpen => BreakerState::HalfOpen,
        }
    }
}

impl CircuitBreaker {
    /// A closed breaker named `name` (the metrics label), whose call errors
    /// name `service`, on the system clock.
    pub fn new(name: &'static str, service: &'static str, policy: BreakerPolicy) -> Self {
        Self::with_clock(name, service, policy, Arc::new(SystemClock::new()))
    }

    /// As [`Self::new`], reading monotonic time from `clock`.
    pub fn with_clock(
        name: &'static str,
        service: &'static str,
        policy: BreakerPolicy,
        clock: Arc<dyn Clock>,
    ) -> Self {
        metrics::gauge!(STATE, "service" => name).set(BreakerState::Closed.gauge());
        Self {
            name,
            service,
            policy,
            clock,
            inner: Mutex::new(Inner {
                state: State::Closed,
                failures: 0,
                epoch: 0,
            }),
            background_probe: AtomicBool::new(false),
            opened: Arc::new(Notify::new()),
        }
    }

    /// From now on, while open, `prober` is asked every cool-down in a task
    /// on the current Tokio runtime, and its true closes the breaker;
    /// callers keep failing at once until then (see the module doc). The
    /// task ends when the breaker is dropped. Outside a runtime nothing
    /// changes (a caller's call stays the probe).
    pub fn probe_in_background(self: &Arc<Self>, prober: Prober) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.background_probe.store(true, Ordering::Release);
        let (weak, opened) = (Arc::downgrade(self), self.opened.clone());
        runtime.spawn(probe_while_open(weak, opened, prober));
    }

    /// The epoch of the open state, if open.
    fn open_epoch(&self) -> Option<u64> {
        let inner = self.inner.lock();
        matches!(inner.state, State::Open { .. }).then_some(inner.epoch)
    }

    /// A background probe succeeded in the open state of `epoch`.
    fn close_after_probe(&self, epoch: u64) {
        let mut inner = self.inner.lock();
        if inner.epoch == epoch && matches!(inner.state, State::Open { .. }) {
            inner.failures = 0;
            self.enter(&mut inner, State::Closed);
        }
    }

    /// The breaker's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The state as last set by a call (an open breaker whose cool-down has
    /// passed reads open until the next call probes).
    pub fn state(&self) -> BreakerState {
        self.inner.lock().state.public()
    }

    /// Admits a call, or says why not. The caller reports the outcome on
    /// the permit.
    pub fn try_acquire(&self) -> Result<Permit<'_>, BreakerOpen> {
        let now = self.clock.monotonic();
        let mut inner = self.inner.lock();
        let rejected = match inner.state {
            State::Closed => None,
            State::Open { since } => match self
                .policy
                .cooldown
                .checked_sub(now.saturating_sub(since))
                .filter(|left| !left.is_zero())
            {
                None if self.background_probe.load(Ordering::Acquire) => {
                    Some(BreakerOpen::CoolingDown {
                        breaker: self.name,
                        failures: inner.failures,
                        retry_in: self.policy.cooldown,
                    })
                }
                None => {
                    self.enter(&mut inner, State::HalfOpen);
                    return Ok(Permit::new(self, inner.epoch, true));
                }
                Some(retry_in) => Some(BreakerOpen::CoolingDown {
                    breaker: self.name,
                    failures: inner.failures,
                    retry_in,
                }),
            },
            State::HalfOpen => Some(BreakerOpen::Probing { breaker: self.name }),
        };
        let epoch = inner.epoch;
        drop(inner);
        match rejected {
            None => Ok(Permit::new(self, epoch, false)),
            Some(why) => {
                metrics::counter!(REJECTED, "service" => self.name).increment(1);
                Err(why)
            }
        }
    }

    /// Runs the call `make` builds, if the breaker admits it, and records
    /// its outcome. A rejected call is never built: no request is sent.
    pub async fn call<T, F>(&self, make: impl FnOnce() -> F) -> Result<T, ClientError>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let permit = self
            .try_acquire()
            .map_err(|why| ClientError::new(self.service, why.to_string()))?;
        let result = make().await;
        permit.record(
            result
                .as_ref()
                .map_or_else(|s| !counts_as_failure(s.code()), |_| true),
        );
        result
            .map(tonic::Response::into_inner)
            .map_err(|s| super::error::from_status(self.service, s))
    }

    /// Records one outcome of a call admitted in `epoch`.
    fn settle(&self, epoch: u64, ok: bool) {
        let now = self.clock.monotonic();
        let mut inner = self.inner.lock();
        if inner.epoch != epoch {
            return; // admitted under an earlier state
        }
        match (inner.state, ok) {
            (State::Closed, true) => inner.failures = 0,
            (State::Closed, false) => {
                inner.failures = inner.failures.saturating_add(1);
                if self.policy.failures > 0 && inner.failures >= self.policy.failures {
                    self.enter(&mut inner, State::Open { since: now });
                }
            }
            (State::HalfOpen, true) => {
                inner.failures = 0;
                self.enter(&mut inner, State::Closed);
            }
            (State::HalfOpen, false) => {
                inner.failures = inner.failures.saturating_add(1);
                self.enter(&mut inner, State::Open { since: now });
            }
            // No permit is issued in an open epoch.
            (State::Open { .. }, _) => {}
        }
    }

    /// Moves to `state` under the lock (transitions are rare; the gauge is
    /// set in order).
    fn enter(&self, inner: &mut Inner, state: State) {
        inner.state = state;
        inner.epoch = inner.epoch.wrapping_add(1);
        let public = state.public();
        metrics::counter!(TRANSITIONS, "service" => self.name, "state" => public.name())
            .increment(1);
        metrics::gauge!(STATE, "service" => self.name).set(public.gauge());
        if public == BreakerState::Open {
            self.opened.notify_one();
        }
        match public {
            BreakerState::Open => tracing::warn!(
                breaker = self.name,
                failures = inner.failures,
                cooldown_ms = u64::try_from(self.policy.cooldown.as_millis()).unwrap_or(u64::MAX),
                "circuit breaker open: calls fail at once until a probe succeeds"
            ),
            BreakerState::HalfOpen => {
                tracing::info!(breaker = self.name, "circuit breaker half-open: probing")
            }
            BreakerState::Closed => tracing::info!(breaker = self.name, "circuit breaker closed"),
        }
    }
}

/// The background probe task: waits for the breaker to open, then asks
/// `prober` every cool-down until it says the backend is back.
async fn probe_while_open(weak: Weak<CircuitBreaker>, opened: Arc<Notify>, prober: Prober) {
    loop {
        // Wait until open (register for the wake-up before looking).
        let epoch = loop {
            let notified = opened.notified();
            let Some(b) = weak.upgrade() else { return };
            if let Some(epoch) = b.open_epoch() {
                break epoch;
            }
            drop(b);
            notified.await;
        };
        // Probe every cool-down until closed (by us or anything else).
        loop {
            let Some(cooldown) = weak.upgrade().map(|b| b.policy.cooldown) else {
                return;
            };
            tokio::time::sleep(cooldown).await;
            let back = prober().await;
            let Some(b) = weak.upgrade() else { return };
            if b.open_epoch() != Some(epoch) {
                break;
            }
            if back {
                tracing::info!(breaker = b.name, "the backend answered a probe request");
                b.close_after_probe(epoch);
                break;
            }
        }
    }
}

/// An admitted call. Report its outcome with [`Permit::record`]; dropping
/// it unreported counts nothing, except for the probe, which counts as
/// failed.
#[derive(Debug)]
#[must_use = "report the call's outcome with `record`"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    epoch: u64,
    probe: bool,
    settled: bool,
}

impl<'a> Permit<'a> {
    fn new(breaker: &'a CircuitBreaker, epoch: u64, probe: bool) -> Self {
        Self {
            breaker,
            epoch,
            probe,
            settled: false,
        }
    }

    /// Whether this call is the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// Records the call's outcome: `ok` false for a failure that counts.
    pub fn record(mut self, ok: bool) {
        self.settled = true;
        self.breaker.settle(self.epoch, ok);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.settled && self.probe {
            self.breaker.settle(self.epoch, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;
    use crate::clock::ManualClock;

    const COOLDOWN: Duration = Duration::from_millis(2000);

    fn breaker(failures: u32) -> (CircuitBreaker, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(0));
        let policy = BreakerPolicy {
            failures,
            cooldown: COOLDOWN,
        };
        let b = CircuitBreaker::with_clock("test", "test", policy, clock.clone());
        (b, clock)
    }

    fn fail(b: &CircuitBreaker, n: u32) {
        for _ in 0..n {
            b.try_acquire().expect("admitted").record(false);
        }
    }

    fn succeed(b: &CircuitBreaker) {
        b.try_acquire().expect("admitted").record(true);
    }

    #[test]
    fn opens_after_n_consecutive_failures() {
        let (b, _) = breaker(5);
        fail(&b, 4);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b, 1);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let (b, _) = breaker(3);
        fail(&b, 2);
        succeed(&b);
        fail(&b, 2);
        assert_eq!(b.state(), BreakerState::Closed, "2 + 2 are not 3 in a row");
        fail(&b, 1);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn an_open_breaker_fails_calls_at_once_until_the_cooldown_has_passed() {
        let (b, clock) = breaker(2);
        fail(&b, 2);
        let why = b.try_acquire().expect_err("open");
        assert_eq!(
            why,
            BreakerOpen::CoolingDown {
                breaker: "test",
                failures: 2,
                retry_in: COOLDOWN
            }
        );
        assert!(
            why.to_string().contains("circuit breaker test is open"),
            "{why}"
        );
        clock.advance(COOLDOWN - Duration::from_millis(1));
        let why = b.try_acquire().expect_err("still open 1 ms before the end");
        assert!(why.to_string().contains("next probe in 1 ms"), "{why}");
        clock.advance(Duration::from_millis(1));
        assert!(b.try_acquire().expect("the probe").is_probe());
    }

    #[test]
    fn half_open_lets_one_probe_through_and_its_success_closes_the_breaker() {
        let (b, clock) = breaker(1);
        fail(&b, 1);
        clock.advance(COOLDOWN);
        let probe = b.try_acquire().expect("the probe");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(
            b.try_acquire().expect_err("one probe at a time"),
            BreakerOpen::Probing { breaker: "test" }
        );
        probe.record(true);
        assert_eq!(b.state(), BreakerState::Closed);
        let next = b.try_acquire().expect("closed");
        assert!(!next.is_probe());
        next.record(true);
    }

    #[test]
    fn a_failed_probe_reopens_the_breaker_for_another_cooldown() {
        let (b, clock) = breaker(1);
        fail(&b, 1);
        clock.advance(COOLDOWN);
        b.try_acquire().expect("the probe").record(false);
        assert_eq!(b.state(), BreakerState::Open);
        clock.advance(COOLDOWN / 2);
        let why = b
            .try_acquire()
            .expect_err("a full cool-down from the probe");
        assert!(
            matches!(why, BreakerOpen::CoolingDown { failures: 2, .. }),
            "{why}"
        );
        clock.advance(COOLDOWN / 2);
        b.try_acquire().expect("the next probe").record(true);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn an_abandoned_probe_counts_as_failed_and_an_abandoned_call_counts_nothing() {
        let (b, clock) = breaker(2);
        fail(&b, 1);
        drop(b.try_acquire().expect("closed"));
        assert_eq!(b.state(), BreakerState::Closed, "one failure, not two");
        fail(&b, 1);
        clock.advance(COOLDOWN);
        drop(b.try_acquire().expect("the probe"));
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn outcomes_of_calls_admitted_before_a_transition_do_not_count() {
        let (b, clock) = breaker(1);
        let slow_ok = b.try_acquire().expect("closed");
        let slow_err = b.try_acquire().expect("closed");
        fail(&b, 1);
        slow_ok.record(true);
        assert_eq!(
            b.state(),
            BreakerState::Open,
            "a late success does not close it"
        );
        clock.advance(COOLDOWN);
        let probe = b.try_acquire().expect("the probe");
        slow_err.record(false);
        assert_eq!(
            b.state(),
            BreakerState::HalfOpen,
            "nor a late failure settle the probe"
        );
        probe.record(true);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn zero_failures_never_opens() {
        let (b, _) = breaker(0);
        fail(&b, 100);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn only_unreachable_slow_or_broken_backends_count_as_failures() {
        use tonic::Code;
        for code in [
            Code::Cancelled,
            Code::DeadlineExceeded,
            Code::Unavailable,
            Code::Unknown,
            Code::Internal,
            Code::DataLoss,
        ] {
            assert!(counts_as_failure(code), "{code:?}");
        }
        for code in [
            Code::Ok,
            Code::InvalidArgument,
            Code::NotFound,
            Code::ResourceExhausted,
            Code::FailedPrecondition,
            Code::Unimplemented,
            Code::PermissionDenied,
        ] {
            assert!(!counts_as_failure(code), "{code:?}");
        }
    }

    #[tokio::test]
    async fn call_sends_nothing_while_open_and_maps_statuses_to_client_errors() {
        let (b, _) = breaker(2);
        let sent = std::sync::atomic::AtomicUsize::new(0);
        let send = |status: Option<tonic::Status>| {
            sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { status.map_or(Ok(tonic::Response::new(7)), Err) }
        };
        let bad = b
            .call(|| send(Some(tonic::Status::invalid_argument("bad"))))
            .await
            .expect_err("invalid");
        assert_eq!(bad.service, "test");
        assert!(bad.message.starts_with("InvalidArgument"), "{bad}");
        for _ in 0..2 {
            b.call(|| send(Some(tonic::Status::cancelled("Timeout expired"))))
                .await
                .expect_err("timed out");
        }
        assert_eq!(
            b.state(),
            BreakerState::Open,
            "the invalid argument did not count"
        );
        let rejected = b.call(|| send(None)).await.expect_err("open");
        assert!(rejected.message.contains("no call made"), "{rejected}");
        assert_eq!(sent.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[test]
    fn rejections_and_transitions_are_counted_per_service() {
        let recorder = DebuggingRecorder::new();
        let snapshots = recorder.snapshotter();
        let _recorder = metrics::set_default_local_recorder(&recorder);
        let (b, clock) = breaker(1);
        fail(&b, 1);
        for _ in 0..3 {
            b.try_acquire().expect_err("open");
        }
        clock.advance(COOLDOWN);
        b.try_acquire().expect("the probe").record(true);
        let recorded = snapshots.snapshot().into_vec();
        let value = |name: &str, state: Option<&str>| {
            recorded
                .iter()
                .find(|(k, ..)| {
                    let key = k.key();
                    key.name() == name
                        && key
                            .labels()
                            .any(|l| l.key() == "service" && l.value() == "test")
                        && state.is_none_or(|s| {
                            key.labels().any(|l| l.key() == "state" && l.value() == s)
                        })
                })
                .map(|(.., v)| v)
        };
        assert_eq!(value(REJECTED, None), Some(&DebugValue::Counter(3)));
        for state in ["open", "half_open", "closed"] {
            assert_eq!(
                value(TRANSITIONS, Some(state)),
                Some(&DebugValue::Counter(1)),
                "{state}"
            );
        }
        assert_eq!(
            value(STATE, None),
            Some(&DebugValue::Gauge(0.0.into())),
            "closed again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_background_probe_closes_the_breaker_and_no_caller_is_ever_the_probe() {
        use std::sync::atomic::AtomicU32;
        let (b, clock) = breaker(3);
        let b = Arc::new(b);
        let back = Arc::new(AtomicBool::new(false));
        let asked = Arc::new(AtomicU32::new(0));
        let prober: Prober = {
            let (back, asked) = (back.clone(), asked.clone());
            Arc::new(move || {
                asked.fetch_add(1, Ordering::SeqCst);
                let answer = back.load(Ordering::SeqCst);
                Box::pin(async move { answer })
            })
        };
        b.probe_in_background(prober);
        tokio::time::sleep(COOLDOWN * 3).await;
        assert_eq!(asked.load(Ordering::SeqCst), 0, "no probes while closed");

        fail(&b, 3);
        assert_eq!(b.state(), BreakerState::Open);
        clock.advance(COOLDOWN * 2);
        assert!(
            matches!(b.try_acquire(), Err(BreakerOpen::CoolingDown { .. })),
            "past the cool-down a caller still fails at once"
        );
        tokio::time::sleep(COOLDOWN * 3 + Duration::from_millis(1)).await;
        assert_eq!(asked.load(Ordering::SeqCst), 3, "one probe per cool-down");
        assert_eq!(b.state(), BreakerState::Open);

        back.store(true, Ordering::SeqCst);
        tokio::time::sleep(COOLDOWN + Duration::from_millis(1)).await;
        assert_eq!(b.state(), BreakerState::Closed, "closed by the probe");
        b.try_acquire().expect("closed").record(true);

        // The task keeps watching: a second outage is probed too.
        let before = asked.load(Ordering::SeqCst);
        fail(&b, 3);
        tokio::time::sleep(COOLDOWN + Duration::from_millis(1)).await;
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(asked.load(Ordering::SeqCst), before + 1);
    }
}
