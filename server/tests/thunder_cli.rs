//! `foryou thunder` end to end through the built binary: synth an event
//! file, serve it, wait for health SERVING, query, replay more events into
//! the running server, then SIGTERM and a clean exit. Bad files fail with
//! the file and record named.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::foryou;
use foryou_proto::v1 as pb;
use foryou_proto::v1::in_network_posts_service_client::InNetworkPostsServiceClient;

fn synth(out: &Path, authors: u32, seed: u64) {
    let st = foryou()
        .args(["thunder", "synth", "--out"])
        .arg(out)
        .args([
            "--authors",
            &authors.to_string(),
            "--posts-per-author",
            "10",
        ])
        .args(["--seed", &seed.to_string()])
        .status()
        .expect("run synth");
    assert!(st.success());
}

#[test]
fn serve_query_replay_and_shut_down_gracefully() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = dir.path().join("events.bin");
    let more = dir.path().join("more.bin");
    synth(&events, 40, 1);
    synth(&more, 40, 2);

    let events_arg = events.to_str().expect("utf-8 temp path");
    let running = common::start_thunder(&["--events", events_arg]);
    let addr = running.addr.clone();
    let deadline = Instant::now() + Duration::from_secs(60);

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let url = format!("http://{addr}");
        let channel = tonic::transport::Endpoint::from_shared(url.clone())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        common::wait_serving(channel, "foryou.v1.InNetworkPostsService", deadline).await;
        let mut c = InNetworkPostsServiceClient::connect(url)
            .await
            .expect("connect");
        let req = pb::GetInNetworkPostsRequest {
            user_id: 1000,
            following_user_ids: (1..=40).collect(),
            ..Default::default()
        };
        let before = c
            .get_in_network_posts(req.clone())
            .await
            .expect("get")
            .into_inner();
        assert!(before.posts.len() > 100, "{} posts", before.posts.len());
        assert!(
            before
                .posts
                .windows(2)
                .all(|w| w[0].created_at >= w[1].created_at),
            "newest first"
        );

        // Replay a second stream into the running server.
        let out = foryou()
            .args(["thunder", "replay"])
            .arg(&more)
            .args(["--addr", &format!("http://{addr}")])
            .output()
            .expect("replay");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("400 creates applied"), "{text}");
        let after = c.get_in_network_posts(req).await.expect("get").into_inner();
        assert!(after.posts.len() > before.posts.len());
    });

    common::stop_gracefully(running.child);
}

#[test]
fn bad_event_file_is_an_error_naming_file_and_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = dir.path().join("events.bin");
    synth(&events, 5, 3);
    let mut bytes = std::fs::read(&events).expect("read");
    bytes.truncate(bytes.len() - 2);
    std::fs::write(&events, &bytes).expect("write");
    for args in [
        vec!["thunder", "replay"],
        vec![
            "thunder",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
            "--events",
        ],
    ] {
        let out = foryou().args(&args).arg(&events).output().expect("run");
        assert!(!out.status.success(), "{args:?} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("events.bin"), "{err}");
        assert!(err.contains("record"), "{err}");
    }
}
