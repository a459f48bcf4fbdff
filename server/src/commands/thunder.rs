//! `foryou thunder` (serve the Thunder role), `foryou thunder replay` and
//! `foryou thunder synth`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use foryou_proto::v1::in_network_posts_service_client::InNetworkPostsServiceClient;
use foryou_server::clock::{Clock, SystemClock};
use foryou_server::config::ThunderConfig;
use foryou_server::roles::shutdown::shutdown_signal;
use foryou_server::roles::thunder::{load_event_file, run_thunder};
use foryou_server::thunder::event_file::{EventFileReader, write_event_file};
use foryou_server::thunder::events::{PostEvent, create_event, delete_event};
use foryou_server::thunder::synth::{SynthSpec, synth_events};
use foryou_server::thunder::{PostStore, ThunderParams};

/// `foryou thunder [FLAGS]` serves; `foryou thunder replay|synth` are tools.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ThunderArgs {
    #[command(subcommand)]
    command: Option<ThunderCommand>,
    #[command(flatten)]
    serve: ThunderConfig,
}

/// Thunder tools.
#[derive(Debug, Subcommand)]
enum ThunderCommand {
    /// Apply an event file (length-delimited InNetworkEvent): stream it to a
    /// running Thunder's IngestEvents with --addr, or check it into a fresh
    /// in-process store and print what it holds.
    Replay {
        /// The event file.
        file: PathBuf,
        /// A running Thunder (or `foryou phoenix serve`), e.g.
        /// http://127.0.0.1:50051; `https://` needs --tls-ca.
        #[arg(long)]
        addr: Option<String>,
        /// The bearer token a server with --auth-token-file requires.
        #[arg(long, env = "FORYOU_AUTH_TOKEN_FILE")]
        auth_token_file: Option<PathBuf>,
        /// TLS to an `https://` address.
        #[command(flatten)]
        tls: foryou_server::security::ClientSecurity,
        /// Retention for the in-process check, seconds.
        #[arg(long, default_value_t = 172_800)]
        retention_s: i64,
    },
    /// Write a seeded synthetic event file ending now.
    Synth {
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Authors (ids 1..=N).
        #[arg(long, default_value_t = 1000)]
        authors: u32,
        /// Average posts per author.
        #[arg(long, default_value_t = 50)]
        posts_per_author: u32,
        /// Fraction of posts deleted later in the stream.
        #[arg(long, default_value_t = 0.02)]
        delete_ratio: f64,
        /// RNG seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

/// Runs a `foryou thunder` invocation.
pub fn run(args: ThunderArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match args.command {
        None => rt.block_on(run_thunder(args.serve, shutdown_signal()))?,
        Some(ThunderCommand::Replay {
            file,
            addr: Some(addr),
            auth_token_file,
            tls,
            ..
        }) => {
            let token = foryou_server::security::client_token(auth_token_file.as_deref())?;
            rt.block_on(replay_to(file, addr, token, tls.tls()?))?;
        }
        Some(ThunderCommand::Replay {
            file,
            addr: None,
            retention_s,
            ..
        }) => {
            let params = ThunderParams {
                retention_s,
                ..ThunderParams::default()
            };
            let store = PostStore::new(params, Arc::new(SystemClock::new()));
            let l = load_event_file(&store, &file)?;
            store.finalize_init();
            println!(
                "{}: {} records, {} malformed; {} posts inserted, {} duplicate, {} expired, {} in the future, {} after delete; {} deletes ({} repeated)",
                file.display(),
                l.records,
                l.malformed,
                l.applied.creates.inserted,
                l.applied.creates.duplicate,
                l.applied.creates.expired,
                l.applied.creates.in_future,
                l.applied.creates.deleted,
                l.applied.deletes_applied,
                l.applied.deletes_repeated
            );
            println!("store: {:?}", store.stats());
        }
        Some(ThunderCommand::Synth {
            out,
            authors,
            posts_per_author,
            delete_ratio,
            seed,
        }) => {
            anyhow::ensure!(
                (0.0..=1.0).contains(&delete_ratio),
                "--delete-ratio must be in [0, 1], got {delete_ratio}"
            );
            let spec = SynthSpec {
                authors,
                posts_per_author,
                delete_ratio,
                ..SynthSpec::new(SystemClock::new().unix_s(), seed)
            };
            let wire: Vec<_> = synth_events(&spec)
                .iter()
                .map(|e| match e {
                    PostEvent::Create(p) => create_event(p),
                    PostEvent::Delete(d) => delete_event(d),
                })
                .collect();
            let n = write_event_file(&out, &wire)?;
            println!("wrote {n} events to {}", out.display());
        }
    }
    Ok(())
}

/// Streams `file` to `addr`'s IngestEvents; a reader thread feeds a bounded
/// channel so memory stays constant whatever the file size.
async fn replay_to(
    file: PathBuf,
    addr: String,
    token: Option<foryou_server::security::BearerToken>,
    tls: Option<tonic::transport::ClientTlsConfig>,
) -> anyhow::Result<()> {
    let mut endpoint = tonic::transport::Endpoint::from_shared(addr.clone())
        .with_context(|| format!("bad address {addr}"))?;
    if addr.starts_with("https://") {
        let tls = tls.with_context(|| format!("{addr} is https: give --tls-ca"))?;
        endpoint = endpoint.tls_config(tls)?;
    }
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    let header = token
        .map(|t| {
            t.header_value()
                .parse::<tonic::metadata::MetadataValue<_>>()
        })
        .transpose()
        .context("the token is not a valid header value")?;
    let mut client = InNetworkPostsServiceClient::with_interceptor(
        channel,
        move |mut req: tonic::Request<()>| {
            if let Some(h) = &header {
                req.metadata_mut().insert("authorization", h.clone());
            }
            Ok(req)
        },
    );
    let reader = EventFileReader::open(&file)?;
    let (tx, rx) = tokio::sync::mpsc::channel(4096);
    let feeder = tokio::task::spawn_blocking(move || {
        for ev in reader {
            let ev = ev?;
            if tx.blocking_send(ev).is_err() {
                break; // the call ended; its status says why
            }
        }
        Ok::<(), foryou_server::thunder::event_file::EventFileError>(())
    });
    let call = client
        .ingest_events(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;
    feeder.await.context("reader thread")??;
    let summary = call
        .with_context(|| format!("IngestEvents on {addr}"))?
        .into_inner();
    println!(
        "{}: {} creates applied, {} deletes applied, {} skipped",
        file.display(),
        summary.creates_applied,
        summary.deletes_applied,
        summary.skipped
    );
    Ok(())
}
