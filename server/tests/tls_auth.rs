//! TLS, mutual TLS and the write token over real gRPC, with certificates
//! made in the test (rcgen): `foryou thunder` serves mTLS and requires a
//! bearer token for IngestEvents; `foryou serve` reaches it over https as a
//! remote Thunder; `thunder replay` sends the token. Reflection lists only
//! what the role serves.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use foryou_proto::v1 as pb;
use foryou_proto::v1::in_network_event::EventVariant;
use foryou_proto::v1::in_network_posts_service_client::InNetworkPostsServiceClient;
use foryou_proto::v1::scored_posts_service_client::ScoredPostsServiceClient;
use foryou_server::pipeline::util::snowflake;
use foryou_server::world::{Post, World, write_world};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

const NOW_MS: i64 = 1_800_000_000_000;

/// PEM files of a CA, a server certificate (127.0.0.1, localhost) and a
/// client certificate it signed, and a token file.
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    token: PathBuf,
}

fn pki(dir: &Path) -> Pki {
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "foryou test ca");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>, usage| {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &issuer).expect("leaf cert");
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf(
        vec!["127.0.0.1".into(), "localhost".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) =
        leaf(vec!["client".into()], ExtendedKeyUsagePurpose::ClientAuth);
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write pem");
        p
    };
    Pki {
        ca: write("ca.pem", &ca_cert.pem()),
        server_cert: write("server.pem", &server_cert),
        server_key: write("server.key", &server_key),
        client_cert: write("client.pem", &client_cert),
        client_key: write("client.key", &client_key),
        token: write("token", "s3cret-token\n"),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).expect("read pem")
}

/// A channel to `addr` over TLS trusting the test CA, with the client
/// certificate when `mtls`.
async fn tls_channel(
    pki: &Pki,
    addr: &str,
    mtls: bool,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(&pki.ca)));
    if mtls {
        tls = tls.identity(Identity::from_pem(
            read(&pki.client_cert),
            read(&pki.client_key),
        ));
    }
    Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect()
        .await
}

fn world() -> World {
    let mut w = World::new(NOW_MS);
    for u in 1..=3 {
        w.add_user(u, format!("user{u}"));
    }
    w.add_follow(1, 2);
    for i in 1..=3 {
        let created = NOW_MS - i * 3_600_000;
        w.add_post(Post {
            id: snowflake::id_at(created) + i,
            author: 2,
            created_ms: created,
            text: format!("post {i}").into(),
            ..Post::default()
        });
    }
    w
}

