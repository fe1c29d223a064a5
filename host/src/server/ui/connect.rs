//! Business Login for Instagram, from the dashboard: *Connect an account*
//! sends the account's owner to Instagram with a `state` igloo signed;
//! Meta sends them back to `/ui/connect/callback` with a code, which igloo
//! exchanges for a short-lived token, that for a long-lived one (60 days),
//! asks whose it is, and stores the account (its token sealed), once
//! every permission asked for is granted (an answer that does not say
//! which were is refused). Meta's own words go to the log, never the
//! owner's page. The callback needs no session (the owner may not be the
//! operator): the state, signed with the admin token, ten minutes old at
//! most and good once, proves an operator started it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::page;
use super::session::{Operator, sign};
use crate::accounts::{AccountSource, NewAccount, NewToken};
use crate::config::LoginKind;
use crate::graph::{GraphId, Ungranted};
use crate::server::AppState;

/// How long a connection may take, from the button to the callback.
const STATE_LIFETIME_MS: u64 = 10 * 60 * 1000;
/// States remembered as used; only signed ones get here.
const MAX_USED_STATES: usize = 10_000;

/// States already taken by a callback, until they expire anyway.
#[derive(Default)]
pub(crate) struct UsedStates(Mutex<HashMap<String, u64>>);

impl UsedStates {
    /// Take `nonce` (issued at `issued_ms`); false if it was taken before.
    fn take(&self, nonce: &str, issued_ms: u64, now_ms: u64) -> bool {
        let mut used = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        used.retain(|_, issued| now_ms.saturating_sub(*issued) <= STATE_LIFETIME_MS);
        if used.len() >= MAX_USED_STATES || used.contains_key(nonce) {
            return false;
        }
        used.insert(nonce.to_owned(), issued_ms);
        true
    }
}

/// A new state: `issued.nonce.signature`.
fn new_state(key: &str) -> String {
    let issued = crate::clock::now_ms();
    let nonce = hex::encode(random_bytes());
    let signature = sign(key, &format!("connect:{nonce}"), issued);
    format!("{issued}.{nonce}.{signature}")
}

/// 16 bytes from the operating system's generator.
pub(super) fn random_bytes() -> [u8; 16] {
    use chacha20poly1305::aead::rand_core::RngCore as _;
    let mut bytes = [0u8; 16];
    chacha20poly1305::aead::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// The state's nonce and issue time, if igloo signed it and it is fresh.
fn check_state(key: &str, state: &str, now_ms: u64) -> Option<(String, u64)> {
    let mut parts = state.splitn(3, '.');
    let (issued, nonce, signature) = (parts.next()?, parts.next()?, parts.next()?);
    let issued_ms: u64 = issued.parse().ok()?;
    if issued_ms > now_ms || now_ms - issued_ms > STATE_LIFETIME_MS {
        return None;
    }
    let expected = sign(key, &format!("connect:{nonce}"), issued_ms);
    crate::server::secrets_match(signature, &expected).then(|| (nonce.to_owned(), issued_ms))
}

/// `GET /ui/accounts/connect`: off to Instagram to grant access.
pub(super) async fn start(operator: Operator, State(app): State<Arc<AppState>>) -> Response {
    let (Some(admin_token), Some(login)) = (&app.admin_token, app.oauth.login()) else {
        let body = html! {
            p { "Business Login is not configured: set " code { "oauth.app_id" } ", "
                code { "oauth.app_secret" } " and " code { "oauth.redirect_uri" } "." }
        };
        return (
            StatusCode::NOT_FOUND,
            page("Connect an account", Some(&operator), body),
        )
            .into_response();
    };
    let Ok(mut url) = reqwest::Url::parse(&app.oauth.authorize_url) else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "oauth.authorize_url does not parse",
        )
            .into_response();
    };
    url.query_pairs_mut()
        .append_pair("client_id", login.app_id)
        .append_pair("redirect_uri", login.redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", &app.oauth.scopes.join(","))
        .append_pair("state", &new_state(&app.ui_sessions.key(admin_token)));
    Redirect::to(url.as_str()).into_response()
}

/// Why a callback did not connect an account.
enum NotConnected {
    /// The owner did not grant this permission igloo asks for.
    NotGranted(String),
    /// Meta's token did not say which permissions were granted.
    GrantUnsaid,
    /// A call to Meta failed; its details are for the log only.
    Meta(crate::graph::GraphError),
}

