//! Which failed runs are tried again, and when: those that failed for a
//! reason outside the plugin (Meta's bad minute, a rate limit, the run
//! timing out while waiting on Meta, the host's storage), on a configured
//! schedule. Safe because of the journal: a retry does not redo what the
//! failed attempt already did. Plugin faults, and runs that exhaust the
//! schedule, are final: dead letters, for an operator to replay.

use crate::journal::JournalStop;
use crate::runtime::{RunOutcome, RunReceipt};

/// The configured delays between attempts.
#[derive(Debug, Clone)]
pub(crate) struct RetrySchedule {
    delays_ms: Vec<u64>,
}

impl RetrySchedule {
    /// Retry after each of `delays_ms` in turn.
    pub(crate) fn new(delays_ms: Vec<u64>) -> Self {
        Self { delays_ms }
    }

    /// When attempt number `attempts` (from 1), which ended as `receipt`
    /// says at `now_ms`, is tried again; `None` if it is final. Never
    /// before `not_before_ms` (until when Meta refuses the account): an
    /// attempt then would be spent for nothing.
    pub(crate) fn next_attempt_at(
        &self,
        receipt: &RunReceipt,
        attempts: u32,
        now_ms: u64,
        not_before_ms: u64,
    ) -> Option<u64> {
        if !worth_retrying(receipt) {
            return None;
        }
        let delay = self.delays_ms.get(attempts.saturating_sub(1) as usize)?;
        Some(now_ms.saturating_add(*delay).max(not_before_ms))
    }
}

/// Whether the run failed for a passing reason outside the plugin.
fn worth_retrying(receipt: &RunReceipt) -> bool {
    match &receipt.outcome {
        RunOutcome::UpstreamTimeout
        | RunOutcome::Journal(
            JournalStop::Unavailable(_)
            | JournalStop::CutShort { .. }
            | JournalStop::LookupFailed { .. },
        ) => true,
        // The plugin gave up after a host call failed for a passing reason,
        // or said its failure is one.
        RunOutcome::PluginError(_) => receipt.transient_failures > 0 || receipt.retry_requested,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(outcome: RunOutcome, transient_failures: u32) -> RunReceipt {
        RunReceipt {
            transient_failures,
            ..RunReceipt::before_running("p", "1", "k", outcome)
        }
    }

    #[test]
    fn passing_failures_are_retried_on_the_schedule_then_are_final() {
        let schedule = RetrySchedule::new(vec![5_000, 30_000]);
        let meta_failed = receipt(RunOutcome::PluginError("send failed".into()), 1);
        assert_eq!(
            schedule.next_attempt_at(&meta_failed, 1, 100, 0),
            Some(5_100)
        );
        assert_eq!(
            schedule.next_attempt_at(&meta_failed, 2, 100, 0),
            Some(30_100)
        );
        assert_eq!(
            schedule.next_attempt_at(&meta_failed, 3, 100, 0),
            None,
            "exhausted"
        );
        let slow_meta = receipt(RunOutcome::UpstreamTimeout, 0);
        assert_eq!(schedule.next_attempt_at(&slow_meta, 1, 0, 0), Some(5_000));
        let cut_short = JournalStop::CutShort {
            call: 0,
            operation: "messaging.send".into(),
        };
        let unanswered = receipt(RunOutcome::Journal(cut_short), 0);
        assert_eq!(schedule.next_attempt_at(&unanswered, 1, 0, 0), Some(5_000));
        assert_eq!(
            schedule.next_attempt_at(&meta_failed, 1, 100, 300_100),
            Some(300_100),
            "not before Meta lets the account call again"
        );
        let lookup_failed = JournalStop::LookupFailed {
            call: 0,
            operation: "messaging.send".into(),
            reason: "rate limited".into(),
        };
        let unlooked = receipt(RunOutcome::Journal(lookup_failed), 0);
        assert_eq!(schedule.next_attempt_at(&unlooked, 1, 0, 0), Some(5_000));
    }

    #[test]
    fn plugin_faults_and_successes_are_final_at_once() {
        let schedule = RetrySchedule::new(vec![5_000]);
        for outcome in [
            RunOutcome::Ok,
            RunOutcome::PluginError("my own bug".into()),
            RunOutcome::Trap("unreachable".into()),
            RunOutcome::Deadline,
            RunOutcome::FuelExhausted,
            RunOutcome::Journal(JournalStop::Diverged {
                call: 0,
                journaled: "a".into(),
                asked: "b".into(),
            }),
        ] {
            assert_eq!(
                schedule.next_attempt_at(&receipt(outcome.clone(), 0), 1, 0, 0),
                None,
                "{outcome:?}"
            );
        }
        // A trap is the plugin's even if Meta also failed a call, or the
        // plugin had asked for a retry.
        let trapped = RunReceipt {
            retry_requested: true,
            ..receipt(RunOutcome::Trap("panic".into()), 3)
        };
        assert_eq!(schedule.next_attempt_at(&trapped, 1, 0, 0), None);
    }

    #[test]
    fn a_plugin_error_the_plugin_marked_retryable_is_retried() {
        let schedule = RetrySchedule::new(vec![5_000]);
        let marked = RunReceipt {
            retry_requested: true,
            ..receipt(RunOutcome::PluginError("the CRM is down".into()), 0)
        };
        assert_eq!(schedule.next_attempt_at(&marked, 1, 0, 0), Some(5_000));
        assert_eq!(
            schedule.next_attempt_at(&marked, 2, 0, 0),
            None,
            "exhausted"
        );
    }
}
