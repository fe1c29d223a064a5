//! Request bodies, read within a size and a time limit before anything
//! else looks at them. The webhook route reads its own (up to
//! `server.max_body_bytes`); every other route goes through [`bounded`],
//! which reads at most [`OPERATOR_MAX_BODY_BYTES`] before the handler, and
//! so before the admin token or the session is checked: nobody, signed in
//! or not, makes igloo hold a large or slow body.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};

use super::BodyLimits;
use crate::error::ApiError;

/// The largest body of any route but the webhook's: the operator's JSON
/// and forms are a few hundred bytes (a token is at most 2 KiB).
pub(crate) const OPERATOR_MAX_BODY_BYTES: usize = 64 * 1024;

/// Read the body within `limits`. A declared length over the limit is
/// refused before a byte of the body is read.
pub(super) async fn read(
    headers: &HeaderMap,
    body: Body,
    limits: BodyLimits,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limits.max_bytes as u64) {
        return Err(ApiError::TooLarge(limits.max_bytes));
    }
    let collect = Limited::new(body, limits.max_bytes).collect();
    match tokio::time::timeout(limits.timeout, collect).await {
        Err(_elapsed) => Err(ApiError::BodyTimeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::TooLarge(limits.max_bytes))
        }
        Ok(Err(_)) => Err(ApiError::BodyAborted),
    }
}

/// Middleware: read the request's body within `limits` (the operator's:
/// see [`BodyLimits::for_operator`]), then hand the request on with the
/// body in memory. Too large is 413, too slow 408, broken off 400, and the
/// handler never runs.
pub(super) async fn bounded(
    State(limits): State<BodyLimits>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    match read(&parts.headers, body, limits).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(error) => refused(&error, parts.uri.path()),
    }
}

/// The answer to a body refused on an operator's route: no details but
/// the limit, and the connection closed when the rest was not read.
fn refused(error: &ApiError, path: &str) -> Response {
    let status = match error {
        ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
        _ => StatusCode::BAD_REQUEST,
    };
    tracing::warn!(
        path = %crate::untrusted::sanitize(path, 200),
        status = status.as_u16(),
        %error,
        "a request's body was refused"
    );
    let mut response = (
        status,
        axum::Json(serde_json::json!({ "error": error.to_string() })),
    )
        .into_response();
    if matches!(error, ApiError::TooLarge(_) | ApiError::BodyTimeout) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

impl BodyLimits {
    /// The limits of every route but the webhook's: the same deadline, and
    /// at most [`OPERATOR_MAX_BODY_BYTES`].
    pub(crate) fn for_operator(self) -> Self {
        Self {
            max_bytes: self.max_bytes.min(OPERATOR_MAX_BODY_BYTES),
            timeout: self.timeout,
        }
    }
}
