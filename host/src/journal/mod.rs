//! The journal of effects: every host call that acts outside the instance
//! (a send, a reply, a hide, a kv write) is written down per (event,
//! plugin, call number): its intent, durably, before it acts; its outcome
//! after. When a run is executed again for the same event (after a crash,
//! a drain, a retry), calls already done return their journaled result
//! instead of acting twice, so a person never gets the same reply twice.
//!
//! - A call that asks for something else than the journal holds at its
//!   position stops the run: the plugin is not deterministic, and nothing
//!   further is done for it ([`JournalStop::Diverged`]).
//! - A call whose intent was written but whose outcome was not (a crash or
//!   a timeout while the request was in flight) is `unknown`. It is never
//!   repeated blindly: the capability resolves it where Meta lets igloo
//!   find out (a message is looked for in the conversation), or repeats it
//!   if repeating is harmless. What cannot be resolved stops the run,
//!   stays `unknown` and is counted ([`JournalStop::Unknown`]).
//! - A call that cannot safely be repeated and went out unanswered stops
//!   the run ([`JournalStop::CutShort`], retried): handed back as an error,
//!   the plugin would send it again.
//! - A call that failed surely (refused by a policy, by Meta) is done
//!   again at the next attempt if it was the run's last, so policies such
//!   as the messaging window are checked anew; one the plugin went on from
//!   is given back as it was, so the plugin takes the same path.
//! - kv reads are journaled with their results (up to a budget per run),
//!   so a plugin that read, wrote and then failed reads the same on retry.
//!
//! Storage sits behind [`JournalStore`], kept in the inbox's database so a
//! call's intent and its event's runs commit in one place.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use async_trait::async_trait;

use crate::inbox::{InboxError, Seq};
use crate::plugin_api::{HostError, HostFailure, HostResult, UpstreamClock};

/// Where a journaled call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallStatus {
    /// Its intent is written; it is acting now, or a crash cut it short.
    Started,
    /// It acted; its result is journaled and is what a replay returns.
    Done,
    /// It surely did not act (a refusal): a later attempt does it again.
    Failed,
    /// It may have acted; nobody knows yet.
    Unknown,
}

impl CallStatus {
    /// The label stored and shown.
    pub fn label(self) -> &'static str {
        match self {
            CallStatus::Started => "started",
            CallStatus::Done => "done",
            CallStatus::Failed => "failed",
            CallStatus::Unknown => "unknown",
        }
    }

    /// The status a stored label names.
    pub fn from_label(label: &str) -> Option<Self> {
        [
            CallStatus::Started,
            CallStatus::Done,
            CallStatus::Failed,
            CallStatus::Unknown,
        ]
        .into_iter()
        .find(|status| status.label() == label)
    }
}

/// One journaled host call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JournalEntry {
    /// Its position among the run's journaled calls, from 0.
    pub call: u32,
    /// What it does, e.g. `messaging.send`.
    pub operation: String,
    /// A SHA-256 of its arguments, as compared on replay.
    pub request: String,
    /// The start of its arguments, cut and stripped, for the operator.
    pub summary: String,
    /// Where it stands.
    pub status: CallStatus,
    /// Its result once done (or the error it failed with).
    pub result: Option<String>,
    /// When its intent was written, in milliseconds since the epoch.
    pub started_at_ms: u64,
}

/// Which run a journal belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunKey {
    /// The event's position in the inbox.
    pub seq: Seq,
    /// The plugin's operator-given id.
    pub plugin: String,
}

/// A journal kept in memory: for a sandboxed run (its calls go nowhere,
/// so there is nothing to keep), and for measuring the journal's cost
/// without its storage.
#[derive(Default)]
pub struct MemoryJournal(std::sync::Mutex<std::collections::HashMap<RunKey, Vec<JournalEntry>>>);

#[async_trait]
impl JournalStore for MemoryJournal {
    async fn journal(&self, run: &RunKey) -> Result<Vec<JournalEntry>, InboxError> {
        let runs = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        Ok(runs.get(run).cloned().unwrap_or_default())
    }

