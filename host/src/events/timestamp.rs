//! One time unit: Meta sends milliseconds (messaging), seconds (changes,
//! `entry.time` of comments) and strings; igloo keeps milliseconds.

use chrono::DateTime;
use serde_json::Value;

/// Below this a number is seconds: 10^11 ms is 1973, 10^11 s is year 5138.
const SECONDS_BELOW: u64 = 100_000_000_000;

/// Milliseconds since the epoch from a JSON number or string in seconds or
/// milliseconds, or an RFC 3339 / `+0000`-style date. `None` if unreadable.
pub fn normalise_timestamp_ms(value: &Value) -> Option<u64> {
    let number = match value {
        Value::Number(number) => number.as_u64().or_else(|| {
            number
                .as_f64()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .map(|n| n as u64)
        })?,
        Value::String(text) => {
            let text = text.trim();
            match text.parse::<u64>() {
                Ok(number) => number,
                Err(_) => {
                    let parsed = DateTime::parse_from_rfc3339(text)
                        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%z"))
                        .ok()?;
                    return u64::try_from(parsed.timestamp_millis()).ok();
                }
            }
        }
        _ => return None,
    };
    Some(if number < SECONDS_BELOW {
        number.saturating_mul(1000)
    } else {
        number
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seconds_milliseconds_and_strings_become_milliseconds() {
        assert_eq!(
            normalise_timestamp_ms(&json!(1763800000000u64)),
            Some(1763800000000)
        );
        assert_eq!(
            normalise_timestamp_ms(&json!(1520622968)),
            Some(1520622968000)
        );
        assert_eq!(
            normalise_timestamp_ms(&json!("1527459824")),
            Some(1527459824000)
        );
        assert_eq!(
            normalise_timestamp_ms(&json!("2025-08-14T19:06:34+0000")),
            Some(1755198394000)
        );
        assert_eq!(
            normalise_timestamp_ms(&json!("2025-08-14T19:06:34Z")),
            Some(1755198394000)
        );
        assert_eq!(
            normalise_timestamp_ms(&json!("<TIME_WEBHOOK_WAS_TRIGGERED>")),
            None
        );
        assert_eq!(normalise_timestamp_ms(&json!(null)), None);
        assert_eq!(normalise_timestamp_ms(&json!(-5)), None);
    }
}
