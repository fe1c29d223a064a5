//! The run a host call serves: which plugin, which event, and the clock
//! that tells the plugin's own time from time spent waiting on Meta.

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::HasData;

use super::Capability;
use crate::events::{Event, Subscription};
use crate::journal::RunJournal;

/// What host functions and the dispatcher know about a loaded plugin.
#[derive(Debug)]
pub struct PluginInfo {
    /// The operator's id for it: what its state, runs, budgets, breaker
    /// and admin route are keyed by.
    pub id: String,
    /// The name its manifest gives itself, for display only.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The events it gets.
    pub subscription: Subscription,
    /// Capabilities it declared and was granted.
    pub capabilities: BTreeSet<Capability>,
    /// Its settings from the operator.
    pub settings: BTreeMap<String, String>,
    /// Per account, settings that take the place of those in `settings`.
    pub account_settings: BTreeMap<String, BTreeMap<String, String>>,
    /// When it is to see pseudonyms in place of people's IGSIDs (and no
    /// usernames), its pseudonyms.
    pub pseudonyms: Option<super::Pseudonyms>,
    /// Its place in an exclusive group, beside the config's groups.
    pub group: Option<crate::config::GroupPlace>,
}

impl PluginInfo {
    /// The setting `key` for events of `account_id`: the account's own
    /// override, else the installation's.
    pub fn setting(&self, account_id: &str, key: &str) -> Option<&String> {
        self.account_settings
            .get(account_id)
            .and_then(|settings| settings.get(key))
            .or_else(|| self.settings.get(key))
    }

    /// Whether it keeps running where a human took the conversation over
    /// (it holds `conversations:while-paused`).
    pub fn runs_while_paused(&self) -> bool {
        self.capabilities
            .contains(&Capability::ConversationsWhilePaused)
    }

    /// Whether `event` is for this plugin: one addressed to it (its own
    /// timer, as long as it may still set timers in that account), or one
    /// its subscription matches.
    pub fn receives(&self, event: &Event) -> bool {
        match event.addressee() {
            Some(plugin) => {
                plugin == self.id
                    && self.capabilities.contains(&Capability::Schedule)
                    && self.subscription.accounts.contains(&event.account_id)
            }
            None => self.subscription.matches(event),
        }
    }
}

/// One run of one plugin on one event, as host functions see it.
pub struct RunContext {
    /// The plugin making the calls.
    pub plugin: Arc<PluginInfo>,
    /// The event being handled.
    pub event: Arc<Event>,
    /// When igloo received the event, in milliseconds since the epoch.
    pub received_at_ms: u64,
    /// Time spent waiting on Meta (and on the journal's durable writes),
    /// which is not the plugin's to pay for.
    pub upstream: Arc<UpstreamClock>,
    /// What earlier executions of this run did, and where its calls with
    /// effects are written down before they act.
    pub journal: RunJournal,
    /// Host calls that failed for a passing reason (Meta's 5xx, a timeout,
    /// a rate limit, the host's storage): the plugin saw them as errors.
    pub transient_failures: AtomicU32,
    /// The plugin asked for a retry should it fail (`run.retry-on-failure`).
    pub retry_requested: AtomicBool,
    /// Whether the last error a host call returned was a refusal by rule
    /// (the person opted out, a human has the conversation, the messaging
    /// window is closed): a plugin that gives up right after one declined
    /// to act, it did not fail. Any other error since clears it.
    pub last_error_by_rule: AtomicBool,
}

impl RunContext {
    /// Whether the plugin holds `capability`.
    pub fn granted(&self, capability: Capability) -> bool {
        self.plugin.capabilities.contains(&capability)
    }

    /// The account whose event is being handled: the only one whose token
    /// the plugin's calls may use.
    pub fn account_id(&self) -> &str {
        &self.event.account_id
    }