fn create(post_id: i64) -> pb::InNetworkEvent {
    pb::InNetworkEvent {
        event_variant: Some(EventVariant::TweetCreateEvent(pb::TweetCreateEvent {
            post_id,
            author_id: 3,
            created_at: NOW_MS / 1000,
            ..Default::default()
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_and_the_write_token_guard_thunder_and_serve_reaches_it_over_https() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(dir.path());
    let file = dir.path().join("world.jsonl");
    write_world(&world(), &file).expect("write world");
    let thunder = common::start_thunder(&[
        "--world",
        s(&file),
        "--tls-cert",
        s(&pki.server_cert),
        "--tls-key",
        s(&pki.server_key),
        "--tls-client-ca",
        s(&pki.ca),
        "--auth-token-file",
        s(&pki.token),
    ]);

    // Without a client certificate, or without TLS, no call succeeds.
    let health = tonic_health::pb::HealthCheckRequest {
        service: String::new(),
    };
    if let Ok(c) = tls_channel(&pki, &thunder.addr, false).await {
        let r = tonic_health::pb::health_client::HealthClient::new(c)
            .check(health.clone())
            .await;
        assert!(r.is_err(), "a client without a certificate was served");
    }
    if let Ok(c) = Channel::from_shared(format!("http://{}", thunder.addr))
        .expect("uri")
        .connect()
        .await
    {
        let r = tonic_health::pb::health_client::HealthClient::new(c)
            .check(health.clone())
            .await;
        assert!(r.is_err(), "a plaintext client was served");
    }

    let c = tls_channel(&pki, &thunder.addr, true).await.expect("mTLS");
    common::wait_serving(
        c.clone(),
        "foryou.v1.InNetworkPostsService",
        Instant::now() + Duration::from_secs(30),
    )
    .await;

    // Reads need no token; IngestEvents does.
    let mut client = InNetworkPostsServiceClient::new(c.clone());
    let posts = client
        .get_in_network_posts(pb::GetInNetworkPostsRequest {
            user_id: 1,
            following_user_ids: vec![2],
            ..Default::default()
        })
        .await
        .expect("a read without a token")
        .into_inner()
        .posts;
    assert_eq!(posts.len(), 3);
    let refused = client
        .ingest_events(tokio_stream::iter(vec![create(
            snowflake::id_at(NOW_MS) + 9,
        )]))
        .await
        .expect_err("no token");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    let mut wrong = tonic::Request::new(tokio_stream::iter(vec![create(1)]));
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer nope".parse().expect("header"));
    let refused = client.ingest_events(wrong).await.expect_err("wrong token");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let mut right = tonic::Request::new(tokio_stream::iter(vec![create(
        snowflake::id_at(NOW_MS) + 9,
    )]));
    right.metadata_mut().insert(
        "authorization",
        "Bearer s3cret-token".parse().expect("header"),
    );
    let summary = client
        .ingest_events(right)
        .await
        .expect("token")
        .into_inner();
    assert_eq!(summary.creates_applied, 1);

    // `thunder replay` with and without the token.
    let events = dir.path().join("events.bin");
    foryou_server::thunder::event_file::write_event_file(
        &events,
        &[create(snowflake::id_at(NOW_MS) + 10)],
    )
    .expect("event file");
    let replay = |token: bool| {
        let mut cmd = common::foryou();
        cmd.args(["thunder", "replay", s(&events), "--addr"])
            .arg(format!("https://{}", thunder.addr))
            .args(["--tls-ca", s(&pki.ca), "--tls-client-cert"])
            .args([s(&pki.client_cert), "--tls-client-key", s(&pki.client_key)])
            .env_remove("FORYOU_AUTH_TOKEN_FILE");
        if token {
            cmd.args(["--auth-token-file", s(&pki.token)]);
        }
        cmd.output().expect("run replay")
    };
    let denied = replay(false);
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("IngestEvents"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
    let ok = replay(true);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("1 creates applied"));

    // Reflection lists Thunder's service, health and reflection only.
    let mut listed = list_services(c.clone()).await;
    listed.sort();
    assert_eq!(
        listed,
        vec![
            "foryou.v1.InNetworkPostsService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
        ]
    );

    // `foryou serve` with the remote Thunder over https, mTLS.
    let thunder_url = format!("https://{}", thunder.addr);
    let server = common::start_serve(
        dir.path(),
        &[
            "--world",
            s(&file),
            "--thunder-addr",
            &thunder_url,
            "--tls-ca",
            s(&pki.ca),
            "--tls-client-cert",
            s(&pki.client_cert),
            "--tls-client-key",
            s(&pki.client_key),
        ],
    );
    let sc = Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    common::wait_serving(sc.clone(), "", Instant::now() + Duration::from_secs(120)).await;
    let feed = ScoredPostsServiceClient::new(sc)
        .get_scored_posts(pb::ScoredPostsQuery {
            viewer_id: 1,
            ..Default::default()
        })
        .await
        .expect("feed")
        .into_inner()
        .scored_posts;
    assert!(
        feed.iter().any(|p| p.in_network && p.author_id == 2),
        "in-network posts from the remote Thunder over mTLS: {feed:?}"
    );
    common::stop_gracefully(server.child);
    common::stop_gracefully(thunder.child);
}

/// The services reflection lists.
async fn list_services(c: Channel) -> Vec<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(c)
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .expect("reflection")
        .into_inner();
    let Some(resp) = stream.message().await.expect("a response") else {
        panic!("no reflection response");
    };
    match resp.message_response {
        Some(MessageResponse::ListServicesResponse(l)) => {
            l.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected {other:?}"),
    }
}
