//! Admission control at the front door (issue 18): a tower layer around a
//! role's services that answers RESOURCE_EXHAUSTED at once, without
//! running the handler, when a gated service already has `max_in_flight`
//! calls running, or when the call's `grpc-timeout` is shorter than the
//! service's current service-time estimate (so work nobody will wait for
//! is never started). Past saturation the server then sheds the excess in
//! microseconds and spends its cores on calls that can still finish,
//! instead of queueing everything until every caller has given up.
//!
//! The estimate is an exponential moving average (weight [`EMA_WEIGHT`])
//! of the latency of the service's completed calls: under overload it
//! rises with the queueing inside the process, so admission tightens by
//! itself and relaxes when load falls. A call whose caller leaves is
//! dropped by tonic (its future is cancelled) and leaves the count at
//! once. Ungated services (health, reflection) always pass.
//!
//! **Adaptive bound.** With a latency target the in-flight bound moves
//! between [`initial_adaptive_limit`] and `max_in_flight` by AIMD, as
//! TCP's window does: each call that finishes within its target adds
//! `1 / limit` (about one per round of calls), a call over it cuts the
//! limit by [`DECREASE`], at most once per estimated service time (one cut
//! per round of late calls, not one per late call). A call's target is
//! the policy's, or [`DEADLINE_SHARE`] of its grpc-timeout when that is
//! shorter. The bound settles where the queueing inside the process
//! brings latency to the target: as many calls as the ranker can batch
//! without the admitted ones missing their deadlines
//! (`benches/results/overload_cpu_2026-12-03.md`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt};

/// Weight of the newest latency in the service-time average.
pub const EMA_WEIGHT: f64 = 0.1;
/// Factor applied to the adaptive bound when a call misses its target.
pub const DECREASE: f64 = 0.9;
/// Share of a call's grpc-timeout it is meant to finish in, when that is
/// under the policy's target (room for the tail above the mean).
pub const DEADLINE_SHARE: f64 = 0.6;

/// Counter with labels `service`, `reason` (`in_flight`, `deadline`):
/// calls turned away by admission control.
pub const REJECTED: &str = "foryou_admission_rejected_total";
/// Histogram, seconds, label `service`: the server's time to answer a
/// call it rejects, from the request reaching this layer to the
/// RESOURCE_EXHAUSTED response built.
pub const REJECTION: &str = "foryou_admission_rejection_seconds";
/// Gauge with label `service`: calls running.
pub const IN_FLIGHT: &str = "foryou_admission_in_flight";
/// Gauge with label `service`: the service-time estimate, seconds.
pub const ESTIMATE: &str = "foryou_admission_service_time_seconds";
/// Gauge with label `service`: the current in-flight bound.
pub const LIMIT: &str = "foryou_admission_limit";

/// Registers help texts with the installed recorder.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_counter!(REJECTED, Unit::Count, "calls rejected by admission control");
    metrics::describe_histogram!(
        REJECTION,
        Unit::Seconds,
        "time to answer a rejected call, from arrival to the response built"
    );
    describe_gauge!(IN_FLIGHT, Unit::Count, "admitted calls running");
    describe_gauge!(ESTIMATE, Unit::Seconds, "moving average of call latency");
    describe_gauge!(
        LIMIT,
        Unit::Count,
        "in-flight bound (adaptive with a target)"
    );
}

/// Response extension a handler sets on an answer that lost part of its
/// work to overload (a component shed or failed): for the adaptive bound it
/// counts as a call over its target, however fast it was, so shedding
/// inside the process shrinks the bound instead of freeing slots faster.
#[derive(Debug, Clone, Copy)]
pub struct Degraded;

/// The default in-flight bound of the home mixer (the adaptive bound's
/// ceiling when there is a target): 32 calls per core, at least 64. With
/// the ranker remote a call mostly waits on the network, and the bound must
/// hold the calls a hung backend stalls (about two client timeouts of
/// traffic) until the circuit breakers open, or they are shed though the
/// process is idle (`benches/results/faults_cpu_2026-12-03.md`). With the
/// ranker in this process the adaptive bound starts at
/// [`initial_adaptive_limit`] and finds its level from there.
pub fn default_max_in_flight() -> usize {
    (32 * cores()).max(64)
}

