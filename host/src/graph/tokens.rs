//! Instagram Login's token endpoints (PLATFORM.md A5): refreshing a
//! long-lived token. They carry the token (and, for an exchange, the app
//! secret) in the request itself, so no URL of theirs is ever logged: a
//! failed request's error is stripped of it.

use serde::Deserialize;

use super::{GraphClient, GraphError, Transport};

/// A token Meta issued, and for how long.
#[derive(Deserialize)]
pub struct IssuedToken {
    /// The token.
    pub access_token: String,
    /// Seconds it lives, when Meta says.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IssuedToken(expires_in {:?})", self.expires_in)
    }
}

impl GraphClient {
    /// `GET /refresh_access_token?grant_type=ig_refresh_token`: a new
    /// long-lived token for `token` (at least a day old, not expired).
    pub async fn refresh_token(&self, token: &str) -> Result<IssuedToken, GraphError> {
        let mut url = self.instagram_base_url.clone();
        url.path_segments_mut()
            .expect("base URLs are checked to be http(s) at start-up")
            .pop_if_empty()
            .push("refresh_access_token");
        url.query_pairs_mut()
            .append_pair("grant_type", "ig_refresh_token")
            .append_pair("access_token", token);
        self.token_request(reqwest::Method::GET, url, token).await
    }

    /// Send a token request carrying `secret`; Meta's answer, or its error
    /// classified, with `secret` cut out of whatever text it carries (a
    /// proxy's error page may echo the request).
    async fn token_request(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
        secret: &str,
    ) -> Result<IssuedToken, GraphError> {
        self.send_token_request(method, url)
            .await
            .map_err(|error| scrub(error, secret))
    }

    async fn send_token_request(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
    ) -> Result<IssuedToken, GraphError> {
        let Transport::Live(client) = &self.transport else {
            return Err(GraphError::Invalid(
                "a dry run has no tokens to refresh".into(),
            ));
        };
        let response = client.request(method, url).send().await.map_err(|error| {
            GraphError::Transient(format!("request failed: {}", error.without_url()))
        })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|error| {
            GraphError::Transient(format!(
                "reading the response failed: {}",
                error.without_url()
            ))
        })?;
        if !status.is_success() {
            return Err(GraphError::classify(status.as_u16(), &body));
        }
        serde_json::from_slice(&body)
            .map_err(|_| GraphError::Invalid("the token endpoint's answer is not a token".into()))
    }
}

/// `error` with every occurrence of `secret` in its text replaced.
fn scrub(error: GraphError, secret: &str) -> GraphError {
    let cut = |text: String| {
        if secret.is_empty() {
            text
        } else {
            text.replace(secret, "[token]")
        }
    };
    match error {
        GraphError::WindowClosed(text) => GraphError::WindowClosed(cut(text)),
        GraphError::ConsentRequired(text) => GraphError::ConsentRequired(cut(text)),
        GraphError::TokenInvalid(text) => GraphError::TokenInvalid(cut(text)),
        GraphError::PermissionDenied(text) => GraphError::PermissionDenied(cut(text)),
        GraphError::RecipientUnavailable(text) => GraphError::RecipientUnavailable(cut(text)),
        GraphError::NotFound(text) => GraphError::NotFound(cut(text)),
        GraphError::Transient(text) => GraphError::Transient(cut(text)),
        GraphError::Unanswered(text) => GraphError::Unanswered(cut(text)),
        GraphError::Invalid(text) => GraphError::Invalid(cut(text)),
        GraphError::NoToken(text) => GraphError::NoToken(cut(text)),
        throttled @ GraphError::RateLimited { .. } => throttled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_echoed_in_an_error_is_cut_out() {
        let echoed = GraphError::classify(
            502,
            b"<h1>Bad gateway</h1> GET /refresh_access_token?access_token=IGQVsecret",
        );
        let scrubbed = scrub(echoed, "IGQVsecret").to_string();
        assert!(
            !scrubbed.contains("IGQVsecret") && scrubbed.contains("[token]"),
            "{scrubbed}"
        );
    }
}
