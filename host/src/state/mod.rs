//! What host functions remember between runs: plugins' key-value state,
//! each conversation's messaging window, which comments already got their
//! one private reply, who opted out, and plugins' timers. Behind [`HostState`] so that a shared backend
//! (NATS KV) can replace SQLite.

mod sqlite;

use async_trait::async_trait;

pub use sqlite::SqliteState;

/// Storage failed.
#[derive(Debug, thiserror::Error)]
#[error("state storage failed: {0}")]
pub struct StateError(#[source] Box<dyn std::error::Error + Send + Sync>);

impl StateError {
    /// A backend's error.
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        StateError(Box::new(error))
    }
}

/// A comment the host saw, as private replies need it.
#[derive(Debug, Clone, Copy)]
pub struct CommentSeen<'a> {
    /// The account commented on.
    pub account_id: &'a str,
    /// The comment.
    pub comment_id: &'a str,
    /// Who wrote it, when Meta said.
    pub author_id: Option<&'a str>,
    /// When it was made.
    pub at_ms: u64,
}

/// Whose keys: one plugin's, within one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KvScope {
    /// The plugin's operator-given id.
    pub plugin: String,
    /// The account.
    pub account_id: String,
}

/// What one scope may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvQuota {
    /// Live keys.
    pub max_keys: u64,
    /// Bytes of live keys and values together.
    pub max_bytes: u64,
}

/// One quota-checked write.
#[derive(Debug, Clone, Copy)]
pub struct KvSet<'a> {
    /// The key.
    pub key: &'a str,
    /// Its new value.
    pub value: &'a [u8],
    /// When it expires, if ever.
    pub expires_at_ms: Option<u64>,
    /// Now, for telling live keys from expired ones.
    pub now_ms: u64,
    /// The scope's quota.
    pub quota: KvQuota,
}

/// A plugin's timer in one conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerEntry {
    /// The plugin's operator-given id.
    pub plugin: String,
    /// The account.
    pub account_id: String,
    /// The person the conversation is with.
    pub person_id: String,
    /// The plugin's key for it, unique in the conversation.
    pub key: String,
    /// When it fires.
    pub due_at_ms: u64,
    /// What it carries back to the plugin.
    pub payload: Vec<u8>,
}

/// Where a timer stands when its event is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerStanding {
    /// It stands, fired (or about to be marked so: its event may be
    /// dispatched before the mark lands).
    Live,
    /// Cancelled since it fired (a tombstone, kept until its event is
    /// done with).
    Cancelled,
    /// Set again, for another time, since it fired.
    SetAgain,
    /// No trace: forgotten once its event ran, or cancelled before it was
    /// marked fired.
    Forgotten,
}

/// Which timers the operator lists: each field set narrows the list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimerFilter {
    /// One plugin's.
    pub plugin: Option<String>,
    /// In one account.
    pub account_id: Option<String>,
    /// In conversations with one person.
    pub person_id: Option<String>,
    /// At most this many, soonest first.
    pub limit: u32,
}

/// A timer as the operator sees it. Its payload is the plugin's own data:
/// only its size is shown.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TimerView {
    /// The plugin's id.
    pub plugin: String,
    /// The account.
    pub account_id: String,
    /// The person the conversation is with.
    pub person_id: String,
    /// The plugin's key for it.
    pub key: String,
    /// When it fires (or fired).
    pub due_at_ms: u64,
    /// Whether it fired and its event is waiting to run.
    pub fired: bool,
    /// How many bytes it carries back to the plugin.
    pub payload_bytes: u64,
}

/// A conversation where automation is paused (a human took it over).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pause {
    /// The account.
    pub account_id: String,
    /// The person the conversation is with.
    pub person_id: String,
    /// Until when, in milliseconds since the epoch; `None` until resumed.
    pub until_ms: Option<u64>,
    /// Who paused it.
    pub by: PausedBy,
    /// When it was decided: an older decision does not replace it.
    pub since_ms: u64,
}

/// Who paused a conversation, which decides who may resume it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum PausedBy {
    /// The operator (admin API, CLI): only the operator resumes it.
    Operator,
    /// Meta's handover protocol: the thread went to another app; it
    /// coming back (or the operator) resumes it.
    Handover,
    /// A plugin, by its id: plugins (or the operator) resume it.
    Plugin(String),
}

