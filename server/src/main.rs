//! `foryou`: the command-line entry point. This file only parses arguments and
//! dispatches; each command lives in `commands/`.

mod commands;

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
    /// The Phoenix ranker and retriever: evaluate fixtures, create models.
    Phoenix {
        #[command(subcommand)]
        command: commands::phoenix::PhoenixCommand,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Phoenix { command } => commands::phoenix::run(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