/// Where the adaptive bound starts, and its floor: 8 calls per core, at
/// least 16, the fixed bound that kept every admitted call within a 500 ms
/// deadline on the CPU ranker. Below it the bound would only trade
/// throughput for latency: on 2 cores an AIMD bound free to fall settled at
/// 11-15 calls and ranked fewer feeds a second than 16 did
/// (`benches/results/overload_cpu_2026-12-03.md`). The adaptive part
/// widens the bound where the host can take more within the target (a GPU
/// ranker batching many calls).
pub fn initial_adaptive_limit() -> usize {
    (8 * cores()).max(16)
}

/// The default latency target: the adaptive bound with the ranker in this
/// process, none (a fixed bound) with it remote, where a hung backend's
/// latency would close the gate before its circuit breaker opens.
pub fn default_target(remote_ranker: bool) -> Option<Duration> {
    (!remote_ranker).then_some(DEFAULT_TARGET)
}

/// The default latency target of the adaptive bound.
pub const DEFAULT_TARGET: Duration = Duration::from_millis(300);

/// `Gate::last_cut_us` before the first cut.
const NEVER: u64 = u64::MAX;

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// One gated service's state.
#[derive(Debug)]
struct Gate {
    name: &'static str,
    max_in_flight: usize,
    in_flight: AtomicUsize,
    /// Service-time estimate, microseconds as f64 bits (0: no sample yet).
    estimate_us: AtomicU64,
    /// The adaptive bound, f64 bits (`max_in_flight` without a target).
    limit: AtomicU64,
    /// The adaptive bound's lowest value (where it starts).
    floor: f64,
    /// When the bound was last cut, microseconds since `epoch` ([`NEVER`]:
    /// not yet).
    last_cut_us: AtomicU64,
    epoch: Instant,
}

impl Gate {
    /// Calls that may run at once now.
    fn limit(&self) -> usize {
        (f64::from_bits(self.limit.load(Ordering::Relaxed)) as usize).clamp(1, self.max_in_flight)
    }

    /// Moves the adaptive bound after a call that finished within its
    /// target (`on_time`) or not.
    fn adapt(&self, on_time: bool) {
        let cap = self.max_in_flight as f64;
        let floor = self.floor;
        if on_time {
            let _ = self
                .limit
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                    let l = f64::from_bits(bits);
                    Some((l + 1.0 / l).min(cap).to_bits())
                });
        } else {
            // One cut per service time: the calls that finish late together
            // were all admitted under the same bound.
            let now = self.epoch.elapsed().as_micros() as u64;
            let last = self.last_cut_us.load(Ordering::Relaxed);
            let round = (self.estimate().as_micros() as u64).max(1);
            if (last != NEVER && now.saturating_sub(last) < round)
                || self
                    .last_cut_us
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                return;
            }
            let _ = self
                .limit
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                    Some((f64::from_bits(bits) * DECREASE).max(floor).to_bits())
                });
        }
        metrics::gauge!(LIMIT, "service" => self.name).set(self.limit() as f64);
    }

    fn estimate(&self) -> Duration {
        Duration::from_secs_f64(f64::from_bits(self.estimate_us.load(Ordering::Relaxed)) / 1e6)
    }

    fn observe(&self, took: Duration) {
        let us = took.as_secs_f64() * 1e6;
        let _ = self
            .estimate_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let old = f64::from_bits(bits);
                let new = if old == 0.0 {
                    us
                } else {
                    old + EMA_WEIGHT * (us - old)
                };
                Some(new.to_bits())
            });
        metrics::gauge!(ESTIMATE, "service" => self.name).set(self.estimate().as_secs_f64());
    }
}

/// Admission settings of a role.
#[derive(Debug, Clone)]
pub struct AdmissionPolicy {
    /// Most calls of one gated service running at once (the adaptive
    /// bound's ceiling when there is a target).
    pub max_in_flight: usize,
    /// Reject calls whose `grpc-timeout` is below the estimate.
    pub deadline_aware: bool,
    /// Latency the adaptive bound steers to; `None`: the bound stays at
    /// `max_in_flight`.
    pub target: Option<Duration>,
}

/// The layer; clones share the gates.
#[derive(Debug, Clone)]
pub struct AdmissionLayer {
    gates: Arc<HashMap<&'static str, Gate>>,
    deadline_aware: bool,
    target: Option<Duration>,
}

