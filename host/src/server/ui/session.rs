//! Who may use the dashboard: whoever signed in with `server.admin_token`.
//! A browser cannot send a bearer token without JavaScript, so signing in
//! sets a cookie instead: when it was issued and an HMAC of that under the
//! admin token (no state kept; changing the token signs everyone out). It
//! is `HttpOnly`, `SameSite=Strict` and lasts 12 hours, and `Secure` when
//! the sign-in came through a TLS proxy that says so. Every form that
//! changes something also carries a token derived from the session, so a
//! request another site makes for the browser is refused even where
//! `SameSite` is not honoured.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::server::AppState;

/// The session cookie's name.
const COOKIE: &str = "igloo_ui";
/// How long a session lasts.
const LIFETIME_MS: u64 = 12 * 3600 * 1000;

/// A signed-in operator.
#[derive(Debug, Clone)]
pub(super) struct Operator {
    /// The form token for this session.
    pub(super) csrf: String,
}

/// `purpose:issued` signed with `key`, in hex.
pub(super) fn sign(key: &str, purpose: &str, issued_ms: u64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{purpose}:{issued_ms}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The `Set-Cookie` value that signs in, issued now under `key`; `Secure`
/// if the browser reached igloo over HTTPS.
pub(super) fn sign_in_cookie(key: &str, secure: bool) -> HeaderValue {
    let issued = crate::clock::now_ms();
    let value = format!(
        "{COOKIE}={issued}.{}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{}",
        sign(key, "session", issued),
        LIFETIME_MS / 1000,
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&value).expect("digits, hex and ASCII")
}

/// Whether the browser reached igloo over HTTPS: igloo serves plain HTTP,
/// so only a TLS proxy in front can say so (`X-Forwarded-Proto` or
/// `Forwarded`). A client that claims it falsely only makes its own cookie
/// stricter.
pub(super) fn came_over_https(headers: &HeaderMap) -> bool {
    let says_https = |name: header::HeaderName, proto: fn(&str) -> Option<&str>| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(proto)
            .any(|proto| proto.trim().eq_ignore_ascii_case("https"))
    };
    says_https(
        header::HeaderName::from_static("x-forwarded-proto"),
        |value| value.split(',').next(),
    ) || says_https(header::FORWARDED, |value| {
        value
            .split([',', ';'])
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| name.eq_ignore_ascii_case("proto"))
            .map(|(_, proto)| proto.trim_matches('"'))
    })
}

/// The `Set-Cookie` value that signs out.
pub(super) fn sign_out_cookie() -> HeaderValue {
    HeaderValue::from_static("igloo_ui=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Most session cookies checked per request: each check is an HMAC, and a
/// request may carry tens of thousands of cookies.
const MAX_COOKIES_CHECKED: usize = 4;

/// The operator whose valid session cookie `headers` carry: one signed
/// with `key`, fresh, and issued after the last sign-out (`signed_out_ms`).
/// A stray cookie of that name (set for a parent domain, say) does not
/// shadow the real one: the freshest [`MAX_COOKIES_CHECKED`] of those whose
/// time could be a session's are checked, newest first, and no others.
fn operator(headers: &HeaderMap, key: &str, signed_out_ms: u64) -> Option<Operator> {
    let now = crate::clock::now_ms();
    let mut candidates: Vec<(u64, &str)> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|header| header.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|cookie| cookie.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .filter_map(|value| {
            let (issued, signature) = value.split_once('.')?;
            let issued_ms: u64 = issued.parse().ok()?;
            let fresh =
                issued_ms <= now && now - issued_ms <= LIFETIME_MS && issued_ms > signed_out_ms;
            fresh.then_some((issued_ms, signature))
        })
        .collect();
    candidates.sort_unstable_by_key(|&(issued_ms, _)| std::cmp::Reverse(issued_ms));
    candidates
        .into_iter()
        .take(MAX_COOKIES_CHECKED)
        .find_map(|(issued_ms, signature)| {
            crate::server::secrets_match(signature, &sign(key, "session", issued_ms)).then(|| {
                Operator {
                    csrf: sign(key, "form", issued_ms),
                }
            })
        })
}

/// What makes this igloo's sessions and states its own: a random epoch
/// drawn at start (so none outlives a restart, and a sign-out need only be
/// remembered while igloo runs), and when the dashboard was last signed out
/// of (every session issued until then ends: one admin token, one
/// operator's sessions).
pub(crate) struct Sessions {
    epoch: String,
    signed_out_ms: AtomicU64,
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            epoch: hex::encode(super::connect::random_bytes()),
            signed_out_ms: AtomicU64::new(0),
        }
    }
}

impl Sessions {
    /// The key sessions, form tokens and states are signed with.
    pub(super) fn key(&self, admin_token: &str) -> String {
        format!("{admin_token}:{}", self.epoch)
    }

