//! The `igloo` command line.

pub mod accounts;
mod admin;
pub mod conversations;
pub mod events;
pub mod simulate;
pub mod timers;

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::Igloo;
use crate::config::{Config, GraphMode};

/// A host for Instagram automations written as sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "igloo", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// igloo's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receive webhooks and run plugins. With no config file, runs on the
    /// embedded defaults: SQLite under ./igloo-data, the example plugins,
    /// and a dry run that records outbound calls instead of sending them.
    Serve {
        /// The TOML config file (see examples/igloo.toml).
        #[arg(long, short, env = "IGLOO_CONFIG")]
        config: Option<PathBuf>,
        /// Listen address, overriding the config's `server.listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Data directory, overriding the config's `storage.data_dir`.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Sign a webhook as Meta does and post it to a running igloo: a file
    /// (`igloo simulate fixture.json`) or one event built from flags
    /// (`igloo simulate --kind message --text hi --from 123`).
    Simulate(simulate::SimulateArgs),
    /// The events a running igloo stored: list them (dead letters with
    /// `--dead`), show one whole, replay them. Needs its admin token.
    Events(events::EventsArgs),
    /// Hand a conversation to a human (pause automation there) or back
    /// (resume), or list the paused ones. Needs the admin token.
    Conversations(conversations::ConversationsArgs),
    /// The accounts igloo acts for: add one or give it a new token, list
    /// them with their token's health, remove one. Needs the admin token.
    Accounts(accounts::AccountsArgs),
    /// The plugins' timers waiting in conversations: list them, cancel
    /// one. Needs the admin token.
    Timers(timers::TimersArgs),
}

/// Parse the command line and run it.
pub async fn main() -> anyhow::Result<()> {
    // Colours only where a person reads the logs: not in a file, a pipe or
    // a journal. NO_COLOR (https://no-color.org) still turns them off.
    let colour = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    tracing_subscriber::fmt()
        .with_ansi(colour)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    run(Cli::parse().command).await
}

/// Run one command.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            config,
            listen,
            data_dir,
        } => serve(config, listen, data_dir).await,
        Command::Simulate(args) => simulate::run(args).await,
        Command::Events(args) => events::run(args).await,
        Command::Conversations(args) => conversations::run(args).await,
        Command::Accounts(args) => accounts::run(args).await,
        Command::Timers(args) => timers::run(args).await,
    }
}

async fn serve(
    file: Option<PathBuf>,
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let mut config = Config::load(file.as_deref()).context("loading the configuration")?;
    if let Some(listen) = listen {
        config.server.listen = listen;
    }
    if let Some(data_dir) = data_dir {
        config.storage.data_dir = data_dir;
    }
    let listen = config.server.listen;
    let dry_run = config.graph.mode == GraphMode::DryRun;
    let secret_hint = config.webhook.app_secrets.is_empty();
    let igloo = Igloo::start(config).await?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    tracing::info!(address = %listener.local_addr()?, "igloo is listening: POST /webhooks/instagram");
    if dry_run {
        tracing::info!(
            "dry run: outbound calls are recorded, not sent (GET /dry-run/calls){}",
            if secret_hint {
                format!(
                    "; webhooks are verified with the app secret `{}`",
                    crate::config::DRY_RUN_APP_SECRET
                )
            } else {
                String::new()
            }
        );
    }
    igloo.serve(listener, stop_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM (what service managers and container
/// runtimes send).
async fn stop_signal() {
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: no new connections; finishing runs under way");
}
