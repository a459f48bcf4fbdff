//! Admission control over real gRPC: `foryou serve --max-in-flight 1`
//! answers the calls it cannot take at once with RESOURCE_EXHAUSTED, serves
//! the others, and health keeps answering throughout.

mod common;

use std::time::{Duration, Instant};

use foryou_proto::v1 as pb;
use foryou_proto::v1::scored_posts_service_client::ScoredPostsServiceClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_in_flight_bound_are_rejected_at_once_and_the_rest_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::start_serve(dir.path(), &["--users", "300", "--max-in-flight", "1"]);
    let channel = common::serving_channel(&server.addr).await;

    let calls: Vec<_> = (1..=24)
        .map(|viewer| {
            let mut c = ScoredPostsServiceClient::new(channel.clone());
            tokio::spawn(async move {
                let t = Instant::now();
                let r = c
                    .get_scored_posts(pb::ScoredPostsQuery {
                        viewer_id: viewer,
                        ..Default::default()
                    })
                    .await;
                (r, t.elapsed())
            })
        })
        .collect();
    let (mut ok, mut rejected) = (0, 0);
    for call in calls {
        let (r, took) = call.await.expect("task");
        match r {
            Ok(_) => ok += 1,
            Err(s) => {
                assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
                assert!(s.message().contains("--max-in-flight"), "{}", s.message());
                assert!(took < Duration::from_secs(5), "rejected at once: {took:?}");
                rejected += 1;
            }
        }
    }
    assert!(ok >= 1, "at least the first call is served");
    assert!(rejected >= 1, "24 concurrent calls over a bound of 1");
    // Health is never gated.
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(health.status, 1, "SERVING");
    common::stop_gracefully(server.child);
}
