//! The live retrieval index end to end over real gRPC: a post streamed into
//! `foryou serve` after start is returned by `PhoenixRetrieval.Retrieve`
//! and reaches the feed of a viewer who does not follow its author; a
//! delete removes it; `foryou phoenix serve` takes its own `IngestEvents`,
//! and after a restart rebuilds the same index from the world file before
//! it reports SERVING.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use foryou_proto::v1 as pb;
use foryou_proto::v1::in_network_event::EventVariant;
use foryou_proto::v1::in_network_posts_service_client::InNetworkPostsServiceClient;
use foryou_proto::v1::phoenix_retrieval_client::PhoenixRetrievalClient;
use foryou_proto::v1::scored_posts_service_client::ScoredPostsServiceClient;
use foryou_server::pipeline::home_mixer::Action;
use foryou_server::pipeline::util::snowflake;
use foryou_server::world::{Engagement, Post, World, write_world};
use tonic::transport::Channel;

const NOW_MS: i64 = 1_800_000_000_000;
const VIEWER: i64 = 1;
/// Out of network for the viewer.
const STRANGER: i64 = 9;

/// Viewer 1 follows 2 and 3; accounts 8 and 9 are strangers. Each account
/// has a few posts of the last hours.
fn world() -> World {
    let mut w = World::new(NOW_MS);
    for u in 1..=9 {
        w.add_user(u, format!("user{u}"));
    }
    for t in [2, 3] {
        w.add_follow(VIEWER, t);
    }
    let mut seq = 0;
    let mut followed_posts = Vec::new();
    for author in [2, 3, 8, 9] {
        for h in 1..=3 {
            seq += 1;
            let created = NOW_MS - h * 3_600_000 - seq;
            let id = snowflake::id_at(created) + seq;
            w.add_post(Post {
                id,
                author,
                created_ms: created,
                text: format!("post {seq} of {author}").into(),
                ..Post::default()
            });
            if author <= 3 {
                followed_posts.push(id);
            }
        }
    }
    // An engagement history, without which Phoenix retrieval has no user.
    for (i, post) in followed_posts.into_iter().take(3).enumerate() {
        w.add_engagement(
            VIEWER,
            Engagement {
                post,
                actions: Engagement::mask(&[Action::Favorite]),
                at_ms: NOW_MS - 600_000 + i as i64,
                surface: 0,
            },
        );
    }
    w
}

fn write(dir: &Path) -> String {
    let file = dir.join("world.jsonl");
    write_world(&world(), &file).expect("write world");
    file.to_str().expect("utf-8").to_owned()
}

async fn channel(addr: &str) -> Channel {
    common::serving_channel(addr).await
}

/// A create of a new post by `author`, `secs` after the world's now
/// (negative: before it).
fn create(author: i64, secs: i64) -> (i64, pb::InNetworkEvent) {
    let created_ms = NOW_MS + secs * 1000;
    let id = snowflake::id_at(created_ms) + 777;
    let ev = pb::InNetworkEvent {
        event_variant: Some(EventVariant::TweetCreateEvent(pb::TweetCreateEvent {
            post_id: id,
            author_id: author,
            created_at: created_ms / 1000,
            ..Default::default()
        })),
    };
    (id, ev)
}

fn delete(id: i64) -> pb::InNetworkEvent {
    pb::InNetworkEvent {
        event_variant: Some(EventVariant::TweetDeleteEvent(pb::TweetDeleteEvent {
            post_id: id,
            deleted_at: NOW_MS / 1000,
        })),
    }
}

async fn ingest(c: &Channel, events: Vec<pb::InNetworkEvent>) -> pb::IngestSummary {
    InNetworkPostsServiceClient::new(c.clone())
        .ingest_events(tokio_stream::iter(events))
        .await
        .expect("ingest")
        .into_inner()
}

/// Every post the index returns to the viewer (top_k above its size).
async fn retrieved(c: &Channel) -> Vec<pb::RetrievedPost> {
    PhoenixRetrievalClient::new(c.clone())
        .retrieve(pb::RetrieveRequest {
            user_id: VIEWER,
            top_k: 1000,
            ..Default::default()
        })
        .await
        .expect("retrieve")
        .into_inner()
        .posts
}

