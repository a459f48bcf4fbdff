//! Circuit breakers of the remote clients (issue 18, spec §4.4) against
//! backends on 127.0.0.1:0 that hang on demand: a hung Thunder opens the
//! breaker, ThunderSource then fails at once and never waits on it, a
//! background probe closes the breaker within a cool-down of Thunder
//! answering again; a hung Phoenix ranker trips its own breaker and leaves
//! retrieval alone.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use foryou_proto::v1 as pb;
use foryou_proto::v1::in_network_posts_service_server::{
    InNetworkPostsService, InNetworkPostsServiceServer,
};
use foryou_proto::v1::phoenix_ranker_server::{PhoenixRanker, PhoenixRankerServer};
use foryou_proto::v1::phoenix_retrieval_server::{PhoenixRetrieval, PhoenixRetrievalServer};
use foryou_server::clients::{
    BreakerPolicy, BreakerState, PhoenixRankerClient, PhoenixRetrievalClient, RemotePhoenix,
    RemoteThunder,
};
use foryou_server::pipeline::components::sources::thunder_source::ThunderSource;
use foryou_server::pipeline::framework::Source;
use foryou_server::pipeline::home_mixer::{Params, ScoredPostsQuery, UserFeatures};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// Client timeout of these tests (production: 1 s); a hung call costs this.
const TIMEOUT: Duration = Duration::from_millis(200);
const POLICY: BreakerPolicy = BreakerPolicy {
    failures: 3,
    cooldown: Duration::from_millis(400),
};
/// The bound on a call while the breaker is open.
const FAIL_FAST: Duration = Duration::from_millis(50);

/// A backend switch: while `hang` is set a handler never answers. Counts
/// the requests that reached a handler.
#[derive(Debug, Default)]
struct Switch {
    hang: AtomicBool,
    received: AtomicUsize,
}

impl Switch {
    fn hanging() -> Arc<Self> {
        let s = Arc::new(Self::default());
        s.hang.store(true, Ordering::SeqCst);
        s
    }

    /// Counts the request; never returns while hanging.
    async fn enter(&self) {
        self.received.fetch_add(1, Ordering::SeqCst);
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }

    fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
struct Thunder(Arc<Switch>);

#[tonic::async_trait]
impl InNetworkPostsService for Thunder {
    async fn get_in_network_posts(
        &self,
        _: Request<pb::GetInNetworkPostsRequest>,
    ) -> Result<Response<pb::GetInNetworkPostsResponse>, Status> {
        self.0.enter().await;
        Ok(Response::new(pb::GetInNetworkPostsResponse {
            posts: vec![pb::LightPost {
                post_id: 100,
                author_id: 2,
                ..Default::default()
            }],
        }))
    }

    async fn ingest_events(
        &self,
        _: Request<tonic::Streaming<pb::InNetworkEvent>>,
    ) -> Result<Response<pb::IngestSummary>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

#[derive(Debug)]
struct Ranker(Arc<Switch>);

#[tonic::async_trait]
impl PhoenixRanker for Ranker {
    async fn predict(
        &self,
        _: Request<pb::PredictRequest>,
    ) -> Result<Response<pb::PredictResponse>, Status> {
        self.0.enter().await;
        Ok(Response::new(pb::PredictResponse::default()))
    }
}

#[derive(Debug)]
struct Retrieval(Arc<Switch>);

#[tonic::async_trait]
impl PhoenixRetrieval for Retrieval {
    async fn retrieve(
        &self,
        _: Request<pb::RetrieveRequest>,
    ) -> Result<Response<pb::RetrieveResponse>, Status> {
        self.0.enter().await;
        Ok(Response::new(pb::RetrieveResponse::default()))
    }
}

/// Serves `router` on a free loopback port until the test's runtime ends.
async fn serve(router: tonic::transport::server::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        router
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .expect("serve");
    });
    addr
}

fn query() -> ScoredPostsQuery {
    ScoredPostsQuery {
        user_id: 1,
        request_id: "1-1".into(),
        user_features: UserFeatures {
            followed_user_ids: vec![2, 3],
            ..UserFeatures::default()
        },
        ..ScoredPostsQuery::default()
    }
}

