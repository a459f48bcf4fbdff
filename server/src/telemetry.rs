//! Process-wide metrics: installs the Prometheus recorder (the `metrics`
//! facade's one global, set once at start) with an HTTP `/metrics` listener.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Latency buckets, seconds: 50 µs to 10 s.
const LATENCY_BUCKETS_S: &[f64] = &[
    50e-6, 100e-6, 200e-6, 300e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3,
    500e-3, 1.0, 2.5, 5.0, 10.0,
];
/// Count buckets (posts per request).
const COUNT_BUCKETS: &[f64] = &[
    0.0, 10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 20000.0,
];

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the metrics endpoint on {addr}: {cause}")]
pub struct TelemetryError {
    addr: SocketAddr,
    cause: String,
}

/// Installs the Prometheus recorder serving `http://ADDR/metrics` and
/// registers every metric's help text. Call once, inside a tokio runtime.
pub fn install_prometheus(addr: SocketAddr) -> Result<(), TelemetryError> {
    let err = |cause: String| TelemetryError { addr, cause };
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS_S)
        .map_err(|e| err(e.to_string()))?
        .set_buckets(COUNT_BUCKETS)
        .map_err(|e| err(e.to_string()))?
        .install()
        .map_err(|e| err(e.to_string()))?;
    crate::thunder::metrics::describe();
    Ok(())
}
