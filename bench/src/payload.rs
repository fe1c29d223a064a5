//! Signed webhook bodies of about 2 KB, each with unique message ids so the
//! inbox stores every one.

use bytes::Bytes;
use serde_json::json;

/// Business accounts the events are spread over. igloo holds each account
/// to Meta's send rate (100 text messages a second), so a benchmark of one
/// account would measure that limit, not igloo.
pub(crate) const ACCOUNTS: usize = 1_000;

/// The `n`th benchmark account.
pub(crate) fn account(n: usize) -> String {
    format!("178414{:011}", n % ACCOUNTS)
}
/// The app secret the servers verify with.
pub(crate) const SECRET: &str = "bench-app-secret";

/// A body and its `X-Hub-Signature-256`.
#[derive(Clone)]
pub(crate) struct Signed {
    /// The raw body.
    pub body: Bytes,
    /// The header value.
    pub signature: String,
}

/// `count` distinct ~2 KB bodies: a batch of eight text messages each,
/// from different people.
pub(crate) fn batches(count: usize, run: &str) -> Vec<Signed> {
    let now = igloo::clock::now_ms();
    (0..count)
        .map(|n| {
            let items: Vec<_> = (0..8)
                .map(|i| {
                    json!({
                        "sender": {"id": format!("{}", 6_500_000_000_000_000u64 + (n * 8 + i) as u64)},
                        "recipient": {"id": account(n)},
                        "timestamp": now + n as u64,
                        "message": {
                            "mid": format!("aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx-{run}-{n}-{i}"),
                            "text": "Hello! Do you ship to Lisbon? I would like two of the blue ones, please.",
                        },
                    })
                })
                .collect();
            let body = json!({"object": "instagram", "entry": [{"id": account(n), "time": now, "messaging": items}]});
            sign(body.to_string())
        })
        .collect()
}

/// `count` distinct ~2 KB bodies of one event each, as Meta sends them
/// when not under load: a message sharing a reel, with the long signed CDN
/// URL and title real traffic carries.
pub(crate) fn single_events(count: usize, run: &str) -> Vec<Signed> {
    let url = format!("https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=18087782618022081&signature={}", "AbyoRMtwJfAwfS_JCQkUSk4cdnDbIxMpTQXNWXt1D5Y9DEBSrgaz6PUk279coBxpvYHihuOmA1dxxabr6j0XitFYd21z2".repeat(6));
    let title =
        "Summer collection drop: linen shirts, wide-leg trousers and the new sandals. ".repeat(13);
    let now = igloo::clock::now_ms();
    (0..count)
        .map(|n| {
            let body = json!({"object": "instagram", "entry": [{"id": account(n), "time": now, "messaging": [{
                "sender": {"id": format!("{}", 6_500_000_000_000_000u64 + n as u64)},
                "recipient": {"id": account(n)}, "timestamp": now + n as u64,
                "message": {"mid": format!("aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx-{run}-{n}"),
                    "attachments": [{"type": "ig_reel", "payload": {"reel_video_id": "18087782618022081", "title": title, "url": url}}]}}]}]});
            sign(body.to_string())
        })
        .collect()
}

/// The person who sends the `n`th of [`single_messages`].
pub(crate) fn single_message_sender(n: usize) -> String {
    format!("{}", 6_600_000_000_000_000u64 + n as u64)
}

/// `count` bodies of one text message each, from distinct people.
pub(crate) fn single_messages(count: usize, run: &str) -> Vec<Signed> {
    let now = igloo::clock::now_ms();
    (0..count)
        .map(|n| {
            let body = json!({"object": "instagram", "entry": [{"id": account(n), "time": now, "messaging": [{
                "sender": {"id": single_message_sender(n)},
                "recipient": {"id": account(n)}, "timestamp": now,
                "message": {"mid": format!("e2e-{run}-{n}"), "text": "hi"}}]}]});
            sign(body.to_string())
        })
        .collect()
}

fn sign(body: String) -> Signed {
    let signature = igloo::signature::sign(SECRET.as_bytes(), body.as_bytes());
    Signed {
        body: Bytes::from(body),
        signature,
    }
}
