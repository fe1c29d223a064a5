//! The HTTP side: Meta's webhook routes, health, and the sandbox's record.

mod health;
mod sandbox;
mod webhook;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

use crate::capabilities::HostServices;
use crate::inbox::Inbox;
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
        .route("/sandbox/calls", get(sandbox::calls))
        .with_state(state)
}
