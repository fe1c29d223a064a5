//! Instagram Login's token endpoints (PLATFORM.md A5): Business Login's
//! code exchange, the long-lived token, whose a token is, and refreshing
//! one. They carry the token (and the app secret) in the request itself,
//! so no URL of theirs is ever logged: a failed request's error is
//! stripped of every secret it carried.

use serde::Deserialize;
use serde::de::DeserializeOwned;

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
        let mut url = self.instagram_url(&["refresh_access_token"]);
        url.query_pairs_mut()
            .append_pair("grant_type", "ig_refresh_token")
            .append_pair("access_token", token);
        self.token_request(TokenRequest::get(url), &[token]).await
    }

    /// Business Login's exchange (`POST https://api.instagram.com/oauth/access_token`,
    /// form-encoded): the short-lived token and the account id for `code`.
    pub async fn exchange_code(
        &self,
        login: &BusinessLogin<'_>,
        code: &str,
    ) -> Result<ShortLivedToken, GraphError> {
        let url = reqwest::Url::parse(login.token_url)
            .map_err(|error| GraphError::Invalid(format!("oauth.token_url: {error}")))?;
        let form = vec![
            ("client_id", login.app_id.to_owned()),
            ("client_secret", login.app_secret.to_owned()),
            ("grant_type", "authorization_code".to_owned()),
            ("redirect_uri", login.redirect_uri.to_owned()),
            ("code", code.to_owned()),
        ];
        let answer: serde_json::Value = self
            .token_request(
                TokenRequest {
                    method: reqwest::Method::POST,
                    url,
                    form: Some(form),
                    bearer: None,
                },
                &[login.app_secret, code],
            )
            .await?;
        // Meta has answered both bare and wrapped in `data`.
        let token = answer
            .get("data")
            .and_then(|data| data.get(0))
            .unwrap_or(&answer);
        serde_json::from_value(token.clone())
            .map_err(|_| GraphError::Invalid("the code exchange's answer is not a token".into()))
    }

    /// `GET /access_token?grant_type=ig_exchange_token`: a long-lived token
    /// (60 days) for a short-lived one.
    pub async fn long_lived_token(
        &self,
        app_secret: &str,
        short: &str,
    ) -> Result<IssuedToken, GraphError> {
        let mut url = self.instagram_url(&["access_token"]);
        url.query_pairs_mut()
            .append_pair("grant_type", "ig_exchange_token")
            .append_pair("client_secret", app_secret)
            .append_pair("access_token", short);
        self.token_request(TokenRequest::get(url), &[app_secret, short])
            .await
    }

    /// `GET /me?fields=user_id,username` with `token`: whose it is. The
    /// `user_id` is the id webhooks name the account by.
    pub async fn token_owner(&self, token: &str) -> Result<TokenOwner, GraphError> {
        let mut url = self.instagram_url(&[&self.api_version, "me"]);
        url.query_pairs_mut()
            .append_pair("fields", "user_id,username");
        let request = TokenRequest {
            method: reqwest::Method::GET,
            url,
            form: None,
            bearer: Some(token.to_owned()),
        };
        self.token_request(request, &[token]).await
    }

    /// `instagram_base_url` with `segments`.
    fn instagram_url(&self, segments: &[&str]) -> reqwest::Url {
        let mut url = self.instagram_base_url.clone();
        url.path_segments_mut()
            .expect("base URLs are checked to be http(s) at start-up")
            .pop_if_empty()
            .extend(segments);
        url
    }

    /// Send a token request carrying `secrets`; Meta's answer, or its error
    /// classified, with every secret cut out of whatever text it carries (a
    /// proxy's error page may echo the request).
    async fn token_request<T: DeserializeOwned>(
        &self,
        request: TokenRequest,
        secrets: &[&str],
    ) -> Result<T, GraphError> {
        self.send_token_request(request).await.map_err(|error| {
            secrets
                .iter()
                .fold(error, |error, secret| scrub(error, secret))
        })
    }

    async fn send_token_request<T: DeserializeOwned>(
        &self,
        request: TokenRequest,
    ) -> Result<T, GraphError> {
        let Transport::Live(client) = &self.transport else {
            return Err(GraphError::Invalid("a dry run has no tokens".into()));
        };
        let mut builder = client.request(request.method, request.url);
        if let Some(form) = &request.form {
            builder = builder.form(form);
        }
        if let Some(token) = &request.bearer {
            builder = builder.bearer_auth(token);
        }
        let response = builder.send().await.map_err(|error| {
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
        serde_json::from_slice(&body).map_err(|_| {
            GraphError::Invalid("the token endpoint's answer is not what was asked for".into())
        })
    }
}

/// One request to a token endpoint.
struct TokenRequest {
    method: reqwest::Method,
    url: reqwest::Url,
    form: Option<Vec<(&'static str, String)>>,
    bearer: Option<String>,
}

impl TokenRequest {
    fn get(url: reqwest::Url) -> Self {
        Self {
            method: reqwest::Method::GET,
            url,
            form: None,
            bearer: None,
        }
    }
}

/// What Business Login needs of the app (`[oauth]`).
#[derive(Debug, Clone, Copy)]
pub struct BusinessLogin<'a> {
    /// The Instagram app's id (`client_id`).
    pub app_id: &'a str,
    /// The Instagram app's secret.
    pub app_secret: &'a str,
    /// Where Meta sends the person back, exactly as registered.
    pub redirect_uri: &'a str,
    /// The code exchange's URL.
    pub token_url: &'a str,
}

/// Business Login's answer to a code: a token good for an hour. Its
/// `user_id` is app-scoped, not the id webhooks name the account by (that
/// is `/me`'s `user_id`, see [`TokenOwner`]), so it is not read.
#[derive(Deserialize)]
pub struct ShortLivedToken {
    /// The token.
    pub access_token: String,
    /// What the owner granted: a list, or a comma-separated text.
    #[serde(default)]
    pub permissions: Option<serde_json::Value>,
}

/// What a token lacks of the permissions asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ungranted<'s> {
    /// Meta did not say what was granted (no `permissions`, or in a shape
    /// igloo does not know): nothing is assumed granted.
    Unsaid,
    /// The first permission asked for that the owner did not grant.
    Scope(&'s str),
}

impl ShortLivedToken {
    /// What of `scopes` the owner did not grant, if anything. Fails closed:
    /// an answer that does not say what was granted grants nothing.
    pub fn ungranted<'s>(&self, scopes: &'s [String]) -> Option<Ungranted<'s>> {
        let granted: Vec<String> = match self.permissions.as_ref() {
            Some(serde_json::Value::String(text)) => text
                .split(',')
                .map(|scope| scope.trim().to_owned())
                .collect(),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect(),
            _ => return Some(Ungranted::Unsaid),
        };
        scopes
            .iter()
            .find(|scope| !granted.iter().any(|granted| granted == *scope))
            .map(|scope| Ungranted::Scope(scope.as_str()))
    }
}