impl AdmissionLayer {
    /// Gates `services` (gRPC service names such as
    /// `foryou.v1.ScoredPostsService`) with `policy`.
    pub fn new(services: &[&'static str], policy: &AdmissionPolicy) -> Self {
        let gates = services
            .iter()
            .map(|&name| {
                let max_in_flight = policy.max_in_flight.max(1);
                let start = match policy.target {
                    Some(_) => max_in_flight.min(initial_adaptive_limit()) as f64,
                    None => max_in_flight as f64,
                };
                let gate = Gate {
                    name,
                    max_in_flight,
                    in_flight: AtomicUsize::new(0),
                    estimate_us: AtomicU64::new(0),
                    limit: AtomicU64::new(start.to_bits()),
                    floor: start,
                    last_cut_us: AtomicU64::new(NEVER),
                    epoch: Instant::now(),
                };
                (name, gate)
            })
            .collect();
        Self {
            gates: Arc::new(gates),
            deadline_aware: policy.deadline_aware,
            target: policy.target,
        }
    }
}

impl<S> tower::Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Admission<S> {
        Admission {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service behind admission control.
#[derive(Debug, Clone)]
pub struct Admission<S> {
    inner: S,
    layer: AdmissionLayer,
}

/// The gRPC service name of a request path `/pkg.Service/Method`.
fn service_of(path: &str) -> &str {
    path.trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
}

/// Leaves the in-flight count and records the latency when a call ends,
/// however it ends.
struct Admitted {
    layer: AdmissionLayer,
    service: &'static str,
    start: Instant,
    /// The latency this call is meant to finish in (adaptive bound only).
    target: Option<Duration>,
    /// The answer was [`Degraded`]: a miss whatever its latency.
    degraded: bool,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(g) = self.layer.gates.get(self.service) {
            let n = g.in_flight.fetch_sub(1, Ordering::AcqRel) - 1;
            metrics::gauge!(IN_FLIGHT, "service" => g.name).set(n as f64);
            let took = self.start.elapsed();
            if let Some(target) = self.target {
                g.adapt(!self.degraded && took <= target);
            }
            g.observe(took);
        }
    }
}

impl AdmissionLayer {
    /// Admits a call of `service` with `timeout`, or says why not.
    fn admit(
        &self,
        service: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<Admitted>, tonic::Status> {
        let Some(g) = self.gates.get(service) else {
            return Ok(None);
        };
        if self.deadline_aware
            && let Some(t) = timeout
        {
            let est = g.estimate();
            if t < est {
                metrics::counter!(REJECTED, "service" => g.name, "reason" => "deadline")
                    .increment(1);
                return Err(tonic::Status::resource_exhausted(format!(
                    "{service}: the deadline ({} ms) is shorter than the current service time ({} ms)",
                    t.as_millis(),
                    est.as_millis()
                )));
            }
        }
        let limit = g.limit();
        let admitted = g
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            });
        match admitted {
            Ok(n) => {
                metrics::gauge!(IN_FLIGHT, "service" => g.name).set((n + 1) as f64);
                let target = self.target.map(|t| match timeout {
                    Some(d) => t.min(d.mul_f64(DEADLINE_SHARE)),
                    None => t,
                });
                Ok(Some(Admitted {
                    layer: self.clone(),
                    service: g.name,
                    start: Instant::now(),
                    target,
                    degraded: false,
                }))
            }
            Err(_) => {
                metrics::counter!(REJECTED, "service" => g.name, "reason" => "in_flight")
                    .increment(1);
                let why = if self.target.is_some() {
                    format!(
                        "its adaptive limit (at most --max-in-flight {})",
                        g.max_in_flight
                    )
                } else {
                    "its limit (--max-in-flight)".to_owned()
                };
                Err(tonic::Status::resource_exhausted(format!(
                    "{service} has {limit} calls in flight, {why}"
                )))
            }
        }
    }
}

impl<S, B, ResBody> tower::Service<http::Request<B>> for Admission<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let timeout = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(super::deadline::parse_timeout);
        let arrived = Instant::now();
        let service = service_of(req.uri().path());
        match self.layer.admit(service, timeout) {
            Err(status) => {
                let response = status.into_http();
                metrics::histogram!(REJECTION, "service" => service.to_owned())
                    .record(arrived.elapsed().as_secs_f64());
                std::future::ready(Ok(response)).boxed()
            }
            Ok(mut guard) => {
                let fut = self.inner.call(req);
                async move {
                    let out = fut.await;
                    if let (Some(g), Ok(response)) = (guard.as_mut(), &out) {
                        g.degraded = response.extensions().get::<Degraded>().is_some();
                    }
                    drop(guard);
                    out
                }
                .boxed()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SVC: &str = "foryou.v1.ScoredPostsService";

    fn layer(max: usize) -> AdmissionLayer {
        AdmissionLayer::new(
            &[SVC],
            &AdmissionPolicy {
                max_in_flight: max,
                deadline_aware: true,
                target: None,
            },
        )
    }

    fn adaptive(max: usize, target_ms: u64) -> AdmissionLayer {
        AdmissionLayer::new(
            &[SVC],
            &AdmissionPolicy {
                max_in_flight: max,
                deadline_aware: true,
                target: Some(Duration::from_millis(target_ms)),
            },
        )
    }

    /// Admits calls until the gate refuses one; returns how many it took.
    fn fill(l: &AdmissionLayer) -> usize {
        let mut held = Vec::new();
        while let Ok(Some(a)) = l.admit(SVC, None) {
            // Calls that never finish leave no latency behind.
            held.push(a);
            assert!(held.len() <= 10_000, "the gate never closed");
        }
        // Released without moving the bound.
        held.iter_mut().for_each(|a| a.target = None);
        held.len()
    }

    #[test]
    fn the_adaptive_bound_grows_on_time_and_is_cut_once_per_round_when_late() {
        let l = adaptive(40, 100);
        let g = l.gates.get(SVC).expect("gate");
        let start = initial_adaptive_limit().min(40);
        assert_eq!(g.limit(), start, "starts at the initial bound");
        assert_eq!(fill(&l), start, "admits exactly the bound");
        // A round of on-time calls adds about one (each adds 1/limit).
        for _ in 0..start + 2 {
            g.adapt(true);
        }
        assert_eq!(g.limit(), start + 1);
        // Enough of them reach the ceiling and stop there.
        for _ in 0..10_000 {
            g.adapt(true);
        }
        assert_eq!(g.limit(), 40);
        // Late calls: the first cuts by DECREASE, the others of the same
        // round (within one service time) do not.
        g.observe(Duration::from_secs(3600));
        g.adapt(false);
        assert_eq!(g.limit(), (40.0 * DECREASE) as usize);
        for _ in 0..50 {
            g.adapt(false);
        }
        assert_eq!(g.limit(), (40.0 * DECREASE) as usize, "one cut per round");
        assert_eq!(fill(&l), 36, "the gate follows the bound");
    }

    #[test]
    fn the_adaptive_bound_never_falls_under_its_floor_and_a_deadline_tightens_the_target() {
        let l = adaptive(64, 300);
        let g = l.gates.get(SVC).expect("gate");
        let floor = initial_adaptive_limit().min(64);
        for _ in 0..10_000 {
            g.adapt(true);
        }
        assert_eq!(g.limit(), 64);
        // Every late call a round apart cuts, down to the floor.
        for _ in 0..200 {
            g.last_cut_us.store(NEVER, Ordering::Relaxed);
            g.adapt(false);
        }
        assert_eq!(g.limit(), floor);
        assert_eq!(fill(&l), floor);
        // A call with a 100 ms grpc-timeout aims at 60 ms, not 300 ms.
        let a = l
            .admit(SVC, Some(Duration::from_millis(100)))
            .expect("admitted")
            .expect("gated");
        assert_eq!(a.target, Some(Duration::from_millis(60)));
        let b = l.admit(SVC, None).expect("admitted").expect("gated");
        assert_eq!(b.target, Some(Duration::from_millis(300)));
        // Without a target the bound is fixed at max_in_flight.
        let fixed = layer(5);
        assert_eq!(fixed.gates.get(SVC).expect("gate").limit(), 5);
        assert_eq!(
            fixed.admit(SVC, None).expect("ok").expect("gated").target,
            None
        );
    }

    #[test]
    fn grpc_timeouts_parse_every_unit_and_refuse_garbage() {
        // The header parser the layer uses is the deadline module's.
        use super::super::deadline::parse_timeout as parse_grpc_timeout;
        assert_eq!(parse_grpc_timeout("500m"), Some(Duration::from_millis(500)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        for bad in ["", "m", "123456789m", "5x", "-5m", "5 m"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
        assert_eq!(
            service_of("/foryou.v1.ScoredPostsService/GetScoredPosts"),
            SVC
        );
    }

    #[test]
    fn past_the_bound_calls_are_rejected_and_a_finished_call_frees_its_slot() {
        let l = layer(2);
        let a = l.admit(SVC, None).expect("first");
        let _b = l.admit(SVC, None).expect("second");
        let e = l.admit(SVC, None).err().expect("third is over the bound");
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(e.message().contains("2 calls in flight"), "{}", e.message());
        drop(a);
        assert!(l.admit(SVC, None).is_ok(), "a slot came free");
        // Ungated services always pass, and hold no slot.
        assert!(matches!(l.admit("grpc.health.v1.Health", None), Ok(None)));
    }

    #[test]
    fn a_deadline_below_the_service_time_estimate_is_rejected_at_once() {
        let l = layer(8);
        let g = l.gates.get(SVC).expect("gate");
        g.observe(Duration::from_millis(100));
        g.observe(Duration::from_millis(200)); // 100 + 0.1 x 100 = 110 ms
        let est = g.estimate().as_secs_f64() * 1e3;
        assert!((est - 110.0).abs() < 1e-6, "{est}");
        let e = l
            .admit(SVC, Some(Duration::from_millis(50)))
            .err()
            .expect("50 ms cannot be met");
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(e.message().contains("deadline (50 ms)"), "{}", e.message());
        assert!(l.admit(SVC, Some(Duration::from_millis(500))).is_ok());
        assert!(l.admit(SVC, None).is_ok(), "no deadline: only the bound");
        let off = AdmissionLayer::new(
            &[SVC],
            &AdmissionPolicy {
                max_in_flight: 8,
                deadline_aware: false,
                target: None,
            },
        );
        off.gates
            .get(SVC)
            .expect("gate")
            .observe(Duration::from_secs(1));
        assert!(off.admit(SVC, Some(Duration::from_millis(1))).is_ok());
    }

    /// An inner service that answers every call at once; with `true` each
    /// answer is marked [`Degraded`].
    #[derive(Clone)]
    struct Answers(bool);
    impl tower::Service<http::Request<()>> for Answers {
        type Response = http::Response<String>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            let mut r = http::Response::new("answered".to_owned());
            if self.0 {
                r.extensions_mut().insert(Degraded);
            }
            std::future::ready(Ok(r))
        }
    }

    #[tokio::test]
    async fn fast_degraded_answers_shrink_the_adaptive_bound_and_fast_full_ones_grow_it() {
        use tower::{Layer, Service};
        let call = || {
            http::Request::builder()
                .uri("/foryou.v1.ScoredPostsService/GetScoredPosts")
                .body(())
                .expect("a valid request")
        };
        let l = adaptive(64, 300);
        let g = l.gates.get(SVC).expect("gate");
        for _ in 0..10_000 {
            g.adapt(true);
        }
        let start = g.limit();
        assert_eq!(start, 64);
        let mut degraded = l.clone().layer(Answers(true));
        degraded.call(call()).await.expect("infallible");
        assert_eq!(g.limit(), (start as f64 * DECREASE) as usize, "a miss");
        let cut = g.limit();
        let mut full = l.clone().layer(Answers(false));
        for _ in 0..3 * cut {
            full.call(call()).await.expect("infallible");
        }
        assert!(g.limit() > cut, "on-time answers grow it: {}", g.limit());
    }

    #[tokio::test]
    async fn a_rejected_call_is_answered_at_once_and_its_server_time_recorded() {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};
        use tower::{Layer, Service};
        let recorder = DebuggingRecorder::new();
        let snapshots = recorder.snapshotter();
        let _recorder = metrics::set_default_local_recorder(&recorder);
        let request = |path: &str| {
            http::Request::builder()
                .uri(path)
                .body(())
                .expect("a valid request")
        };
        let l = layer(1);
        let _held = l.admit(SVC, None).expect("the one slot");
        let mut svc = l.layer(Answers(false));
        let rejected = svc
            .call(request("/foryou.v1.ScoredPostsService/GetScoredPosts"))
            .await
            .expect("infallible");
        assert_eq!(rejected.headers()["grpc-status"], "8", "RESOURCE_EXHAUSTED");
        assert_eq!(rejected.body(), "", "the inner service never ran");
        let passed = svc
            .call(request("/grpc.health.v1.Health/Check"))
            .await
            .expect("infallible");
        assert_eq!(passed.body(), "answered", "ungated services pass");
        let times: Vec<f64> = snapshots
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(k, ..)| k.key().name() == REJECTION)
            .flat_map(|(.., v)| match v {
                DebugValue::Histogram(h) => h.into_iter().map(|f| f.0).collect(),
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(times.len(), 1, "one rejection timed: {times:?}");
        assert!(times[0].is_finite() && times[0] >= 0.0, "{} s", times[0]);
    }
}