    async fn write_entry(&self, run: &RunKey, entry: JournalEntry) -> Result<(), InboxError> {
        self.write_entry_soon(run, entry);
        Ok(())
    }

    fn write_entry_soon(&self, run: &RunKey, entry: JournalEntry) {
        let mut runs = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        let entries = runs.entry(run.clone()).or_default();
        entries.retain(|old| old.call != entry.call);
        entries.push(entry);
    }

    async fn accounts_for(&self, _: &str) -> Result<bool, InboxError> {
        Ok(false)
    }
}

/// Durable storage for journals.
#[async_trait]
pub trait JournalStore: Send + Sync + 'static {
    /// The run's journaled calls, in call order.
    async fn journal(&self, run: &RunKey) -> Result<Vec<JournalEntry>, InboxError>;
    /// Write (or overwrite) one call's entry; returns once durable.
    async fn write_entry(&self, run: &RunKey, entry: JournalEntry) -> Result<(), InboxError>;
    /// Write one call's entry without waiting for it: after every write
    /// made before, before every write made after. For outcomes: lost in a
    /// crash, the call is `started`, and is resolved as one cut short.
    fn write_entry_soon(&self, run: &RunKey, entry: JournalEntry);
    /// Whether some done call's result holds `message_id` (as a JSON
    /// string, as [`Journaled`] results of sends do): a message found in a
    /// conversation that another call already accounts for.
    async fn accounts_for(&self, message_id: &str) -> Result<bool, InboxError>;
}

/// Why the journal stopped a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalStop {
    /// The plugin asked for another call than the journal holds at this
    /// position, so its earlier results may not fit: nothing more is done.
    #[error(
        "call {call} was `{journaled}` before and is `{asked}` now: the plugin is not deterministic"
    )]
    Diverged {
        /// The position.
        call: u32,
        /// What the journal holds there.
        journaled: String,
        /// What the plugin asked for.
        asked: String,
    },
    /// A call that cannot safely be repeated went out and no answer came:
    /// the run stops before the plugin can send it again, and the next
    /// attempt looks for it (a retry, like Meta's bad minute it came from).
    #[error(
        "call {call} (`{operation}`) went out and no answer came; the next attempt looks for it"
    )]
    CutShort {
        /// The position.
        call: u32,
        /// What it does.
        operation: String,
    },
    /// Whether a call acted could not be looked up now, for a passing
    /// reason: the run stops before the plugin goes on without knowing,
    /// and is retried; the next attempt looks again.
    #[error("call {call} (`{operation}`) may have acted, and looking failed: {reason}")]
    LookupFailed {
        /// The position.
        call: u32,
        /// What it does.
        operation: String,
        /// Why the lookup failed.
        reason: String,
    },
    /// A call may have acted and igloo cannot find out whether it did.
    #[error("call {call} (`{operation}`) may have acted and could not be resolved: {reason}")]
    Unknown {
        /// The position.
        call: u32,
        /// What it does.
        operation: String,
        /// Why it could not be resolved.
        reason: String,
    },
    /// The journal could not be read or written: acting without it could
    /// act twice.
    #[error("the journal is unavailable: {0}")]
    Unavailable(String),
}

/// What a capability learned about a call that may have acted.
pub enum Resolution<T> {
    /// It acted, with this result.
    Done(T),
    /// It did not act (or acting again is harmless): act now.
    NotDone,
    /// Nobody can tell.
    Unresolved(String),
    /// It cannot be looked for now (the account's token is refused): the
    /// run stops with this failure, and the next attempt looks again.
    Later(HostFailure),
    /// Looking failed for a passing reason (Meta's bad minute, a rate
    /// limit): the run stops, to be retried, and the next attempt looks
    /// again ([`JournalStop::LookupFailed`]).
    LookupFailed(String),
}

