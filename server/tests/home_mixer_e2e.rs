//! End to end over real gRPC: `foryou serve` on a loopback port, on a
//! hand-written world that sets up each rule's case and on a small seeded
//! world; degraded modes with a remote Thunder or Phoenix that is down.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use foryou_proto::v1 as pb;
use foryou_proto::v1::scored_posts_service_client::ScoredPostsServiceClient;
use foryou_server::pipeline::home_mixer::Action;
use foryou_server::pipeline::util::snowflake;
use foryou_server::world::{Engagement, Label, LabelAction, LabelScope, Post, World, write_world};
use tonic::transport::Channel;

const NOW_MS: i64 = 1_800_000_000_000;
const VIEWER: i64 = 1;

/// The ids of the hand-written world's posts, by the rule they exercise.
struct Ids {
    normal: Vec<i64>,
    own: i64,
    muted_author: i64,
    blocked_author: i64,
    muted_keyword: i64,
    seen: i64,
    subscriber_only_unsubscribed: i64,
    subscriber_only_subscribed: i64,
    vf_drop: i64,
    vf_interstitial: i64,
    oon: Vec<i64>,
}

/// Viewer 1 follows 1 (self), 2, 3, 4, 5, 6 and 7; mutes 5, blocks 6,
/// subscribes to 7, mutes the keyword "crypto" and has seen one post.
/// Accounts 8 and 9 are out of network. Every post is a few hours old.
fn rules_world() -> (World, Ids) {
    let mut w = World::new(NOW_MS);
    for u in 1..=9 {
        w.add_user(u, format!("user{u}"));
    }
    for t in 1..=7 {
        w.add_follow(VIEWER, t);
    }
    w.mutes.insert(VIEWER, vec![5]);
    w.blocks.insert(VIEWER, vec![6]);
    w.subscriptions.insert(VIEWER, vec![7]);
    w.muted_keywords.insert(VIEWER, vec!["crypto".into()]);
    let mut seq = 0;
    let mut post = |w: &mut World, author: i64, hours_ago: i64, text: &str| {
        seq += 1;
        let created = NOW_MS - hours_ago * 3_600_000 - seq;
        let id = snowflake::id_at(created) + seq;
        w.add_post(Post {
            id,
            author,
            created_ms: created,
            text: text.into(),
            ..Post::default()
        });
        id
    };
    let normal = vec![
        post(&mut w, 2, 1, "rust compiler news"),
        post(&mut w, 3, 2, "espresso roast notes"),
        post(&mut w, 4, 3, "football derby tonight"),
        post(&mut w, 2, 4, "gpu kernel latency"),
    ];
    let own = post(&mut w, VIEWER, 1, "my own post");
    let muted_author = post(&mut w, 5, 1, "from a muted account");
    let blocked_author = post(&mut w, 6, 1, "from a blocked account");
    let muted_keyword = post(&mut w, 3, 1, "big #Crypto airdrop today");
    let seen = post(&mut w, 4, 1, "already seen this one");
    let subscriber_only_unsubscribed = post(&mut w, 4, 2, "for subscribers of 4");
    let subscriber_only_subscribed = post(&mut w, 7, 2, "for subscribers of 7");
    for id in [subscriber_only_unsubscribed, subscriber_only_subscribed] {
        w.posts.get_mut(&id).expect("post").subscriber_only = true;
    }
    let vf_drop = post(&mut w, 2, 2, "spam spam spam");
    let vf_interstitial = post(&mut w, 3, 3, "sensitive media");
    w.labels.insert(
        vf_drop,
        Label {
            reason: "spam".into(),
            action: LabelAction::Drop,
            scope: LabelScope::All,
        },
    );
    w.labels.insert(
        vf_interstitial,
        Label {
            reason: "sensitive".into(),
            action: LabelAction::Interstitial,
            scope: LabelScope::All,
        },
    );
    let oon = vec![
        post(&mut w, 8, 1, "space rocket launch"),
        post(&mut w, 9, 2, "sourdough recipe"),
        post(&mut w, 8, 5, "orbit booster"),
    ];
    w.seen.insert(VIEWER, vec![seen]);
    // A history so Phoenix has a user action sequence.
    for (i, id) in [oon[2], normal[1], normal[3]].into_iter().enumerate() {
        w.add_engagement(
            VIEWER,
            Engagement {
                post: id,
                actions: Engagement::mask(&[Action::Favorite, Action::Dwell]),
                at_ms: NOW_MS - 3_600_000 + i as i64,
                surface: 0,
            },
        );
    }
    let ids = Ids {
        normal,
        own,
        muted_author,
        blocked_author,
        muted_keyword,
        seen,
        subscriber_only_unsubscribed,
        subscriber_only_subscribed,
        vf_drop,
        vf_interstitial,
        oon,
    };
    (w, ids)
}

