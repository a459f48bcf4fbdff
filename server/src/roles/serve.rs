//! `foryou serve`: every role in one process. A world (generated from a
//! seed, or loaded from a file) backs the embedded external services and
//! fills the embedded Thunder store; the Phoenix engine runs on a model
//! directory (a seeded demo pair by default) with a retrieval corpus of the
//! world's recent posts; the home-mixer pipeline calls them in-process, or
//! a remote Thunder / Phoenix when asked.
//!
//! One post stream, two consumers: the world's posts and every later
//! `IngestEvents` batch go to the Thunder store and, through its feed, to
//! the live retrieval index (`--retrieval-index live`, the default), whose
//! writer thread encodes them in the background. The server listens once
//! the models are loaded; health reports NOT_SERVING for the home mixer
//! and Phoenix until the index holds the world's posts (the rebuild after
//! a restart), SERVING after. SIGTERM / Ctrl-C stops accepting and lets
//! in-flight requests finish.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foryou_proto::v1::in_network_posts_service_server::InNetworkPostsServiceServer;
use foryou_proto::v1::phoenix_ranker_server::PhoenixRankerServer;
use foryou_proto::v1::phoenix_retrieval_server::PhoenixRetrievalServer;
use foryou_proto::v1::scored_posts_service_server::ScoredPostsServiceServer;

use super::error::RoleError;
use crate::clients::{
    EmbeddedPhoenix, EmbeddedThunder, InMemoryRequestInfo, InNetworkPostsClient,
    PhoenixRankerClient, PhoenixRetrievalClient, RemotePhoenix, RemoteThunder,
};
use crate::clock::{Clock, OffsetClock};
use crate::config::ServeConfig;
use crate::grpc::admission::{
    AdmissionLayer, AdmissionPolicy, default_max_in_flight, default_target,
};
use crate::grpc::in_network_posts::ThunderService;
use crate::grpc::limits::{
    HOME_MIXER_REQUEST_BYTES, MessageLimits, PHOENIX_REQUEST_BYTES, THUNDER_REQUEST_BYTES,
};
use crate::grpc::phoenix::PhoenixService;
use crate::grpc::post_ingest::IndexIngestService;
use crate::grpc::scored_posts::HomeMixerService;
use crate::phoenix::models::ranker_product_surfaces;
use crate::pipeline::home_mixer::{HomeMixerDeps, Params, build_pipeline};
use crate::thunder::{PostStore, ThunderParams};
use crate::world::{
    GENERATED_SURFACES, World, WorldRules, WorldServices, WorldSpec, generate, read_world_for,
};

use super::engine_setup::{build_engine, feed_world};
use super::readiness::{RankerGate, serve_when_indexed};

