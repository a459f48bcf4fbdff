//! Thunder's gRPC service over loopback (127.0.0.1:0): ingest stream, normal
//! and video requests, overload, oversize input, compression, health.

use std::net::SocketAddr;
use std::sync::Arc;

use foryou_proto::v1 as pb;
use foryou_proto::v1::in_network_posts_service_client::InNetworkPostsServiceClient;
use foryou_server::clock::SystemClock;
use foryou_server::grpc::in_network_posts::ThunderService;
use foryou_server::thunder::events::{create_event, delete_event};
use foryou_server::thunder::{LightPost, PostDelete, PostStore, ThunderParams};
use tokio::sync::Semaphore;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;

struct Server {
    addr: SocketAddr,
    store: Arc<PostStore>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn start(params: ThunderParams, permits: Option<Arc<Semaphore>>) -> Server {
    let store = Arc::new(PostStore::new(params, Arc::new(SystemClock::new())));
    let mut svc = ThunderService::new(store.clone()).with_ingest_batch(7);
    if let Some(p) = permits {
        svc = svc.with_permits(p);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc.into_server())
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
    });
    Server {
        addr,
        store,
        _shutdown: tx,
    }
}

async fn client(addr: SocketAddr) -> InNetworkPostsServiceClient<Channel> {
    InNetworkPostsServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect")
        .send_compressed(CompressionEncoding::Zstd)
        .accept_compressed(CompressionEncoding::Zstd)
}

fn now() -> i64 {
    use foryou_server::clock::Clock;
    SystemClock::new().unix_s()
}

fn ids(r: &pb::GetInNetworkPostsResponse) -> Vec<i64> {
    r.posts.iter().map(|p| p.post_id).collect()
}

#[tokio::test]
async fn ingest_then_fetch_newest_first_over_loopback() {
    let server = start(ThunderParams::default(), None).await;
    let mut c = client(server.addr).await;
    let t = now();
    let mut events = Vec::new();
    for i in 0..30 {
        let p = LightPost::original(1000 + i, 10 + i % 3, t - 300 + i);
        events.push(create_event(&if i % 5 == 0 { p.with_video() } else { p }));
    }
    events.push(delete_event(&PostDelete {
        post_id: 1029,
        deleted_at: t,
    }));
    events.push(pb::InNetworkEvent::default()); // malformed: skipped
    let summary = c
        .ingest_events(tokio_stream::iter(events))
        .await
        .expect("ingest")
        .into_inner();
    assert_eq!(summary.creates_applied, 30);
    assert_eq!(summary.deletes_applied, 1);
    assert_eq!(summary.skipped, 1);
    assert_eq!(server.store.stats().posts, 29);

    let resp = c
        .get_in_network_posts(pb::GetInNetworkPostsRequest {
            user_id: 1,
            following_user_ids: vec![10, 11, 12, 999],
            max_results: 5,
            exclude_tweet_ids: vec![1027],
            algorithm: "ignored".into(),
            ..Default::default()
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(ids(&resp), vec![1028, 1026, 1025, 1024, 1023]);
    let p = &resp.posts[0];
    assert_eq!((p.author_id, p.created_at), (10 + 28 % 3, t - 300 + 28));

    let videos = c
        .get_in_network_posts(pb::GetInNetworkPostsRequest {
            user_id: 1,
            following_user_ids: vec![10, 11, 12],
            is_video_request: true,
            ..Default::default()
        })
        .await
        .expect("videos")
        .into_inner();
    assert_eq!(ids(&videos), vec![1025, 1020, 1015, 1010, 1005, 1000]);
    assert!(videos.posts.iter().all(|p| p.has_video));
}

#[tokio::test]
async fn full_server_answers_resource_exhausted_at_once() {
    let permits = Arc::new(Semaphore::new(2));
    let server = start(ThunderParams::default(), Some(permits.clone())).await;
    let mut c = client(server.addr).await;
    let req = pb::GetInNetworkPostsRequest {
        user_id: 1,
        following_user_ids: vec![10],
        ..Default::default()
    };
    // Two requests in flight (simulated by holding both permits).
    let held = permits
        .clone()
        .acquire_many_owned(2)
        .await
        .expect("permits");
    let started = std::time::Instant::now();
    let err = c
        .get_in_network_posts(req.clone())
        .await
        .expect_err("at capacity");
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    assert!(err.message().contains("capacity"), "{err:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "rejected at once, not queued"
    );
    drop(held);
    assert!(c.get_in_network_posts(req).await.is_ok(), "admitted again");
}

#[tokio::test]
async fn oversize_lists_are_invalid_argument() {
    let server = start(ThunderParams::default(), None).await;
    let mut c = client(server.addr).await;
    let err = c
        .get_in_network_posts(pb::GetInNetworkPostsRequest {
            user_id: 1,
            following_user_ids: (1..=5001).collect(),
            ..Default::default()
        })
        .await
        .expect_err("oversize");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("following_user_ids"), "{err:?}");
    assert!(err.message().contains("5000"), "{err:?}");
    let ok = c
        .get_in_network_posts(pb::GetInNetworkPostsRequest {
            user_id: 1,
            following_user_ids: (1..=5000).collect(),
            exclude_tweet_ids: (1..=5000).collect(),
            ..Default::default()
        })
        .await;
    assert!(ok.is_ok(), "exactly at the limit is accepted: {ok:?}");
}
