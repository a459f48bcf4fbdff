//! `foryou serve`: every role in one process. A world (generated from a
//! seed, or loaded from a file) backs the embedded external services and
//! fills the embedded Thunder store; the Phoenix engine runs on a model
//! directory (a seeded demo pair by default) with a retrieval corpus of the
//! world's recent posts; the home-mixer pipeline calls them in-process, or
//! a remote Thunder / Phoenix when asked. Health turns SERVING once all of
//! it is built; SIGTERM / Ctrl-C stops accepting and lets in-flight
//! requests finish.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foryou_proto::v1::in_network_posts_service_server::InNetworkPostsServiceServer;
use foryou_proto::v1::phoenix_ranker_server::PhoenixRankerServer;
use foryou_proto::v1::phoenix_retrieval_server::PhoenixRetrievalServer;
use foryou_proto::v1::scored_posts_service_server::ScoredPostsServiceServer;
use tonic_health::ServingStatus;

use super::error::RoleError;
use crate::clients::{
    EmbeddedPhoenix, EmbeddedThunder, InMemoryRequestInfo, InNetworkPostsClient,
    PhoenixRankerClient, PhoenixRetrievalClient, RemotePhoenix, RemoteThunder,
};
use crate::clock::{Clock, OffsetClock};
use crate::config::{EngineArgs, ServeConfig};
use crate::grpc::in_network_posts::ThunderService;
use crate::grpc::phoenix::PhoenixService;
use crate::grpc::scored_posts::HomeMixerService;
use crate::phoenix::{
    PhoenixEngine, PhoenixModels, demo_model_dir, ensure_demo_models, load_models,
};
use crate::pipeline::home_mixer::{HomeMixerDeps, Params, build_pipeline};
use crate::thunder::{PostStore, ThunderParams};
use crate::world::{World, WorldServices, WorldSpec, generate, read_world};
use foryou_engine::{ComputeDevice, Corpus, CorpusItem, Device};

