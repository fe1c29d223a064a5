//! The circuit breaker: a plugin whose runs keep crashing is quarantined
//! for a cool-down, so it stops burning sandbox time, and comes back on its
//! own afterwards (or when an operator resumes it). After the cool-down one
//! trial run is let through; its outcome closes or re-opens the breaker.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A plugin's breaker.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    consecutive_failures: u32,
    quarantined_until: Option<Instant>,
    last_failure: String,
    /// When the trial run after a cool-down was let through.
    trial_since: Option<Instant>,
}

/// How long a trial run may take before another is let through.
const TRIAL_PATIENCE: Duration = Duration::from_secs(60);

/// A breaker's state, for status and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerStatus {
    /// Whether runs are refused now.
    pub quarantined: bool,
    /// Crashes in a row.
    pub consecutive_failures: u32,
    /// Time left in quarantine.
    pub remaining: Option<Duration>,
    /// What the last crash was.
    pub last_failure: String,
}

impl CircuitBreaker {
    /// A breaker that opens after `threshold` crashes in a row and stays
    /// open for `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Whether the plugin is quarantined now (its cool-down not over).
    pub fn is_open(&self) -> bool {
        self.state()
            .quarantined_until
            .is_some_and(|until| Instant::now() < until)
    }

    /// Whether a run may start now: always while closed; after the
    /// cool-down, one trial run at a time (a trial that never reported back
    /// is forgotten after another cool-down).
    pub fn admit(&self) -> bool {
        let mut state = self.state();
        let now = Instant::now();
        match state.quarantined_until {
            None => true,
            Some(until) if now < until => false,
            Some(_) => match state.trial_since {
                Some(since) if now.duration_since(since) < self.cooldown.max(TRIAL_PATIENCE) => {
                    false
                }
                _ => {
                    state.trial_since = Some(now);
                    true
                }
            },
        }
    }

    /// Record a run's outcome; `Some(reason)` for a crash. Returns true when
    /// this outcome put the plugin in quarantine.
    pub fn record(&self, crash: Option<&str>) -> bool {
        let mut state = self.state();
        let Some(reason) = crash else {
            *state = State::default();
            return false;
        };
        state.consecutive_failures += 1;
        state.last_failure = reason.to_owned();
        state.trial_since = None;
        if state.consecutive_failures >= self.threshold {
            state.quarantined_until = Some(Instant::now() + self.cooldown);
            return true;
        }
        false
    }

    /// Lift the quarantine now (an operator's action).
    pub fn reset(&self) {
        *self.state() = State::default();
    }

    /// The current state.
    pub fn status(&self) -> BreakerStatus {
        let state = self.state();
        let remaining = state
            .quarantined_until
            .and_then(|until| until.checked_duration_since(Instant::now()))
            .filter(|left| !left.is_zero());
        BreakerStatus {
            quarantined: remaining.is_some(),
            consecutive_failures: state.consecutive_failures,
            remaining,
            last_failure: state.last_failure.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_closes_on_success() {
        let breaker = CircuitBreaker::new(3, Duration::from_secs(3600));
        assert!(!breaker.record(Some("trap")));
        assert!(!breaker.record(Some("trap")));
        assert!(breaker.admit());
        assert!(breaker.record(Some("fuel")), "the third crash opens it");
        assert!(!breaker.admit());
        assert!(breaker.is_open());
        let status = breaker.status();
        assert!(status.quarantined);
        assert_eq!(
            (status.consecutive_failures, status.last_failure.as_str()),
            (3, "fuel")
        );
        breaker.reset();
        assert!(breaker.admit());
        assert!(!breaker.status().quarantined);
    }

    #[test]
    fn a_success_resets_the_count_and_the_cooldown_lets_one_trial_through() {
        let breaker = CircuitBreaker::new(2, Duration::ZERO);
        breaker.record(Some("trap"));
        breaker.record(None);
        assert!(!breaker.record(Some("trap")), "the count restarted");
        assert!(breaker.record(Some("trap")));
        assert!(!breaker.is_open(), "a zero cool-down has passed");
        assert!(breaker.admit(), "one trial run");
        assert!(!breaker.admit(), "only one while the trial runs");
        assert!(
            breaker.record(Some("trap")),
            "another crash re-opens it at once"
        );
        assert!(breaker.admit(), "the next trial");
        breaker.record(None);
        assert!(
            breaker.admit() && breaker.admit(),
            "closed again: every run"
        );
    }
}