/// A host call's result as the journal keeps it: JSON, in which ids are
/// JSON strings (see [`JournalStore::accounts_for`]).
pub trait Journaled: Sized {
    /// The result as text.
    fn to_record(&self) -> String;
    /// The result back from text; `None` if it does not parse.
    fn from_record(record: &str) -> Option<Self>;
}

impl Journaled for () {
    fn to_record(&self) -> String {
        String::new()
    }

    fn from_record(_: &str) -> Option<Self> {
        Some(())
    }
}

/// An id (an attachment's, a reply's) as a JSON string.
impl Journaled for String {
    fn to_record(&self) -> String {
        serde_json::Value::from(self.as_str()).to_string()
    }

    fn from_record(record: &str) -> Option<Self> {
        serde_json::from_str(record).ok()
    }
}

/// A kv value, or its absence: `null` or hex.
impl Journaled for Option<Vec<u8>> {
    fn to_record(&self) -> String {
        match self {
            Some(bytes) => serde_json::Value::from(hex::encode(bytes)).to_string(),
            None => "null".to_owned(),
        }
    }

    fn from_record(record: &str) -> Option<Self> {
        let hex: Option<String> = serde_json::from_str(record).ok()?;
        match hex {
            Some(hex) => hex::decode(hex).ok().map(Some),
            None => Some(None),
        }
    }
}

/// A yes or no (a timer was there to cancel), as JSON.
impl Journaled for bool {
    fn to_record(&self) -> String {
        self.to_string()
    }

    fn from_record(record: &str) -> Option<Self> {
        record.parse().ok()
    }
}

/// Keys, as a JSON list.
impl Journaled for Vec<String> {
    fn to_record(&self) -> String {
        serde_json::Value::from(self.clone()).to_string()
    }

    fn from_record(record: &str) -> Option<Self> {
        serde_json::from_str(record).ok()
    }
}

/// A refusal as the journal keeps it, so a replay can give it back.
fn failure_record(error: &HostError) -> String {
    let (kind, detail) = match error {
        HostError::Denied(text) => ("denied", text.clone()),
        HostError::WindowClosed => ("window-closed", String::new()),
        HostError::ConsentRequired => ("consent-required", String::new()),
        HostError::RateLimited(ms) => ("rate-limited", ms.to_string()),
        HostError::Invalid(text) => ("invalid", text.clone()),
        HostError::NotFound => ("not-found", String::new()),
        HostError::Transient(text) => ("transient", text.clone()),
        HostError::Rejected(text) => ("rejected", text.clone()),
        HostError::Blocked => ("blocked", String::new()),
        HostError::PrivateAccount => ("private-account", String::new()),
        HostError::QuotaExceeded(text) => ("quota-exceeded", text.clone()),
        HostError::Paused => ("paused", String::new()),
        HostError::OptedOut => ("opted-out", String::new()),
    };
    serde_json::json!({ "error": kind, "detail": detail }).to_string()
}

/// What a failed call's entry keeps: the refusal the plugin saw, so a
/// replay can give it back; nothing for a trap (the run ended there).
fn failure_entry(failure: &HostFailure) -> Option<String> {
    match failure {
        HostFailure::Refused(error) | HostFailure::Unanswered(error) => Some(failure_record(error)),
        HostFailure::Trap(_) => None,
    }
}

/// The refusal [`failure_record`] kept; `None` for what it did not write.
fn failure_from_record(record: &str) -> Option<HostError> {
    let value: serde_json::Value = serde_json::from_str(record).ok()?;
    let detail = value["detail"].as_str()?.to_owned();
    Some(match value["error"].as_str()? {
        "denied" => HostError::Denied(detail),
        "window-closed" => HostError::WindowClosed,
        "consent-required" => HostError::ConsentRequired,
        "rate-limited" => HostError::RateLimited(detail.parse().ok()?),
        "invalid" => HostError::Invalid(detail),
        "not-found" => HostError::NotFound,
        "transient" => HostError::Transient(detail),
        "rejected" => HostError::Rejected(detail),
        "blocked" => HostError::Blocked,
        "private-account" => HostError::PrivateAccount,
        "quota-exceeded" => HostError::QuotaExceeded(detail),
        "paused" => HostError::Paused,
        "opted-out" => HostError::OptedOut,
        _ => return None,
    })
}