/// Polls Retrieve until `present(ids)` holds; how long it took.
async fn until(c: &Channel, present: impl Fn(&[i64]) -> bool) -> Duration {
    let t = Instant::now();
    loop {
        let ids: Vec<i64> = retrieved(c).await.iter().map(|p| p.post_id).collect();
        if present(&ids) {
            return t.elapsed();
        }
        assert!(t.elapsed() < Duration::from_secs(30), "index never changed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_post_is_retrieved_reaches_a_non_followers_feed_and_a_delete_removes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path());
    let server = common::start_serve(dir.path(), &["--world", &file]);
    let c = channel(&server.addr).await;
    let before = retrieved(&c).await;
    assert_eq!(before.len(), 12, "the world's 12 posts, rebuilt at start");

    // Before the world's now: the feed's age filter drops posts from the
    // future, and the server's clock starts at the world's now.
    let (id, ev) = create(STRANGER, -2);
    let summary = ingest(&c, vec![ev]).await;
    assert_eq!(summary.creates_applied, 1);
    until(&c, |ids| ids.contains(&id)).await;

    let response = ScoredPostsServiceClient::new(c.clone())
        .get_scored_posts(pb::ScoredPostsQuery {
            viewer_id: VIEWER,
            debug: true,
            ..Default::default()
        })
        .await
        .expect("feed")
        .into_inner();
    let feed = &response.scored_posts;
    let Some(mine) = feed.iter().find(|p| p.tweet_id == id) else {
        panic!(
            "the streamed post {id} is not in the non-follower's feed: {:?} {:?}",
            feed.iter()
                .map(|p| (p.tweet_id, p.author_id, p.in_network))
                .collect::<Vec<_>>(),
            response.debug
        );
    };
    assert_eq!(mine.author_id, STRANGER);
    assert!(
        !mine.in_network,
        "it came from retrieval, not the follow graph"
    );

    ingest(&c, vec![delete(id)]).await;
    until(&c, |ids| !ids.contains(&id)).await;
    assert_eq!(retrieved(&c).await.len(), 12);
    common::stop_gracefully(server.child);
}

/// Starts `foryou phoenix serve` on the world file.
fn phoenix(dir: &Path, file: &str) -> common::Running {
    let cache = dir.join("models");
    common::start(
        &[
            "phoenix",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--model-cache",
            cache.to_str().expect("utf-8"),
            "--world",
            file,
        ],
        "phoenix listening on ",
        Duration::from_secs(120),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phoenix_serve_ingests_its_own_stream_and_rebuilds_the_same_index_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path());
    let first = phoenix(dir.path(), &file);
    let c = channel(&first.addr).await;
    let world_posts = retrieved(&c).await;
    assert_eq!(world_posts.len(), 12);

    // Its own IngestEvents: a create and a retweet (not a corpus post).
    let (id, ev) = create(8, 1);
    let (_, mut retweet) = create(8, 1);
    if let Some(EventVariant::TweetCreateEvent(c)) = retweet.event_variant.as_mut() {
        c.post_id += 1;
        c.is_retweet = true;
        c.source_post_id = Some(world_posts[0].post_id);
    }
    let summary = ingest(&c, vec![ev, retweet, pb::InNetworkEvent::default()]).await;
    assert_eq!((summary.creates_applied, summary.skipped), (1, 2));
    until(&c, |ids| ids.contains(&id) && ids.len() == 13).await;
    let e = InNetworkPostsServiceClient::new(c.clone())
        .get_in_network_posts(pb::GetInNetworkPostsRequest::default())
        .await
        .expect_err("Phoenix keeps no in-network posts");
    assert_eq!(e.code(), tonic::Code::Unimplemented);
    common::stop_gracefully(first.child);

    // Restart: rebuilt from the world file before SERVING (`channel`
    // waits for it; anything before SERVING must be NOT_SERVING), with the
    // same posts and scores as the first start had.
    let second = phoenix(dir.path(), &file);
    let c = channel(&second.addr).await;
    let again = retrieved(&c).await;
    assert_eq!(again, world_posts);
    common::stop_gracefully(second.child);
}
