//! Graph API failures, classified from Meta's error codes (PLATFORM.md A5)
//! so that callers can tell "retry later" from "never retry".

use serde::Deserialize;

/// A failed Graph API call, by what the caller should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// Throttled: back off this account for at least this long.
    #[error("rate limited; retry after {retry_after_ms} ms")]
    RateLimited {
        /// How long to wait, from Meta's usage headers or a default.
        retry_after_ms: u64,
    },
    /// The messaging window with the person is closed.
    #[error("outside the messaging window: {0}")]
    WindowClosed(String),
    /// The person has not consented (error 230).
    #[error("user consent required: {0}")]
    ConsentRequired(String),
    /// The access token is invalid or expired (error 190): re-authenticate.
    #[error("access token invalid: {0}")]
    TokenInvalid(String),
    /// The app lacks a permission (errors 10, 200, 3).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The recipient cannot be reached (blocked, gone, unavailable).
    #[error("recipient unavailable: {0}")]
    RecipientUnavailable(String),
    /// The object does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A temporary failure (errors 1200 and 2, HTTP 5xx, a connection
    /// that could not be made): Meta did not act.
    #[error("transient failure: {0}")]
    Transient(String),
    /// The request went out but no answer came back (a timeout, a dropped
    /// connection): Meta may or may not have acted.
    #[error("no answer from Meta: {0}")]
    Unanswered(String),
    /// The request was refused as invalid.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// igloo has no access token for the account.
    #[error("no access token configured for account {0}")]
    NoToken(String),
}

/// Meta's error envelope: `{"error": {"message", "code", "error_subcode", …}}`.
#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: MetaError,
}

#[derive(Debug, Deserialize)]
struct MetaError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: i64,
    #[serde(default)]
    error_subcode: Option<i64>,
}

/// Default back-off when Meta throttles without saying for how long.
const DEFAULT_RETRY_AFTER_MS: u64 = 60_000;

impl GraphError {
    /// Classify a non-success response from its HTTP status and body.
    pub fn classify(status: u16, body: &[u8]) -> Self {
        let Ok(ErrorEnvelope { error }) = serde_json::from_slice::<ErrorEnvelope>(body) else {
            let text = String::from_utf8_lossy(body)
                .chars()
                .take(200)
                .collect::<String>();
            return if status >= 500 || status == 429 {
                GraphError::Transient(format!("HTTP {status}: {text}"))
            } else {
                GraphError::Invalid(format!("HTTP {status}: {text}"))
            };
        };
        let message = error.message;
        match (error.code, error.error_subcode) {
            (4 | 17 | 32 | 613 | 368 | 80000..=80014, _) => GraphError::RateLimited {
                retry_after_ms: DEFAULT_RETRY_AFTER_MS,
            },
            (10, Some(2018278 | 2534022)) => GraphError::WindowClosed(message),
            (551, _) | (100, Some(2018001 | 33)) => GraphError::RecipientUnavailable(message),
            (230, _) => GraphError::ConsentRequired(message),
            (190, _) => GraphError::TokenInvalid(message),
            (10 | 200 | 3, _) => GraphError::PermissionDenied(message),
            (1200 | 2, _) => GraphError::Transient(message),
            _ if status >= 500 => GraphError::Transient(message),
            _ if status == 404 => GraphError::NotFound(message),
            _ => GraphError::Invalid(message),
        }
    }

    /// Whether repeating the same request may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GraphError::Transient(_) | GraphError::Unanswered(_) | GraphError::RateLimited { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(code: i64, subcode: Option<i64>) -> Vec<u8> {
        serde_json::json!({"error": {"message": "m", "type": "OAuthException", "code": code,
            "error_subcode": subcode, "fbtrace_id": "x"}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn codes_from_the_platform_table_are_classified() {
        let cases = [
            (400, meta(4, None), "rate"),
            (400, meta(80002, None), "rate"),
            (403, meta(10, Some(2534022)), "window"),
            (400, meta(10, Some(2018278)), "window"),
            (400, meta(230, None), "consent"),
            (400, meta(190, Some(463)), "token"),
            (400, meta(200, None), "permission"),
            (400, meta(551, Some(1545041)), "recipient"),
            (400, meta(100, Some(2018001)), "recipient"),
            (500, meta(1200, None), "transient"),
            (400, meta(2, None), "transient"),
            (400, meta(100, None), "invalid"),
            (502, b"<html>bad gateway</html>".to_vec(), "transient"),
        ];
        for (status, body, expected) in cases {
            let class = match GraphError::classify(status, &body) {
                GraphError::RateLimited { .. } => "rate",
                GraphError::WindowClosed(_) => "window",
                GraphError::ConsentRequired(_) => "consent",
                GraphError::TokenInvalid(_) => "token",
                GraphError::PermissionDenied(_) => "permission",
                GraphError::RecipientUnavailable(_) => "recipient",
                GraphError::Transient(_) => "transient",
                GraphError::Invalid(_) => "invalid",
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(
                class,
                expected,
                "status {status} body {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
}
