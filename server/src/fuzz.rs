//! Entry points of the fuzz targets (`fuzz/fuzz_targets/`) and of their
//! regression test (`server/tests/fuzz_regressions.rs`). Each takes
//! arbitrary bytes and drives one input surface the way serving does; it
//! must return, without a panic, a hang or an allocation out of proportion
//! to its input. An error is the usual outcome and is fine. Where an input
//! is accepted, the store or filter built from it is also exercised and
//! checked for consistency (a broken invariant panics, which the fuzzer
//! reports).

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

use foryou_proto::v1 as pb;
use prost::Message;

use crate::clock::ManualClock;
use crate::grpc::scored_posts::query_from_request;
use crate::thunder::events::{PostEvent, apply_events};
use crate::thunder::retrieval::{IdSet, RetrievalQuery};
use crate::thunder::{PostStore, ThunderParams};
use crate::world::{WorldRules, read_world_from};

/// The world's clock for the store target: 2027-01-15, inside the
/// snowflake era, so generated ids can be fresh or stale.
const STORE_NOW_S: i64 = 1_800_000_000;

/// One target: arbitrary bytes in, nothing out; panics on a broken rule.
pub type Target = fn(&[u8]);

/// The targets by name, for the regression test and `fuzz/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("world_file", world_file),
    ("post_events", post_events),
    ("safetensors_model", safetensors_model),
    ("npz_archive", npz_archive),
    ("bloom_filter_entry", bloom_filter_entry),
    ("scored_posts_request", scored_posts_request),
];

/// A world file's bytes, read with the demo ranker's surface rule; an
/// accepted world is summarised (which walks every table).
pub fn world_file(data: &[u8]) {
    let rules = WorldRules {
        product_surfaces: Some(16),
    };
    let path = std::path::Path::new("fuzz.jsonl");
    if let Ok(world) = read_world_from(Cursor::new(data), path, rules) {
        let _ = world.summary();
    }
}

/// A run of post events: each frame is one length byte then that many
/// bytes of an `InNetworkEvent` payload (as Kafka and the ingest stream
/// carry it). The decodable ones are applied to a store as one batch; the
/// store must then be consistent, and reading every author's timeline
/// must return only live posts.
pub fn post_events(data: &[u8]) {
    let mut events = Vec::new();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = (len as usize).min(tail.len());
        let (frame, tail) = tail.split_at(len);
        if let Ok(e) = PostEvent::decode(frame, 0) {
            events.push(e);
        }
        rest = tail;
    }
    let clock = Arc::new(ManualClock::new(STORE_NOW_S));
    let store = PostStore::new(ThunderParams::default(), clock);
    let authors: Vec<i64> = events
        .iter()
        .filter_map(|e| match e {
            PostEvent::Create(p) => Some(p.author_id),
            PostEvent::Delete(_) => None,
        })
        .collect();
    apply_events(&store, events);
    if let Err(e) = store.check_deleted_flags() {
        panic!("store inconsistent after a batch: {e}");
    }
    let exclude = IdSet::default();
    let q = RetrievalQuery {
        user_ids: &authors,
        exclude: &exclude,
        requester: 0,
        start: store.clock().monotonic(),
    };
    for video in [false, true] {
        for p in store.newest_posts_by_users(&q, video, 1000).posts {
            assert!(
                !store.is_deleted(p.post_id),
                "post {} served after its delete",
                p.post_id
            );
        }
    }
}

/// A `params.safetensors` file loaded as a model's weights and hash tables
/// (the demo ranker's config).
pub fn safetensors_model(data: &[u8]) {
    let Some(path) = scratch_file("safetensors", data) else {
        return;
    };
    if let Some(cfg) = demo_model_config() {
        let _ = foryou_engine::weights::PhoenixWeights::load(&path, &cfg);
    }
    let _ = std::fs::remove_file(&path);
}

