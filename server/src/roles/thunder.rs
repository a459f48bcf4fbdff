//! The Thunder role: a [`PostStore`] filled from an event file, the seeded
//! demo stream or Kafka, served over gRPC with health, reflection and
//! Prometheus metrics, and shut down gracefully (in-flight requests finish).
//!
//! Readiness: `grpc.health.v1` reports NOT_SERVING for
//! `foryou.v1.InNetworkPostsService` until the initial load (or the Kafka
//! catch-up) is applied and `finalize_init` has run; then SERVING, and the
//! auto-trim and stats tasks start.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use foryou_proto::v1::in_network_posts_service_server::InNetworkPostsServiceServer;
use tonic::server::NamedService;
use tonic_health::ServingStatus;

use super::error::RoleError;
use crate::clock::{Clock, SystemClock};
use crate::config::ThunderConfig;
use crate::grpc::in_network_posts::ThunderService;
use crate::grpc::limits::{MessageLimits, THUNDER_REQUEST_BYTES};
use crate::thunder::event_file::EventFileReader;
use crate::thunder::events::{ApplySummary, PostEvent, apply_events, count_malformed};
use crate::thunder::maintenance::{spawn_auto_trim, spawn_stats_logger};
use crate::thunder::synth::{SynthSpec, synth_events};
use crate::thunder::{PostStore, ThunderParams};

/// Events per batch when loading a file.
const LOAD_BATCH: usize = 10_000;

/// What loading an event file did.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadSummary {
    /// Records read.
    pub records: u64,
    /// Records that were not valid events (skipped).
    pub malformed: u64,
    /// What applying them did.
    pub applied: ApplySummary,
}

/// Reads an event file into `store` in batches (blocking). Invalid events are
/// counted, logged and skipped; a corrupt file is an error naming the record
/// (batches before it stay applied).
pub fn load_event_file(store: &PostStore, path: &Path) -> Result<LoadSummary, RoleError> {
    let min_video = store.params().min_video_duration_ms;
    let mut summary = LoadSummary::default();
    let mut batch = Vec::with_capacity(LOAD_BATCH);
    for ev in EventFileReader::open(path)? {
        let ev = ev?;
        match PostEvent::from_proto(ev, min_video) {
            Ok(e) => batch.push(e),
            Err(e) => {
                count_malformed();
                summary.malformed += 1;
                tracing::warn!(path = %path.display(), record = summary.records, error = %e, "skipping invalid event");
            }
        }
        summary.records += 1;
        if batch.len() >= LOAD_BATCH {
            summary
                .applied
                .add(&apply_events(store, std::mem::take(&mut batch)));
        }
    }
    summary.applied.add(&apply_events(store, batch));
    Ok(summary)
}

/// Fills `store` with the seeded demo stream (blocking).
pub fn load_demo(
    store: &PostStore,
    authors: u32,
    posts_per_author: u32,
    seed: u64,
) -> ApplySummary {
    let spec = SynthSpec {
        authors,
        posts_per_author,
        ..SynthSpec::new(store.clock().unix_s(), seed)
    };
    apply_events(store, synth_events(&spec))
}

fn kafka_requested(cfg: &ThunderConfig) -> bool {
    cfg.kafka.kafka_brokers.is_some()
}

