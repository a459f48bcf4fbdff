//! `foryou phoenix serve`: the Phoenix ranker and retriever as a gRPC
//! service (with health and reflection), over a model directory and a
//! retrieval corpus of a world's recent posts.

use std::future::Future;
use std::sync::Arc;

use foryou_proto::v1::phoenix_ranker_server::PhoenixRankerServer;
use foryou_proto::v1::phoenix_retrieval_server::PhoenixRetrievalServer;
use tonic_health::ServingStatus;

use super::error::RoleError;
use super::serve::{build_engine, world_from};
use crate::clock::{Clock, SystemClock};
use crate::config::PhoenixServeConfig;
use crate::grpc::phoenix::PhoenixService;
use crate::world::WorldSpec;

/// Corpus window: posts of the last two days.
const CORPUS_WINDOW_MS: i64 = 172_800_000;

/// Serves Phoenix until `shutdown` resolves.
pub async fn run_phoenix(
    cfg: PhoenixServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RoleError> {
    let c = cfg.clone();
    let engine = tokio::task::spawn_blocking(move || {
        let now = SystemClock::new().unix_ms();
        let spec = WorldSpec {
            users: c.users,
            ..WorldSpec::demo(c.seed, now)
        };
        let world = world_from(c.world.as_deref(), &spec)?;
        build_engine(&c.engine, c.seed, &world, world.now_ms - CORPUS_WINDOW_MS)
    })
    .await??;
    let (listener, local) = super::listen::bind(cfg.listen).await?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<PhoenixRankerServer<PhoenixService>>()
        .await;
    health
        .set_serving::<PhoenixRetrievalServer<PhoenixService>>()
        .await;
    health.set_service_status("", ServingStatus::Serving).await;
    let service =
        PhoenixService::from_args(Arc::new(engine), &cfg.engine).map_err(RoleError::Thread)?;
    let (ranker, retrieval) = service.into_servers(cfg.max_message_bytes);
    tracing::info!(addr = %local, "phoenix listening on {local}");
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(super::listen::reflection()?)
        .add_service(ranker)
        .add_service(retrieval)
        .serve_with_incoming_shutdown(super::listen::incoming(listener), shutdown)
        .await?;
    tracing::info!("grpc server stopped; in-flight requests finished");
    Ok(())
}