/// What Meta sends back.
#[derive(Deserialize)]
pub(super) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /ui/connect/callback`: take the code, store the account.
pub(super) async fn callback(
    State(app): State<Arc<AppState>>,
    Query(callback): Query<Callback>,
) -> Response {
    let refused = |status: StatusCode, why: String| {
        let body = html! { p { (why) } p { "Start again from the dashboard's " a href="/ui" { "overview" } "." } };
        (status, page("Not connected", None, body)).into_response()
    };
    let (Some(admin_token), Some(login)) = (&app.admin_token, app.oauth.login()) else {
        return refused(
            StatusCode::NOT_FOUND,
            "Business Login is not configured.".into(),
        );
    };
    let key = app.ui_sessions.key(admin_token);
    let now = crate::clock::now_ms();
    let Some((nonce, issued)) = callback
        .state
        .as_deref()
        .and_then(|state| check_state(&key, state, now))
    else {
        return refused(
            StatusCode::BAD_REQUEST,
            "This link is not one igloo made, or it is more than ten minutes old.".into(),
        );
    };
    if !app.oauth_states.take(&nonce, issued, now) {
        return refused(
            StatusCode::BAD_REQUEST,
            "This link was used already.".into(),
        );
    }
    if let Some(error) = callback.error {
        // Meta's words are the operator's, in the log; the page is the
        // owner's, and says only what happened.
        let reason = callback.error_description.unwrap_or(error);
        tracing::warn!(
            reason = %crate::untrusted::sanitize(&reason, 200),
            "Business Login: Instagram did not grant access"
        );
        return refused(
            StatusCode::OK,
            "Instagram did not grant access (the owner declined, or Instagram refused).".into(),
        );
    }
    let Some(code) = callback
        .code
        .filter(|code| !code.is_empty() && code.len() <= 2048)
    else {
        return refused(StatusCode::BAD_REQUEST, "Instagram sent no code.".into());
    };
    let graph = &app.runtime.services().graph;
    let connected = async {
        let short = graph
            .exchange_code(&login, &code)
            .await
            .map_err(NotConnected::Meta)?;
        match short.ungranted(&app.oauth.scopes) {
            None => {}
            Some(Ungranted::Scope(scope)) => {
                return Err(NotConnected::NotGranted(scope.to_owned()));
            }
            Some(Ungranted::Unsaid) => return Err(NotConnected::GrantUnsaid),
        }
        let long = graph
            .long_lived_token(login.app_secret, &short.access_token)
            .await
            .map_err(NotConnected::Meta)?;
        let owner = graph
            .token_owner(&long.access_token)
            .await
            .map_err(NotConnected::Meta)?;
        Ok::<_, NotConnected>((long, owner))
    };
    let (long, owner) = match connected.await {
        Ok(connected) => connected,
        // The scope is one igloo asked for, by the operator's configuration.
        Err(NotConnected::NotGranted(scope)) => {
            tracing::warn!(%scope, "Business Login: the owner did not grant every permission");
            return refused(
                StatusCode::FORBIDDEN,
                format!("Not every permission igloo needs was granted: {scope} was not."),
            );
        }
        Err(NotConnected::GrantUnsaid) => {
            tracing::warn!(
                "Business Login: Meta's token did not say which permissions were granted; \
                 none are assumed, and the account was not kept"
            );
            return refused(
                StatusCode::BAD_GATEWAY,
                "Meta did not say which permissions were granted, so igloo did not keep the account; the operator's log says more.".into(),
            );
        }
        Err(NotConnected::Meta(error)) => {
            // The details (Meta's own message among them) are the
            // operator's: the page is the owner's.
            tracing::warn!(%error, "connecting an account failed");
            let status = if matches!(error, crate::graph::GraphError::PermissionDenied(_)) {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::BAD_GATEWAY
            };
            return refused(
                status,
                "Meta did not complete the connection; the operator's log says why.".into(),
            );
        }
    };
    if GraphId::parse("account id", &owner.user_id).is_err() {
        return refused(
            StatusCode::BAD_GATEWAY,
            "Meta did not say whose account this is.".into(),
        );
    }
    let accounts = app.runtime.services().accounts();
    // Connecting again renews a connected account's token; an account set
    // up otherwise is the operator's to change, not a link's.
    if let Some(existing) = accounts.get(&owner.user_id)
        && existing.source != AccountSource::Connected
    {
        tracing::warn!(account = %existing.id, "Business Login for an account set up otherwise was refused");
        return refused(
            StatusCode::CONFLICT,
            format!(
                "Account {} is already set up by the operator; they give it a new token themselves.",
                existing.id
            ),
        );
    }
    let now = crate::clock::now_ms();
    let lives = crate::accounts::token_lifetime(long.expires_in);
    let account = NewAccount {
        id: owner.user_id.clone(),
        username: owner
            .username
            .map(|name| crate::untrusted::sanitize(&name, 64)),
        login: LoginKind::Instagram,
        source: AccountSource::Connected,
        token: NewToken {
            token: long.access_token,
            issued_at_ms: now,
            expires_at_ms: Some(now.saturating_add(lives.as_millis() as u64)),
        },
    };
    match accounts.put(account).await {
        Ok(view) => {
            tracing::info!(account = %view.id, "account connected with Business Login");
            app.runtime.rescan();
            let body = html! {
                p { "Account " strong { (view.id) }
                    @if let Some(username) = &view.username { " (@" (username) ")" }
                    " is connected. Its token lasts 60 days, and igloo renews it." }
                p { "Next: " code { "igloo accounts sync" } " (or the overview's sync button) subscribes it to the webhooks its plugins need." }
                p { a href="/ui" { "To the overview" } }
            };
            page("Connected", None, body).into_response()
        }
        Err(error) => {
            tracing::error!(%error, "storing a connected account failed");
            refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "igloo could not store the account; try again.".into(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "operator-token-of-at-least-32-characters";

    #[test]
    fn a_state_is_igloos_fresh_and_good_once() {
        let state = new_state(KEY);
        let now = crate::clock::now_ms();
        let (nonce, issued) = check_state(KEY, &state, now).unwrap();
        assert!(
            check_state(&format!("{KEY}:another-start"), &state, now).is_none(),
            "not after a restart"
        );
        assert!(check_state("another-admin-token-of-32-characters", &state, now).is_none());
        assert!(
            check_state(KEY, &state, now + STATE_LIFETIME_MS + 1).is_none(),
            "ten minutes"
        );
        assert!(check_state(KEY, &state.replace('.', "x"), now).is_none());
        let used = UsedStates::default();
        assert!(used.take(&nonce, issued, now));
        assert!(!used.take(&nonce, issued, now), "good once");
        assert_ne!(new_state(KEY), new_state(KEY));
    }
}