/// Starts `foryou serve` with `extra` flags and a private model cache.
fn serve(dir: &Path, extra: &[&str]) -> common::Running {
    common::start_serve(dir, extra)
}

/// A home-mixer client, once the server reports SERVING (the retrieval
/// index holds the world's posts).
async fn client(addr: &str) -> ScoredPostsServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let deadline = Instant::now() + Duration::from_secs(120);
    common::wait_serving(channel.clone(), "", deadline).await;
    ScoredPostsServiceClient::new(channel)
}

async fn feed(
    c: &mut ScoredPostsServiceClient<Channel>,
    q: pb::ScoredPostsQuery,
) -> Vec<pb::ScoredPost> {
    c.get_scored_posts(q)
        .await
        .expect("OK")
        .into_inner()
        .scored_posts
}

fn ask(viewer: i64) -> pb::ScoredPostsQuery {
    pb::ScoredPostsQuery {
        viewer_id: viewer,
        ..Default::default()
    }
}

fn assert_sorted(posts: &[pb::ScoredPost]) {
    for w in posts.windows(2) {
        assert!(
            w[0].score >= w[1].score,
            "sorted by score: {} then {}",
            w[0].score,
            w[1].score
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_of_the_hand_written_world_holds_over_grpc() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (world, ids) = rules_world();
    let file = dir.path().join("rules.jsonl");
    write_world(&world, &file).expect("write world");
    let server = serve(dir.path(), &["--world", file.to_str().expect("utf-8")]);
    let mut c = client(&server.addr).await;
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let deadline = Instant::now() + Duration::from_secs(10);
    for service in [
        "foryou.v1.ScoredPostsService",
        "foryou.v1.InNetworkPostsService",
        "foryou.v1.PhoenixRanker",
        "foryou.v1.PhoenixRetrieval",
    ] {
        common::wait_serving(channel.clone(), service, deadline).await;
    }

    let posts = feed(&mut c, ask(VIEWER)).await;
    let got: HashSet<i64> = posts.iter().map(|p| p.tweet_id).collect();
    for (rule, id) in [
        ("own post", ids.own),
        ("muted author", ids.muted_author),
        ("blocked author", ids.blocked_author),
        ("muted keyword", ids.muted_keyword),
        ("seen id", ids.seen),
        (
            "subscriber-only without a subscription",
            ids.subscriber_only_unsubscribed,
        ),
        ("visibility drop", ids.vf_drop),
    ] {
        assert!(!got.contains(&id), "{rule}: post {id} must not be served");
    }
    for id in ids.normal.iter().chain([&ids.subscriber_only_subscribed]) {
        assert!(got.contains(id), "in-network post {id} is served");
    }
    assert!(
        ids.oon.iter().any(|id| got.contains(id)),
        "Phoenix retrieval brings out-of-network posts"
    );
    let interstitial = posts
        .iter()
        .find(|p| p.tweet_id == ids.vf_interstitial)
        .expect("an interstitial is served, with its reason");
    assert_eq!(
        interstitial.visibility_reason.as_deref(),
        Some("sensitive:interstitial")
    );
    assert_sorted(&posts);
    assert!(posts.len() <= 35);
    for p in &posts {
        let oon = ids.oon.contains(&p.tweet_id);
        assert_eq!(p.in_network, !oon, "in_network flag of {}", p.tweet_id);
        let want = if oon {
            pb::ServedType::ForYouPhoenixRetrieval
        } else {
            pb::ServedType::ForYouInNetwork
        };
        assert_eq!(p.served_type, want as i32);
        assert_eq!(
            p.screen_names.get(&p.author_id),
            Some(&format!("user{}", p.author_id))
        );
        assert!(
            p.prediction_request_id != 0 && p.last_scored_timestamp_ms > 0,
            "scored by Phoenix"
        );
    }

    // Deterministic: the same request gives the same feed.
    let again = feed(&mut c, ask(VIEWER)).await;
    let key = |v: &[pb::ScoredPost]| v.iter().map(|p| (p.tweet_id, p.score)).collect::<Vec<_>>();
    assert_eq!(key(&posts), key(&again));

    // In-network only: no Phoenix candidates.
    let inn = feed(
        &mut c,
        pb::ScoredPostsQuery {
            in_network_only: true,
            ..ask(VIEWER)
        },
    )
    .await;
    assert!(!inn.is_empty() && inn.iter().all(|p| p.in_network));

    // Result size is honoured; the request's own seen ids apply too.
    let two = feed(
        &mut c,
        pb::ScoredPostsQuery {
            result_size: 2,
            seen_ids: vec![ids.normal[0]],
            ..ask(VIEWER)
        },
    )
    .await;
    assert_eq!(two.len(), 2);
    assert!(two.iter().all(|p| p.tweet_id != ids.normal[0]));

    // Debug: per-stage counts and removals by filter.
    let dbg = c
        .get_scored_posts(pb::ScoredPostsQuery {
            debug: true,
            ..ask(VIEWER)
        })
        .await
        .expect("OK")
        .into_inner();
    let d = dbg.debug.expect("debug info when asked");
    assert_eq!(d.removed_by_filter.get("MutedKeywordFilter"), Some(&1));
    assert_eq!(d.removed_by_filter.get("AuthorSocialgraphFilter"), Some(&2));
    assert_eq!(
        d.stage_counts.get("selected").copied(),
        Some(dbg.scored_posts.len() as u32)
    );
    // "retrieved" (the count the server keeps instead of a copy of the
    // hydrated list) is every source's output.
    let from_sources: u32 = d
        .stage_counts
        .iter()
        .filter(|(k, _)| k.starts_with("Source/"))
        .map(|(_, n)| n)
        .sum();
    assert!(from_sources > 0);
    assert_eq!(d.stage_counts.get("retrieved").copied(), Some(from_sources));
    assert!(dbg.scored_posts.iter().all(|p| p.phoenix_scores.is_some()));
    let (total, outside) = (d.stage_ms["total"], d.stage_ms["outside_stages"]);
    assert!(
        d.stage_ms.values().all(|ms| *ms <= total) && (0.0..=total).contains(&outside),
        "total bounds every entry, outside lies in [0, total]: {:?}",
        d.stage_ms
    );

    // viewer_id 0 is rejected; an unknown viewer gets an empty feed (OK).
    let err = c.get_scored_posts(ask(0)).await.expect_err("viewer 0");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("viewer_id"));
    assert!(feed(&mut c, ask(424_242)).await.is_empty());

    common::stop_gracefully(server.child);
}

/// Viewer 1 follows accounts 2..=6001 (6000, more than Thunder's
/// MAX_INPUT_LIST_SIZE of 5000), recorded in that order; accounts 2 and
/// 5001 (first and 5000th followed) and 5002 (first past the limit) post.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_following_6000_accounts_still_gets_in_network_posts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = World::new(NOW_MS);
    for u in 1..=6001 {
        w.add_user(u, format!("user{u}"));
    }
    for t in 2..=6001 {
        w.add_follow(VIEWER, t);
    }
    let mut post = |author: i64, hours_ago: i64| {
        let created = NOW_MS - hours_ago * 3_600_000;
        let id = snowflake::id_at(created) + author;
        w.add_post(Post {
            id,
            author,
            created_ms: created,
            text: format!("news from {author}").into(),
            ..Post::default()
        });
        id
    };
    let (head, last_kept, cut) = (post(2, 1), post(5001, 2), post(5002, 3));
    let file = dir.path().join("many_follows.jsonl");
    write_world(&w, &file).expect("write world");
    let server = serve(dir.path(), &["--world", file.to_str().expect("utf-8")]);
    let mut c = client(&server.addr).await;

    let posts = feed(&mut c, ask(VIEWER)).await;
    let got: HashSet<i64> = posts.iter().map(|p| p.tweet_id).collect();
    assert!(
        got.contains(&head) && got.contains(&last_kept),
        "in-network posts of the first 5000 follows are served: {posts:?}"
    );
    assert!(
        !got.contains(&cut),
        "the follows past the limit are not asked about"
    );
    assert!(
        posts
            .iter()
            .all(|p| p.in_network && p.served_type == pb::ServedType::ForYouInNetwork as i32)
    );
    common::stop_gracefully(server.child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_world_gives_a_sorted_deterministic_feed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(dir.path(), &["--users", "150", "--seed", "5"]);
    let mut c = client(&server.addr).await;
    let mut served = 0;
    for user in [3, 17, 42] {
        let a = feed(&mut c, ask(user)).await;
        let b = feed(&mut c, ask(user)).await;
        assert_sorted(&a);
        assert!(a.len() <= 35);
        assert_eq!(
            a.iter().map(|p| (p.tweet_id, p.score)).collect::<Vec<_>>(),
            b.iter().map(|p| (p.tweet_id, p.score)).collect::<Vec<_>>()
        );
        assert!(
            a.iter().all(|p| p.author_id != user),
            "never the viewer's own posts"
        );
        served += a.len();
    }
    assert!(served > 0, "a seeded world serves posts");
    common::stop_gracefully(server.child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_thunder_or_phoenix_that_is_down_degrades_the_feed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (world, ids) = rules_world();
    let file = dir.path().join("rules.jsonl");
    write_world(&world, &file).expect("write world");
    let file = file.to_str().expect("utf-8");
    // Port 9 (discard) on loopback: nothing listens, connections are refused.
    let down = "http://127.0.0.1:9";

    let server = serve(dir.path(), &["--world", file, "--thunder-addr", down]);
    let mut c = client(&server.addr).await;
    let started = Instant::now();
    let posts = feed(&mut c, ask(VIEWER)).await;
    assert!(!posts.is_empty(), "Phoenix still serves");
    assert!(
        posts.iter().all(|p| ids.oon.contains(&p.tweet_id)),
        "only out-of-network"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    common::stop_gracefully(server.child);

    let server = serve(dir.path(), &["--world", file, "--phoenix-addr", down]);
    let mut c = client(&server.addr).await;
    let posts = feed(&mut c, ask(VIEWER)).await;
    assert!(!posts.is_empty(), "Thunder still serves");
    assert!(posts.iter().all(|p| p.in_network), "no retrieval");
    assert!(
        posts.iter().all(|p| p.prediction_request_id == 0),
        "no ranker scores"
    );
    // Without Phoenix every weighted score ties at the offset; diversity
    // and order still apply, so scores are non-increasing and positive.
    assert_sorted(&posts);
    assert!(posts.iter().all(|p| p.score > 0.0));
    common::stop_gracefully(server.child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_mixer_calls_remote_thunder_and_phoenix_loaded_with_the_same_world() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (world, ids) = rules_world();
    let file = dir.path().join("rules.jsonl");
    write_world(&world, &file).expect("write world");
    let file = file.to_str().expect("utf-8");
    let cache = dir.path().join("models");
    let phoenix = common::start(
        &[
            "phoenix",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--world",
            file,
            "--model-cache",
            cache.to_str().expect("utf-8"),
        ],
        "phoenix listening on ",
        Duration::from_secs(120),
    );
    let phoenix_addr = format!("http://{}", phoenix.addr);
    let channel = Channel::from_shared(phoenix_addr.clone())
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let deadline = Instant::now() + Duration::from_secs(10);
    common::wait_serving(channel.clone(), "foryou.v1.PhoenixRanker", deadline).await;
    common::wait_serving(channel, "foryou.v1.PhoenixRetrieval", deadline).await;

    let server = serve(
        dir.path(),
        &["--world", file, "--phoenix-addr", &phoenix_addr],
    );
    let mut c = client(&server.addr).await;
    let posts = feed(&mut c, ask(VIEWER)).await;
    assert!(
        posts.iter().any(|p| ids.oon.contains(&p.tweet_id)),
        "remote retrieval"
    );
    assert!(
        posts.iter().all(|p| p.prediction_request_id != 0),
        "remote ranker scores"
    );
    assert_sorted(&posts);
    common::stop_gracefully(server.child);
    common::stop_gracefully(phoenix.child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranker_and_retrieval_batching_give_the_same_feed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (world, _ids) = rules_world();
    let file = dir.path().join("rules.jsonl");
    write_world(&world, &file).expect("write world");
    let file = file.to_str().expect("utf-8");
    let mut feeds = Vec::new();
    for extra in [
        &["--rank-batch-max", "0", "--retrieve-batch-max", "0"][..],
        &[
            "--rank-batch-max",
            "4",
            "--rank-batch-delay-ms",
            "1",
            "--retrieve-batch-max",
            "8",
            "--retrieve-batch-delay-ms",
            "1",
        ][..],
    ] {
        let mut args = vec!["--world", file];
        args.extend_from_slice(extra);
        let server = serve(dir.path(), &args);
        let mut c = client(&server.addr).await;
        let posts = feed(&mut c, ask(VIEWER)).await;
        assert!(posts.iter().all(|p| p.prediction_request_id != 0), "scored");
        feeds.push(
            posts
                .iter()
                .map(|p| (p.tweet_id, p.score))
                .collect::<Vec<_>>(),
        );
        common::stop_gracefully(server.child);
    }
    assert!(!feeds[0].is_empty());
    assert_eq!(
        feeds[0], feeds[1],
        "padding and batching never change a score"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_load_drives_every_target_and_writes_its_curve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(dir.path(), &["--users", "100", "--seed", "3"]);
    let addr = format!("http://{}", server.addr);
    let out = dir.path().join("load");
    for target in ["feed", "rank", "retrieve"] {
        let st = common::foryou()
            .args(["bench", "load", "--addr", &addr, "--target", target])
            .args(["--qps", "4,8", "--duration", "1", "--warmup", "0"])
            .args([
                "--users",
                "100",
                "--candidates",
                "50",
                "--top-k",
                "20",
                "--out",
            ])
            .arg(&out)
            .output()
            .expect("run");
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("load_{target}.json"))).expect("json"),
        )
        .expect("valid json");
        let rates = json["rates"].as_array().expect("rates");
        assert_eq!(rates.len(), 2, "{target}");
        for (r, want) in rates.iter().zip([4, 8]) {
            assert_eq!(r["requests"].as_u64(), Some(want), "{target}: {r}");
            assert_eq!(r["errors"].as_u64(), Some(0), "{target}: {r}");
            assert!(r["p50_ms"].as_f64().expect("p50") > 0.0);
            assert!(
                r["mean_items"].as_f64().expect("items") > 0.0,
                "{target}: {r}"
            );
            let split = &r["server_split"];
            if target == "feed" {
                let part = |k: &str| split[k].as_f64().unwrap_or_else(|| panic!("{k}: {r}"));
                assert!(part("ranker_ms") > 0.0 && part("retrieval_ms") > 0.0, "{r}");
                let sum = part("ranker_ms")
                    + part("retrieval_ms")
                    + part("other_stages_ms")
                    + part("outside_ms");
                assert!((sum - part("total_ms")).abs() < 1e-3, "{r}");
            } else {
                assert!(split.is_null(), "{target}: {r}");
            }
        }
    }
    common::stop_gracefully(server.child);
}
