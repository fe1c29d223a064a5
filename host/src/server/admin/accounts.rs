//! `/admin/accounts`: the accounts igloo acts for, their token's health,
//! and tokens given by hand. A token goes in a request body, never a URL,
//! and never comes back out.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{Answer, authorise};
use crate::accounts::{AccountSource, AccountsError, LONG_LIVED_TOKEN, NewAccount, NewToken};
use crate::config::LoginKind;
use crate::graph::GraphId;
use crate::server::AppState;

/// Longest access token accepted (Meta's are a few hundred characters).
const MAX_TOKEN_BYTES: usize = 2048;

/// `POST /admin/accounts`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct AddAccount {
    id: String,
    access_token: String,
    #[serde(default)]
    login: LoginKind,
    username: Option<String>,
    /// When the token expires, when the operator knows (a long-lived token
    /// was issued 60 days before).
    expires_at_ms: Option<u64>,
}

/// `GET /admin/accounts`: every account and its token's health.
pub(in crate::server) async fn list(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Answer {
    if let Err(refusal) = authorise(&app, &headers) {
        return refusal;
    }
    let accounts = app.runtime.services().accounts().list();
    (StatusCode::OK, Json(json!({ "accounts": accounts })))
}

/// `POST /admin/accounts`: add an account, or give one a new token. An
/// account in `token-invalid` is active again, and its waiting events run.
pub(in crate::server) async fn add(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Json<AddAccount>, JsonRejection>,
) -> Answer {
    if let Err(refusal) = authorise(&app, &headers) {
        return refusal;
    }
    let bad = |error: String| (StatusCode::BAD_REQUEST, Json(json!({ "error": error })));
    let Json(body) = match body {
        Ok(body) => body,
        Err(rejection) => return bad(rejection.body_text()),
    };
    if let Err(error) = GraphId::parse("account id", &body.id) {
        return bad(error.to_string());
    }
    // It goes into an Authorization header: visible ASCII only.
    if body.access_token.is_empty()
        || body.access_token.len() > MAX_TOKEN_BYTES
        || !body
            .access_token
            .bytes()
            .all(|byte| byte.is_ascii_graphic())
    {
        return bad(format!(
            "access_token must be 1 to {MAX_TOKEN_BYTES} visible ASCII characters"
        ));
    }
    let now = crate::clock::now_ms();
    let latest_expiry = now + LONG_LIVED_TOKEN.as_millis() as u64 + 24 * 3600 * 1000;
    if body
        .expires_at_ms
        .is_some_and(|at| at <= now || at > latest_expiry)
    {
        return bad(
            "expires_at_ms must be in the next 60 days, in milliseconds since the epoch".into(),
        );
    }
    let issued_at_ms = body.expires_at_ms.map_or(now, |expires| {
        expires
            .saturating_sub(LONG_LIVED_TOKEN.as_millis() as u64)
            .min(now)
    });
    let account = NewAccount {
        id: body.id,
        username: body
            .username
            .map(|name| crate::untrusted::sanitize(&name, 64)),
        login: body.login,
        source: AccountSource::Added,
        token: NewToken {
            token: body.access_token,
            issued_at_ms,
            expires_at_ms: body.expires_at_ms,
        },
    };
    match app.runtime.services().accounts().put(account).await {
        Ok(view) => {
            tracing::info!(account = %view.id, "access token given by an operator");
            // Events that waited for a token run now.
            app.runtime.rescan();
            (StatusCode::OK, Json(json!({ "account": view })))
        }
        Err(error) => refused(&error),
    }
}

/// `POST /admin/accounts/{id}/retry`: take an account out of
/// `token-invalid` with the token it has (Meta may accept it again once
/// its owner acted); its waiting events run, and a refusal puts it back.
pub(in crate::server) async fn retry(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    if let Err(refusal) = authorise(&app, &headers) {
        return refusal;
    }
    match app.retry_account(&id).await {
        Ok(true) => {
            let account = app.runtime.services().accounts().get(&id);
            (StatusCode::OK, Json(json!({ "account": account })))
        }
        Ok(false) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no account with that id is token-invalid" })),
        ),
        Err(error) => refused(&error),
    }
}

/// `DELETE /admin/accounts/{id}`: forget an account added by hand.
pub(in crate::server) async fn remove(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    if let Err(refusal) = authorise(&app, &headers) {
        return refusal;
    }
    match app.runtime.services().accounts().remove(&id).await {
        Ok(true) => {
            // Its events, if they waited for a token, wait no more: they run
            // as any unknown account's, their calls refused for want of one.
            app.runtime.rescan();
            (StatusCode::OK, Json(json!({ "removed": id })))
        }
        Ok(false) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no account with that id" })),
        ),
        Err(error) => refused(&error),
    }
}

/// `GET /admin/accounts/status`: each account's token, its webhook
/// subscription and profile at Meta against what igloo wants (read, not
/// changed), its last webhook, and whether it went quiet.
pub(in crate::server) async fn status(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Answer {
    if let Err(refusal) = authorise(&app, &headers) {
        return refusal;
    }
    match app.lifecycle.status(&app.runtime).await {
        Ok(accounts) => (StatusCode::OK, Json(json!({ "accounts": accounts }))),
        Err(error) => super::storage_failed(&error),
    }
}

/// `POST /admin/accounts/sync`: subscribe each account to exactly the
/// webhook fields its plugins need, and set its configured ice breakers and
/// persistent menu where Meta's differ; what was done, per account.
pub(in crate::server) async fn sync(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Answer {
    if let Err(refusal) = authorise(&app, &headers) {
        return refusal;
    }
    let accounts = app.lifecycle.sync_all(&app.runtime, true).await;
    (StatusCode::OK, Json(json!({ "accounts": accounts })))
}

fn refused(error: &AccountsError) -> Answer {
    match error {
        AccountsError::NoKey(_) | AccountsError::Configured(_) => (
            StatusCode::CONFLICT,
            Json(json!({ "error": error.to_string() })),
        ),
        _ => {
            tracing::error!(%error, "changing an account failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": "the accounts store is unavailable; try again" })),
            )
        }
    }
}
