//! Outbound rate limits, applied in the host before Meta is called: per
//! account and per send class (PLATFORM.md A5: text 100/s, audio and video
//! 10/s, private replies 750/h, Conversations API 2/s), plus a back-off when
//! Meta's usage headers or a rate-limit error say the account is throttled.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use reqwest::header::HeaderMap;
use serde_json::Value;

/// Which budget a call draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendClass {
    /// Text, links, reactions, stickers: 100/s per account.
    Text,
    /// Audio and video: 10/s per account.
    Media,
    /// Private replies to comments: 750/h per account.
    PrivateReply,
    /// Conversations API reads: 2/s per account.
    Conversations,
    /// Everything else (comments, profiles): only Meta's back-off applies.
    Other,
}

/// Per-account budgets and back-offs.
pub struct Throttle {
    text: DefaultKeyedRateLimiter<String>,
    media: DefaultKeyedRateLimiter<String>,
    private_replies: DefaultKeyedRateLimiter<String>,
    conversations: DefaultKeyedRateLimiter<String>,
    backoff_until: Mutex<HashMap<String, Instant>>,
    queues: Mutex<HashMap<(String, SendClass), Queue>>,
}

/// Where callers of one account and class wait their turn: a fair lock.
type Queue = Arc<tokio::sync::Mutex<()>>;

fn per_second(n: u32) -> Quota {
    Quota::per_second(NonZeroU32::new(n).expect("non-zero"))
}

impl Default for Throttle {
    fn default() -> Self {
        Self {
            text: DefaultKeyedRateLimiter::keyed(per_second(100)),
            media: DefaultKeyedRateLimiter::keyed(per_second(10)),
            private_replies: DefaultKeyedRateLimiter::keyed(Quota::per_hour(
                NonZeroU32::new(750).expect("non-zero"),
            )),
            conversations: DefaultKeyedRateLimiter::keyed(per_second(2)),
            backoff_until: Mutex::new(HashMap::new()),
            queues: Mutex::new(HashMap::new()),
        }
    }
}

impl Throttle {
    /// The queue callers of one account and class wait in (a fair lock).
    pub fn queue(&self, account_id: &str, class: SendClass) -> Queue {
        let mut queues = self
            .queues
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        Arc::clone(queues.entry((account_id.to_owned(), class)).or_default())
    }