/// Builds everything, then serves until `shutdown` resolves.
pub async fn run_serve(
    cfg: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RoleError> {
    let started = Instant::now();
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

    // Thunder: embedded store filled from the world, or a remote one.
    let timeout = Duration::from_millis(cfg.client_timeout_ms.max(1));
    let thunder_params = ThunderParams {
        retention_s: cfg.retention_s,
        ..ThunderParams::default()
    };
    let store = Arc::new(PostStore::new(thunder_params, clock.clone()));
    let thunder_service =
        ThunderService::new(store.clone()).with_following_lookup(Arc::new(services.clone()));
    let thunder: Arc<dyn InNetworkPostsClient> = match &cfg.thunder_addr {
        Some(addr) => Arc::new(RemoteThunder::new(
            addr,
            timeout,
            cfg.max_message_bytes,
            cfg.breaker(),
        )?),
        None => {
            let (s, w, min_video) = (store.clone(), world.clone(), params.min_video_duration_ms);
            let inserted = tokio::task::spawn_blocking(move || {
                let summary = s.insert_posts(w.light_posts(min_video));
                s.finalize_init();
                summary.inserted
            })
            .await?;
            tracing::info!(inserted, "thunder store filled from the world");
            Arc::new(EmbeddedThunder(thunder_service.clone()))
        }
    };

    // Phoenix: the engine on a model directory, or a remote one.
    let mut phoenix_service = None;
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
            )?);
            (remote.clone(), remote)
        }
        None => {
            let (cfg2, w, now) = (cfg.clone(), world.clone(), clock.unix_ms());
            let retention_ms = cfg.retention_s.saturating_mul(1000);
            let engine = tokio::task::spawn_blocking(move || {
                build_engine(&cfg2.engine, cfg2.seed, &w, now - retention_ms)
            })
            .await??;
            let service = PhoenixService::from_args(Arc::new(engine), &cfg.engine)
                .map_err(RoleError::Thread)?;
            phoenix_service = Some(service.clone());
            let embedded = Arc::new(EmbeddedPhoenix(service));
            (embedded.clone(), embedded)
        }
    };

    let deps = HomeMixerDeps {
        user_actions: Arc::new(services.clone()),
        user_features: Arc::new(services.clone()),
        thunder,
        phoenix_retrieval: retrieval,
        phoenix_ranker: ranker,
        tweet_entities: Arc::new(services.clone()),
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

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<ScoredPostsServiceServer<HomeMixerService>>()
        .await;
    if cfg.thunder_addr.is_none() {
        health
            .set_serving::<InNetworkPostsServiceServer<ThunderService>>()
            .await;
    }
    if phoenix_service.is_some() {
        health
            .set_serving::<PhoenixRankerServer<PhoenixService>>()
            .await;
        health
            .set_serving::<PhoenixRetrievalServer<PhoenixService>>()
            .await;
    }
    health.set_service_status("", ServingStatus::Serving).await;
    let reflection = super::listen::reflection()?;

    let max = cfg.max_message_bytes;
    let mut router = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(home_mixer.into_server(max));
    if cfg.thunder_addr.is_none() {
        router = router.add_service(
            thunder_service
                .into_server()
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        );
    }
    if let Some(p) = phoenix_service {
        let (r, q) = p.into_servers(max);
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
    world_from(cfg.world.as_deref(), &spec)
}

/// The world in `file`, or the one `spec` generates.
pub fn world_from(file: Option<&Path>, spec: &WorldSpec) -> Result<World, RoleError> {
    match file {
        Some(path) => Ok(read_world(path)?),
        None => {
            spec.validate().map_err(RoleError::WorldSpec)?;
            Ok(generate(spec))
        }
    }
}

/// Opens `--device` once (every kernel compiled once, shared by the ranker
/// and the retriever); a GPU that cannot be used is reported once and the
/// engine runs on the CPU.
pub fn open_device(args: &EngineArgs) -> Device {
    let options = args.device_options();
    match Device::open(args.device, options) {
        Ok(device) => device,
        Err(why) => {
            tracing::warn!(device = %args.device, %why, "GPU unavailable, the engine runs on the CPU");
            Device::cpu_with(options)
        }
    }
}

/// Loads `--model` (or makes the seeded demo pair under `--model-cache`)
/// onto `--device`, and encodes the corpus: every post of the world created
/// after `since_ms` that is not a retweet.
pub fn build_engine(
    args: &EngineArgs,
    seed: u64,
    world: &World,
    since_ms: i64,
) -> Result<PhoenixEngine, RoleError> {
    let dir = match &args.model {
        Some(dir) => dir.clone(),
        None => {
            let dir = demo_model_dir(args.model_cache.as_deref(), seed);
            if ensure_demo_models(&dir, seed)? {
                tracing::info!(dir = %dir.display(), "wrote the demo model");
            }
            dir
        }
    };
    let models = load_on_device(&dir, &open_device(args))?;
    tracing::info!(device = %models.ranker.device(), "engine device");
    let t = Instant::now();
    let corpus = match &args.corpus {
        Some(path) => corpus_file(path, models.retriever.config().emb_size)?,
        None => {
            let posts: Vec<CorpusItem> = world
                .posts
                .values()
                .filter(|p| p.retweet_of.is_none() && p.created_ms > since_ms)
                .map(|p| CorpusItem {
                    post_id: p.id,
                    author_id: p.author,
                })
                .collect();
            Corpus::build(&models.retriever, posts)?
        }
    };
    tracing::info!(
        posts = corpus.len(),
        ms = t.elapsed().as_millis() as u64,
        "retrieval corpus encoded"
    );
    Ok(PhoenixEngine::new(models.ranker, models.retriever, corpus))
}

/// A corpus of precomputed representations from an npz (`--corpus`),
/// checked against the retriever's width.
fn corpus_file(path: &Path, dim: usize) -> Result<Corpus, RoleError> {
    let npz = foryou_engine::artifacts::ArtifactCorpus::open(path)?;
    if npz.dim != dim {
        return Err(RoleError::Engine(foryou_engine::EngineError::Input(
            format!(
                "{}: candidate_representations have width {}, the retriever's emb_size is {dim}",
                path.display(),
                npz.dim
            ),
        )));
    }
    let items = npz
        .post_ids
        .iter()
        .zip(&npz.author_ids)
        .map(|(&post_id, &author_id)| CorpusItem { post_id, author_id })
        .collect();
    Ok(Corpus::from_representations(
        items,
        npz.representations,
        dim,
    )?)
}

/// The models of `dir` on `device`; a model the device cannot run (a
/// shape without a kernel, a failed upload) is reported once and both
/// models load on the CPU instead.
fn load_on_device(dir: &Path, device: &Device) -> Result<PhoenixModels, RoleError> {
    match load_models(dir, device) {
        Ok(models) => Ok(models),
        Err(e) if device.spec() != ComputeDevice::Cpu && e.is_device_fault() => {
            tracing::warn!(device = %device.spec(), why = %e, "the engine runs on the CPU");
            let cpu = Device::cpu_with(device.options());
            Ok(load_models(dir, &cpu)?)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        engine: EngineArgs,
    }

    #[test]
    fn an_unusable_gpu_falls_back_to_the_cpu_with_the_flags_options() {
        // No GPU here (and no `cuda` feature in the default build): the
        // device opens as the CPU, keeping the other options.
        let args = Wrap::try_parse_from(["t", "--device", "cuda:0", "--cpu-amx", "false"])
            .expect("flags")
            .engine;
        if Device::open(args.device, args.device_options()).is_ok() {
            return; // a usable GPU: nothing to fall back from
        }
        let device = open_device(&args);
        assert_eq!(device.spec(), ComputeDevice::Cpu);
        assert!(!device.options().cpu_amx);
    }

    #[test]
    fn released_artifacts_and_their_corpus_npz_serve_predict_and_retrieve() {
        use foryou_proto::v1 as pb;
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../engine/tests/fixtures/phoenix-v2/v2_artifacts");
        let corpus = root.join("sports_corpus.npz");
        let args = Wrap::try_parse_from([
            "t".as_ref(),
            "--model".as_ref(),
            root.as_os_str(),
            "--corpus".as_ref(),
            corpus.as_os_str(),
        ])
        .expect("flags")
        .engine;
        let world = generate(&WorldSpec {
            users: 10,
            ..WorldSpec::demo(1, 1_778_000_000_000)
        });
        let engine = build_engine(&args, 1, &world, 0).expect("artifact engine");
        assert_eq!(
            engine.corpus().len(),
            20_000,
            "the npz corpus, not the world's"
        );
        let history = vec![pb::HistoryItem {
            post_id: 2_051_144_155_729_896_093,
            author_id: 1_396_783_375_990_605_752,
            actions: vec![false, true],
            ..Default::default()
        }];
        let got = engine
            .retrieve(&pb::RetrieveRequest {
                user_id: 1_907_834_201_938_571_264,
                history: history.clone(),
                top_k: 5,
                ..Default::default()
            })
            .expect("retrieve");
        assert_eq!(got.posts.len(), 5);
        assert!(got.posts.windows(2).all(|w| w[0].score >= w[1].score));
        let candidates = got
            .posts
            .iter()
            .map(|p| pb::RankCandidate {
                post_id: p.post_id,
                author_id: p.author_id,
                created_at_s: 1_777_990_000,
                ..Default::default()
            })
            .collect();
        let scored = engine
            .predict(&pb::PredictRequest {
                user_id: 1_907_834_201_938_571_264,
                history,
                candidates,
                impression_time_s: 1_778_000_000,
                ..Default::default()
            })
            .expect("predict");
        assert_eq!(scored.scores.len(), 5);
        for s in &scored.scores {
            assert_eq!((s.probabilities.len(), s.continuous.len()), (19, 8));
        }
    }

    #[test]
    fn setup_errors_keep_their_kind_and_name_the_input() {
        let spec = WorldSpec::demo(1, 0);
        let missing = Path::new("/nonexistent/world.jsonl");
        let e = world_from(Some(missing), &spec).expect_err("no such file");
        assert!(matches!(e, RoleError::World(_)), "{e:?}");
        assert!(e.to_string().contains("/nonexistent/world.jsonl"), "{e}");
        let bad = WorldSpec { users: 0, ..spec };
        let e = world_from(None, &bad).expect_err("no users");
        assert!(matches!(e, RoleError::WorldSpec(_)), "{e:?}");
        assert!(e.to_string().starts_with("--users"), "{e}");
    }
}