    /// End every session issued until now.
    pub(super) fn sign_out(&self) {
        self.signed_out_ms
            .store(crate::clock::now_ms(), Ordering::Relaxed);
    }

    fn signed_out_ms(&self) -> u64 {
        self.signed_out_ms.load(Ordering::Relaxed)
    }
}

impl Operator {
    /// Whether a form's token is this session's.
    pub(super) fn sent(&self, csrf: &str) -> bool {
        crate::server::secrets_match(csrf, &self.csrf)
    }
}

impl FromRequestParts<Arc<AppState>> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<AppState>) -> Result<Self, Response> {
        let Some(key) = &app.admin_token else {
            return Err(super::disabled());
        };
        let sessions = &app.ui_sessions;
        operator(&parts.headers, &sessions.key(key), sessions.signed_out_ms())
            .ok_or_else(|| Redirect::to("/ui/login").into_response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "operator-token-of-at-least-32-characters";

    fn with_cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn the_cookie_is_secure_behind_a_tls_proxy_that_says_so() {
        let header = |name: &'static str, value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_static(value));
            headers
        };
        assert!(came_over_https(&header("x-forwarded-proto", "https")));
        assert!(came_over_https(&header("x-forwarded-proto", "HTTPS, http")));
        assert!(came_over_https(&header(
            "forwarded",
            "for=192.0.2.60;proto=https;by=203.0.113.43"
        )));
        assert!(came_over_https(&header("forwarded", "proto=\"https\"")));
        assert!(!came_over_https(&header("x-forwarded-proto", "http")));
        assert!(!came_over_https(&header("forwarded", "for=https")));
        assert!(!came_over_https(&HeaderMap::new()));
        let secure = sign_in_cookie(KEY, true);
        assert!(secure.to_str().unwrap().ends_with("; Secure"));
        let plain = sign_in_cookie(KEY, false);
        assert!(!plain.to_str().unwrap().contains("Secure"));
    }

    #[test]
    fn only_a_fresh_session_signed_with_the_admin_token_signs_in() {
        let set = sign_in_cookie(KEY, false);
        let cookie = set.to_str().unwrap().split(';').next().unwrap().to_owned();
        let junk = "igloo_ui=1.00";
        let operator = operator(
            &with_cookie(&format!("theme=dark; {junk}; {cookie}")),
            KEY,
            0,
        )
        .unwrap();
        assert!(operator.sent(&operator.csrf) && !operator.sent("forged"));
        assert!(
            super::operator(
                &with_cookie(&cookie),
                "another-admin-token-of-32-characters",
                0
            )
            .is_none()
        );
        assert!(
            super::operator(&with_cookie(&cookie), KEY, crate::clock::now_ms()).is_none(),
            "signed out since"
        );
        let (name_and_issued, signature) = cookie.split_once('.').unwrap();
        let later: u64 = name_and_issued
            .trim_start_matches("igloo_ui=")
            .parse::<u64>()
            .unwrap()
            + 1;
        assert!(
            super::operator(
                &with_cookie(&format!("igloo_ui={later}.{signature}")),
                KEY,
                0
            )
            .is_none()
        );
        let old = crate::clock::now_ms() - LIFETIME_MS - 1;
        let stale = format!("igloo_ui={old}.{}", sign(KEY, "session", old));
        assert!(
            super::operator(&with_cookie(&stale), KEY, 0).is_none(),
            "sessions expire"
        );
        let now = crate::clock::now_ms();
        let form_token = format!("igloo_ui={now}.{}", sign(KEY, "form", now));
        assert!(
            super::operator(&with_cookie(&form_token), KEY, 0).is_none(),
            "a form token is no session"
        );
    }

    #[test]
    fn only_the_freshest_few_session_cookies_are_checked() {
        let issued = crate::clock::now_ms() - 60_000;
        let real = format!("igloo_ui={issued}.{}", sign(KEY, "session", issued));
        let forged = |count: usize, issued_ms: u64| -> Vec<String> {
            (0..count)
                .map(|_| format!("igloo_ui={issued_ms}.{}", "0".repeat(64)))
                .collect()
        };
        // Many older forgeries: the real one is the freshest, checked first.
        let mut cookies = forged(20_000, issued - 1);
        cookies.push(real.clone());
        assert!(operator(&with_cookie(&cookies.join("; ")), KEY, 0).is_some());
        // As many fresher ones: a few are checked, then no more (an HMAC
        // each), and the real one, older than them, is not reached.
        let mut cookies = forged(20_000, issued + 1);
        cookies.push(real.clone());
        assert!(operator(&with_cookie(&cookies.join("; ")), KEY, 0).is_none());
        let mut cookies = forged(MAX_COOKIES_CHECKED - 1, issued + 1);
        cookies.push(real);
        assert!(
            operator(&with_cookie(&cookies.join("; ")), KEY, 0).is_some(),
            "a few strays do not shadow the real one"
        );
    }
}
