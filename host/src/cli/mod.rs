//! The `igloo` command line.

pub mod accounts;
mod admin;
pub mod conversations;
pub mod events;
pub mod installations;
pub mod plugin;
pub mod simulate;
pub mod timers;
pub mod trust;

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::Igloo;
use crate::config::{Config, GraphMode, LogFormat};

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
    /// A publisher's tools: pack a plugin folder into a bundle, inspect a
    /// bundle, make a key and sign, push to an OCI registry.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// The installations of a running igloo: list, add, set, upgrade,
    /// diff, pause, resume, remove. Needs the admin token.
    Installations(installations::InstallationsArgs),
    /// The trust store of a running igloo: the publishers whose signed
    /// bundles run, and revocations. Needs the admin token.
    Trust(trust::TrustArgs),
}

/// Parse the command line and run it. `serve` logs as its configuration
/// says (`[log] format`), so it reads the configuration first; the other
/// commands log as text.
pub async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve {
            config,
            listen,
            data_dir,
        } => {
            let config = serve_config(config, listen, data_dir)?;
            init_logs(config.log.format);
            serve(config).await
        }
        command => {
            init_logs(LogFormat::Text);
            run(command).await
        }
    }
}

/// Send igloo's log to standard output in `format`, filtered by `RUST_LOG`
/// (`info` by default).
pub fn init_logs(format: LogFormat) {
    // Colours only where a person reads the logs: not in a file, a pipe or
    // a journal. NO_COLOR (https://no-color.org) still turns them off.
    let colour = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    crate::untrusted::set_json_logs(format == LogFormat::Json);
    let subscriber = log_subscriber(format, colour, filter, std::io::stdout);
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        tracing::warn!("a log was set up already: keeping it");
    }
}

/// The subscriber that writes igloo's log to `writer`.
fn log_subscriber<W>(
    format: LogFormat,
    colour: bool,
    filter: tracing_subscriber::EnvFilter,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(colour).finish()),
        LogFormat::Json => Box::new(builder.json().with_ansi(false).finish()),
    }
}

/// Run one command.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            config,
            listen,
            data_dir,
        } => serve(serve_config(config, listen, data_dir)?).await,
        Command::Simulate(args) => simulate::run(args).await,
        Command::Events(args) => events::run(args).await,
        Command::Conversations(args) => conversations::run(args).await,
        Command::Accounts(args) => accounts::run(args).await,
        Command::Timers(args) => timers::run(args).await,
        Command::Plugin(command) => plugin::run(command).await,
        Command::Installations(args) => installations::run(args).await,
        Command::Trust(args) => trust::run(args).await,
    }
}

/// `serve`'s configuration: the file (or the embedded defaults), the
/// environment, then the command line's overrides.
fn serve_config(
    file: Option<PathBuf>,
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<Config> {
    let mut config = Config::load(file.as_deref()).context("loading the configuration")?;
    if let Some(listen) = listen {
        config.server.listen = listen;
    }
    if let Some(data_dir) = data_dir {
        config.storage.data_dir = data_dir;
    }
    Ok(config)
}

async fn serve(config: Config) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::untrusted::{LogText, sanitize};

    /// What a subscriber wrote.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Written {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A plugin's line, as the log capability writes it, in `format`.
    fn plugin_line(format: LogFormat, said: &str) -> String {
        let written = Written::default();
        let into = written.clone();
        let subscriber = log_subscriber(
            format,
            false,
            tracing_subscriber::EnvFilter::new("info"),
            move || into.clone(),
        );
        let line = sanitize(said, 4096);
        let text = LogText::for_format(&line, format == LogFormat::Json);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "igloo::plugin", plugin = "faq-bot", %text);
        });
        String::from_utf8(written.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn plugin_text_is_readable_in_the_text_log_and_the_json_log() {
        let said = "Merci \u{2764}\u{fe0f} \u{1f44d}\u{1f3fd} \"done\"\nforged=line";
        let text = plugin_line(LogFormat::Text, said);
        assert!(
            text.contains(
                "text=\"Merci \u{2764}\u{fe0f} \u{1f44d}\u{1f3fd} \\\"done\\\"\u{fffd}forged=line\""
            ),
            "{text}"
        );
        assert!(!text.contains("\\u{"), "no Rust escapes: {text}");
        assert_eq!(text.lines().count(), 1, "{text}");

        let json = plugin_line(LogFormat::Json, said);
        assert_eq!(json.lines().count(), 1, "{json}");
        let line: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
        assert_eq!(line["level"], "INFO", "{json}");
        assert_eq!(line["target"], "igloo::plugin", "{json}");
        assert_eq!(line["fields"]["plugin"], "faq-bot", "{json}");
        assert_eq!(
            line["fields"]["text"],
            "Merci \u{2764}\u{fe0f} \u{1f44d}\u{1f3fd} \"done\"\u{fffd}forged=line",
            "{json}"
        );
    }

    #[test]
    fn the_log_format_is_configured() {
        let config: Config = toml::from_str("[log]\nformat = \"json\"\n").unwrap();
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(Config::default().log.format, LogFormat::Text);
        assert!(toml::from_str::<Config>("[log]\nformat = \"xml\"\n").is_err());
    }
}
