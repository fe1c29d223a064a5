//! Whether an account went quiet: no webhook for longer than four times
//! its usual gap between webhooks (the 90th percentile of its recent gaps),
//! and never sooner than a floor, so a quiet account is not flagged for
//! an ordinary lull, and a busy one is flagged within minutes of going
//! deaf (an expired token, a lost subscription, Meta disabling delivery).

use serde::Serialize;

/// Times the usual gap an account may be quiet before it is flagged.
const USUAL_GAPS: u64 = 4;

/// An account's rhythm of webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Rhythm {
    /// When its last webhook came; `None` if none is remembered.
    pub last_webhook_at_ms: Option<u64>,
    /// Its usual gap between webhooks, when it has had a few.
    pub usual_gap_ms: Option<u64>,
    /// Whether it has been quiet for longer than usual.
    pub silent: bool,
}

/// The rhythm of webhooks received at `received_ms` (any order), now.
pub(crate) fn rhythm(received_ms: &[u64], now_ms: u64, floor_ms: u64) -> Rhythm {
    let mut times = received_ms.to_vec();
    times.sort_unstable();
    let last = times.last().copied();
    let mut gaps: Vec<u64> = times.windows(2).map(|pair| pair[1] - pair[0]).collect();
    gaps.sort_unstable();
    let usual = (gaps.len() >= 3).then(|| gaps[(gaps.len() * 9 / 10).min(gaps.len() - 1)]);
    let allowed = usual.map_or(floor_ms, |gap| (gap * USUAL_GAPS).max(floor_ms));
    Rhythm {
        last_webhook_at_ms: last,
        usual_gap_ms: usual,
        silent: last.is_some_and(|last| now_ms.saturating_sub(last) > allowed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: u64 = 60_000;
    const HOUR: u64 = 60 * MINUTE;

    #[test]
    fn a_busy_account_quiet_for_hours_is_flagged_a_quiet_one_is_not() {
        let busy: Vec<u64> = (0..50).map(|n| n * MINUTE).collect();
        let last = 49 * MINUTE;
        assert!(
            !rhythm(&busy, last + 30 * MINUTE, HOUR).silent,
            "within the floor"
        );
        assert!(rhythm(&busy, last + 2 * HOUR, HOUR).silent);
        let quiet: Vec<u64> = (0..10).map(|n| n * 6 * HOUR).collect();
        let last = 9 * 6 * HOUR;
        assert!(
            !rhythm(&quiet, last + 12 * HOUR, HOUR).silent,
            "its usual rhythm"
        );
        assert!(rhythm(&quiet, last + 25 * HOUR, HOUR).silent);
        assert_eq!(rhythm(&quiet, last, HOUR).usual_gap_ms, Some(6 * HOUR));
        assert_eq!(
            rhythm(&[], 10, HOUR),
            Rhythm {
                last_webhook_at_ms: None,
                usual_gap_ms: None,
                silent: false
            }
        );
        assert!(
            rhythm(&[0], 2 * HOUR, HOUR).silent,
            "one webhook, then the floor"
        );
    }
}