#[tokio::test]
async fn a_hung_thunder_opens_the_breaker_then_thunder_source_fails_fast_and_recovery_closes_it() {
    let switch = Switch::hanging();
    let addr = serve(
        tonic::transport::Server::builder()
            .add_service(InNetworkPostsServiceServer::new(Thunder(switch.clone()))),
    )
    .await;
    let remote = RemoteThunder::new(&format!("http://{addr}"), TIMEOUT, 4 << 20, POLICY, None)
        .expect("valid address");
    let source = ThunderSource::new(Arc::new(remote.clone()), &Params::default());
    let q = query();

    // Closed: each call waits out the client timeout.
    for i in 0..POLICY.failures {
        assert_eq!(remote.breaker().state(), BreakerState::Closed, "call {i}");
        let t = Instant::now();
        let e = source.get_candidates(&q).await.expect_err("hung");
        let took = t.elapsed();
        assert!(took >= TIMEOUT, "call {i} took {took:?}: {e}");
        assert!(!e.to_string().contains("circuit breaker"), "{e}");
    }
    assert_eq!(remote.breaker().state(), BreakerState::Open);
    assert_eq!(switch.received(), 3);

    // Open: ThunderSource fails at once and nothing reaches Thunder.
    let mut took = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let e = source.get_candidates(&q).await.expect_err("open");
        took.push(t.elapsed());
        assert!(
            e.to_string().contains("circuit breaker thunder is open"),
            "{e}"
        );
    }
    took.sort();
    let (median, max) = (took[took.len() / 2], took[took.len() - 1]);
    eprintln!("ThunderSource call with the breaker open: median {median:?}, max {max:?}");
    assert!(max <= FAIL_FAST, "an open breaker's call took {max:?}");
    assert_eq!(switch.received(), 3, "no request sent while open");

    // Thunder answers again: the background probe (a one-author query
    // every cool-down) closes the breaker without any caller's call.
    switch.hang.store(false, Ordering::SeqCst);
    let t = Instant::now();
    while remote.breaker().state() != BreakerState::Closed {
        assert!(
            t.elapsed() < POLICY.cooldown + TIMEOUT * 2,
            "still open after {:?}",
            t.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("closed {:?} after Thunder answered again", t.elapsed());
    let probes = switch.received() - 3;
    assert!(probes >= 1, "the probe reached Thunder");
    let posts = source.get_candidates(&q).await.expect("closed");
    assert_eq!(posts.len(), 1);
    assert_eq!(switch.received(), 3 + probes + 1);
}

#[tokio::test]
async fn a_hung_backend_is_probed_in_the_background_and_no_caller_ever_waits_on_it() {
    let switch = Switch::hanging();
    let addr = serve(
        tonic::transport::Server::builder()
            .add_service(InNetworkPostsServiceServer::new(Thunder(switch.clone()))),
    )
    .await;
    let remote = Arc::new(
        RemoteThunder::new(&format!("http://{addr}"), TIMEOUT, 4 << 20, POLICY, None)
            .expect("valid address"),
    );
    let source = ThunderSource::new(remote.clone(), &Params::default());
    let q = query();
    for _ in 0..POLICY.failures {
        source.get_candidates(&q).await.expect_err("hung");
    }
    assert_eq!(remote.breaker().state(), BreakerState::Open);

    // Three cool-downs of calls while the backend stays hung: every call
    // fails at once (none is let through as a probe), the breaker never
    // goes half-open, and what reaches Thunder is the background probes.
    let t0 = Instant::now();
    let mut slowest = Duration::ZERO;
    while t0.elapsed() < POLICY.cooldown * 3 {
        let t = Instant::now();
        let e = source.get_candidates(&q).await.expect_err("open");
        slowest = slowest.max(t.elapsed());
        assert!(
            e.to_string().contains("circuit breaker thunder is open"),
            "{e}"
        );
        assert_eq!(remote.breaker().state(), BreakerState::Open);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(slowest <= FAIL_FAST, "a call took {slowest:?}");
    let probes = switch.received() - 3;
    assert!(
        (1..=3).contains(&probes),
        "{probes} probes in three cool-downs of a {TIMEOUT:?}-timeout backend"
    );
}

#[tokio::test]
async fn a_hung_phoenix_ranker_trips_its_own_breaker_and_retrieval_keeps_answering() {
    let ranker = Switch::hanging();
    let retrieval = Arc::new(Switch::default());
    let addr = serve(
        tonic::transport::Server::builder()
            .add_service(PhoenixRankerServer::new(Ranker(ranker.clone())))
            .add_service(PhoenixRetrievalServer::new(Retrieval(retrieval.clone()))),
    )
    .await;
    let remote = RemotePhoenix::new(&format!("http://{addr}"), TIMEOUT, 4 << 20, POLICY, None)
        .expect("valid address");
    for _ in 0..POLICY.failures {
        remote
            .predict(pb::PredictRequest::default())
            .await
            .expect_err("hung");
        remote
            .retrieve(pb::RetrieveRequest::default())
            .await
            .expect("retrieval answers");
    }
    assert_eq!(remote.ranker_breaker().state(), BreakerState::Open);
    assert_eq!(remote.retrieval_breaker().state(), BreakerState::Closed);
    let t = Instant::now();
    let e = remote
        .predict(pb::PredictRequest::default())
        .await
        .expect_err("open");
    assert!(t.elapsed() <= FAIL_FAST, "{:?}", t.elapsed());
    assert_eq!(e.service, "phoenix");
    assert!(
        e.message.contains("circuit breaker phoenix_ranker is open"),
        "{e}"
    );
    assert_eq!(ranker.received(), 3);
    remote
        .retrieve(pb::RetrieveRequest::default())
        .await
        .expect("retrieval still answers");
    assert_eq!(retrieval.received(), 4);
}
