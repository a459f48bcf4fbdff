//! `foryou`: the command-line entry point. This file only parses arguments and
//! dispatches; each command lives in `commands/`.

mod commands;

/// mimalloc: with glibc's allocator two Thunder ingest threads spent their
/// time waiting on its arena locks (a post's timeline is grown by whichever
/// thread inserts next); one thread ingested 2.0 M events/s with glibc and
/// 2.8-3.8 M with mimalloc (thunder-profile, 2-core VM). Its v2 line (the
/// crate's `v2` feature), not v3: under 3x overload `serve` peaked at
/// 292-306 MB RSS with v2 and 372-383 MB with v3 (idle 203-260 MB), with
/// the same feeds/s; v3 ingests ~15 % faster on one Thunder thread, the
/// same on two (benches/results/overload_cpu_2026-12-04.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// foryou: X's "For You" feed stack (Home Mixer, Thunder, Phoenix) in Rust.
#[derive(Debug, Parser)]
#[command(name = "foryou", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start every role in one process on the demo world (or --world FILE):
    /// GetScoredPosts, GetInNetworkPosts, the Phoenix services, health,
    /// reflection and metrics.
    Serve(foryou_server::config::ServeConfig),
    /// Load generators against a running server.
    Bench {
        #[command(subcommand)]
        command: commands::bench::BenchCommand,
    },
    /// Ask a running server for a user's feed and print it.
    Feed(commands::feed::FeedArgs),
    /// Generate or check world files (the data behind the demo services).
    World {
        #[command(subcommand)]
        command: commands::world::WorldCommand,
    },
    /// The Phoenix ranker and retriever: evaluate fixtures, create models.
    Phoenix {
        #[command(subcommand)]
        command: commands::phoenix::PhoenixCommand,
    },
    /// Thunder, the in-memory store of recent in-network posts: serve it
    /// (`foryou thunder --listen ADDR`), or replay and synthesise event files.
    Thunder(commands::thunder::ThunderArgs),
}

/// Threads of candle's own op pool (CANDLE_NUM_THREADS; its workers spin
/// between ops). A server runs many requests at once, so splitting each
/// elementwise op across cores only adds spinning and hand-offs: measured
/// on this 2-core VM, it cut the p50 at 10 QPS from 101 ms to 36 ms.
/// Matmuls and norms still use rayon, and engine calls run on rayon's pool
/// (`grpc::phoenix`), so a lone request can use idle cores. 0 keeps
/// candle's default (all physical cores); an explicit setting wins.
fn set_engine_threads(n: usize) {
    if n == 0 || std::env::var_os("CANDLE_NUM_THREADS").is_some() {
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: called first thing in main, before any thread exists (the
    // runtime, the tracing subscriber's writers and candle's pools all start
    // later), so nothing can read the environment concurrently.
    unsafe {
        std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
        // candle sizes every matmul's split by RAYON_NUM_THREADS, and when it
        // is unset recounts the physical cores on each call (3.6% of a
        // serving profile). Pin it to what rayon's pool would use anyway.
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            std::env::set_var("RAYON_NUM_THREADS", cores.to_string());
        }
    }
}

fn main() -> std::process::ExitCode {
    foryou_engine::cpu::keep_freed_memory();
    foryou_server::allocator::delay_mimalloc_purge();
    let cli = Cli::parse();
    match &cli.command {
        Command::Serve(cfg) => set_engine_threads(cfg.engine.engine_threads),
        Command::Phoenix {
            command: commands::phoenix::PhoenixCommand::Serve(cfg),
        } => set_engine_threads(cfg.engine.engine_threads),
        _ => {}
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Serve(cfg) => commands::serve::run(cfg),
        Command::Feed(args) => commands::feed::run(args),
        Command::Bench { command } => commands::bench::run(command),
        Command::World { command } => commands::world::run(command),
        Command::Phoenix { command } => commands::phoenix::run(command),
        Command::Thunder(args) => commands::thunder::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