/// Runs Thunder until `shutdown` resolves.
pub async fn run_thunder(
    cfg: ThunderConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RoleError> {
    let params: ThunderParams = cfg.params();
    let world = match cfg.world.clone() {
        Some(path) => {
            Some(tokio::task::spawn_blocking(move || crate::world::read_world(&path)).await??)
        }
        None => None,
    };
    let clock: Arc<dyn Clock> = match &world {
        Some(w) => Arc::new(crate::clock::OffsetClock::starting_at(w.now_ms)),
        None => Arc::new(SystemClock::new()),
    };
    let store = Arc::new(PostStore::new(params, clock));
    if let Some(addr) = cfg.metrics_listen.0 {
        crate::telemetry::install_prometheus(addr)?;
        tracing::info!(%addr, "metrics on http://{addr}/metrics");
    }

    // Initial load from a file or the demo stream, before we listen.
    if !kafka_requested(&cfg) {
        let s = store.clone();
        let (events, demo) = (
            cfg.events.clone(),
            (cfg.demo_authors, cfg.demo_posts_per_author, cfg.seed),
        );
        let loaded = tokio::task::spawn_blocking(move || -> Result<String, RoleError> {
            if let Some(w) = world {
                let min_video = i32::try_from(s.params().min_video_duration_ms).unwrap_or(i32::MAX);
                let sum = s.insert_posts(w.light_posts(min_video));
                return Ok(format!("world: {} posts inserted", sum.inserted));
            }
            Ok(match events {
                Some(path) => {
                    let l = load_event_file(&s, &path)?;
                    format!(
                        "{} records from {}: {} posts inserted, {} deletes, {} skipped",
                        l.records,
                        path.display(),
                        l.applied.creates.inserted,
                        l.applied.deletes_applied,
                        l.applied.creates.skipped() + l.applied.deletes_repeated + l.malformed
                    )
                }
                None if demo.0 > 0 => {
                    let a = load_demo(&s, demo.0, demo.1, demo.2);
                    format!(
                        "demo stream (seed {}): {} authors, {} posts inserted, {} deletes",
                        demo.2, demo.0, a.creates.inserted, a.deletes_applied
                    )
                }
                None => "empty store".to_owned(),
            })
        })
        .await??;
        tracing::info!("loaded {loaded}");
    }

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_not_serving::<InNetworkPostsServiceServer<ThunderService>>()
        .await;
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;

    #[cfg(feature = "kafka")]
    let kafka = if let Some(kcfg) = cfg.kafka.ingest_config("foryou-thunder") {
        use crate::thunder::kafka::KafkaIngest;
        let s = store.clone();
        let ingest =
            tokio::task::spawn_blocking(move || KafkaIngest::start(kcfg, s as _)).await??;
        Some(ingest)
    } else {
        None
    };
    #[cfg(not(feature = "kafka"))]
    if kafka_requested(&cfg) {
        return Err(RoleError::KafkaNotBuilt);
    }

    // Readiness: after the load (now) or the Kafka catch-up (later).
    #[cfg(feature = "kafka")]
    let mut ready = kafka.as_ref().map(|k| k.caught_up());
    #[cfg(not(feature = "kafka"))]
    let mut ready: Option<tokio::sync::watch::Receiver<bool>> = None;
    let readiness = {
        let (store, health) = (store.clone(), health.clone());
        tokio::spawn(async move {
            if let Some(rx) = ready.as_mut()
                && rx.wait_for(|caught_up| *caught_up).await.is_err()
            {
                return Vec::new();
            }
            let s = store.clone();
            match tokio::task::spawn_blocking(move || s.finalize_init()).await {
                Ok(n) => tracing::info!(trimmed = n, stats = ?store.stats(), "store ready"),
                Err(e) => tracing::error!(error = %e, "finalize_init failed"),
            }
            health
                .set_serving::<InNetworkPostsServiceServer<ThunderService>>()
                .await;
            health.set_service_status("", ServingStatus::Serving).await;
            vec![spawn_auto_trim(store.clone()), spawn_stats_logger(store)]
        })
    };

    let (listener, local) = super::listen::bind(cfg.listen).await?;
    tracing::info!(addr = %local, "thunder listening on {local}");

    let reflection =
        super::listen::reflection(&[InNetworkPostsServiceServer::<ThunderService>::NAME])?;
    let service = ThunderService::new(store.clone())
        .with_ingest_batch(cfg.ingest_batch)
        .into_server();
    let limits = MessageLimits::new(
        cfg.max_request_bytes,
        THUNDER_REQUEST_BYTES,
        cfg.max_message_bytes,
    );
    let service = service
        .max_decoding_message_size(limits.request_bytes)
        .max_encoding_message_size(limits.response_bytes);
    let served = super::listen::server(&cfg.security)?
        .add_service(health_service)
        .add_service(reflection)
        .add_service(service)
        .serve_with_incoming_shutdown(super::listen::incoming(listener), shutdown)
        .await;
    tracing::info!("grpc server stopped; in-flight requests finished");

    readiness.abort();
    if let Ok(Ok(tasks)) = tokio::time::timeout(std::time::Duration::ZERO, readiness).await {
        for t in tasks {
            t.abort();
        }
    }
    #[cfg(feature = "kafka")]
    if let Some(k) = kafka {
        tokio::task::spawn_blocking(move || k.stop()).await??;
    }
    served?;
    Ok(())
}
