//! `/ui`: the operator's dashboard, served by igloo itself as plain HTML
//! forms (no JavaScript, no front-end build): accounts and their health,
//! plugins with their recent runs and breaker state, events per account
//! and person with their runs and host calls, dead letters with a replay
//! button. Behind the admin token ([`session`]).
//!
//! Everything shown is escaped (`maud`), and pages forbid scripts, frames
//! and foreign resources outright: plugins choose some of the text shown
//! (their errors, their calls), and must not be able to run code in the
//! operator's browser.

mod connect;
mod pages;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use super::AppState;
pub(crate) use connect::UsedStates;
use session::Operator;
pub(crate) use session::Sessions;

/// Headers on every dashboard answer.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's routes.
pub(super) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/ui", get(pages::overview))
        .route("/ui/login", get(login_form).post(sign_in))
        .route("/ui/logout", post(sign_out))
        .route("/ui/style.css", get(style))
        .route("/ui/events", get(pages::events))
        .route("/ui/events/{seq}", get(pages::event))
        .route("/ui/events/{seq}/replay", post(pages::replay))
        .route("/ui/plugins/{id}/resume", post(pages::resume_plugin))
        .route(
            "/ui/installations/{id}/{action}",
            post(pages::change_installation),
        )
        .route("/ui/accounts/{id}/retry", post(pages::retry_account))
        .route("/ui/accounts/sync", post(pages::sync_accounts))
        .route("/ui/timers", get(pages::timers))
        .route("/ui/timers/cancel", post(pages::cancel_timer))
        .route("/ui/accounts/connect", get(connect::start))
        .route("/ui/connect/callback", get(connect::callback))
        .layer(axum::middleware::map_response(secure))
}

/// No script, no frame, no caching, no referrer.
async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// A whole page: the navigation, then `body` under `title`.
fn page(title: &str, operator: Option<&Operator>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "igloo · " (title) }
                link rel="stylesheet" href="/ui/style.css";
            }
            body {
                header {
                    strong { "igloo" }
                    @if let Some(operator) = operator {
                        nav {
                            a href="/ui" { "Overview" }
                            a href="/ui/events" { "Events" }
                            a href="/ui/events?dead=true" { "Dead letters" }
                            a href="/ui/timers" { "Timers" }
                        }
                        form method="post" action="/ui/logout" {
                            input type="hidden" name="csrf" value=(operator.csrf);
                            button { "Sign out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The answer while `server.admin_token` is not set.
fn disabled() -> Response {
    let body = html! { p { "The dashboard is off: set " code { "server.admin_token" } "." } };
    (
        StatusCode::FORBIDDEN,
        page("Dashboard disabled", None, body),
    )
        .into_response()
}

/// A form that changes something, with its session token.
#[derive(Deserialize)]
struct Signed {
    csrf: String,
}

/// Refused: a form without this session's token.
fn forged() -> Response {
    let body = html! { p { "This form was not sent from this dashboard. Go back, reload, and try again." } };
    (StatusCode::FORBIDDEN, page("Refused", None, body)).into_response()
}

async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("style.css"),
    )
}

/// `?failed=true` after a wrong token.
#[derive(Deserialize, Default)]
struct LoginQuery {
    #[serde(default)]
    failed: bool,
}

async fn login_form(
    State(app): State<Arc<AppState>>,
    query: Result<axum::extract::Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if app.admin_token.is_none() {
        return disabled();
    }
    let failed = query.is_ok_and(|query| query.failed);
    let body = html! {
        form.login method="post" action="/ui/login" {
            @if failed { p.flash.bad { "That is not the admin token." } }
            label for="token" { "Admin token (server.admin_token)" }
            input #token type="password" name="token" autocomplete="current-password" autofocus;
            button.primary type="submit" { "Sign in" }
        }
    };
    page("Sign in", None, body).into_response()
}

#[derive(Deserialize)]
struct SignIn {
    token: String,
}

async fn sign_in(
    State(app): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    form: Result<axum::Form<SignIn>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(key) = &app.admin_token else {
        return disabled();
    };
    match form {
        Ok(axum::Form(form)) if super::secrets_match(&form.token, key) => {
            let mut response = Redirect::to("/ui").into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                session::sign_in_cookie(
                    &app.ui_sessions.key(key),
                    session::came_over_https(&headers),
                ),
            );
            response
        }
        _ => {
            tracing::warn!("a dashboard sign-in with a wrong token");
            Redirect::to("/ui/login?failed=true").into_response()
        }
    }
}

async fn sign_out(
    operator: Operator,
    State(app): State<Arc<AppState>>,
    form: axum::Form<Signed>,
) -> Response {
    if !operator.sent(&form.csrf) {
        return forged();
    }
    // Not only this browser's cookie: a copy of it ends too.
    app.ui_sessions.sign_out();
    let mut response = Redirect::to("/ui/login").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session::sign_out_cookie());
    response
}
