//! `foryou serve`: all roles in one process (see `roles::serve`).

use anyhow::Context;
use foryou_server::config::ServeConfig;
use foryou_server::roles::serve::run_serve;
use foryou_server::roles::shutdown::shutdown_signal;

/// Runs the server until SIGTERM or Ctrl-C.
pub fn run(cfg: ServeConfig) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(run_serve(cfg, shutdown_signal()))?;
    Ok(())
}