/// Builds everything, then serves until `shutdown` resolves.
pub async fn run_serve(
    cfg: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RoleError> {
    let started = Instant::now();
    super::priority::lower_compute_pool_priority();
    let params = match &cfg.params {
        Some(path) => Params::from_toml_file(path)?,
        None => Params::default(),
    };
    if let Some(addr) = cfg.metrics_listen.0 {
        crate::telemetry::install_prometheus(addr)?;
        tracing::info!(%addr, "metrics on http://{addr}/metrics");
    }

    // The world and its clock.
    let world = {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || load_or_generate(&cfg)).await??
    };
    let world = Arc::new(world);
    tracing::info!("world: {}", world.summary());
    let clock: Arc<dyn Clock> = Arc::new(OffsetClock::starting_at(world.now_ms));
    let services = WorldServices::new(world.clone());

    // Phoenix: the engine on a model directory, or a remote one. Built
    // first so that the Thunder store can feed its retrieval index.
    let timeout = Duration::from_millis(cfg.client_timeout_ms.max(1));
    let remote_tls = cfg.remote_tls.tls()?;
    let retention_ms = cfg.retention_s.saturating_mul(1000);
    let mut phoenix_service = None;
    let mut live = None;
    let (ranker, retrieval): (
        Arc<dyn PhoenixRankerClient>,
        Arc<dyn PhoenixRetrievalClient>,
    ) = match &cfg.phoenix_addr {
        Some(addr) => {
            let remote = Arc::new(RemotePhoenix::new(
                addr,
                timeout,
                cfg.max_message_bytes,
                cfg.breaker(),
                remote_tls.as_ref(),
            )?);
            (remote.clone(), remote)
        }
        None => {
            let (cfg2, w, c) = (cfg.clone(), world.clone(), clock.clone());
            let engine = tokio::task::spawn_blocking(move || {
                build_engine(&cfg2.engine, cfg2.seed, &w, c, retention_ms)
            })
            .await??;
            live = engine.live_retrieval().cloned();
            let service = PhoenixService::from_args(Arc::new(engine), &cfg.engine)
                .map_err(RoleError::Thread)?;
            phoenix_service = Some(service.clone());
            let embedded = Arc::new(EmbeddedPhoenix(service));
            (embedded.clone(), embedded)
        }
    };

    // Thunder: embedded store filled from the world, or a remote one. The
    // world's posts reach the live index through the store's feed (or
    // directly when Thunder is remote), as later ingested ones do.
    let thunder_params = ThunderParams {
        retention_s: cfg.retention_s,
        ..ThunderParams::default()
    };
    let store = Arc::new(PostStore::new(thunder_params, clock.clone()));
    let thunder_service =
        ThunderService::new(store.clone()).with_following_lookup(Arc::new(services.clone()));
    let min_video = params.min_video_duration_ms;
    let thunder: Arc<dyn InNetworkPostsClient> = match &cfg.thunder_addr {
        Some(addr) => {
            if let Some(live) = live.clone() {
                let w = world.clone();
                tokio::task::spawn_blocking(move || feed_world(&live, &w.light_posts(min_video)))
                    .await?;
            }
            Arc::new(RemoteThunder::new(
                addr,
                timeout,
                cfg.max_message_bytes,
                cfg.breaker(),
                remote_tls.as_ref(),
            )?)
        }
        None => {
            if let Some(live) = live.clone() {
                // A store made just above has no feed yet.
                let _ = store.set_feed(live);
            }
            let (s, w) = (store.clone(), world.clone());
            let inserted = tokio::task::spawn_blocking(move || {
                let posts = w.light_posts(min_video);
                s.forward(&posts, &[]);
                let summary = s.insert_posts(posts);
                s.finalize_init();
                summary.inserted
            })
            .await?;
            tracing::info!(inserted, "thunder store filled from the world");
            Arc::new(EmbeddedThunder(thunder_service.clone()))
        }
    };

    let deps = HomeMixerDeps {
        user_actions: Arc::new(services.clone()),
        user_features: Arc::new(services.clone()),
        thunder,
        phoenix_retrieval: retrieval,
        phoenix_ranker: ranker,
        // Posts streamed into the embedded store are known by core data too.
        tweet_entities: Arc::new(match &cfg.thunder_addr {
            None => services.clone().with_stream_store(store.clone()),
            Some(_) => services.clone(),
        }),
        gizmoduck: Arc::new(services.clone()),
        visibility: Arc::new(services.clone()),
        request_info: Arc::new(InMemoryRequestInfo::default()),
        clock: clock.clone(),
        app_env: cfg.app_env.clone(),
    };
    let pipeline = Arc::new(build_pipeline(&params, &deps));
    let home_mixer = HomeMixerService::new(pipeline, params.result_size)
        .with_impressions(Arc::new(services.clone()));

    let (listener, local) = super::listen::bind(cfg.listen).await?;

    // NOT_SERVING until the retrieval index holds the world's posts.
    use tonic::server::NamedService;
    let mut gated = vec![ScoredPostsServiceServer::<HomeMixerService>::NAME];
    if phoenix_service.is_some() {
        gated.push(PhoenixRankerServer::<PhoenixService>::NAME);
        gated.push(PhoenixRetrievalServer::<PhoenixService>::NAME);
    }
    let (health, health_service) = tonic_health::server::health_reporter();
    if cfg.thunder_addr.is_none() {
        health
            .set_serving::<InNetworkPostsServiceServer<ThunderService>>()
            .await;
    }
    let mut served = gated.clone();
    if cfg.thunder_addr.is_none() || live.is_some() {
        served.push(InNetworkPostsServiceServer::<ThunderService>::NAME);
    }
    // Feeds need the embedded ranker: NOT_SERVING while it cannot score
    // (feeds still answer, unranked, with the failure in their debug).
    let gate = phoenix_service.clone().map(|service| RankerGate {
        service,
        needs_it: vec![
            ScoredPostsServiceServer::<HomeMixerService>::NAME,
            PhoenixRankerServer::<PhoenixService>::NAME,
        ],
    });
    let readiness = serve_when_indexed(health, gated, live.clone(), None, gate).await;
    let reflection = super::listen::reflection(&served)?;

    let limits =
        |default| MessageLimits::new(cfg.max_request_bytes, default, cfg.max_message_bytes);
    let admission = AdmissionLayer::new(
        &[ScoredPostsServiceServer::<HomeMixerService>::NAME],
        &AdmissionPolicy {
            max_in_flight: cfg.max_in_flight.unwrap_or_else(default_max_in_flight),
            deadline_aware: cfg.deadline_admission,
            target: match cfg.admission_target_ms {
                None => default_target(cfg.phoenix_addr.is_some()),
                Some(0) => None,
                Some(ms) => Some(Duration::from_millis(ms)),
            },
        },
    );
    let mut router = super::listen::server(&cfg.security)?
        .layer(admission)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(home_mixer.into_server(limits(HOME_MIXER_REQUEST_BYTES)));
    match (&cfg.thunder_addr, &live) {
        (None, _) => {
            let l = limits(THUNDER_REQUEST_BYTES);
            router = router.add_service(
                thunder_service
                    .into_server()
                    .max_decoding_message_size(l.request_bytes)
                    .max_encoding_message_size(l.response_bytes),
            );
        }
        // Thunder is remote: IngestEvents here feeds the index alone.
        (Some(_), Some(live)) => {
            router = router.add_service(
                IndexIngestService::new(live.clone()).into_server(limits(THUNDER_REQUEST_BYTES)),
            );
        }
        (Some(_), None) => {}
    }
    if let Some(p) = phoenix_service {
        let (r, q) = p.into_servers(limits(PHOENIX_REQUEST_BYTES));
        router = router.add_service(r).add_service(q);
    }
    tracing::info!(
        addr = %local,
        startup_ms = started.elapsed().as_millis() as u64,
        "foryou serving on {local}"
    );
    router
        .serve_with_incoming_shutdown(super::listen::incoming(listener), shutdown)
        .await?;
    readiness.abort();
    tracing::info!("grpc server stopped; in-flight requests finished");
    Ok(())
}

