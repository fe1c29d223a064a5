//! The HTTP side: Meta's webhook routes, health, and the sandbox's record.

mod admin;
mod health;
mod metrics;
mod sandbox;
mod webhook;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::capabilities::HostServices;
use crate::inbox::Inbox;
use crate::metrics::Metrics;
use crate::runtime::Runtime;
use crate::signature::SignatureVerifier;

/// What route handlers share.
pub struct AppState {
    /// Checks webhook signatures.
    pub verifier: SignatureVerifier,
    /// The handshake token, if configured.
    pub verify_token: Option<String>,
    /// Where accepted events go.
    pub inbox: Arc<dyn Inbox>,
    /// The loaded plugins, for health.
    pub runtime: Arc<Runtime>,
    /// Host services, for the sandbox's record.
    pub services: Arc<HostServices>,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Bearer token for `/admin`; admin routes are refused without one.
    pub admin_token: Option<String>,
}

/// All of igloo's routes.
pub fn router(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    Router::new()
        .route(
            "/webhooks/instagram",
            get(webhook::handshake)
                .post(webhook::receive)
                .layer(DefaultBodyLimit::max(max_body_bytes)),
        )
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/admin/plugins/{name}/resume", post(admin::resume_plugin))
        .route("/sandbox/calls", get(sandbox::calls))
        .with_state(state)
}