/// An `.npz` archive opened as a released artifact's arrays, every array
/// read as the loaders read them.
pub fn npz_archive(data: &[u8]) {
    let Some(path) = scratch_file("npz", data) else {
        return;
    };
    if let Ok(mut npz) = foryou_engine::artifacts::npz::NpzFile::open(&path) {
        for name in npz.names().to_vec() {
            let _ = npz.describe(&name);
            let _ = npz.f32(&name);
            let _ = npz.i64(&name);
            let _ = npz.strings(&name);
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// An `ImpressionBloomFilterEntry` as a request carries it: converted as
/// the home mixer does, then asked about a few ids.
pub fn bloom_filter_entry(data: &[u8]) {
    let Ok(entry) = pb::ImpressionBloomFilterEntry::decode(data) else {
        return;
    };
    if let Ok(filter) = crate::pipeline::home_mixer::BloomFilterEntry::try_from(entry) {
        for id in [0, 1, -1, i64::MAX, i64::MIN, 1_234_567_890_123] {
            let _ = filter.may_contain(id);
        }
    }
}

/// A `ScoredPostsQuery` as the home mixer receives it, turned into the
/// pipeline's query (every limit checked); an accepted query's bloom
/// filters are asked about its seen ids, as the filter does.
pub fn scored_posts_request(data: &[u8]) {
    let Ok(req) = pb::ScoredPostsQuery::decode(data) else {
        return;
    };
    if let Ok(q) = query_from_request(req, 100) {
        for b in &q.bloom_filter_entries {
            for id in q.seen_ids.iter().chain(&q.served_ids).take(64) {
                let _ = b.may_contain(*id);
            }
        }
    }
}

/// Seed inputs for each target (by target name), valid or nearly so, for
/// `fuzz/corpus/` (`cargo run -p foryou-server --example fuzz_seeds`) and
/// for the regression test, which runs them even when the files are gone.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let header =
        r#"{"type":"header","format":"foryou-world","version":1,"now_ms":1800000000000,"seed":1}"#;
    let world = [
        header,
        r#"{"type":"user","id":1,"screen_name":"ada"}"#,
        r#"{"type":"user","id":2,"screen_name":"bob"}"#,
        r#"{"type":"follow","user":1,"target":2}"#,
        r#"{"type":"muted_keyword","user":1,"keyword":"spoiler"}"#,
        r#"{"type":"post","id":7549747200000000000,"author":2,"text":"hello world","video_duration_ms":4000}"#,
        r#"{"type":"post","id":7549747200000000001,"author":1,"in_reply_to":7549747200000000000}"#,
        r#"{"type":"engagement","user":1,"post":7549747200000000000,"actions":["favorite","reply"],"at_ms":1799999999000,"surface":3}"#,
        r#"{"type":"label","post":7549747200000000001,"reason":"spam","action":"drop"}"#,
        r#"{"type":"seen","user":1,"post":7549747200000000000}"#,
    ];
    out.push(("world_file", world.join("\n").into_bytes()));
    out.push(("world_file", world[..3].join("\n").into_bytes()));
    out.push(("world_file", header.as_bytes().to_vec()));

    let now = STORE_NOW_S;
    let id = |k: i64| crate::pipeline::util::snowflake::id_at((now - k) * 1000) + k;
    let post = |k: i64, author: i64| crate::thunder::LightPost {
        post_id: id(k),
        author_id: author,
        created_at: now - k,
        ..Default::default()
    };
    let frames = |events: &[pb::InNetworkEvent]| {
        let mut bytes = Vec::new();
        for e in events {
            let body = e.encode_to_vec();
            bytes.push(u8::try_from(body.len()).unwrap_or(u8::MAX));
            bytes.extend_from_slice(&body);
        }
        bytes
    };
    let (a, b) = (post(60, 5), post(120, 6));
    let reply = crate::thunder::LightPost {
        in_reply_to_post_id: std::num::NonZeroI64::new(a.post_id),
        in_reply_to_user_id: std::num::NonZeroI64::new(5),
        is_reply: true,
        ..post(30, 6)
    };
    let delete = crate::thunder::PostDelete {
        post_id: a.post_id,
        deleted_at: now - 10,
    };
    use crate::thunder::events::{create_event, delete_event};
    out.push((
        "post_events",
        frames(&[create_event(&a), create_event(&b), create_event(&reply)]),
    ));
    out.push((
        "post_events",
        frames(&[delete_event(&delete), create_event(&a), create_event(&b)]),
    ));
    out.push(("post_events", frames(&[create_event(&post(200_000, 9))])));

    let specs = demo_model_config()
        .map(|cfg| foryou_engine::weights::param_specs(&cfg))
        .unwrap_or_default();
    let tensors = |n: usize, shrink: bool| -> Vec<foryou_engine::tensor_io::OutTensor> {
        specs
            .iter()
            .take(n)
            .map(|p| {
                let shape = if shrink { vec![2] } else { p.shape.clone() };
                let len = shape.iter().product::<usize>();
                foryou_engine::tensor_io::OutTensor::f32(&p.name, shape, &vec![0.5; len])
            })
            .collect()
    };
    for (n, shrink) in [(1, true), (3, true), (usize::MAX, true), (1, false)] {
        if let Some(path) = scratch_file("seed.safetensors", &[]) {
            if foryou_engine::tensor_io::write_tensors(&path, &tensors(n, shrink)).is_ok()
                && let Ok(bytes) = std::fs::read(&path)
                && bytes.len() <= 1 << 16
            {
                out.push(("safetensors_model", bytes));
            }
            let _ = std::fs::remove_file(&path);
        }
    }

    let bloom = |num_bits: u64, num_hashes: u32, ids: &[i64]| {
        let mut f = crate::pipeline::home_mixer::BloomFilterEntry::new(num_bits, num_hashes);
        for id in ids {
            f.insert(*id);
        }
        pb::ImpressionBloomFilterEntry {
            bitset: f.bits,
            num_bits: f.num_bits,
            num_hashes: f.num_hashes,
        }
    };
    let entries = [
        bloom(64, 3, &[1, 2, 3]),
        bloom(1024, 7, &[id(5), id(6)]),
        bloom(8, 1, &[]),
    ];
    for e in &entries {
        out.push(("bloom_filter_entry", e.encode_to_vec()));
    }
    let query =
        |seen: Vec<i64>, blooms: Vec<pb::ImpressionBloomFilterEntry>| pb::ScoredPostsQuery {
            viewer_id: 42,
            country_code: "US".into(),
            language_code: "en".into(),
            seen_ids: seen.clone(),
            served_ids: seen,
            bloom_filter_entries: blooms,
            result_size: 20,
            debug: true,
            ..Default::default()
        };
    out.push((
        "scored_posts_request",
        query(vec![1, 2, 3], entries.to_vec()).encode_to_vec(),
    ));
    out.push((
        "scored_posts_request",
        query(vec![], vec![]).encode_to_vec(),
    ));
    out.push((
        "scored_posts_request",
        pb::ScoredPostsQuery::default().encode_to_vec(),
    ));
    out
}

/// The demo ranker's checked config.
fn demo_model_config() -> Option<foryou_engine::ModelConfig> {
    foryou_engine::init::preset_config(foryou_engine::init::Preset::Demo)
        .validate()
        .ok()
}

/// Writes `data` to a scratch file for a loader that takes a path (one per
/// process and thread, under /dev/shm when there is one).
fn scratch_file(ext: &str, data: &[u8]) -> Option<PathBuf> {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let thread = format!("{:?}", std::thread::current().id());
    let name: String = thread.chars().filter(char::is_ascii_digit).collect();
    let path = dir.join(format!("foryou-fuzz-{}-{name}.{ext}", std::process::id()));
    std::fs::write(&path, data).ok().map(|_| path)
}
