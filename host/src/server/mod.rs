//! The HTTP side: Meta's webhook routes, health, metrics, the operator's
//! routes and a dry run's record, served by [`listener`] with the limits
//! an endpoint facing the internet needs. Every body is read within a size
//! and a deadline before anyone is authorised (see [`body`]).
//!
//! The webhook route only verifies, splits and stores: it knows which
//! events anyone subscribes to ([`Subscriptions`]), not who runs them.

mod admin;
pub(crate) mod body;
mod dry_run;
mod health;
pub(crate) mod listener;
mod metrics;
mod ui;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};

use crate::graph::DryRun;
use crate::inbox::{Inbox, InboxStats};
use crate::metrics::Metrics;
use crate::runtime::Runtime;
use crate::signature::SignatureVerifier;

/// What route handlers share.
pub(crate) struct AppState {
    /// Checks webhook signatures.
    pub verifier: SignatureVerifier,
    /// The handshake token, if configured.
    pub verify_token: Option<String>,
    /// Where accepted events go.
    pub inbox: Arc<dyn Inbox>,
    /// The installations, and the trust store their bundles answer to.
    pub installations: Arc<crate::installations::Installations>,
    /// The plugin threads: changes to installations load plugins, which
    /// runs guest code, never on the threads that answer Meta.
    pub plugin_threads: tokio::runtime::Handle,
    /// The loaded plugins, for health and the operator's routes.
    pub runtime: Arc<Runtime>,
    /// The record of calls not sent, in a dry run.
    pub dry_run: Option<Arc<DryRun>>,
    /// Business Login's settings.
    pub oauth: crate::config::OauthConfig,
    /// Business Login states already used.
    pub oauth_states: ui::UsedStates,
    /// The dashboard's sessions: their key's epoch, the last sign-out.
    pub ui_sessions: ui::Sessions,
    /// Account upkeep: status and sync.
    pub lifecycle: Arc<crate::lifecycle::Lifecycle>,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Bearer token for `/admin`; admin routes are refused without one.
    pub admin_token: Option<String>,
    /// Limits on webhook bodies; other routes' are smaller
    /// ([`BodyLimits::for_operator`]).
    pub body_limits: BodyLimits,
    /// Whether igloo listens on loopback addresses only (set when serving
    /// starts; until then, not): then `/dry-run/calls` needs no token.
    pub loopback_only: std::sync::atomic::AtomicBool,
    /// The inbox's counts, reused for a second: `/healthz` and `/metrics`
    /// answer anyone, and must not turn a flood of requests into a flood of
    /// database scans.
    pub stats: StatsCache,
}

impl AppState {
    /// Replay what `request` names (the admin API's and the dashboard's
    /// replay); when runs were scheduled, the dispatcher looks again.
    pub(crate) async fn replay(
        &self,
        request: crate::inbox::ReplayRequest,
    ) -> Result<crate::inbox::Replayed, crate::inbox::InboxError> {
        let seq = request.seq;
        let replayed = self.inbox.replay(request).await?;
        if let crate::inbox::Replayed::Scheduled { plugins } = &replayed {
            tracing::info!(seq, ?plugins, "replay scheduled by an operator");
            self.runtime.rescan();
        }
        Ok(replayed)
    }

    /// Run `change` to the installations on the plugin threads: it may
    /// load a plugin, which runs guest code.
    pub(crate) async fn change_installations<T, F, Fut>(
        &self,
        change: F,
    ) -> Result<T, crate::installations::Problem>
    where
        T: Send + 'static,
        F: FnOnce(Arc<crate::installations::Installations>) -> Fut,
        Fut: Future<Output = Result<T, crate::installations::Problem>> + Send + 'static,
    {
        let installations = Arc::clone(&self.installations);
        self.plugin_threads
            .spawn(change(installations))
            .await
            .map_err(|error| {
                crate::installations::Problem::Storage(format!("the change stopped: {error}"))
            })?
    }

    /// Take a `token-invalid` account back with the token it has; its
    /// waiting events run. Whether it was `token-invalid`.
    pub(crate) async fn retry_account(
        &self,
        account_id: &str,
    ) -> Result<bool, crate::accounts::AccountsError> {
        let accounts = self.runtime.services().accounts();
        let retried = accounts
            .retry_token(account_id, crate::clock::now_ms())
            .await?;
        if retried {
            self.runtime.rescan();
        }
        Ok(retried)
    }

    /// The operator cancels a plugin's timer (the admin API's and the
    /// dashboard's); whether there was one.
    pub(in crate::server) async fn cancel_timer(
        &self,
        timer: &admin::timers::CancelTimer,
    ) -> Result<bool, crate::state::StateError> {
        let cancelled = self
            .runtime
            .services()
            .scheduler
            .cancel(
                &timer.plugin,
                &timer.account,
                &timer.person,
                &timer.key,
                timer.due_at_ms,
            )
            .await?;
        if cancelled {
            tracing::info!(
                plugin = %crate::untrusted::sanitize(&timer.plugin, 200),
                account = %crate::untrusted::sanitize(&timer.account, 200),
                person = %crate::untrusted::sanitize(&timer.person, 200),
                key = %crate::untrusted::sanitize(&timer.key, 200),
                "a timer was cancelled by an operator"
            );
        }
        Ok(cancelled)
    }
}