/// One call as a capability describes it.
pub struct Call {
    operation: &'static str,
    /// SHA-256 of the arguments: what replays compare. Arguments are a
    /// plugin's text, up to its host-call copy limit: only a digest and a
    /// short preview are stored, however large they are.
    fingerprint: String,
    summary: String,
}

/// Bytes of a call's arguments kept for the operator to read.
const SUMMARY_BYTES: usize = 160;

impl Call {
    /// `operation` (e.g. `messaging.send`) with `arguments`: everything
    /// that would make it act differently.
    pub fn new(operation: &'static str, arguments: &str) -> Self {
        use sha2::{Digest, Sha256};
        Self {
            operation,
            fingerprint: hex::encode(Sha256::digest(arguments.as_bytes())),
            summary: crate::untrusted::sanitize(arguments, SUMMARY_BYTES),
        }
    }
}

/// The journal of one run: what earlier executions of the same run did,
/// and the store new calls are written to.
pub struct RunJournal {
    store: Arc<dyn JournalStore>,
    key: RunKey,
    earlier: Vec<JournalEntry>,
    next_call: AtomicU32,
    /// Where waits for the store are counted: the host's time, not the
    /// plugin's (set by the runtime).
    waits: Option<Arc<UpstreamClock>>,
    /// Bytes of read results this execution may still journal.
    read_budget: AtomicUsize,
    /// A call with an effect succeeded (now or in an earlier execution).
    acted: AtomicBool,
}

/// The operations that go through [`RunJournal::effect`]: one that acted
/// answered the event (see [`RunJournal::acted`]).
const EFFECTS: &[&str] = &[
    "messaging.send",
    "comments.reply",
    "conversations.thread-control",
];

/// Bytes of read results journaled per run at most; reads past it are
/// journaled without their result, and read afresh on replay.
const READ_BUDGET_BYTES: usize = 1024 * 1024;

impl RunJournal {
    /// The journal of `key`, read from `store`.
    pub async fn open(store: Arc<dyn JournalStore>, key: RunKey) -> Result<Self, InboxError> {
        let earlier = store.journal(&key).await?;
        Ok(Self::with_entries(store, key, earlier))
    }

    /// The journal of a run known to have journaled nothing yet (no read).
    pub fn fresh(store: Arc<dyn JournalStore>, key: RunKey) -> Self {
        Self::with_entries(store, key, Vec::new())
    }

    fn with_entries(store: Arc<dyn JournalStore>, key: RunKey, earlier: Vec<JournalEntry>) -> Self {
        // An effect an earlier execution did, or may have done, answered
        // the event, whether or not this execution calls it again.
        let acted = earlier.iter().any(|entry| {
            EFFECTS.contains(&entry.operation.as_str()) && entry.status != CallStatus::Failed
        });
        Self {
            store,
            key,
            earlier,
            next_call: AtomicU32::new(0),
            waits: None,
            read_budget: AtomicUsize::new(READ_BUDGET_BYTES),
            acted: AtomicBool::new(acted),
        }
    }

    /// Count waits for durable writes on `clock`, so a plugin's deadline is
    /// not spent on the host's bookkeeping.
    pub fn count_waits_on(&mut self, clock: Arc<UpstreamClock>) {
        self.waits = Some(clock);
    }

    /// Which run this is.
    pub fn key(&self) -> &RunKey {
        &self.key
    }

