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

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt};

/// Weight of the newest latency in the service-time average.
pub const EMA_WEIGHT: f64 = 0.1;

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
}

/// The default in-flight bound of the home mixer: with the ranker in this
/// process, 8 calls per core, at least 16 (a call holds a core while it
/// ranks; `benches/results/overload_cpu_2026-12-03.md`). With the ranker
/// remote, 32 per core, at least 64: a call then mostly waits on the
/// network, and the bound must hold the calls a hung backend stalls
/// (about two client timeouts of traffic) until the circuit breakers open,
/// or they are shed though the process is idle
/// (`benches/results/faults_cpu_2026-12-03.md`).
pub fn default_max_in_flight(remote_ranker: bool) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if remote_ranker {
        (32 * cores).max(64)
    } else {
        (8 * cores).max(16)
    }
}

/// One gated service's state.
#[derive(Debug)]
struct Gate {
    name: &'static str,
    max_in_flight: usize,
    in_flight: AtomicUsize,
    /// Service-time estimate, microseconds as f64 bits (0: no sample yet).
    estimate_us: AtomicU64,
}

impl Gate {
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
    /// Most calls of one gated service running at once.
    pub max_in_flight: usize,
    /// Reject calls whose `grpc-timeout` is below the estimate.
    pub deadline_aware: bool,
}

/// The layer; clones share the gates.
#[derive(Debug, Clone)]
pub struct AdmissionLayer {
    gates: Arc<HashMap<&'static str, Gate>>,
    deadline_aware: bool,
}

impl AdmissionLayer {
    /// Gates `services` (gRPC service names such as
    /// `foryou.v1.ScoredPostsService`) with `policy`.
    pub fn new(services: &[&'static str], policy: &AdmissionPolicy) -> Self {
        let gates = services
            .iter()
            .map(|&name| {
                let gate = Gate {
                    name,
                    max_in_flight: policy.max_in_flight.max(1),
                    in_flight: AtomicUsize::new(0),
                    estimate_us: AtomicU64::new(0),
                };
                (name, gate)
            })
            .collect();
        Self {
            gates: Arc::new(gates),
            deadline_aware: policy.deadline_aware,
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
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(g) = self.layer.gates.get(self.service) {
            let n = g.in_flight.fetch_sub(1, Ordering::AcqRel) - 1;
            metrics::gauge!(IN_FLIGHT, "service" => g.name).set(n as f64);
            g.observe(self.start.elapsed());
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
        let admitted = g
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < g.max_in_flight).then_some(n + 1)
            });
        match admitted {
            Ok(n) => {
                metrics::gauge!(IN_FLIGHT, "service" => g.name).set((n + 1) as f64);
                Ok(Some(Admitted {
                    layer: self.clone(),
                    service: g.name,
                    start: Instant::now(),
                }))
            }
            Err(_) => {
                metrics::counter!(REJECTED, "service" => g.name, "reason" => "in_flight")
                    .increment(1);
                Err(tonic::Status::resource_exhausted(format!(
                    "{service} has {} calls in flight, its limit (--max-in-flight)",
                    g.max_in_flight
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
            Ok(guard) => {
                let fut = self.inner.call(req);
                async move {
                    let out = fut.await;
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
            },
        )
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
            },
        );
        off.gates
            .get(SVC)
            .expect("gate")
            .observe(Duration::from_secs(1));
        assert!(off.admit(SVC, Some(Duration::from_millis(1))).is_ok());
    }

    /// An inner service that answers every call at once.
    #[derive(Clone)]
    struct Answers;
    impl tower::Service<http::Request<()>> for Answers {
        type Response = http::Response<String>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            std::future::ready(Ok(http::Response::new("answered".into())))
        }
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
        let mut svc = l.layer(Answers);
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
