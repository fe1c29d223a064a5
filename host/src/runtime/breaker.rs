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
    /// Counts quarantines (and operator resets): a run admitted before the
    /// latest one reports into a breaker that has moved on, and is ignored.
    generation: u64,
}

/// Leave to run, from [`CircuitBreaker::admit`]; hand it back to
/// [`CircuitBreaker::record`] with the run's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    generation: u64,
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

    /// Whether a run would be admitted now, without taking the trial.
    pub fn accepts_runs(&self) -> bool {
        let state = self.state();
        self.would_admit(&state, Instant::now())
    }

    fn would_admit(&self, state: &State, now: Instant) -> bool {
        match state.quarantined_until {
            None => true,
            Some(until) if now < until => false,
            Some(_) => state
                .trial_since
                .is_none_or(|since| now.duration_since(since) >= self.cooldown.max(TRIAL_PATIENCE)),
        }
    }

    /// Leave for a run to start now: always while closed; after the
    /// cool-down, one trial run at a time (a trial that never reported back
    /// is forgotten after another cool-down).
    pub fn admit(&self) -> Option<Admission> {
        let mut state = self.state();
        let now = Instant::now();
        if !self.would_admit(&state, now) {
            return None;
        }
        if state.quarantined_until.is_some() {
            state.trial_since = Some(now);
        }
        Some(Admission {
            generation: state.generation,
        })
    }

    /// Record how an admitted run ended; `Some(reason)` for a crash.
    /// Returns true when this outcome put the plugin in quarantine. A run
    /// admitted before the latest quarantine or reset changes nothing: one
    /// lucky success cannot lift a quarantine.
    pub fn record(&self, admission: Admission, crash: Option<&str>) -> bool {
        let mut state = self.state();
        if admission.generation != state.generation {
            return false;
        }
        let Some(reason) = crash else {
            let generation = state.generation;
            *state = State {
                generation,
                ..State::default()
            };
            return false;
        };
        state.consecutive_failures += 1;
        state.last_failure = reason.to_owned();
        state.trial_since = None;
        if state.consecutive_failures >= self.threshold {
            state.quarantined_until = Some(Instant::now() + self.cooldown);
            state.generation += 1;
            return true;
        }
        false
    }

    /// Let go of an admitted run that counts neither way: it stopped for
    /// something outside the plugin (its account's token refused). A trial
    /// it was may start again.
    pub fn release(&self, admission: Admission) {
        let mut state = self.state();
        if admission.generation == state.generation {
            state.trial_since = None;
        }
    }

    /// Lift the quarantine now (an operator's action).
    pub fn reset(&self) {
        let mut state = self.state();
        let generation = state.generation + 1;
        *state = State {
            generation,
            ..State::default()
        };
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

    fn crash(breaker: &CircuitBreaker, reason: &str) -> bool {
        let admission = breaker.admit().expect("admitted");
        breaker.record(admission, Some(reason))
    }

    #[test]
    fn opens_after_the_threshold_and_closes_on_success() {
        let breaker = CircuitBreaker::new(3, Duration::from_secs(3600));
        assert!(!crash(&breaker, "trap"));
        assert!(!crash(&breaker, "trap"));
        assert!(crash(&breaker, "fuel"), "the third crash opens it");
        assert!(breaker.admit().is_none());
        assert!(breaker.is_open() && !breaker.accepts_runs());
        let status = breaker.status();
        assert!(status.quarantined);
        assert_eq!(
            (status.consecutive_failures, status.last_failure.as_str()),
            (3, "fuel")
        );
        breaker.reset();
        assert!(breaker.admit().is_some());
        assert!(!breaker.status().quarantined);
    }

    #[test]
    fn a_success_resets_the_count_and_the_cooldown_lets_one_trial_through() {
        let breaker = CircuitBreaker::new(2, Duration::ZERO);
        crash(&breaker, "trap");
        let ok = breaker.admit().unwrap();
        breaker.record(ok, None);
        assert!(!crash(&breaker, "trap"), "the count restarted");
        assert!(crash(&breaker, "trap"));
        assert!(!breaker.is_open(), "a zero cool-down has passed");
        let trial = breaker.admit().expect("one trial run");
        assert!(breaker.admit().is_none(), "only one while the trial runs");
        assert!(!breaker.accepts_runs());
        assert!(
            breaker.record(trial, Some("trap")),
            "a crashing trial re-opens it at once"
        );
        let trial = breaker.admit().expect("the next trial");
        breaker.record(trial, None);
        assert!(
            breaker.admit().is_some() && breaker.admit().is_some(),
            "closed again: every run"
        );
    }

    #[test]
    fn a_run_admitted_before_the_quarantine_cannot_lift_it() {
        let breaker = CircuitBreaker::new(1, Duration::from_secs(3600));
        let slow = breaker.admit().unwrap();
        assert!(crash(&breaker, "trap"), "another run crashes: quarantined");
        breaker.record(slow, None);
        assert!(breaker.is_open(), "the older run's success changes nothing");
    }
}
