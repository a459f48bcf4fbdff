//! Kafka ingestion against a real Kafka-protocol broker on loopback: tansu
//! with in-memory storage, started per test (`TANSU` names the binary, else
//! `tansu` on PATH; `.ci/run` installs it). Needs `--features kafka`.
#![cfg(feature = "kafka")]

mod common;

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use foryou_server::clock::{Clock, SystemClock};
use foryou_server::thunder::events::{PostEvent, apply_events, create_event, delete_event};
use foryou_server::thunder::kafka::{KafkaIngest, KafkaIngestConfig};
use foryou_server::thunder::synth::{SynthSpec, synth_events};
use foryou_server::thunder::{PostStore, StoreSnapshot, ThunderParams};
use prost::Message;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const PARTITIONS: i32 = 3;

/// A tansu broker on a free loopback port, killed on drop.
struct Tansu {
    child: Child,
    addr: String,
}

impl Tansu {
    fn start() -> Self {
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let bin = std::env::var("TANSU").unwrap_or_else(|_| "tansu".into());
        let child = Command::new(&bin)
            .args(["broker", "--storage-engine", "memory://tansu/"])
            .arg("--listener-url")
            .arg(format!("tcp://{addr}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://{addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin:?} ({e}); install it: cargo install tansu --locked --no-default-features --features dynostore")
            });
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, addr }
    }

    fn create_topic(&self, topic: &str) {
        let bin = std::env::var("TANSU").unwrap_or_else(|_| "tansu".into());
        let status = Command::new(bin)
            .args(["topic", "create", topic, "--partitions"])
            .arg(PARTITIONS.to_string())
            .arg("--broker")
            .arg(format!("tcp://{}", self.addr))
            .stdout(Stdio::null())
            .status()
            .expect("run tansu topic create");
        assert!(status.success(), "topic create failed");
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// The synthetic stream, partitioned so that everything whose order matters
/// lands in one partition: a retweet goes with its source, a delete with its
/// create. Retweets of posts that get deleted are left out: whether such a
/// retweet is video-eligible depends on whether the delete landed in the same
/// applied batch (creates go first), which no two runs need to agree on.
fn events() -> Vec<(i32, PostEvent)> {
    let spec = SynthSpec {
        authors: 60,
        posts_per_author: 25,
        delete_ratio: 0.05,
        ..SynthSpec::new(SystemClock::new().unix_s(), 11)
    };
    let all = synth_events(&spec);
    let deleted: HashSet<i64> = all
        .iter()
        .filter_map(|e| match e {
            PostEvent::Delete(d) => Some(d.post_id),
            PostEvent::Create(_) => None,
        })
        .collect();
    let part = |id: i64| i32::try_from(id.rem_euclid(i64::from(PARTITIONS))).unwrap_or(0);
    let mut partition_of = HashMap::new();
    let mut out = Vec::new();
    for e in all {
        match &e {
            PostEvent::Create(p) => {
                if p.source_post_id.is_some_and(|s| deleted.contains(&s.get())) {
                    continue;
                }
                let at = part(p.source_post_id.map_or(p.post_id, |s| s.get()));
                partition_of.insert(p.post_id, at);
                out.push((at, e));
            }
            PostEvent::Delete(d) => {
                if let Some(at) = partition_of.get(&d.post_id) {
                    out.push((*at, e));
                }
            }
        }
    }
    out
}

fn produce(brokers: &str, topic: &str, events: &[(i32, PostEvent)], garbage: bool) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("batch.num.messages", "1")
        .create()
        .expect("producer");
    let send = |partition: i32, key: &[u8], payload: &[u8]| {
        let mut record = BaseRecord::to(topic)
            .partition(partition)
            .key(key)
            .payload(payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, r)) => {
                    record = r;
                    eprintln!("produce retry: {e}");
                    producer.poll(Duration::from_millis(50));
                }
            }
        }
    };
    for (i, (p, e)) in events.iter().enumerate() {
        let wire = match e {
            PostEvent::Create(post) => create_event(post),
            PostEvent::Delete(d) => delete_event(d),
        };
        let key = match e {
            PostEvent::Create(p) => p.post_id,
            PostEvent::Delete(d) => d.post_id,
        }
        .to_le_bytes();
        send(*p, &key, &wire.encode_to_vec());
        if garbage && i % 500 == 250 {
            send(*p, b"junk", &[0xff, 0xff, 0xff, 0x01]);
        }
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

fn reference(events: &[(i32, PostEvent)]) -> StoreSnapshot {
    let store = fresh_store();
    apply_events(&store, events.iter().map(|(_, e)| *e).collect());
    store.finalize_init();
    store.snapshot()
}

/// Panics with the first differences between two snapshots (they are large).
fn assert_same(got: &StoreSnapshot, want: &StoreSnapshot, what: &str) {
    if got == want {
        return;
    }
    let mut diffs = Vec::new();
    for (id, p) in &want.posts {
        if got.posts.get(id) != Some(p) {
            diffs.push(format!(
                "post {id}: want {p:?}, got {:?}",
                got.posts.get(id)
            ));
        }
    }
    for id in got.posts.keys().filter(|id| !want.posts.contains_key(id)) {
        diffs.push(format!("unexpected post {id}"));
    }
    for (name, g, w) in [
        ("original", &got.original, &want.original),
        ("secondary", &got.secondary, &want.secondary),
        ("video", &got.video, &want.video),
    ] {
        for k in w.keys().chain(g.keys()) {
            if g.get(k) != w.get(k) {
                diffs.push(format!(
                    "{name}[{k}]: want {:?}, got {:?}",
                    w.get(k),
                    g.get(k)
                ));
            }
        }
    }
    if got.deleted != want.deleted {
        diffs.push(format!(
            "deleted: want {} ids, got {}",
            want.deleted.len(),
            got.deleted.len()
        ));
    }
    diffs.truncate(8);
    panic!(
        "{what}: {} posts vs {} wanted; first differences:\n{}",
        got.posts.len(),
        want.posts.len(),
        diffs.join("\n")
    );
}

fn fresh_store() -> Arc<PostStore> {
    Arc::new(PostStore::new(
        ThunderParams::default(),
        Arc::new(SystemClock::new()),
    ))
}

fn config(brokers: &str, topic: &str, group: &str, batch: usize) -> KafkaIngestConfig {
    KafkaIngestConfig {
        brokers: brokers.to_owned(),
        topic: topic.to_owned(),
        group: group.to_owned(),
        threads: 2,
        batch_size: batch,
        apply_permits: 1,
        lag_interval: Duration::from_secs(1),
        extra: vec![("session.timeout.ms".into(), "6000".into())],
    }
}

fn wait_caught_up(ingest: &KafkaIngest) {
    let rx = ingest.caught_up();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !*rx.borrow() {
        assert!(Instant::now() < deadline, "consumer never caught up");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn consumer_applies_creates_and_deletes_and_catches_up() {
    let broker = Tansu::start();
    let topic = unique("events");
    broker.create_topic(&topic);
    let evs = events();
    let deletes = evs
        .iter()
        .filter(|(_, e)| matches!(e, PostEvent::Delete(_)))
        .count();
    assert!(deletes > 20, "the stream has deletes ({deletes})");
    produce(&broker.addr, &topic, &evs, true);

    let store = fresh_store();
    let ingest = KafkaIngest::start(
        config(&broker.addr, &topic, &unique("g"), 64),
        store.clone(),
    )
    .expect("start consumer");
    wait_caught_up(&ingest);
    // Caught up means every event produced before start is applied.
    assert_eq!(store.events_applied(), evs.len() as u64);
    store.finalize_init();
    let want = reference(&evs);
    assert_same(&store.snapshot(), &want, "store equals a direct apply");
    for (_, e) in &evs {
        if let PostEvent::Delete(d) = e {
            assert!(store.get(d.post_id).is_none() && store.is_deleted(d.post_id));
        }
    }

    // Events produced after catch-up keep flowing in (applied on idle).
    let late = foryou_server::thunder::LightPost::original(
        foryou_server::thunder::synth::snowflake(SystemClock::new().unix_s() * 1000, 1),
        7,
        SystemClock::new().unix_s(),
    );
    produce(&broker.addr, &topic, &[(0, PostEvent::Create(late))], false);
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.get(late.post_id).is_none() {
        assert!(Instant::now() < deadline, "late event never applied");
        std::thread::sleep(Duration::from_millis(20));
    }
    ingest.stop().expect("stop");
}

#[test]
fn restart_mid_stream_loses_nothing_and_equals_a_clean_run() {
    let broker = Tansu::start();
    let topic = unique("events");
    broker.create_topic(&topic);
    let evs = events();
    produce(&broker.addr, &topic, &evs, false);
    let total = evs.len() as u64;
    let group = unique("g");

    let store = fresh_store();
    let first = KafkaIngest::start(config(&broker.addr, &topic, &group, 16), store.clone())
        .expect("start consumer");
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.events_applied() < total / 3 {
        assert!(Instant::now() < deadline, "first consumer made no progress");
        std::thread::sleep(Duration::from_millis(1));
    }
    first.stop().expect("stop");
    let applied_first = store.events_applied();
    assert!(
        applied_first < total,
        "stopped mid-stream ({applied_first} of {total})"
    );

    let second = KafkaIngest::start(config(&broker.addr, &topic, &group, 16), store.clone())
        .expect("restart consumer");
    wait_caught_up(&second);
    second.stop().expect("stop");
    store.finalize_init();
    assert_same(
        &store.snapshot(),
        &reference(&evs),
        "nothing lost or doubled",
    );
    // It resumed from the committed offsets: a restart from the beginning
    // would have applied the first consumer's events a second time.
    let applied = store.events_applied();
    assert!(
        applied >= total && applied <= total + 2 * 16,
        "applied {applied} events for {total} (first run {applied_first})"
    );
}

#[test]
fn thunder_role_is_not_serving_until_caught_up_then_answers_from_all_events() {
    use foryou_proto::v1 as pb;
    use foryou_proto::v1::in_network_posts_service_client::InNetworkPostsServiceClient;
    use foryou_server::grpc::in_network_posts::retrieve_recent;
    use foryou_server::thunder::IdSet;

    let broker = Tansu::start();
    let topic = unique("events");
    broker.create_topic(&topic);
    let evs = events();
    produce(&broker.addr, &topic, &evs, true);

    let (group, topic_arg) = (unique("g"), topic.clone());
    let running = common::start_thunder(&[
        "--kafka-brokers",
        &broker.addr,
        "--kafka-topic",
        &topic_arg,
        "--kafka-group",
        &group,
        "--kafka-threads",
        "2",
        "--kafka-batch-size",
        "50",
    ]);
    let addr = running.addr.clone();
    let deadline = Instant::now() + Duration::from_secs(60);

    // What a store holding every event answers for all authors.
    let full = fresh_store();
    apply_events(&full, evs.iter().map(|(_, e)| *e).collect());
    full.finalize_init();
    let following: Vec<i64> = (1..=60).collect();
    let want: Vec<i64> = retrieve_recent(&full, &following, &IdSet::default(), 999, false, 1200)
        .iter()
        .map(|p| p.post_id)
        .collect();
    assert!(want.len() > 300);

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let url = format!("http://{addr}");
        let channel = tonic::transport::Endpoint::from_shared(url)
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        common::wait_serving(channel.clone(), "foryou.v1.InNetworkPostsService", deadline).await;
        let got = InNetworkPostsServiceClient::new(channel)
            .get_in_network_posts(pb::GetInNetworkPostsRequest {
                user_id: 999,
                following_user_ids: following.clone(),
                ..Default::default()
            })
            .await
            .expect("get")
            .into_inner();
        let got: Vec<i64> = got.posts.iter().map(|p| p.post_id).collect();
        assert_eq!(got, want, "SERVING only once every event is applied");
    });
    common::stop_gracefully(running.child);
}

/// The ids a retrieval index fed `events` holds: every created post that
/// is not a retweet (its source is the candidate) and was not deleted.
fn indexable(events: &[(i32, PostEvent)]) -> HashSet<i64> {
    let deleted: HashSet<i64> = events
        .iter()
        .filter_map(|(_, e)| match e {
            PostEvent::Delete(d) => Some(d.post_id),
            PostEvent::Create(_) => None,
        })
        .collect();
    events
        .iter()
        .filter_map(|(_, e)| match e {
            PostEvent::Create(p) if !p.is_retweet && !deleted.contains(&p.post_id) => {
                Some(p.post_id)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn phoenix_serve_builds_its_index_from_the_topic_then_follows_it() {
    use foryou_proto::v1 as pb;
    use foryou_proto::v1::phoenix_retrieval_client::PhoenixRetrievalClient;

    let broker = Tansu::start();
    let topic = unique("events");
    broker.create_topic(&topic);
    let evs = events();
    produce(&broker.addr, &topic, &evs, true);
    let want = indexable(&evs);
    assert!(want.len() > 1000, "{} posts", want.len());

    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("models");
    let group = unique("g");
    let running = common::start(
        &[
            "phoenix",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--model-cache",
            cache.to_str().expect("utf-8 path"),
            "--kafka-brokers",
            &broker.addr,
            "--kafka-topic",
            &topic,
            "--kafka-group",
            &group,
            "--kafka-batch-size",
            "50",
        ],
        "phoenix listening on ",
        Duration::from_secs(120),
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let url = format!("http://{}", running.addr);
        let channel = tonic::transport::Endpoint::from_shared(url)
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        common::wait_serving(channel.clone(), "foryou.v1.PhoenixRetrieval", deadline).await;
        let client = PhoenixRetrievalClient::new(channel);
        let retrieve = |mut c: PhoenixRetrievalClient<tonic::transport::Channel>| async move {
            c.retrieve(pb::RetrieveRequest {
                user_id: 999,
                top_k: 10_000,
                ..Default::default()
            })
            .await
            .expect("retrieve")
            .into_inner()
            .posts
            .iter()
            .map(|p| p.post_id)
            .collect::<HashSet<i64>>()
        };
        let got = retrieve(client.clone()).await;
        assert_eq!(
            got, want,
            "SERVING only once the index holds the topic: the world's posts are not in it, every indexable event is"
        );

        // Still reading: a new post appears, a delete removes one.
        let victim = *want.iter().min().expect("a post");
        let fresh = foryou_server::thunder::LightPost {
            post_id: want.iter().max().expect("a post") + 1_000_000,
            author_id: 7,
            created_at: SystemClock::new().unix_s() - 5,
            ..Default::default()
        };
        let more = [
            (0, PostEvent::Create(fresh)),
            (
                0,
                PostEvent::Delete(foryou_server::thunder::PostDelete {
                    post_id: victim,
                    deleted_at: SystemClock::new().unix_s(),
                }),
            ),
        ];
        produce(&broker.addr, &topic, &more, false);
        loop {
            let now = retrieve(client.clone()).await;
            if now.contains(&fresh.post_id) && !now.contains(&victim) {
                break;
            }
            assert!(Instant::now() < deadline, "the index never followed the topic");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    common::stop_gracefully(running.child);
}