fn load_or_generate(cfg: &ServeConfig) -> Result<World, RoleError> {
    let now = crate::clock::SystemClock::new().unix_ms();
    let spec = WorldSpec {
        users: cfg.users,
        posts_per_user: cfg.posts_per_user,
        mean_follows: cfg.follows,
        ..WorldSpec::demo(cfg.seed, now)
    };
    // The embedded ranker takes the world's engagements as history: check
    // their surfaces now, naming the line, rather than fail every request
    // of the users they belong to.
    let rules = match cfg.phoenix_addr {
        Some(_) => WorldRules::default(),
        None => WorldRules {
            product_surfaces: Some(ranker_product_surfaces(cfg.engine.model.as_deref())?),
        },
    };
    world_from(cfg.world.as_deref(), &spec, rules)
}

/// The world in `file`, or the one `spec` generates, checked against
/// `rules`.
pub fn world_from(
    file: Option<&Path>,
    spec: &WorldSpec,
    rules: WorldRules,
) -> Result<World, RoleError> {
    match file {
        Some(path) => Ok(read_world_for(path, rules)?),
        None => {
            spec.validate().map_err(RoleError::WorldSpec)?;
            if let Some(v) = rules.product_surfaces
                && v < GENERATED_SURFACES
            {
                return Err(RoleError::WorldSpec(format!(
                    "world: the generated world uses product surfaces 0 to {}, the ranker only 0 to {}; give a world file",
                    GENERATED_SURFACES - 1,
                    v.saturating_sub(1)
                )));
            }
            Ok(generate(spec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_errors_keep_their_kind_and_name_the_input() {
        let spec = WorldSpec::demo(1, 0);
        let missing = Path::new("/nonexistent/world.jsonl");
        let e = world_from(Some(missing), &spec, WorldRules::default()).expect_err("no such file");
        assert!(matches!(e, RoleError::World(_)), "{e:?}");
        assert!(e.to_string().contains("/nonexistent/world.jsonl"), "{e}");
        let bad = WorldSpec { users: 0, ..spec };
        let e = world_from(None, &bad, WorldRules::default()).expect_err("no users");
        assert!(matches!(e, RoleError::WorldSpec(_)), "{e:?}");
        assert!(e.to_string().starts_with("--users"), "{e}");
    }
}