    /// Perform `call` at most once across executions of this run.
    ///
    /// A call done before returns its journaled result. One that may have
    /// acted is passed to `resolve`. Otherwise the intent is written, then
    /// `perform` acts, then its outcome is written. A call that went out
    /// unanswered stops the run (a retry resolves it): handed back to the
    /// plugin as an error, it would be sent again.
    pub async fn effect<T: Journaled>(
        &self,
        call: Call,
        perform: impl AsyncFnOnce() -> HostResult<T>,
        resolve: impl AsyncFnOnce(u64) -> Resolution<T>,
    ) -> HostResult<T> {
        debug_assert!(
            EFFECTS.contains(&call.operation),
            "{} is an effect: list it in EFFECTS",
            call.operation
        );
        let result = self.perform_once(call, perform, resolve, false).await;
        if result.is_ok() {
            self.acted.store(true, Ordering::Relaxed);
        }
        result
    }

    /// Whether a call with an effect (a message sent, a comment answered)
    /// succeeded in this run, in this execution or an earlier one (or may
    /// have, cut short): a plugin that did so answered the event, whatever
    /// it says afterwards.
    pub fn acted(&self) -> bool {
        self.acted.load(Ordering::Relaxed)
    }

    /// [`RunJournal::effect`] for a call that is harmless to repeat (a
    /// hide, a kv write): one that may have acted is simply done again,
    /// and an unanswered one is the plugin's to try again.
    pub async fn repeatable<T: Journaled>(
        &self,
        call: Call,
        perform: impl AsyncFnOnce() -> HostResult<T>,
    ) -> HostResult<T> {
        self.perform_once(call, perform, async |_| Resolution::NotDone, true)
            .await
    }

    async fn perform_once<T: Journaled>(
        &self,
        call: Call,
        perform: impl AsyncFnOnce() -> HostResult<T>,
        resolve: impl AsyncFnOnce(u64) -> Resolution<T>,
        repeatable: bool,
    ) -> HostResult<T> {
        let number = self.next_call.fetch_add(1, Ordering::Relaxed);
        if let Some(earlier) = self.earlier_at(number, &call)? {
            let record = earlier.result.as_deref().unwrap_or_default();
            let is_last = number as usize + 1 == self.earlier.len();
            match earlier.status {
                CallStatus::Done => {
                    return T::from_record(record).ok_or_else(|| unreadable(number));
                }
                // The plugin went on after this refusal before: give it the
                // same one, or all it did next no longer fits. The last
                // call's refusal is what the retry is for: done again.
                CallStatus::Failed if !is_last => {
                    return match failure_from_record(record) {
                        Some(error) => Err(HostFailure::Refused(error)),
                        None => Err(unreadable(number)),
                    };
                }
                CallStatus::Failed => {}
                CallStatus::Started | CallStatus::Unknown => {
                    match resolve(earlier.started_at_ms).await {
                        Resolution::Done(result) => {
                            let record = Some(result.to_record());
                            let entry = self.entry(
                                number,
                                &call,
                                CallStatus::Done,
                                record,
                                earlier.started_at_ms,
                            );
                            self.write(entry).await?;
                            return Ok(result);
                        }
                        Resolution::NotDone => {}
                        Resolution::Later(failure) => return Err(failure),
                        Resolution::LookupFailed(reason) => {
                            return Err(stop(JournalStop::LookupFailed {
                                call: number,
                                operation: call.operation.to_owned(),
                                reason,
                            }));
                        }
                        Resolution::Unresolved(reason) => {
                            let entry = self.entry(
                                number,
                                &call,
                                CallStatus::Unknown,
                                None,
                                earlier.started_at_ms,
                            );
                            self.write(entry).await?;
                            return Err(stop(JournalStop::Unknown {
                                call: number,
                                operation: call.operation.to_owned(),
                                reason,
                            }));
                        }
                    }
                }
            }
        }
        let started_at_ms = crate::clock::now_ms();
        self.write(self.entry(number, &call, CallStatus::Started, None, started_at_ms))
            .await?;
        let result = perform().await;
        let (status, record) = match &result {
            Ok(value) => (CallStatus::Done, Some(value.to_record())),
            Err(HostFailure::Unanswered(_)) if !repeatable => {
                let entry = self.entry(number, &call, CallStatus::Unknown, None, started_at_ms);
                self.write(entry).await?;
                return Err(stop(JournalStop::CutShort {
                    call: number,
                    operation: call.operation.to_owned(),
                }));
            }
            Err(failure) => (CallStatus::Failed, failure_entry(failure)),
        };
        // Only the intent must be durable before acting. The outcome rides
        // on the next commit: lost in a crash, the call is `started` and is
        // resolved as one cut short.
        let entry = self.entry(number, &call, status, record, started_at_ms);
        self.store.write_entry_soon(&self.key, entry);
        result
    }

