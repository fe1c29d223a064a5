//! igloo: a host for Instagram automations written as sandboxed WebAssembly
//! plugins.
//!
//! Data flows one way, and so do the modules' dependencies:
//!
//! ```text
//! server ─▶ events ─▶ inbox ─▶ dispatch ─▶ runtime ─▶ capabilities ─▶ graph, state
//!                        │                    └──────────┴─▶ plugin_api, journal
//!                        └─ keeps the journal ◀──────────────────────────┘
//! lifecycle ─▶ graph ─▶ accounts
//! ```
//!
//! - `server` takes Meta's webhooks, checks them ([`signature`]), splits
//!   them into [`events`] and commits them to the [`inbox`] before Meta gets
//!   its 200. It knows which events anyone subscribes to, not who runs them.
//! - `dispatch` takes events from the inbox, one ordered lane per
//!   conversation, and asks the [`runtime`] to run each subscribed plugin;
//!   it retries runs that failed for a passing reason, and leaves the rest
//!   as dead letters for an operator to replay.
//! - [`runtime`] is the sandbox: compiled plugins, fresh instances, limits,
//!   breakers and receipts. It links [`capabilities`] in, and knows nothing
//!   of what they do.
//! - [`capabilities`] answer plugins' host calls, one module per
//!   capability; they call Meta through [`graph`] and remember through
//!   [`state`].
//! - [`plugin_api`] is what both sides of the sandbox share: the WIT
//!   bindings, capabilities' names, host errors and the run's context.
//! - [`accounts`] holds the accounts igloo acts for and their tokens
//!   (sealed at rest); [`graph`] reads them on every call and marks an
//!   account `token-invalid` when Meta refuses its token, which holds its
//!   events back in the dispatcher. `lifecycle` keeps accounts working
//!   beside the flow of events: it refreshes tokens, syncs webhook
//!   subscriptions and profiles, watches for accounts gone quiet, and reads
//!   back comments webhooks missed. The server's `ui` is the operator's
//!   dashboard over all of it.
//! - [`journal`] makes every effect happen at most once across executions
//!   of a run (crash, stop, retry, replay); the inbox stores it, beside the
//!   events and runs it belongs to.
//!
//! [`Igloo::start`] builds all of it from a [`Config`]; [`Igloo::serve`]
//! runs it on a listener, so tests run the real server on port 0.

pub mod accounts;
pub mod bundle;
pub mod capabilities;
pub mod cli;
pub mod clock;
pub mod config;
pub(crate) mod dispatch;
pub(crate) mod error;
pub mod events;
pub mod graph;
pub mod inbox;
pub mod installations;
pub mod journal;
pub(crate) mod lifecycle;
pub(crate) mod metrics;
pub mod migrate;
pub mod plugin_api;
pub mod runtime;
pub(crate) mod server;
pub mod signature;
pub mod state;
pub(crate) mod untrusted;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::Config;

use dispatch::Dispatcher;
use inbox::{Inbox, SqliteInbox};
use metrics::Metrics;
use runtime::Runtime;
use server::listener::ConnectionLimits;
use server::{AppState, BodyLimits};
use signature::SignatureVerifier;

/// A started igloo: storage open, plugins loaded, dispatcher running.
pub struct Igloo {
    state: Arc<AppState>,
    connection_limits: ConnectionLimits,
    dispatcher: Arc<Dispatcher>,
    drain_timeout: Duration,
    /// Where guest code runs: threads of its own, so that no plugin can
    /// slow the threads that acknowledge Meta's webhooks.
    plugin_threads: Option<tokio::runtime::Runtime>,
    /// The dispatcher and the pruners, stopped when serving ends.
    background: Vec<JoinHandle<()>>,
    /// Held while this igloo uses its data directory (see [`lock_data_dir`]).
    _data_dir_lock: std::fs::File,
}