    /// Take one call of `class` for `account_id`, or say how long to wait.
    pub fn acquire(&self, account_id: &str, class: SendClass) -> Result<(), Duration> {
        if let Some(until) = self.backoff(account_id) {
            let now = Instant::now();
            if until > now {
                return Err(until - now);
            }
        }
        let limiter = match class {
            SendClass::Text => &self.text,
            SendClass::Media => &self.media,
            SendClass::PrivateReply => &self.private_replies,
            SendClass::Conversations => &self.conversations,
            SendClass::Other => return Ok(()),
        };
        limiter
            .check_key(&account_id.to_owned())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// How long Meta still refuses `account_id`, if it does.
    pub fn backed_off_for(&self, account_id: &str) -> Option<Duration> {
        let until = self.backoff(account_id)?;
        until.checked_duration_since(Instant::now())
    }

    fn backoff(&self, account_id: &str) -> Option<Instant> {
        let backoffs = self
            .backoff_until
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        backoffs.get(account_id).copied()
    }

    /// Stop calling for `account_id` for `wait`.
    pub fn back_off(&self, account_id: &str, wait: Duration) {
        let mut backoffs = self
            .backoff_until
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let until = Instant::now() + wait;
        let entry = backoffs.entry(account_id.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// Forget what idle accounts left behind: budgets back to full,
    /// queues nobody waits in, back-offs that are over. Keeps every map
    /// sized by the accounts active now, not by every account ever seen.
    pub fn prune(&self) {
        for limiter in [
            &self.text,
            &self.media,
            &self.private_replies,
            &self.conversations,
        ] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        self.queues
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .retain(|_, queue| Arc::strong_count(queue) > 1);
        let now = Instant::now();
        self.backoff_until
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .retain(|_, until| *until > now);
    }

    /// How many accounts have state here (for tests of pruning).
    pub fn tracked_accounts(&self) -> usize {
        let queues = self
            .queues
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .len();
        queues
            + self
                .backoff_until
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .len()
            + self.text.len()
    }

    /// Read Meta's usage headers; at 100% of a budget, back off for the
    /// time Meta gives (or a minute). Returns the back-off applied.
    pub fn observe_usage(&self, account_id: &str, headers: &HeaderMap) -> Option<Duration> {
        let wait = throttled_for(headers)?;
        self.back_off(account_id, wait);
        Some(wait)
    }
}

/// How long Meta's usage headers say to wait, if any budget is spent.
/// `X-Business-Use-Case-Usage: {"<id>": [{"call_count": 100, …,
/// "estimated_time_to_regain_access": 5}]}` (minutes) and
/// `X-App-Usage: {"call_count": 100, …}` (percent).
pub fn throttled_for(headers: &HeaderMap) -> Option<Duration> {
    let json = |name: &str| -> Option<Value> {
        serde_json::from_str(headers.get(name)?.to_str().ok()?).ok()
    };
    let spent = |usage: &Value| {
        ["call_count", "total_cputime", "total_time"]
            .iter()
            .any(|field| {
                usage
                    .get(field)
                    .and_then(Value::as_f64)
                    .is_some_and(|percent| percent >= 100.0)
            })
    };
    let mut wait: Option<Duration> = None;
    if let Some(Value::Object(by_id)) = json("x-business-use-case-usage") {
        for usage in by_id.values().filter_map(Value::as_array).flatten() {
            let minutes = usage
                .get("estimated_time_to_regain_access")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            if minutes > 0 || spent(usage) {
                let this = Duration::from_secs(minutes.max(1) * 60);
                wait = Some(wait.map_or(this, |longest| longest.max(this)));
            }
        }
    }
    if json("x-app-usage").is_some_and(|usage| spent(&usage)) {
        wait = Some(wait.unwrap_or(Duration::from_secs(60)));
    }
    wait
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn text_is_limited_to_100_per_second_per_account() {
        let throttle = Throttle::default();
        for _ in 0..100 {
            assert!(throttle.acquire("a", SendClass::Text).is_ok());
        }
        let wait = throttle.acquire("a", SendClass::Text).unwrap_err();
        assert!(wait <= Duration::from_millis(10), "{wait:?}");
        assert!(
            throttle.acquire("b", SendClass::Text).is_ok(),
            "accounts are isolated"
        );
        for _ in 0..10 {
            assert!(throttle.acquire("a", SendClass::Media).is_ok());
        }
        assert!(
            throttle.acquire("a", SendClass::Media).is_err(),
            "media: 10/s"
        );
        assert!(throttle.acquire("a", SendClass::Other).is_ok());
    }

    #[test]
    fn pruning_forgets_idle_accounts_queues_and_back_offs() {
        let throttle = Throttle::default();
        for n in 0..100 {
            let account = format!("acct-{n}");
            drop(throttle.queue(&account, SendClass::Text));
            throttle.acquire(&account, SendClass::Text).unwrap();
            throttle.back_off(&account, Duration::ZERO);
        }
        let held = throttle.queue("busy", SendClass::Text);
        assert!(throttle.tracked_accounts() >= 200);
        std::thread::sleep(Duration::from_millis(20));
        throttle.prune();
        assert_eq!(
            throttle.tracked_accounts(),
            1,
            "only the queue someone still holds is kept"
        );
        drop(held);
    }

    #[test]
    fn private_replies_are_limited_to_750_per_hour() {
        let throttle = Throttle::default();
        for _ in 0..750 {
            assert!(throttle.acquire("a", SendClass::PrivateReply).is_ok());
        }
        let wait = throttle.acquire("a", SendClass::PrivateReply).unwrap_err();
        assert!(wait > Duration::from_secs(1), "{wait:?}");
    }

    #[test]
    fn conversations_api_reads_are_limited_to_2_per_second() {
        let throttle = Throttle::default();
        for _ in 0..2 {
            assert!(throttle.acquire("a", SendClass::Conversations).is_ok());
        }
        let wait = throttle.acquire("a", SendClass::Conversations).unwrap_err();
        assert!(
            wait > Duration::from_millis(100) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        assert!(
            throttle.acquire("a", SendClass::Text).is_ok(),
            "its own budget"
        );
        assert!(throttle.acquire("b", SendClass::Conversations).is_ok());
    }

    #[test]
    fn usage_headers_at_100_percent_back_the_account_off() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-app-usage",
            HeaderValue::from_static(r#"{"call_count":42,"total_cputime":10,"total_time":12}"#),
        );
        assert_eq!(throttled_for(&headers), None);
        headers.insert(
            "x-business-use-case-usage",
            HeaderValue::from_static(r#"{"17841400000000001":[{"type":"instagram","call_count":100,"total_cputime":20,"total_time":30,"estimated_time_to_regain_access":5}]}"#),
        );
        assert_eq!(throttled_for(&headers), Some(Duration::from_secs(300)));

        let throttle = Throttle::default();
        throttle.observe_usage("a", &headers);
        let wait = throttle.acquire("a", SendClass::Other).unwrap_err();
        assert!(wait > Duration::from_secs(290), "{wait:?}");
        assert!(throttle.backed_off_for("a").unwrap() > Duration::from_secs(290));
        assert_eq!(throttle.backed_off_for("b"), None);
        assert!(throttle.acquire("b", SendClass::Text).is_ok());
    }
}
