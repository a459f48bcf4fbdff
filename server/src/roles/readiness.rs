//! Readiness of a serving process: the health service reports NOT_SERVING
//! for its services until the retrieval index holds the posts of the
//! start-up load (a restart's rebuild) and, where the process ranks, a
//! probe request has been scored; then SERVING. Afterwards the services
//! that need the ranker follow its [`ScoringHealth`]: NOT_SERVING while it
//! cannot score (probed every [`PROBE_EVERY`], since a balancer sends no
//! traffic to prove it well), SERVING again once it does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::grpc::phoenix::PhoenixService;
use crate::phoenix::LiveRetrieval;
use crate::phoenix::scoring_health::{PROBE_EVERY, ScoringHealth};

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

/// The ranker a process serves with, and its services that need it.
#[derive(Debug, Clone)]
pub struct RankerGate {
    /// The ranker (probed while it cannot score).
    pub service: PhoenixService,
    /// The services health marks NOT_SERVING while it cannot score.
    pub needs_it: Vec<&'static str>,
}

/// Marks `services` NOT_SERVING now, and SERVING once `source_caught_up`
/// (if any) has turned true, `live` (if any) has made searchable every post
/// handed to it so far and `ranker` (if any) has scored a probe. With a ranker the returned task then follows its
/// health until aborted; without one it ends.
pub async fn serve_when_indexed(
    health: HealthReporter,
    services: Vec<&'static str>,
    live: Option<Arc<LiveRetrieval>>,
    source_caught_up: Option<tokio::sync::watch::Receiver<bool>>,
    ranker: Option<RankerGate>,
) -> tokio::task::JoinHandle<()> {
    mark(&health, &services, ServingStatus::NotServing).await;
    tokio::spawn(async move {
        // A streamed source (Kafka) first: everything up to the high
        // watermarks seen at start must have reached the index.
        if let Some(mut rx) = source_caught_up
            && rx.wait_for(|caught_up| *caught_up).await.is_err()
        {
            tracing::error!("the post source stopped before catching up; staying NOT_SERVING");
            return;
        }
        if let Some(live) = live.clone() {
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
        let Some(ranker) = ranker else {
            mark(&health, &services, ServingStatus::Serving).await;
            watch_writer(&health, &services, live.as_deref()).await;
            return;
        };
        let scoring = ranker.service.scoring_health().clone();
        while let Err(e) = ranker.service.probe().await {
            scoring.mark_unable(&e.to_string());
            tokio::time::sleep(PROBE_EVERY).await;
        }
        mark(&health, &services, ServingStatus::Serving).await;
        // A stopped index writer ends it all: following the ranker could
        // otherwise mark the services SERVING again.
        tokio::select! {
            () = follow_ranker(&health, &ranker, &scoring) => {}
            () = watch_writer(&health, &services, live.as_deref()) => {}
        }
    })
}

/// How often the index writer's liveness is checked.
pub const WRITER_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Returns (after marking `services` NOT_SERVING) once the index writer of
/// `live` has stopped: the index would keep serving posts deleted since.
/// Never returns without an index.
async fn watch_writer(health: &HealthReporter, services: &[&str], live: Option<&LiveRetrieval>) {
    let Some(live) = live else {
        return std::future::pending().await;
    };
    while live.is_writing() {
        tokio::time::sleep(WRITER_CHECK_EVERY).await;
    }
    tracing::error!("the retrieval index writer has stopped; health reports NOT_SERVING");
    mark(health, services, ServingStatus::NotServing).await;
}

/// Keeps the health of `ranker.needs_it` in step with `scoring`, probing
/// while it is unable. Runs until the task is aborted.
async fn follow_ranker(health: &HealthReporter, ranker: &RankerGate, scoring: &ScoringHealth) {
    let mut rx = scoring.watch();
    let mut shown = true;
    loop {
        let able = scoring.is_able();
        if able != shown {
            let status = if able {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            mark(health, &ranker.needs_it, status).await;
            shown = able;
        }
        if able {
            if rx.changed().await.is_err() {
                return;
            }
        } else {
            tokio::time::sleep(PROBE_EVERY).await;
            // The outcome lands in `scoring`.
            let _ = ranker.service.probe().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use foryou_engine::{Corpus, CorpusItem};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus as Wire;
    use tonic_health::pb::health_server::Health;
    use tonic_health::server::HealthService;

    use super::*;
    use crate::phoenix::PhoenixEngine;

    fn small_service() -> PhoenixService {
        let models = crate::phoenix::models::small_demo_models();
        let dim = models.retriever.config().emb_size;
        let items = (1..=4)
            .map(|i| CorpusItem {
                post_id: 100 + i,
                author_id: i,
            })
            .collect();
        let corpus = Corpus::from_representations(items, vec![0.1; 4 * dim], dim).expect("corpus");
        let engine = PhoenixEngine::new(models.ranker, models.retriever, corpus);
        PhoenixService::new(Arc::new(engine))
    }

    async fn status(h: &HealthService, service: &str) -> Wire {
        let req = tonic::Request::new(HealthCheckRequest {
            service: service.into(),
        });
        match h.check(req).await {
            Ok(r) => Wire::try_from(r.into_inner().status).unwrap_or(Wire::Unknown),
            Err(_) => Wire::ServiceUnknown,
        }
    }

    /// Waits up to 10 s for `service` to report `want`.
    async fn until(h: &HealthService, service: &str, want: Wire) {
        let t = Instant::now();
        while status(h, service).await != want {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{service} never reported {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn the_services_that_need_the_ranker_follow_its_health_and_a_probe_brings_them_back() {
        let reporter = HealthReporter::new();
        let health = HealthService::from_health_reporter(reporter.clone());
        let service = small_service();
        let gate = RankerGate {
            service: service.clone(),
            needs_it: vec!["t.Feed", "t.Ranker"],
        };
        let task = serve_when_indexed(
            reporter,
            vec!["t.Feed", "t.Ranker", "t.Retrieval"],
            None,
            None,
            Some(gate),
        )
        .await;
        until(&health, "t.Feed", Wire::Serving).await;
        assert_eq!(status(&health, "t.Retrieval").await, Wire::Serving);

        // A run of engine failures: the ranker's services (and the server as
        // a whole) go NOT_SERVING; retrieval does not need the ranker.
        let scoring = service.scoring_health();
        for _ in 0..crate::phoenix::scoring_health::FAILURES_TO_UNABLE {
            scoring.record_failure("test: the engine failed");
        }
        until(&health, "t.Feed", Wire::NotServing).await;
        assert_eq!(status(&health, "t.Ranker").await, Wire::NotServing);
        assert_eq!(status(&health, "").await, Wire::NotServing);
        assert_eq!(status(&health, "t.Retrieval").await, Wire::Serving);

        // No request arrives, yet the probe scores and brings them back.
        let t = Instant::now();
        until(&health, "t.Feed", Wire::Serving).await;
        assert!(scoring.is_able());
        assert!(
            t.elapsed() >= PROBE_EVERY / 2,
            "back only through a probe, after {:?}",
            t.elapsed()
        );
        assert_eq!(status(&health, "").await, Wire::Serving);
        task.abort();
    }

    #[tokio::test]
    async fn a_stopped_index_writer_turns_the_services_not_serving() {
        use foryou_engine::index::{Format, IndexConfig};
        let retriever = Arc::new(crate::phoenix::models::small_demo_models().retriever);
        let config = IndexConfig::new(retriever.config().emb_size, Format::F32);
        let clock = Arc::new(crate::clock::ManualClock::new(1_800_000_000));
        let live =
            Arc::new(LiveRetrieval::start(retriever, config, clock, 600_000, None).expect("index"));
        let reporter = HealthReporter::new();
        let health = HealthService::from_health_reporter(reporter.clone());
        let task = serve_when_indexed(
            reporter,
            vec!["t.Retrieval"],
            Some(live.clone()),
            None,
            None,
        )
        .await;
        until(&health, "t.Retrieval", Wire::Serving).await;
        live.crash_writer();
        until(&health, "t.Retrieval", Wire::NotServing).await;
        assert_eq!(status(&health, "").await, Wire::NotServing);
        task.abort();
    }
}
