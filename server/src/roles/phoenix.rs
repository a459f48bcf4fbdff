//! `foryou phoenix serve`: the Phoenix ranker and retriever as a gRPC
//! service (with health and reflection), over a model directory. Retrieval
//! searches the live index (default): it is rebuilt at start from the
//! world's recent posts and follows the post stream through this server's
//! own `IngestEvents` (the `InNetworkPostsService` it also serves, ingest
//! only), so `foryou thunder replay --addr` or a producer can feed Thunder
//! and Phoenix alike. Health is NOT_SERVING until the rebuild is done.

use std::future::Future;
use std::sync::Arc;

use foryou_proto::v1::in_network_posts_service_server::InNetworkPostsServiceServer;
use foryou_proto::v1::phoenix_ranker_server::PhoenixRankerServer;
use foryou_proto::v1::phoenix_retrieval_server::PhoenixRetrievalServer;
use tonic::server::NamedService;

use super::engine_setup::{build_engine, feed_world};
use super::error::RoleError;
use super::readiness::{RankerGate, serve_when_indexed};
use super::serve::world_from;
use crate::clock::{Clock, OffsetClock};
use crate::config::PhoenixServeConfig;
use crate::grpc::limits::{MessageLimits, PHOENIX_REQUEST_BYTES, THUNDER_REQUEST_BYTES};
use crate::grpc::phoenix::PhoenixService;
use crate::grpc::post_ingest::IndexIngestService;
use crate::phoenix::IndexSink;
use crate::thunder::ThunderParams;
use crate::world::{WorldRules, WorldSpec};

/// Serves Phoenix until `shutdown` resolves.
pub async fn run_phoenix(
    cfg: PhoenixServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RoleError> {
    super::priority::lower_compute_pool_priority();
    if let Some(addr) = cfg.metrics_listen.0 {
        crate::telemetry::install_prometheus(addr)?;
        tracing::info!(%addr, "metrics on http://{addr}/metrics");
    }
    let from_kafka = cfg.kafka.kafka_brokers.is_some();
    let c = cfg.clone();
    let (engine, world, clock) = tokio::task::spawn_blocking(move || {
        let now = crate::clock::SystemClock::new().unix_ms();
        let spec = WorldSpec {
            users: c.users,
            ..WorldSpec::demo(c.seed, now)
        };
        // Phoenix serve ranks the history each request carries: the world's
        // engagements are not used here.
        let world = world_from(c.world.as_deref(), &spec, WorldRules::default())?;
        let clock: Arc<dyn Clock> = Arc::new(OffsetClock::starting_at(world.now_ms));
        let retention_ms = c.retention_s.saturating_mul(1000);
        let engine = build_engine(&c.engine, c.seed, &world, clock.clone(), retention_ms)?;
        Ok::<_, RoleError>((engine, world, clock))
    })
    .await??;
    let live = engine.live_retrieval().cloned();
    let min_video = ThunderParams::default().min_video_duration_ms;
    // The index's source: the post topic (rebuilt from it within
    // retention), or the world's posts.
    let kafka = match (&live, from_kafka) {
        (None, true) => {
            return Err(RoleError::Flags(
                "kafka-brokers needs --retrieval-index live: the static corpus takes no new posts"
                    .into(),
            ));
        }
        (Some(live), true) => {
            let sink = IndexSink::new(live.clone(), clock, cfg.retention_s, min_video);
            Some(start_kafka(&cfg, Arc::new(sink)).await?)
        }
        (Some(live), false) => {
            let (live, min_video) = (live.clone(), i32::try_from(min_video).unwrap_or(i32::MAX));
            tokio::task::spawn_blocking(move || feed_world(&live, &world.light_posts(min_video)))
                .await?;
            None
        }
        (None, false) => None,
    };
    let (listener, local) = super::listen::bind(cfg.listen).await?;
    let (health, health_service) = tonic_health::server::health_reporter();
    let services = vec![
        PhoenixRankerServer::<PhoenixService>::NAME,
        PhoenixRetrievalServer::<PhoenixService>::NAME,
    ];
    let service =
        PhoenixService::from_args(Arc::new(engine), &cfg.engine).map_err(RoleError::Thread)?;
    let gate = RankerGate {
        service: service.clone(),
        needs_it: vec![PhoenixRankerServer::<PhoenixService>::NAME],
    };
    let caught_up = kafka.as_ref().map(KafkaSource::caught_up);
    let readiness = serve_when_indexed(health, services, live.clone(), caught_up, Some(gate)).await;
    let limits =
        |default| MessageLimits::new(cfg.max_request_bytes, default, cfg.max_message_bytes);
    let (ranker, retrieval) = service.into_servers(limits(PHOENIX_REQUEST_BYTES));
    tracing::info!(addr = %local, "phoenix listening on {local}");
    let mut served = vec![
        PhoenixRankerServer::<PhoenixService>::NAME,
        PhoenixRetrievalServer::<PhoenixService>::NAME,
    ];
    if live.is_some() {
        served.push(InNetworkPostsServiceServer::<IndexIngestService>::NAME);
    }
    let mut router = super::listen::server(&cfg.security)?
        .add_service(health_service)
        .add_service(super::listen::reflection(&served)?)
        .add_service(ranker)
        .add_service(retrieval);
    if let Some(live) = live {
        router = router
            .add_service(IndexIngestService::new(live).into_server(limits(THUNDER_REQUEST_BYTES)));
    }
    let served = router
        .serve_with_incoming_shutdown(super::listen::incoming(listener), shutdown)
        .await;
    readiness.abort();
    if let Some(k) = kafka {
        tokio::task::spawn_blocking(move || k.stop()).await??;
    }
    served?;
    tracing::info!("grpc server stopped; in-flight requests finished");
    Ok(())
}

/// The Kafka consumer feeding the index (a stand-in without the feature).
#[cfg(feature = "kafka")]
type KafkaSource = crate::thunder::kafka::KafkaIngest;

/// Without the `kafka` feature there is never a consumer.
#[cfg(not(feature = "kafka"))]
enum KafkaSource {}

#[cfg(not(feature = "kafka"))]
impl KafkaSource {
    fn caught_up(&self) -> tokio::sync::watch::Receiver<bool> {
        match *self {}
    }

    fn stop(self) -> Result<(), RoleError> {
        match self {}
    }
}

/// Starts the consumer of the post topic into `sink`.
#[cfg(feature = "kafka")]
async fn start_kafka(
    cfg: &PhoenixServeConfig,
    sink: Arc<IndexSink>,
) -> Result<KafkaSource, RoleError> {
    use crate::thunder::kafka::KafkaIngest;
    let Some(kcfg) = cfg.kafka.ingest_config("foryou-phoenix") else {
        return Err(RoleError::Flags("kafka-brokers is needed".into()));
    };
    Ok(tokio::task::spawn_blocking(move || KafkaIngest::start(kcfg, sink as _)).await??)
}

#[cfg(not(feature = "kafka"))]
async fn start_kafka(_: &PhoenixServeConfig, _: Arc<IndexSink>) -> Result<KafkaSource, RoleError> {
    Err(RoleError::KafkaNotBuilt)
}