    /// Read state through the journal: a replay gets what the earlier
    /// execution read, so a plugin that read, wrote and then failed takes
    /// the same path on its retry (reading its own write instead would make
    /// it ask for other calls, and diverge). Nothing acts, so no intent is
    /// written. Results past the run's read budget are not kept: such a
    /// read is done afresh on replay.
    pub async fn read<T: Journaled>(
        &self,
        call: Call,
        perform: impl AsyncFnOnce() -> HostResult<T>,
    ) -> HostResult<T> {
        let number = self.next_call.fetch_add(1, Ordering::Relaxed);
        if let Some(earlier) = self.earlier_at(number, &call)?
            && let (CallStatus::Done, Some(record)) = (earlier.status, &earlier.result)
        {
            return T::from_record(record).ok_or_else(|| unreadable(number));
        }
        let started_at_ms = crate::clock::now_ms();
        let result = perform().await;
        let (status, record) = match &result {
            Ok(value) => {
                let record = value.to_record();
                let budget = &self.read_budget;
                let kept = budget
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                        left.checked_sub(record.len())
                    })
                    .is_ok();
                (CallStatus::Done, kept.then_some(record))
            }
            Err(failure) => (CallStatus::Failed, failure_entry(failure)),
        };
        let entry = self.entry(number, &call, status, record, started_at_ms);
        self.store.write_entry_soon(&self.key, entry);
        result
    }

    /// What an earlier execution journaled at position `number`, if any.
    /// Another call than `call` there stops the run: what the plugin did
    /// before no longer fits what it does now.
    fn earlier_at(&self, number: u32, call: &Call) -> HostResult<Option<&JournalEntry>> {
        let Some(earlier) = self.earlier.get(number as usize) else {
            return Ok(None);
        };
        if earlier.operation != call.operation || earlier.request != call.fingerprint {
            return Err(stop(JournalStop::Diverged {
                call: number,
                journaled: earlier.operation.clone(),
                asked: call.operation.to_owned(),
            }));
        }
        Ok(Some(earlier))
    }

    /// Whether some done call already accounts for `message_id`.
    pub async fn accounts_for(&self, message_id: &str) -> Result<bool, InboxError> {
        self.store.accounts_for(message_id).await
    }

    fn entry(
        &self,
        call: u32,
        described: &Call,
        status: CallStatus,
        result: Option<String>,
        started_at_ms: u64,
    ) -> JournalEntry {
        JournalEntry {
            call,
            operation: described.operation.to_owned(),
            request: described.fingerprint.clone(),
            summary: described.summary.clone(),
            status,
            result,
            started_at_ms,
        }
    }

    async fn write(&self, entry: JournalEntry) -> HostResult<()> {
        let _waiting = self.waits.as_ref().map(|clock| clock.start());
        self.store
            .write_entry(&self.key, entry)
            .await
            .map_err(|error| stop(JournalStop::Unavailable(error.to_string())))
    }
}

/// A journaled result that does not parse: the journal cannot vouch for
/// what the call did.
fn unreadable(call: u32) -> HostFailure {
    stop(JournalStop::Unavailable(format!(
        "call {call}'s journaled result does not parse"
    )))
}

/// End the run: a journal that cannot vouch for a call must not let it act.
fn stop(reason: JournalStop) -> HostFailure {
    HostFailure::Trap(wasmtime::Error::new(reason))
}

#[cfg(test)]
mod tests;
