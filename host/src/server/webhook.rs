//! `GET /webhooks/instagram` (the subscription handshake) and
//! `POST /webhooks/instagram` (events): verify, parse, commit the raw body,
//! then 200; the inbox stores the events after.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use bytes::Bytes;

use super::AppState;
use crate::error::ApiError;
use crate::inbox::Delivery;
use crate::signature::{LEGACY_SIGNATURE_HEADER, SIGNATURE_HEADER, SignatureHeaders};

/// Meta's handshake: echo `hub.challenge` when the mode is `subscribe` and
/// the token matches; 403 otherwise.
pub(super) async fn handshake(
    State(app): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<String, ApiError> {
    let mode = query.get("hub.mode").map(String::as_str);
    let token = query.get("hub.verify_token");
    match (mode, token, &app.verify_token, query.get("hub.challenge")) {
        (Some("subscribe"), Some(token), Some(expected), Some(challenge))
            if super::secrets_match(token, expected) && is_challenge(challenge) =>
        {
            Ok(challenge.clone())
        }
        _ => Err(ApiError::Handshake),
    }
}

/// Meta's challenge is a number; echo nothing else (it is reflected).
fn is_challenge(challenge: &str) -> bool {
    (1..=64).contains(&challenge.len())
        && challenge
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// Accept a delivery: nothing is stored unless the signature holds and the
/// body parses, and Meta gets its 200 only once the body is committed.
pub(super) async fn receive(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<&'static str, ApiError> {
    let result = match super::body::read(&headers, body, app.body_limits).await {
        Ok(body) => verify_and_store(&app, &headers, body).await,
        Err(error) => Err(error),
    };
    app.metrics.webhook(match &result {
        Ok(_) => "accepted",
        Err(error) => error.label(),
    });
    result
}

async fn verify_and_store(
    app: &AppState,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<&'static str, ApiError> {
    let signature = SignatureHeaders {
        sha256: headers.get(SIGNATURE_HEADER).map(|value| value.as_bytes()),
        sha1: headers
            .get(LEGACY_SIGNATURE_HEADER)
            .map(|value| value.as_bytes()),
    };
    app.verifier.verify(signature, &body)?;
    let delivery = Delivery::split(body, &app.runtime.subscriptions())?;
    let kinds: Vec<&'static str> = delivery
        .events
        .iter()
        .map(|incoming| incoming.event.kind_name())
        .collect();
    let accepted = app.inbox.accept(delivery).await?;
    // Counted once the events are stored, which Meta does not wait for. A
    // failed split is the writer's to log (once per batch) and try again.
    let metrics = Arc::clone(&app.metrics);
    tokio::spawn(async move {
        if let Ok(appended) = accepted.split().await {
            let new_kinds = kinds
                .into_iter()
                .zip(&appended.is_new)
                .filter_map(|(kind, is_new)| is_new.then_some(kind));
            metrics.stored(new_kinds, appended.duplicates());
            tracing::debug!(
                new = appended.new_events(),
                duplicates = appended.duplicates(),
                "webhook stored"
            );
        }
    });
    Ok("EVENT_RECEIVED")
}
