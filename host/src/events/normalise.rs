//! From Meta's payload to normalised [`Event`]s.

use super::meta::{Entry, Messaging, WebhookPayload};
use super::{Event, EventKind, Message};

/// Why a webhook body could not be read at all. Anything that parses as a
/// webhook but holds nothing igloo knows yields no events, not an error.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The body is not JSON of the webhook's shape.
    #[error("malformed webhook body: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Split a webhook body into events, one per messaging item of every entry.
pub fn normalise(body: &[u8]) -> Result<Vec<Event>, PayloadError> {
    let payload: WebhookPayload = serde_json::from_slice(body)?;
    let mut events = Vec::new();
    for entry in &payload.entry {
        for item in &entry.messaging {
            events.extend(messaging_event(entry, item));
        }
    }
    Ok(events)
}

fn messaging_event(entry: &Entry, item: &Messaging) -> Option<Event> {
    let message = item.message.as_ref()?;
    let sender_id = item.sender.as_ref()?.id.clone();
    let recipient_id = item
        .recipient
        .as_ref()
        .map_or_else(|| entry.id.clone(), |party| party.id.clone());
    let timestamp_ms = item
        .timestamp
        .as_ref()
        .or(entry.time.as_ref())
        .and_then(timestamp_ms)
        .unwrap_or_else(now_ms);
    Some(Event {
        key: format!("message:{}:{}", entry.id, message.mid),
        account_id: entry.id.clone(),
        timestamp_ms,
        kind: EventKind::Message(Message {
            mid: message.mid.clone(),
            sender_id,
            recipient_id,
            text: message.text.clone(),
        }),
    })
}

/// Milliseconds since the epoch from a timestamp in milliseconds or seconds
/// (Meta uses both), as a number or a numeric string.
fn timestamp_ms(value: &serde_json::Value) -> Option<u64> {
    let number = match value {
        serde_json::Value::Number(number) => number.as_u64()?,
        serde_json::Value::String(text) => text.trim().parse().ok()?,
        _ => return None,
    };
    // Below 10^11 a value is seconds: 10^11 ms is 1973, 10^11 s is year 5138.
    Some(if number < 100_000_000_000 {
        number * 1000
    } else {
        number
    })
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../../shared/fixtures/webhooks/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
    }

    #[test]
    fn a_text_message_becomes_one_message_event() {
        let events = normalise(&fixture("message_text.json")).unwrap();
        assert_eq!(
            events,
            vec![Event {
                key: format!("message:17841400000000001:{}", "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDAwMDAwMDAwMDAxOjM0MDI4MjM2Njg0MTcxMDMwMTI0NDI1ODE4NzUxOTk3OTcyODI5MjozMjM4NzQ4MDk1NTU2NDIxMjIzNDE1NjY3NTg0NzY4NDA5N001ZDZD"),
                account_id: "17841400000000001".into(),
                timestamp_ms: 1763800000000,
                kind: EventKind::Message(Message {
                    mid: "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDAwMDAwMDAwMDAxOjM0MDI4MjM2Njg0MTcxMDMwMTI0NDI1ODE4NzUxOTk3OTcyODI5MjozMjM4NzQ4MDk1NTU2NDIxMjIzNDE1NjY3NTg0NzY4NDA5N001ZDZD".into(),
                    sender_id: "6543210987654321".into(),
                    recipient_id: "17841400000000001".into(),
                    text: Some("Hello! Do you ship to Lisbon?".into()),
                }),
            }]
        );
    }

    #[test]
    fn numeric_ids_above_2_pow_53_keep_every_digit() {
        let body = br#"{"object":"instagram","entry":[{"id":17841400000000001,"messaging":[
            {"sender":{"id":9007199254740993},"recipient":{"id":17841400000000001},
             "timestamp":1763800000,"message":{"mid":"m1","text":"hi"}}]}]}"#;
        let events = normalise(body).unwrap();
        assert_eq!(events[0].account_id, "17841400000000001");
        assert_eq!(events[0].counterpart_id(), Some("9007199254740993"));
        assert_eq!(events[0].timestamp_ms, 1763800000000, "seconds become ms");
    }

    #[test]
    fn malformed_json_is_an_error_and_unknown_shapes_are_not() {
        assert!(normalise(b"{not json").is_err());
        assert!(normalise(b"[1,2]").is_err());
        assert_eq!(normalise(br#"{"object":"page"}"#).unwrap(), vec![]);
    }
}
