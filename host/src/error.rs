//! Errors that become HTTP responses: a status Meta can act on and a short
//! message, never internal details.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::events::PayloadError;
use crate::inbox::InboxError;
use crate::signature::SignatureError;

/// A request igloo refuses, or could not take in.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The webhook signature is missing or wrong.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The body is not a webhook payload.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// Storage failed; Meta should retry.
    #[error(transparent)]
    Storage(#[from] InboxError),
    /// The handshake's mode or token is wrong.
    #[error("verification failed")]
    Handshake,
    /// The body is larger than allowed (or declares it will be).
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    /// The body did not arrive in time.
    #[error("body not received in time")]
    BodyTimeout,
    /// The client broke off while sending the body.
    #[error("body incomplete")]
    BodyAborted,
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::Signature(SignatureError::Missing) => StatusCode::UNAUTHORIZED,
            ApiError::Signature(_) | ApiError::Handshake => StatusCode::FORBIDDEN,
            ApiError::Payload(_) => StatusCode::BAD_REQUEST,
            ApiError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::BodyAborted => StatusCode::BAD_REQUEST,
        }
    }

    /// The label `/metrics` counts it under.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            ApiError::Signature(_) => "bad_signature",
            ApiError::Payload(_) => "malformed",
            ApiError::Storage(_) => "storage_error",
            ApiError::Handshake => "handshake",
            ApiError::TooLarge(_) => "too_large",
            ApiError::BodyTimeout => "body_timeout",
            ApiError::BodyAborted => "body_aborted",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            // The cause stays in the log; the caller learns only to retry.
            ApiError::Storage(error) => {
                tracing::error!(%error, "webhook not stored");
                "storage unavailable, retry later".to_owned()
            }
            other => {
                tracing::warn!(error = %other, status = status.as_u16(), "webhook refused");
                other.to_string()
            }
        };
        let mut response = (status, Json(json!({ "error": message }))).into_response();
        if matches!(self, ApiError::TooLarge(_) | ApiError::BodyTimeout) {
            // The rest of the body is never read: the connection cannot be reused.
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
        response
    }
}
