//! `earshotd`: the earshot daemon.

#![forbid(unsafe_code)]

use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use controlplane::config::{Cli, Config, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("earshotd: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: under systemd (journald) or redirected to a file, escape
    // codes would end up in the log text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let config = Config::from_cli(cli)?;
    tracing::info!(config = %serde_json::to_string(&config)?, "effective configuration");
    let daemon = controlplane::spawn(config.clone())?;
    tracing::info!(
        http = %daemon.http_addr,
        ng = %daemon.ng_addr.map_or_else(|| "off".to_owned(), |a| a.to_string()),
        media_ip = %config.media.ip,
        media_ports = %format!("{}-{}", config.media.port_min, config.media.port_max),
        backend = daemon.state().engine().backend().as_str(),
        workers = config.engine.workers,
        db = %config.store.path.display(),
        "listening"
    );
    wait_for_signal()?;
    tracing::info!("shutting down");
    daemon.shutdown()?;
    tracing::info!("stopped");
    Ok(())
}

/// Blocks until SIGINT or SIGTERM.
fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the signal runtime")?;
    runtime.block_on(async {
        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = int.recv() => tracing::info!("SIGINT"),
        }
        Ok(())
    })
}