/// Whose a token is.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenOwner {
    /// The Instagram professional account's id: webhooks' `entry.id`.
    #[serde(deserialize_with = "crate::events::meta::id_text")]
    pub user_id: String,
    /// Its username.
    #[serde(default)]
    pub username: Option<String>,
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

    #[test]
    fn a_grant_short_of_the_scopes_asked_for_is_seen() {
        let scopes = ["basic".to_owned(), "messages".to_owned()];
        let token = |permissions: Option<serde_json::Value>| ShortLivedToken {
            access_token: String::new(),
            permissions,
        };
        assert_eq!(
            token(Some(serde_json::json!("basic, messages"))).ungranted(&scopes),
            None
        );
        assert_eq!(
            token(Some(serde_json::json!(["basic"]))).ungranted(&scopes),
            Some(Ungranted::Scope("messages"))
        );
        assert_eq!(
            token(Some(serde_json::json!("messages"))).ungranted(&scopes),
            Some(Ungranted::Scope("basic"))
        );
    }

    #[test]
    fn an_answer_that_does_not_say_what_was_granted_grants_nothing() {
        let scopes = ["basic".to_owned()];
        let token = |permissions: Option<serde_json::Value>| ShortLivedToken {
            access_token: String::new(),
            permissions,
        };
        assert_eq!(token(None).ungranted(&scopes), Some(Ungranted::Unsaid));
        assert_eq!(
            token(Some(serde_json::json!(null))).ungranted(&scopes),
            Some(Ungranted::Unsaid)
        );
        assert_eq!(
            token(Some(serde_json::json!({"basic": true}))).ungranted(&scopes),
            Some(Ungranted::Unsaid)
        );
        let answer: ShortLivedToken =
            serde_json::from_str(r#"{"access_token": "t", "user_id": 1}"#).unwrap();
        assert_eq!(answer.ungranted(&scopes), Some(Ungranted::Unsaid));
    }
}
