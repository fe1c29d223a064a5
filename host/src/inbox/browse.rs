//! What an operator asks of the inbox: events by account, person, plugin,
//! kind, outcome and time; one event whole (raw body, runs, journal); and
//! replays of dead letters (or, when asked for explicitly, of handled
//! events).

use serde::Serialize;

use super::{RunRecord, Seq};
use crate::journal::JournalEntry;

/// Which events to list. Every field narrows; none set lists the newest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Events of this account.
    pub account_id: Option<String>,
    /// Events of this person (the other side of the conversation).
    pub person_id: Option<String>,
    /// Events this plugin ran on.
    pub plugin: Option<String>,
    /// Events of this kind (`message`, `comment`, …).
    pub kind: Option<String>,
    /// Events with a run that ended so (`ok`, `trap`, `plugin-error`, …).
    pub outcome: Option<String>,
    /// Only dead letters: a run failed and nothing will retry it.
    pub dead_letters: bool,
    /// Received at or after, in milliseconds since the epoch.
    pub since_ms: Option<u64>,
    /// Received before, in milliseconds since the epoch.
    pub until_ms: Option<u64>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// An event as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventSummary {
    /// Its position in the inbox.
    pub seq: Seq,
    /// Its dedupe key.
    pub key: String,
    /// The account.
    pub account_id: String,
    /// The person, if the event has one.
    pub person_id: Option<String>,
    /// Its kind.
    pub kind: String,
    /// When igloo received it.
    pub received_at_ms: u64,
    /// When every plugin was finished with it; `None` while pending.
    pub done_at_ms: Option<u64>,
    /// Its runs so far.
    pub runs: Vec<RunRecord>,
}

/// One plugin's journaled call on an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournaledCall {
    /// The plugin.
    pub plugin: String,
    /// The call.
    #[serde(flatten)]
    pub entry: JournalEntry,
}

/// An event whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventDetail {
    /// What the list shows.
    #[serde(flatten)]
    pub summary: EventSummary,
    /// The event as igloo understood it.
    pub event: serde_json::Value,
    /// The webhook body it came in, exactly as Meta signed it (lossily
    /// decoded if it is not UTF-8); or, for a comment no webhook brought,
    /// the body the reconciler made (marked `"igloo_source":
    /// "reconciler"`, unsigned).
    pub raw_body: String,
    /// The calls with effects its runs made.
    pub journal: Vec<JournaledCall>,
}

/// Run an event again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRequest {
    /// The event.
    pub seq: Seq,
    /// Only this plugin's run; every run of the event otherwise.
    pub plugin: Option<String>,
    /// Replay runs that ended `ok` too. Calls they completed are still not
    /// repeated: the journal returns their results.
    pub force: bool,
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "result")]
pub enum Replayed {
    /// The runs named will run again, shortly.
    Scheduled {
        /// The plugins.
        plugins: Vec<String>,
    },
    /// Nothing to replay: these runs ended `ok` (ask with `force`).
    AlreadyHandled {
        /// The plugins.
        plugins: Vec<String>,
    },
    /// Nothing to replay: no such run, or it is pending or retrying already.
    NothingToReplay,
    /// No event at that position (never, or pruned).
    NotFound,
}