impl Igloo {
    /// Open storage, load the plugins and start dispatching whatever is
    /// pending. Fails, naming the cause, if any configured part is unusable.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        config.validate().context("invalid configuration")?;
        let data_dir = &config.storage.data_dir;
        private_dir(data_dir)
            .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
        let data_dir_lock = lock_data_dir(data_dir).await?;
        let inbox: Arc<dyn Inbox> = Arc::new(
            SqliteInbox::open(&data_dir.join("inbox.sqlite3")).context("opening the inbox")?,
        );
        let runtime = Arc::new(
            Runtime::new(&config)
                .await
                .context("starting the wasm runtime")?,
        );
        let plugin_threads = plugin_thread_pool(config.runtime.plugin_threads)?;
        let installations = Arc::new(installations::Installations::open(
            &config,
            Arc::clone(&runtime),
            Arc::clone(&inbox),
        )?);
        // Loading instantiates each plugin once (its shape is checked): on
        // the plugin threads, where guest code runs.
        let loading = Arc::clone(&installations);
        plugin_threads
            .spawn(async move { loading.load_all().await })
            .await
            .context("loading the plugins")??;
        let subscriptions = runtime.subscriptions();
        let recovered = inbox::recover_unsplit(inbox.as_ref(), &subscriptions)
            .await
            .context("splitting webhooks accepted before the last stop")?;
        if recovered > 0 {
            tracing::info!(
                recovered,
                "split webhooks accepted before the last stop into events"
            );
        }
        let services = Arc::clone(runtime.services());
        let metrics = Arc::new(Metrics::new());
        let retention = Duration::from_secs(config.storage.dedupe_retention_hours * 3600);
        let dispatcher = Dispatcher::new(
            Arc::clone(&inbox),
            Arc::clone(&runtime),
            Arc::clone(&metrics),
            &config.runtime,
            config.exclusive_groups.clone(),
        );
        let mut background = vec![
            plugin_threads.spawn(Arc::clone(&dispatcher).run()),
            inbox::spawn_pruner(Arc::clone(&inbox), retention),
            plugin_threads.spawn(capabilities::prune_forever(Arc::clone(&services))),
            plugin_threads.spawn(dispatch::timers::fire_forever(
                Arc::clone(&inbox),
                Arc::clone(&services),
            )),
        ];
        if config.graph.mode == config::GraphMode::Live {
            background.push(plugin_threads.spawn(lifecycle::refresh::refresh_forever(
                Arc::clone(&services.graph),
                config.tokens.clone(),
            )));
        }

        let lifecycle = Arc::new(lifecycle::Lifecycle::new(
            &config,
            Arc::clone(&services.graph),
            Arc::clone(&inbox),
        ));
        if config.reconcile.interval_secs > 0 && config.graph.mode == config::GraphMode::Live {
            let reconciler = lifecycle::reconcile::Reconciler {
                graph: Arc::clone(&services.graph),
                inbox: Arc::clone(&inbox),
                runtime: Arc::clone(&runtime),
                config: config.reconcile.clone(),
                fed: lifecycle.fed(),
            };
            background.push(plugin_threads.spawn(reconciler.run_forever()));
        }
        background.push(plugin_threads.spawn(Arc::clone(&lifecycle).watch_silence_forever()));
        if config.sync.at_start && config.graph.mode == config::GraphMode::Live {
            let (lifecycle, runtime) = (Arc::clone(&lifecycle), Arc::clone(&runtime));
            background.push(plugin_threads.spawn(async move {
                for report in lifecycle.sync_all(&runtime, true).await {
                    tracing::info!(account = %report.account, fields = ?report.fields,
                        ice_breakers = ?report.ice_breakers, persistent_menu = ?report.persistent_menu,
                        errors = ?report.errors, "account synced at start-up");
                }
            }));
        }
        let state = Arc::new(AppState {
            lifecycle,
            oauth: config.oauth.clone(),
            oauth_states: Default::default(),
            ui_sessions: Default::default(),
            verifier: SignatureVerifier::new(
                &config.effective_app_secrets(),
                config.webhook.accept_sha1,
            ),
            verify_token: config.effective_verify_token(),
            admin_token: config.server.admin_token.clone(),
            inbox,
            installations,
            plugin_threads: plugin_threads.handle().clone(),
            dry_run: services.graph.dry_run(),
            runtime,
            metrics,
            body_limits: BodyLimits {
                max_bytes: config.server.max_body_bytes,
                timeout: Duration::from_millis(config.server.body_timeout_ms),
            },
            stats: server::StatsCache::default(),
            loopback_only: Default::default(),
        });
        // Every store is open: what SQLite created (the -wal and -shm files
        // take their database's mode), and what an older igloo left, is
        // igloo's user's only.
        // As with the folder: a file igloo may not change (a volume another
        // user owns) is warned about, not a reason to stop.
        if let Err(error) = private_files(data_dir) {
            tracing::warn!(dir = %data_dir.display(), %error, "could not make the data directory's files private to igloo's user");
        }
        let drain_timeout = Duration::from_millis(config.server.drain_timeout_ms);
        Ok(Self {
            state,
            connection_limits: ConnectionLimits {
                max_connections: config.server.max_connections,
                header_timeout: Duration::from_millis(config.server.header_timeout_ms),
                max_age: Duration::from_millis(config.server.max_connection_age_ms),
                finish_timeout: drain_timeout,
            },
            dispatcher,
            drain_timeout,
            plugin_threads: Some(plugin_threads),
            background,
            _data_dir_lock: data_dir_lock,
        })
    }

    /// The inbox, for inspection.
    pub fn inbox(&self) -> Arc<dyn Inbox> {
        Arc::clone(&self.state.inbox)
    }

    /// The routes, for serving or for driving in-process.
    pub fn router(&self) -> axum::Router {
        server::router(Arc::clone(&self.state))
    }

    /// Serve on `listener` until `shutdown` resolves. Then stop accepting,
    /// let plugin runs under way finish up to `server.drain_timeout_ms`,
    /// and stop. Whatever was not finished stays pending in the inbox, and
    /// the next start handles it.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let loopback_only = listener
            .local_addr()
            .is_ok_and(|address| address.ip().is_loopback());
        self.state
            .loopback_only
            .store(loopback_only, std::sync::atomic::Ordering::Relaxed);
        server::listener::serve(listener, self.router(), self.connection_limits, shutdown).await;
        let unfinished = self.dispatcher.drain(self.drain_timeout).await;
        if unfinished > 0 {
            tracing::warn!(
                unfinished,
                "events still being handled at shutdown stay pending; the next start handles them"
            );
        }
        self.stop_background();
        Ok(())
    }

    fn stop_background(&mut self) {
        for task in self.background.drain(..) {
            task.abort();
        }
        if let Some(threads) = self.plugin_threads.take() {
            // Not a blocking shutdown: this may run inside another runtime.
            threads.shutdown_background();
        }
    }
}

