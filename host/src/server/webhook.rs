//! `GET /webhooks/instagram` (the subscription handshake) and
//! `POST /webhooks/instagram` (events): verify, split, store, then 200.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use bytes::Bytes;

use super::AppState;
use crate::error::ApiError;
use crate::events;
use crate::inbox::{Delivery, Incoming};
use crate::signature::{LEGACY_SIGNATURE_HEADER, SIGNATURE_HEADER, SignatureHeaders};

/// Meta's handshake: echo `hub.challenge` when the mode is `subscribe` and
/// the token matches; 403 otherwise.
pub async fn handshake(
    State(app): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<String, ApiError> {
    let mode = query.get("hub.mode").map(String::as_str);
    let token = query.get("hub.verify_token");
    match (mode, token, &app.verify_token, query.get("hub.challenge")) {
        (Some("subscribe"), Some(token), Some(expected), Some(challenge)) if token == expected => {
            Ok(challenge.clone())
        }
        _ => Err(ApiError::Handshake),
    }
}

/// Accept a delivery: nothing is stored unless the signature holds, and
/// Meta gets its 200 only once the events are committed.
pub async fn receive(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<&'static str, ApiError> {
    let result = verify_and_store(&app, &headers, body).await;
    app.metrics.webhook(match &result {
        Ok(_) => "accepted",
        Err(ApiError::Signature(_)) => "bad_signature",
        Err(ApiError::Payload(_)) => "malformed",
        Err(ApiError::Storage(_)) => "storage_error",
        Err(ApiError::Handshake) => "handshake",
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
    let events = events::normalise(&body)?;
    let kinds: Vec<&'static str> = events.iter().map(|event| event.kind_name()).collect();
    let events = events
        .into_iter()
        .map(|event| {
            let dispatch = app
                .runtime
                .plugins()
                .iter()
                .any(|plugin| plugin.info.subscribes_to(&event));
            Incoming { event, dispatch }
        })
        .collect();
    let appended = app.inbox.append(Delivery { body, events }).await?;
    let new_kinds = kinds
        .into_iter()
        .zip(&appended.is_new)
        .filter_map(|(kind, is_new)| is_new.then_some(kind));
    app.metrics.stored(new_kinds, appended.duplicates());
    tracing::debug!(
        new = appended.new_events(),
        duplicates = appended.duplicates(),
        "webhook stored"
    );
    Ok("EVENT_RECEIVED")
}