    /// The IGSID behind a person id the plugin gave: itself, or for a
    /// pseudonymous plugin the person its pseudonym stands for, who must be
    /// the one whose event this is.
    pub fn person_from_plugin(&self, given: String) -> Result<String, super::HostError> {
        let Some(pseudonyms) = &self.plugin.pseudonyms else {
            return Ok(given);
        };
        pseudonyms
            .reveal(&given, &self.event)
            .map(str::to_owned)
            .ok_or_else(|| {
                super::HostError::Denied(
                    "this installation sees pseudonyms: it may only address the person whose \
                     event it handles, by the pseudonym it was given"
                        .into(),
                )
            })
    }

    /// A comment the plugin would message the author of privately: for a
    /// pseudonymous plugin, only the comment whose event this is (any
    /// other would reach a person it was not given).
    pub fn comment_from_plugin(&self, given: String) -> Result<String, super::HostError> {
        if self.plugin.pseudonyms.is_none() {
            return Ok(given);
        }
        match &self.event.kind {
            crate::events::EventKind::Comment(comment)
            | crate::events::EventKind::LiveComment(comment)
                if comment.id == given =>
            {
                Ok(given)
            }
            _ => Err(super::HostError::Denied(
                "this installation sees pseudonyms: it may only reply privately to the comment \
                 whose event it handles"
                    .into(),
            )),
        }
    }

    /// A person's IGSID as the plugin is to see it: a pseudonym, for a
    /// pseudonymous plugin.
    pub fn person_for_plugin(&self, igsid: String) -> String {
        match &self.plugin.pseudonyms {
            Some(pseudonyms) if igsid != self.event.account_id => pseudonyms.of(&igsid),
            _ => igsid,
        }
    }

    /// Await `call` to Meta (or the third-party provider), counting the
    /// wait as upstream time rather than the plugin's own.
    pub async fn upstream<F: Future>(&self, call: F) -> F::Output {
        let _waiting = self.upstream.start();
        call.await
    }
}

/// What one capability's host functions act on: the run they serve and the
/// capability's own service (its clients, stores and limits).
pub struct HostView<'a, S> {
    /// The run.
    pub run: &'a RunContext,
    /// The capability's service.
    pub service: &'a S,
}

/// Names [`HostView`] for wasmtime's linker (`HasData`).
pub struct ViewOf<S>(PhantomData<S>);

impl<S: 'static> HasData for ViewOf<S> {
    type Data<'a> = HostView<'a, S>;
}

/// Time a run spent waiting on Meta: finished waits plus the one under way.
#[derive(Debug, Default)]
pub struct UpstreamClock {
    state: Mutex<UpstreamState>,
}

#[derive(Debug, Default)]
struct UpstreamState {
    finished: Duration,
    since: Option<Instant>,
}

/// A wait under way; it ends when dropped.
pub struct UpstreamWait<'a>(&'a UpstreamClock);

impl UpstreamClock {
    fn state(&self) -> std::sync::MutexGuard<'_, UpstreamState> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Start a wait.
    pub fn start(&self) -> UpstreamWait<'_> {
        self.state().since.get_or_insert_with(Instant::now);
        UpstreamWait(self)
    }

    /// Upstream time so far, including a wait under way.
    pub fn elapsed(&self) -> Duration {
        let state = self.state();
        state.finished + state.since.map_or(Duration::ZERO, |since| since.elapsed())
    }
}

impl Drop for UpstreamWait<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state();
        if let Some(since) = state.since.take() {
            state.finished += since.elapsed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_time_counts_finished_waits_and_the_one_under_way() {
        let clock = UpstreamClock::default();
        assert_eq!(clock.elapsed(), Duration::ZERO);
        {
            let _wait = clock.start();
            std::thread::sleep(Duration::from_millis(20));
            assert!(clock.elapsed() >= Duration::from_millis(20), "under way");
        }
        let after_one = clock.elapsed();
        assert!(after_one >= Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(clock.elapsed(), after_one, "no wait, no upstream time");
    }
}
