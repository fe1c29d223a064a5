//! Webhook bodies as Meta sends them, made to measure for a test (the
//! stored ones are the fixtures in `tests/fixtures/webhooks/`): messages and
//! postbacks, alone or several in one delivery, and comments. Every one is
//! for the fixtures' account, [`ACCOUNT_ID`].
//!
//! ```ignore
//! webhook::message("7001", "hi").body()
//! webhook::message("7001", "hi").mid("m-1").at(timestamp_ms).body()
//! webhook::delivery([webhook::message("7001", "a"), webhook::message("7002", "b")])
//! webhook::echo("7001", "our reply").body()
//! webhook::postback("7005", "Talk to us", "TALK").mid("pb-1").body()
//! webhook::comment("9001", "1002", "nice").body()
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use crate::ACCOUNT_ID;

static NEXT: AtomicU64 = AtomicU64::new(1);

/// One item of an entry's `messaging`: something a person sent the account.
#[derive(Debug, Clone)]
pub struct Messaging {
    /// `message` or `postback`: the key holding what was sent.
    kind: &'static str,
    item: Value,
}

/// A message from `sender` whose text is `text`, with a mid of its own and
/// a timestamp within the last second.
pub fn message(sender: &str, text: &str) -> Messaging {
    Messaging::new(sender, "message", json!({"text": text}))
}

/// The echo of a message the account sent `recipient` whose text is
/// `text`. Mid and timestamp as for [`message`].
pub fn echo(recipient: &str, text: &str) -> Messaging {
    let mut echo = Messaging::new(
        ACCOUNT_ID,
        "message",
        json!({"text": text, "is_echo": true}),
    );
    echo.item["recipient"]["id"] = recipient.into();
    echo
}

/// A postback from `sender`: the button `title` with `payload` was tapped.
/// Mid and timestamp as for [`message`].
pub fn postback(sender: &str, title: &str, payload: &str) -> Messaging {
    Messaging::new(
        sender,
        "postback",
        json!({"title": title, "payload": payload}),
    )
}

impl Messaging {
    fn new(sender: &str, kind: &'static str, mut sent: Value) -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        sent["mid"] = format!("webhook-mid-{n}").into();
        let timestamp = crate::now_ms() - 1000 + n % 1000;
        Self {
            kind,
            item: json!({"sender": {"id": sender}, "recipient": {"id": ACCOUNT_ID},
                "timestamp": timestamp, kind: sent}),
        }
    }

    /// With the mid `mid` instead of its own.
    pub fn mid(mut self, mid: &str) -> Self {
        self.item[self.kind]["mid"] = mid.into();
        self
    }

    /// Sent at `timestamp_ms` (milliseconds since the epoch).
    pub fn at(mut self, timestamp_ms: u64) -> Self {
        self.item["timestamp"] = timestamp_ms.into();
        self
    }

    fn timestamp_ms(&self) -> u64 {
        self.item["timestamp"].as_u64().unwrap()
    }

    /// A delivery of this item alone.
    pub fn body(self) -> Vec<u8> {
        delivery([self])
    }
}

/// One delivery of `items`, in order, in one entry whose `time` is the
/// latest of theirs.
pub fn delivery(items: impl IntoIterator<Item = Messaging>) -> Vec<u8> {
    let items: Vec<Messaging> = items.into_iter().collect();
    let time = items
        .iter()
        .map(Messaging::timestamp_ms)
        .max()
        .unwrap_or_else(crate::now_ms);
    let messaging: Vec<Value> = items.into_iter().map(|item| item.item).collect();
    json!({"object": "instagram", "entry": [{"id": ACCOUNT_ID, "time": time, "messaging": messaging}]})
        .to_string()
        .into_bytes()
}

/// A comment on one of the account's posts.
#[derive(Debug, Clone)]
pub struct Comment {
    value: Value,
}

/// The comment `comment_id` by `author` whose text is `text`, made now on
/// a feed post.
pub fn comment(comment_id: &str, author: &str, text: &str) -> Comment {
    Comment {
        value: json!({"id": comment_id, "from": {"id": author, "username": "someone"}, "text": text,
            "media": {"id": "17950000000000001", "media_product_type": "FEED"}}),
    }
}

impl Comment {
    /// The same comment with no author, as Meta sends some (a live video's
    /// comments, say).
    pub fn without_author(mut self) -> Self {
        self.value.as_object_mut().unwrap().remove("from");
        self
    }

    /// A delivery of this comment alone, as a change to the `comments`
    /// field (whose entry `time` Meta gives in seconds).
    pub fn body(self) -> Vec<u8> {
        json!({"object": "instagram", "entry": [{"id": ACCOUNT_ID, "time": crate::now_ms() / 1000,
            "changes": [{"field": "comments", "value": self.value}]}]})
        .to_string()
        .into_bytes()
    }
}