impl From<PausedBy> for String {
    fn from(by: PausedBy) -> Self {
        match by {
            PausedBy::Operator => "operator".into(),
            PausedBy::Handover => "handover".into(),
            PausedBy::Plugin(id) => format!("plugin:{id}"),
        }
    }
}

impl TryFrom<String> for PausedBy {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        match text.as_str() {
            "operator" => Ok(PausedBy::Operator),
            "handover" => Ok(PausedBy::Handover),
            _ => text
                .strip_prefix("plugin:")
                .map(|id| PausedBy::Plugin(id.to_owned()))
                .ok_or(text),
        }
    }
}

/// Whose pauses a resume lifts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumedBy {
    /// The operator: any pause.
    Operator,
    /// The thread coming back to this app at `at_ms`: a handover's pause
    /// decided no later.
    Handover {
        /// When the thread came back.
        at_ms: u64,
    },
    /// A plugin: a plugin's pause.
    Plugin,
}

/// What one plugin may have waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerLimits {
    /// Timers in one account.
    pub per_account: u64,
    /// Timers in one conversation.
    pub per_conversation: u64,
}

/// How setting a timer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerSet {
    /// Set.
    Set,
    /// Not set: the plugin has as many timers in the account as it may.
    AccountFull,
    /// Not set: the plugin has as many timers in the conversation as it may.
    ConversationFull,
}

/// How a quota-checked write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvWrite {
    /// Stored.
    Stored,
    /// Not stored: the scope would hold too many keys.
    TooManyKeys,
    /// Not stored: the scope would hold too many bytes.
    TooManyBytes,
}

