//! The dry run that stands in for Meta on embedded defaults: every outbound
//! call is recorded and logged instead of sent, and answered as Meta would
//! answer a success.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde_json::{Value, json};

use super::GraphRequest;

/// Calls kept for `GET /dry-run/calls`; older ones are dropped.
const KEPT_CALLS: usize = 1000;

/// One call the dry run received.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedCall {
    /// Order of arrival, from 1.
    pub number: u64,
    /// The account it was made for.
    pub account_id: String,
    /// HTTP method.
    pub method: String,
    /// Full URL, as it would have been sent.
    pub url: String,
    /// JSON body, if any.
    pub body: Option<Value>,
}

/// The record of calls a dry run did not send.
#[derive(Default)]
pub struct DryRun {
    calls: Mutex<VecDeque<RecordedCall>>,
    count: AtomicU64,
}

impl DryRun {
    /// Record and log `request`, and answer it as a success.
    pub(super) fn record(&self, account_id: &str, request: GraphRequest) -> Value {
        let number = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let body_text = request
            .body
            .as_ref()
            .map(Value::to_string)
            .unwrap_or_default();
        tracing::info!(
            target: "igloo::dry_run",
            "dry run (not sent): {} {} {body_text}",
            request.method,
            request.url
        );
        let recipient_id = request
            .body
            .as_ref()
            .and_then(|body| body.pointer("/recipient/id"))
            .cloned()
            .unwrap_or(Value::Null);
        let call = RecordedCall {
            number,
            account_id: account_id.to_owned(),
            method: request.method.to_string(),
            url: request.url.into(),
            body: request.body,
        };
        let mut calls = self
            .calls
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if calls.len() == KEPT_CALLS {
            calls.pop_front();
        }
        calls.push_back(call);
        // A superset of the success shapes of the calls igloo makes.
        json!({
            "id": format!("dry-run-{number}"),
            "message_id": format!("dry-run-mid-{number}"),
            "recipient_id": recipient_id,
            "attachment_id": format!("dry-run-attachment-{number}"),
            "success": true,
        })
    }

    /// The calls recorded so far, oldest first.
    pub fn calls(&self) -> Vec<RecordedCall> {
        let calls = self
            .calls
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        calls.iter().cloned().collect()
    }
}
