//! Readiness of a serving process: the health service reports NOT_SERVING
//! for its services until the retrieval index holds the posts of the
//! start-up load (a restart's rebuild), then SERVING.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::phoenix::LiveRetrieval;

/// Longest a start-up rebuild may take before the process gives up
/// waiting (and stays NOT_SERVING, with an error logged).
pub const REBUILD_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// Sets `status` for each of `services` and for the whole server ("").
pub async fn mark(health: &HealthReporter, services: &[&str], status: ServingStatus) {
    for name in services {
        health.set_service_status(*name, status).await;
    }
    health.set_service_status("", status).await;
}

/// Marks `services` NOT_SERVING now, and SERVING once `live` (if any) has
/// made searchable every post handed to it so far. The returned task ends
/// then.
pub async fn serve_when_indexed(
    health: HealthReporter,
    services: Vec<&'static str>,
    live: Option<Arc<LiveRetrieval>>,
) -> tokio::task::JoinHandle<()> {
    mark(&health, &services, ServingStatus::NotServing).await;
    tokio::spawn(async move {
        if let Some(live) = live {
            let t = Instant::now();
            let l = live.clone();
            let flushed = tokio::task::spawn_blocking(move || l.flush(REBUILD_TIMEOUT)).await;
            if !matches!(flushed, Ok(true)) {
                tracing::error!(
                    "the retrieval index did not finish its rebuild; staying NOT_SERVING"
                );
                return;
            }
            let s = live.stats();
            tracing::info!(
                posts = s.posts,
                bytes_per_post = s.bytes_per_post(),
                ms = t.elapsed().as_millis() as u64,
                "retrieval index rebuilt"
            );
        }
        mark(&health, &services, ServingStatus::Serving).await;
    })
}