/// The inbox's counts, read at most once per [`STATS_FRESH_FOR`].
#[derive(Default)]
pub(crate) struct StatsCache {
    last: tokio::sync::Mutex<Option<Counted>>,
}

/// How long counts are reused.
const STATS_FRESH_FOR: Duration = Duration::from_secs(1);

/// The inbox's counts, and when they were read: they may be up to
/// [`STATS_FRESH_FOR`] old, and an answer says so.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counted {
    /// The counts.
    pub stats: InboxStats,
    /// When they were read, in milliseconds since the epoch.
    pub as_of_ms: u64,
    /// When they were read, on the monotonic clock.
    at: std::time::Instant,
}

impl Counted {
    /// How old the counts are, in milliseconds.
    pub(crate) fn age_ms(&self) -> u64 {
        self.at.elapsed().as_millis() as u64
    }
}

impl StatsCache {
    /// Fresh enough counts; concurrent callers wait for one read.
    pub(crate) async fn get(&self, inbox: &dyn Inbox) -> Result<Counted, crate::inbox::InboxError> {
        let mut last = self.last.lock().await;
        if let Some(counted) = *last
            && counted.at.elapsed() < STATS_FRESH_FOR
        {
            return Ok(counted);
        }
        let counted = Counted {
            stats: inbox.stats().await?,
            as_of_ms: crate::clock::now_ms(),
            at: std::time::Instant::now(),
        };
        *last = Some(counted);
        Ok(counted)
    }
}

/// How much of a body, and how slowly, a route accepts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimits {
    /// Largest body, in bytes; more is 413, refused before reading when
    /// the client declares it.
    pub max_bytes: usize,
    /// Time to send the whole body; slower is 408.
    pub timeout: Duration,
}

/// All of igloo's routes: the webhook's reads its own body (up to
/// `server.max_body_bytes`); every other route's body is read first, within
/// the operator's limits and the same deadline.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let operator_limits = state.body_limits.for_operator();
    let others = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/admin/plugins/{id}/resume", post(admin::resume_plugin))
        .route(
            "/admin/accounts",
            get(admin::accounts::list).post(admin::accounts::add),
        )
        .route("/admin/accounts/status", get(admin::accounts::status))
        .route("/admin/accounts/sync", post(admin::accounts::sync))
        .route("/admin/accounts/{id}/retry", post(admin::accounts::retry))
        .route(
            "/admin/accounts/{id}",
            axum::routing::delete(admin::accounts::remove),
        )
        .route("/admin/events", get(admin::list_events))
        .route("/admin/events/{seq}", get(admin::show_event))
        .route("/admin/events/{seq}/replay", post(admin::replay_event))
        .route(
            "/admin/conversations/paused",
            get(admin::paused_conversations),
        )
        .route(
            "/admin/conversations/{account}/{person}/pause",
            post(admin::pause_conversation),
        )
        .route(
            "/admin/conversations/{account}/{person}/resume",
            post(admin::resume_conversation),
        )
        .route(
            "/admin/installations",
            get(admin::installations::list).post(admin::installations::add),
        )
        .route(
            "/admin/installations/{id}",
            get(admin::installations::show)
                .patch(admin::installations::set)
                .delete(admin::installations::remove),
        )
        .route(
            "/admin/installations/{id}/upgrade",
            post(admin::installations::upgrade),
        )
        .route(
            "/admin/installations/{id}/{action}",
            post(admin::installations::pause),
        )
        .route("/admin/bundles/fetch", post(admin::installations::fetch))
        .route(
            "/admin/trust",
            get(admin::installations::trust).post(admin::installations::change_trust),
        )
        .route("/admin/timers", get(admin::timers::list))
        .route("/admin/timers/cancel", post(admin::timers::cancel))
        .route("/dry-run/calls", get(dry_run::calls))
        .merge(ui::router())
        .layer(axum::middleware::from_fn_with_state(
            operator_limits,
            body::bounded,
        ));
    Router::new()
        .route(
            "/webhooks/instagram",
            get(webhook::handshake).post(webhook::receive),
        )
        // A bundle is larger than operator bodies: its route checks the
        // token before it reads a byte, then reads within its own limits.
        .route(
            "/admin/bundles",
            axum::routing::put(admin::installations::upload),
        )
        .merge(others)
        .with_state(state)
}

/// Compare a secret a client sent with the expected one without leaking,
/// through timing, how much of it matched.
pub(crate) fn secrets_match(given: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}