/// The host's memory.
#[async_trait]
pub trait HostState: Send + Sync + 'static {
    /// A copy of everything as it stands, kept in the folder `scratch`
    /// (for a sandboxed run: it reads the truth, and writes go nowhere).
    async fn copy_to(
        &self,
        scratch: &std::path::Path,
    ) -> Result<std::sync::Arc<dyn HostState>, StateError>;

    /// The value at `key`, unless missing or expired at `now_ms`.
    async fn kv_get(
        &self,
        scope: &KvScope,
        key: &str,
        now_ms: u64,
    ) -> Result<Option<Vec<u8>>, StateError>;
    /// Store a value, expiring at `expires_at_ms` if given, unless the
    /// scope's live keys and bytes at `now_ms` (not counting `key`'s old
    /// value) would then exceed `quota`. Checked and written as one step, so
    /// concurrent runs cannot overshoot the quota together.
    async fn kv_set(&self, scope: &KvScope, set: KvSet<'_>) -> Result<KvWrite, StateError>;
    /// Forget a key.
    async fn kv_delete(&self, scope: &KvScope, key: &str) -> Result<(), StateError>;
    /// Live keys starting with `prefix`, sorted.
    async fn kv_list(
        &self,
        scope: &KvScope,
        prefix: &str,
        now_ms: u64,
    ) -> Result<Vec<String>, StateError>;

    /// The person messaged the account at `at_ms` (opens the 24-hour window).
    async fn record_inbound(
        &self,
        account_id: &str,
        person_id: &str,
        at_ms: u64,
    ) -> Result<(), StateError>;
    /// When the person last messaged the account.
    async fn last_inbound(
        &self,
        account_id: &str,
        person_id: &str,
    ) -> Result<Option<u64>, StateError>;

    /// A comment was made at `at_ms` by `author_id` (for private replies).
    async fn record_comment(&self, comment: &CommentSeen<'_>) -> Result<(), StateError>;
    /// When a known comment was made.
    async fn comment_time(
        &self,
        account_id: &str,
        comment_id: &str,
    ) -> Result<Option<u64>, StateError>;
    /// Take the one private reply of a comment; false if already taken.
    async fn claim_private_reply(
        &self,
        account_id: &str,
        comment_id: &str,
        plugin: &str,
    ) -> Result<bool, StateError>;
    /// Give a claim back after Meta refused the reply, so it can be retried.
    async fn release_private_reply(
        &self,
        account_id: &str,
        comment_id: &str,
    ) -> Result<(), StateError>;

    /// The author of a known comment, when Meta said who it was (an empty
    /// id: Meta was asked, and did not say).
    async fn comment_author(
        &self,
        account_id: &str,
        comment_id: &str,
    ) -> Result<Option<String>, StateError>;
    /// What Meta answered when asked who wrote a known comment whose
    /// webhook did not say: its author, or `None` for no answer (kept as an
    /// empty id, so Meta is asked once). An author already known stays.
    async fn learn_comment_author(
        &self,
        account_id: &str,
        comment_id: &str,
        author_id: Option<&str>,
    ) -> Result<(), StateError>;

    /// The person opted out of (`opted_out`) or back in to automated
    /// messages with a message sent at `at_ms`; an earlier message than the
    /// one that decided last changes nothing.
    async fn record_opt_out(
        &self,
        account_id: &str,
        person_id: &str,
        opted_out: bool,
        at_ms: u64,
    ) -> Result<(), StateError>;
    /// Whether the person is opted out of automated messages.
    async fn opted_out(&self, account_id: &str, person_id: &str) -> Result<bool, StateError>;

    /// Pause automation in a conversation, replacing the pause there was
    /// unless that one was decided later, or it is the operator's or a
    /// plugin's and this a handover's.
    async fn pause(&self, pause: Pause) -> Result<(), StateError>;
    /// Resume automation in a conversation, if `by` may lift its pause;
    /// whether it was paused and now is not.
    async fn resume(
        &self,
        account_id: &str,
        person_id: &str,
        by: ResumedBy,
    ) -> Result<bool, StateError>;
    /// The pause of a conversation, if it is paused at `now_ms`.
    async fn pause_of(
        &self,
        account_id: &str,
        person_id: &str,
        now_ms: u64,
    ) -> Result<Option<Pause>, StateError>;
    /// Every conversation paused at `now_ms`.
    async fn pauses(&self, now_ms: u64) -> Result<Vec<Pause>, StateError>;

    /// Set `timer`, replacing the plugin's timer of the same key in the same
    /// conversation (fired or not), unless that would pass `limits`.
    async fn set_timer(
        &self,
        timer: TimerEntry,
        limits: TimerLimits,
    ) -> Result<TimerSet, StateError>;
    /// Cancel a timer, fired or not: one fired whose event has not run
    /// yet (or waits for a retry) no longer runs
    /// ([`HostState::timer_standing`]). With `due_at_ms`, only the timer
    /// due then (not one set again since). Whether there was one.
    async fn cancel_timer(
        &self,
        plugin: &str,
        account_id: &str,
        person_id: &str,
        key: &str,
        due_at_ms: Option<u64>,
    ) -> Result<bool, StateError>;
    /// Up to `limit` timers due at `now_ms` and not fired, earliest first.
    async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerEntry>, StateError>;
    /// Mark timers fired: their events are stored. Kept until those have
    /// run ([`HostState::forget_timer`]), so a cancel can still stop them.
    async fn mark_fired(&self, fired: Vec<TimerEntry>) -> Result<(), StateError>;
    /// Where the timer `timer` (its key and due time) stands now that its
    /// event is taken.
    async fn timer_standing(&self, timer: &TimerEntry) -> Result<TimerStanding, StateError>;
    /// Forget a fired timer whose event has run.
    async fn forget_timer(&self, timer: &TimerEntry) -> Result<(), StateError>;
    /// When the next timer not yet fired is due.
    async fn next_timer_due(&self) -> Result<Option<u64>, StateError>;
    /// The timers `filter` selects, soonest first (for the operator).
    async fn timers(&self, filter: TimerFilter) -> Result<Vec<TimerView>, StateError>;

    /// Forget everything installation `plugin` kept (its kv values and its
    /// timers): it was removed, and an installation made later under its
    /// id must not find it. Returns how many rows went.
    async fn forget_plugin(&self, plugin: &str) -> Result<u64, StateError>;

    /// Forget kv values and pauses ended at `now_ms`, and windows and comments older
    /// than `before_ms`; returns how many rows went.
    async fn prune(&self, now_ms: u64, before_ms: u64) -> Result<u64, StateError>;
}
