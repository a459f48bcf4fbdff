//! Building the Phoenix engine for `foryou serve` and `foryou phoenix
//! serve`: the device (opened once), the models on it, and what retrieval
//! searches: the live index fed by the post stream (default), or a corpus
//! encoded once (`--retrieval-index static`). [`feed_world`] hands a
//! world's posts to the live index, as a restart's rebuild does.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use foryou_engine::{ComputeDevice, Corpus, CorpusItem, Device};

use super::error::RoleError;
use crate::clock::Clock;
use crate::config::EngineArgs;
use crate::phoenix::index_args::{IndexDevice, RetrievalIndex};
use crate::phoenix::live_retrieval::DEFAULT_MAX_FUTURE_SKEW_MS;
use crate::phoenix::{
    LiveRetrieval, PhoenixEngine, PhoenixModels, Preencoded, demo_model_dir, ensure_demo_models,
    load_models,
};
use crate::thunder::{LightPost, PostFeed};
use crate::world::World;

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
/// onto `--device`, then sets up retrieval:
///
/// * live (default): an empty live index (with `--corpus`'s posts, stamped
///   with the clock's now) and its writer thread; the caller feeds it the
///   world ([`feed_world`], or a Thunder store's feed) and the stream.
/// * static: the corpus encoded now, `--corpus`'s or every post of the
///   world created within `retention_ms` that is not a retweet.
pub fn build_engine(
    args: &EngineArgs,
    seed: u64,
    world: &World,
    clock: Arc<dyn Clock>,
    retention_ms: i64,
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
    let mut models = load_on_device(&dir, &open_device(args))?;
    models.ranker = models.ranker.with_token_cache(args.rank_token_cache);
    tracing::info!(device = %models.ranker.device(), "engine device");
    let dim = models.retriever.config().emb_size;
    let t = Instant::now();
    match args.index.retrieval_index {
        RetrievalIndex::Live => {
            let config = args
                .index
                .config(dim, retention_ms)
                .map_err(foryou_engine::EngineError::from)?;
            let initial = match &args.corpus {
                Some(path) => {
                    let (items, reps) = corpus_file(path, dim)?;
                    Some(Preencoded {
                        items,
                        reps,
                        created_ms: clock.unix_ms(),
                    })
                }
                None => None,
            };
            let retriever = Arc::new(models.retriever);
            let device = match args.index.index_device {
                IndexDevice::Auto => retriever.row_device(),
                IndexDevice::Cpu => None,
            };
            let on_device = device.is_some();
            let live = LiveRetrieval::start_on(
                retriever.clone(),
                config,
                clock,
                DEFAULT_MAX_FUTURE_SKEW_MS,
                initial,
                device,
            )?;
            tracing::info!(
                posts = live.stats().posts,
                format = ?args.index.index_format,
                sealed_segments_on_device = on_device,
                "live retrieval index started"
            );
            Ok(PhoenixEngine::live(
                Arc::new(models.ranker),
                retriever,
                Arc::new(live),
            ))
        }
        RetrievalIndex::Static => {
            let corpus = match &args.corpus {
                Some(path) => {
                    let (items, reps) = corpus_file(path, dim)?;
                    Corpus::from_representations(items, reps, dim)?
                }
                None => {
                    let since_ms = clock.unix_ms().saturating_sub(retention_ms);
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
                "static retrieval corpus encoded"
            );
            Ok(PhoenixEngine::new(models.ranker, models.retriever, corpus))
        }
    }
}

/// Hands every post of `world` to the live index (posts past retention
/// or retweets are left out by it), in batches; the index encodes them in
/// the background (wait with [`LiveRetrieval::flush`]).
pub fn feed_world(live: &LiveRetrieval, posts: &[LightPost]) {
    for chunk in posts.chunks(crate::phoenix::ENCODE_BATCH) {
        live.publish(chunk, &[]);
    }
}

/// The posts and representations of an npz (`--corpus`), checked against
/// the retriever's width.
fn corpus_file(path: &Path, dim: usize) -> Result<(Vec<CorpusItem>, Vec<f32>), RoleError> {
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
    Ok((items, npz.representations))
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
    use crate::world::{WorldSpec, generate};
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
        let clock: Arc<dyn Clock> = Arc::new(crate::clock::ManualClock::new(1_778_000_000));
        let engine = build_engine(&args, 1, &world, clock, 172_800_000).expect("artifact engine");
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
}
