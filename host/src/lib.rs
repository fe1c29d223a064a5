//! igloo: a host for Instagram automations written as sandboxed WebAssembly
//! plugins.
//!
//! Meta's webhooks come in through [`server`], are verified
//! ([`signature`]), split into [`events`] and committed to the [`inbox`]
//! before Meta gets its 200. The [`runtime`] dispatches each event to the
//! plugins that subscribed to it; plugins act only through
//! [`capabilities`], which call Meta through [`graph`].
//!
//! [`Igloo::start`] builds all of it from a [`Config`];
//! [`Igloo::serve`] runs it on a listener, so tests run the real server on
//! port 0.

pub mod capabilities;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod events;
pub mod graph;
pub mod inbox;
pub mod metrics;
pub mod runtime;
pub mod server;
pub mod signature;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::Config;

use capabilities::HostServices;
use inbox::{Inbox, SqliteInbox};
use metrics::Metrics;
use runtime::{Dispatcher, Runtime};
use server::AppState;
use signature::SignatureVerifier;

/// A started igloo: storage open, plugins loaded, dispatcher running.
pub struct Igloo {
    state: Arc<AppState>,
    max_body_bytes: usize,
    /// The dispatcher and the pruner, stopped when serving ends.
    background: Vec<JoinHandle<()>>,
}

impl Igloo {
    /// Open storage, load the plugins and start dispatching whatever is
    /// pending. Fails, naming the cause, if any configured part is unusable.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        config
            .validate()
            .map_err(anyhow::Error::msg)
            .context("invalid configuration")?;
        let data_dir = &config.storage.data_dir;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
        let inbox: Arc<dyn Inbox> = Arc::new(
            SqliteInbox::open(&data_dir.join("inbox.sqlite3")).context("opening the inbox")?,
        );
        let services = Arc::new(HostServices::open(&config)?);
        let runtime = Arc::new(
            Runtime::new(&config, Arc::clone(&services))
                .map_err(anyhow::Error::from)
                .context("starting the wasm runtime")?,
        );
        let metrics = Arc::new(Metrics::new());
        let retention = Duration::from_secs(config.storage.dedupe_retention_hours * 3600);
        let background = vec![
            tokio::spawn(
                Dispatcher::new(
                    Arc::clone(&inbox),
                    Arc::clone(&runtime),
                    Arc::clone(&metrics),
                    &config.runtime,
                )
                .run(),
            ),
            inbox::spawn_pruner(Arc::clone(&inbox), retention),
        ];
        let state = Arc::new(AppState {
            verifier: SignatureVerifier::new(
                &config.effective_app_secrets(),
                config.webhook.accept_sha1,
            ),
            verify_token: config.effective_verify_token(),
            admin_token: config.server.admin_token.clone(),
            inbox,
            runtime,
            services,
            metrics,
        });
        Ok(Self {
            state,
            max_body_bytes: config.server.max_body_bytes,
            background,
        })
    }

    /// The inbox, for inspection.
    pub fn inbox(&self) -> Arc<dyn Inbox> {
        Arc::clone(&self.state.inbox)
    }

    /// The routes, for serving or for driving in-process.
    pub fn router(&self) -> axum::Router {
        server::router(Arc::clone(&self.state), self.max_body_bytes)
    }

    /// Serve on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let result = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await;
        for task in &self.background {
            task.abort();
        }
        result
    }
}