impl Drop for Igloo {
    fn drop(&mut self) {
        self.stop_background();
    }
}

/// Lock the data directory for this process. Two igloos on one directory
/// (a deploy's overlap, a second instance started by mistake) would hand
/// out interleaved positions and split each other's webhooks out of order;
/// the second is refused instead, after waiting briefly for one that is
/// on its way out. The lock ends with the process.
async fn lock_data_dir(data_dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    const PATIENCE: Duration = Duration::from_secs(3);
    let path = data_dir.join("igloo.lock");
    let file = private_file_options()
        .write(true)
        .truncate(true)
        .open(&path)
        .with_context(|| format!("creating the lock file {}", path.display()))?;
    let started = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < PATIENCE => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "another igloo is using the data directory {}",
                data_dir.display()
            ),
            Err(std::fs::TryLockError::Error(error)) => {
                return Err(error).with_context(|| format!("locking {}", path.display()));
            }
        }
    }
}

/// Create `dir` (and its parents) if missing, and make it igloo's user's
/// only (0700), whoever made it and whatever the umask: it holds the
/// events people sent, the plugins' state and the sealed tokens. A folder
/// igloo may not change the mode of (a volume another user owns) is
/// warned of: the files in it are still made private.
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    #[cfg(unix)]
    if let Err(error) =
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
    {
        tracing::warn!(%error, dir = %dir.display(), "the data directory could not be made private (0700)");
    }
    Ok(())
}

/// Make every file in `dir` igloo's user's only (0600): the stores, their
/// -wal and -shm files, the lock; also those an older igloo created with
/// the default umask.
fn private_files(dir: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
            match std::fs::set_permissions(entry.path(), private) {
                // SQLite removes a -wal or -shm file as it closes it.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Options that create a file readable and writable by igloo's user only.
fn private_file_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// The threads guest code runs on: `threads`, or one less than the
/// machine's cores (at least one) when 0.
fn plugin_thread_pool(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let threads = match threads {
        0 => std::thread::available_parallelism()
            .map_or(1, |cores| cores.get().saturating_sub(1))
            .max(1),
        n => n,
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("igloo-plugins")
        .enable_all()
        .build()
        .context("starting the plugin threads")
}
