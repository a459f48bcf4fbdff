//! `foryou world generate` and `foryou world check`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use foryou_server::clock::{Clock, SystemClock};
use foryou_server::phoenix::models::ranker_product_surfaces;
use foryou_server::world::{WorldRules, WorldSpec, generate, read_world_for, write_world};

/// World subcommands.
#[derive(Debug, Subcommand)]
pub enum WorldCommand {
    /// Write a seeded demo world (JSON Lines, format version 1).
    Generate {
        /// RNG seed; the same seed and --now-ms give the same file.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Users.
        #[arg(long, default_value_t = 2000)]
        users: usize,
        /// Mean posts per user over the window.
        #[arg(long, default_value_t = 8.0)]
        posts_per_user: f64,
        /// Mean accounts followed per user.
        #[arg(long, default_value_t = 40.0)]
        follows: f64,
        /// Mean engagements per user.
        #[arg(long, default_value_t = 50.0)]
        engagements_per_user: f64,
        /// The world's "now", unix ms (default: the current time).
        #[arg(long)]
        now_ms: Option<i64>,
    },
    /// Read a world file and print what it holds (errors name the line and
    /// field), checked against what `foryou serve` will take: engagement
    /// surfaces within the ranker's product-surface vocabulary.
    Check {
        /// The file.
        file: PathBuf,
        /// The model directory `serve` will use (default: the demo models).
        #[arg(long, env = "FORYOU_MODEL")]
        model: Option<PathBuf>,
    },
}

/// Runs a world subcommand.
pub fn run(cmd: WorldCommand) -> anyhow::Result<()> {
    match cmd {
        WorldCommand::Generate {
            seed,
            out,
            users,
            posts_per_user,
            follows,
            engagements_per_user,
            now_ms,
        } => {
            let now = now_ms.unwrap_or_else(|| SystemClock::new().unix_ms());
            let spec = WorldSpec {
                users,
                posts_per_user,
                mean_follows: follows,
                engagements_per_user,
                ..WorldSpec::demo(seed, now)
            };
            spec.validate().map_err(|e| anyhow::anyhow!("--{e}"))?;
            let world = generate(&spec);
            write_world(&world, &out).with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {} to {}", world.summary(), out.display());
        }
        WorldCommand::Check { file, model } => {
            let surfaces = ranker_product_surfaces(model.as_deref())?;
            let rules = WorldRules {
                product_surfaces: Some(surfaces),
            };
            let world = read_world_for(&file, rules)?;
            println!(
                "{}: {} (engagement surfaces within the ranker's {surfaces})",
                file.display(),
                world.summary()
            );
        }
    }
    Ok(())
}
