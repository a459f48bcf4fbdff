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
    crate::clients::breaker::describe();
    crate::phoenix::index_metrics::describe();
    crate::grpc::admission::describe();
    crate::phoenix::scoring_health::describe();
    Ok(())
}

/// Test support: a tracing layer that keeps every span's name, fields and
/// parent, so tests can assert which spans a request opens.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::BTreeMap;
    use std::fmt;
    use std::sync::{Arc, Mutex, PoisonError};

    use tracing::Subscriber;
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing_subscriber::layer::{Context, Layer};
    use tracing_subscriber::registry::LookupSpan;

    /// One span as opened, with the fields recorded on it since.
    #[derive(Debug, Clone)]
    pub(crate) struct CapturedSpan {
        /// The span's name.
        pub name: &'static str,
        /// Field name → value (strings as is, others as `Debug`).
        pub fields: BTreeMap<&'static str, String>,
        /// The parent span's name; `None` for a root span.
        pub parent: Option<&'static str>,
    }

    impl CapturedSpan {
        /// The field's value, or "" when it was never recorded.
        pub fn field(&self, name: &str) -> &str {
            self.fields.get(name).map_or("", String::as_str)
        }
    }

    /// The layer; clones share one list. Install it with
    /// `tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()))`.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct SpanCapture(Arc<Mutex<Vec<CapturedSpan>>>);

    impl SpanCapture {
        /// The spans opened so far, in opening order.
        pub fn spans(&self) -> Vec<CapturedSpan> {
            self.lock().clone()
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, Vec<CapturedSpan>> {
            // A test that panicked while holding the lock already failed.
            self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    /// Where a span's entry sits in the list (kept in the span's extensions).
    struct Index(usize);

    struct Fields<'a>(&'a mut BTreeMap<&'static str, String>);

    impl Visit for Fields<'_> {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name(), value.to_owned());
        }
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.0.insert(field.name(), format!("{value:?}"));
        }
    }

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for SpanCapture {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
            let mut fields = BTreeMap::new();
            attrs.record(&mut Fields(&mut fields));
            let span = ctx.span(id);
            let parent = span.as_ref().and_then(|s| s.parent()).map(|p| p.name());
            let mut spans = self.lock();
            if let Some(span) = span {
                span.extensions_mut().insert(Index(spans.len()));
            }
            spans.push(CapturedSpan {
                name: attrs.metadata().name(),
                fields,
                parent,
            });
        }

        fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
            let Some(span) = ctx.span(id) else { return };
            let Some(&Index(i)) = span.extensions().get::<Index>() else {
                return;
            };
            if let Some(captured) = self.lock().get_mut(i) {
                values.record(&mut Fields(&mut captured.fields));
            }
        }
    }
}
