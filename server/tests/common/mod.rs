//! Helpers for the tests that drive the built `foryou` binary: start a role,
//! read the address it logged, wait for health SERVING, stop it with SIGTERM.
#![allow(dead_code)] // each test crate uses a subset

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The built binary.
pub fn foryou() -> Command {
    Command::new(env!("CARGO_BIN_EXE_foryou"))
}

/// A running `foryou` process and the address it listens on.
pub struct Running {
    /// The process.
    pub child: Child,
    /// `host:port` from its "`marker` ADDR" log line.
    pub addr: String,
}

/// Starts `foryou ARGS` with info logs on stderr and waits (up to `wait`)
/// for the line "`marker` ADDR".
pub fn start(args: &[&str], marker: &str, wait: Duration) -> Running {
    let mut child = foryou()
        .args(args)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start foryou");
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + wait;
    let addr = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("foryou {args:?} never logged '{marker}'"));
        if let Some(rest) = line.split(marker).nth(1) {
            break rest
                .split_whitespace()
                .next()
                .expect("an address after the marker")
                .to_owned();
        }
    };
    Running { child, addr }
}

/// Starts `foryou serve` on a free loopback port without metrics, its demo
/// model cached under `dir/models`, with `extra` flags, and waits up to two
/// minutes for its address.
pub fn start_serve(dir: &std::path::Path, extra: &[&str]) -> Running {
    let cache = dir.join("models");
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "off",
        "--model-cache",
        cache.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    start(&args, "foryou serving on ", Duration::from_secs(120))
}

/// Starts `foryou thunder` on a free loopback port without metrics, with
/// `extra` flags, and waits up to a minute for its address.
pub fn start_thunder(extra: &[&str]) -> Running {
    let mut args = vec![
        "thunder",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "off",
    ];
    args.extend_from_slice(extra);
    start(&args, "thunder listening on ", Duration::from_secs(60))
}

/// Polls health for `service` until SERVING; panics after `deadline`. Any
/// status before that must be NOT_SERVING.
pub async fn wait_serving(channel: Channel, service: &str, deadline: Instant) {
    let mut health = HealthClient::new(channel);
    loop {
        let s = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health")
            .into_inner();
        if s.status == ServingStatus::Serving as i32 {
            return;
        }
        assert_eq!(s.status, ServingStatus::NotServing as i32);
        assert!(Instant::now() < deadline, "{service} never became SERVING");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A plaintext channel to `addr` once its health says SERVING for the
/// whole server (waits up to two minutes).
pub async fn serving_channel(addr: &str) -> Channel {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    wait_serving(
        channel.clone(),
        "",
        Instant::now() + Duration::from_secs(120),
    )
    .await;
    channel
}

/// Sends SIGTERM and asserts a clean exit.
pub fn stop_gracefully(mut child: Child) {
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "graceful exit, got {exit:?}");
}
