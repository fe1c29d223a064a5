//! From the inbox to the plugins: one ordered lane per conversation, lanes
//! in parallel, each (event, plugin) run recorded, each event completed once
//! every subscribed plugin has run.
//!
//! Backpressure, not errors: at most `max_queued_events` events are taken
//! from the inbox at once, at most `max_in_flight_per_account` of one
//! account are handled at once, and each plugin has its own concurrency
//! bound. Everything else waits, durably, in the inbox.
//!
//! An event a quarantined plugin could not run on is not completed: it
//! stays pending for that plugin, and the dispatcher takes it up again once
//! the plugin comes back (its cool-down over, or an operator's resume).
//!
//! Reads leave out what cannot run yet: events waiting for a later retry
//! (read again when the soonest falls due) and those of accounts whose
//! token Meta refuses (read again once it has a new one), so a plugin that
//! has every event retried, or a day of a refused token, costs nothing per
//! rescan.
//!
//! Plugins in an exclusive group take an event one after another, in
//! priority order, until one handles it ([`groups`]); the others run side
//! by side.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

mod groups;
mod retry;
pub(crate) mod timers;

pub use groups::{ExclusiveGroup, GroupPlace};

use crate::config::RuntimeConfig;
use crate::events::Event;
use crate::inbox::{self, Inbox, InboxError, PendingEvent, RunRecord, Seq};
use crate::journal::{JournalStore, RunJournal, RunKey};
use crate::metrics::Metrics;
use crate::runtime::{LoadedPlugin, RunOutcome, RunReceipt, Runtime};
use crate::state::TimerStanding;
use retry::RetrySchedule;

/// Events read from the inbox per query.
const READ_BATCH: usize = 256;
/// How long to wait before retrying after a storage error.
const STORAGE_RETRY: Duration = Duration::from_secs(1);
/// How often events deferred by a quarantine are looked at again.
const DEFERRED_RESCAN: Duration = Duration::from_secs(1);

/// Reads pending events and runs the plugins on them.
pub(crate) struct Dispatcher {
    inbox: Arc<dyn Inbox>,
    runtime: Arc<Runtime>,
    metrics: Arc<Metrics>,
    /// Waiting events of each busy conversation, earliest first. A lane's
    /// task removes its entry when nothing is left.
    lanes: Mutex<HashMap<String, BinaryHeap<Reverse<Queued>>>>,
    /// One permit per event taken from the inbox and not yet completed.
    queued: Arc<Semaphore>,
    /// Per account, one permit per event being handled; an account's entry
    /// goes when it has nothing in flight.
    accounts: Mutex<HashMap<String, Arc<Semaphore>>>,
    per_account: usize,
    /// Events taken from the inbox and not yet finished with.
    in_flight: Mutex<HashSet<Seq>>,
    /// Some event was left pending for a quarantined plugin.
    deferred: AtomicBool,
    /// When the soonest retry left out of the last full read falls due
    /// (`u64::MAX`: none).
    next_retry_at_ms: AtomicU64,
    /// Set when igloo shuts down: no new events are taken.
    draining: AtomicBool,
    /// When failed runs are tried again.
    retries: RetrySchedule,
    /// Plugins that answer an event once between them.
    groups: Vec<ExclusiveGroup>,
}

/// Why plugins are held back from an event, whatever they subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Nothing holds anyone back.
    None,
    /// A human has the conversation: only plugins that run while paused
    /// get its messages. Final: the message is not answered later either.
    Paused,
    /// The event is a timer's that was cancelled, or set again, after it
    /// fired: it runs for no one.
    TimerGone,
}

impl Hold {
    fn lets_through(self, plugin: &LoadedPlugin) -> bool {
        match self {
            Hold::None => true,
            Hold::Paused => plugin.info.runs_while_paused(),
            Hold::TimerGone => false,
        }
    }

    /// The final record of `plugin`, held back.
    fn record(self, plugin: &str) -> RunRecord {
        match self {
            Hold::None => unreachable!("nothing is held back"),
            Hold::Paused => RunRecord::finished(
                plugin,
                groups::HELD_BACK,
                "automation is paused in this conversation",
            ),
            Hold::TimerGone => RunRecord::finished(
                plugin,
                groups::SKIPPED,
                "the timer was cancelled, or set again, before its event ran",
            ),
        }
    }
}

/// What to do with an event now, given the runs recorded on it.
struct Plan {
    /// Plugins to run now.
    run: Vec<Arc<LoadedPlugin>>,
    /// Group members to record as skipped: another in their group answered.
    skip: Vec<RunRecord>,
    /// Subscribed plugins not yet finished with the event.
    unfinished: usize,
}

/// A read of every pending event from the start.
#[derive(Debug, Clone, Copy)]
struct FullPass {
    /// When it started: each of its reads leaves out retries due later
    /// than this, and the soonest of those is noted when it ends, so one
    /// falling due while the pass reads is not missed.
    started_ms: u64,
    /// An operator acted (a replay, a resume, a new token): nothing is left
    /// out, or another plugin's later retry would hide what they asked for.
    everything: bool,
}

impl FullPass {
    fn filtered() -> Self {
        Self {
            started_ms: crate::clock::now_ms(),
            everything: false,
        }
    }

    fn everything() -> Self {
        Self {
            everything: true,
            ..Self::filtered()
        }
    }

    /// The time its reads pass to the inbox: retries due by then are read.
    fn due_by(self) -> u64 {
        if self.everything {
            u64::MAX
        } else {
            self.started_ms
        }
    }
}

/// An event waiting in its lane, ordered by when it happened, then by
/// arrival. Holds its place in the queue until completed.
struct Queued {
    pending: PendingEvent,
    /// Read again by a rescan: what was read may be stale by the time it
    /// runs, so it is read afresh first.
    retaken: bool,
    _permit: OwnedSemaphorePermit,
}

impl Queued {
    fn order(&self) -> (u64, Seq) {
        (self.pending.event.timestamp_ms, self.pending.seq)
    }
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.order() == other.order()
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.order().cmp(&other.order())
    }
}

impl Dispatcher {
    /// A dispatcher for `inbox` running `runtime`'s plugins within `limits`.
    pub(crate) fn new(
        inbox: Arc<dyn Inbox>,
        runtime: Arc<Runtime>,
        metrics: Arc<Metrics>,
        limits: &RuntimeConfig,
        groups: Vec<ExclusiveGroup>,
    ) -> Arc<Self> {
        Arc::new(Self {
            inbox,
            runtime,
            metrics,
            lanes: Mutex::new(HashMap::new()),
            queued: Arc::new(Semaphore::new(limits.max_queued_events.max(1) as usize)),
            accounts: Mutex::new(HashMap::new()),
            per_account: limits.max_in_flight_per_account.max(1) as usize,
            in_flight: Mutex::new(HashSet::new()),
            deferred: AtomicBool::new(false),
            next_retry_at_ms: AtomicU64::new(u64::MAX),
            draining: AtomicBool::new(false),
            retries: RetrySchedule::new(limits.retry_schedule_ms.clone()),
            groups,
        })
    }

    /// Dispatch until drained: first whatever a previous run left pending,
    /// then each new event as it is appended, and deferred events again
    /// once their plugin may run.
    pub(crate) async fn run(self: Arc<Self>) {
        let mut after: Seq = 0;
        // Reading from the start again, past events taken before.
        let mut rescanning = false;
        // Reading every pending event from the start (the first read, and
        // each rescan): when it ends, the next retry it left is noted.
        let mut pass = Some(FullPass::filtered());
        // One clock for deferrals, not one restarted by every wake-up: under
        // steady traffic, retries and quarantined events still come round.
        let mut rescan = tokio::time::interval(DEFERRED_RESCAN);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.draining.load(Ordering::Acquire) {
            // Read only as many events as there is room for in memory.
            let room = self.queued.available_permits().clamp(1, READ_BATCH);
            let held = self.runtime.services().accounts().held();
            let due_by = pass.map_or_else(crate::clock::now_ms, FullPass::due_by);
            match self.inbox.pending(after, room, &held, due_by).await {
                Ok(batch) if batch.is_empty() => {
                    if let Some(ended) = pass.take() {
                        self.note_next_retry(ended.started_ms).await;
                    }
                    rescanning = false;
                    tokio::select! {
                        () = self.inbox.appended() => {}
                        () = self.runtime.operator_acted() => {
                            after = 0;
                            rescanning = true;
                            pass = Some(FullPass::everything());
                        }
                        // Always armed: a deferral flagged while this loop
                        // was already waiting is still looked at.
                        _ = rescan.tick() => {
                            let deferred = self.deferred.swap(false, Ordering::AcqRel);
                            let retry_due = crate::clock::now_ms()
                                >= self.next_retry_at_ms.load(Ordering::Acquire);
                            if deferred || retry_due {
                                // Look at every pending event again; those in
                                // flight are skipped, deferred ones retaken.
                                after = 0;
                                rescanning = true;
                                pass = Some(FullPass::filtered());
                            }
                        }
                    }
                }
                Ok(mut batch) => {
                    after = batch.last().map_or(after, |pending| pending.seq);
                    batch.retain(|pending| self.should_take(pending));
                    batch.sort_by_key(|pending| (pending.event.timestamp_ms, pending.seq));
                    for pending in batch {
                        let permit = Arc::clone(&self.queued)
                            .acquire_owned()
                            .await
                            .expect("never closed");
                        self.enqueue(Queued {
                            pending,
                            retaken: rescanning,
                            _permit: permit,
                        });
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "reading the inbox failed; retrying");
                    tokio::time::sleep(STORAGE_RETRY).await;
                }
            }
        }
    }

    /// Note when the soonest retry the inbox's reads leave out falls due
    /// (they read only events with something to run now): a rescan then.
    async fn note_next_retry(&self, now_ms: u64) {
        let next = match self.inbox.next_retry_at(now_ms).await {
            Ok(next) => next.unwrap_or(u64::MAX),
            // Not known: look again at every tick.
            Err(error) => {
                tracing::error!(%error, "reading when the next retry is due failed");
                0
            }
        };
        self.next_retry_at_ms.store(next, Ordering::Release);
    }

    /// Whether to take `pending` now: not if it is already in flight, nor
    /// if every plugin it still waits for is quarantined or waiting for a
    /// retry not yet due, or for its turn in an exclusive group behind one
    /// that is (it stays pending and is looked at again later).
    fn should_take(&self, pending: &PendingEvent) -> bool {
        if self.lock_in_flight().contains(&pending.seq) {
            return false;
        }
        // Looked at again when the account gets a new token (a rescan).
        if !self.account_usable(&pending.event.account_id) {
            return false;
        }
        let now = crate::clock::now_ms();
        let plan = self.plan(&pending.event, &pending.runs, now, Hold::None);
        let runnable = plan.run.iter().any(|plugin| plugin.accepts_runs());
        if plan.unfinished > 0 && plan.skip.is_empty() && !runnable {
            self.deferred.store(true, Ordering::Release);
            return false;
        }
        true
    }

    /// Which plugins run on `event` now, given its `runs` so far: each
    /// subscribed plugin not finished with it and due, except that of an
    /// exclusive group only the member whose turn it is runs, and those
    /// `hold` holds back, which are recorded as such.
    fn plan(&self, event: &Event, runs: &[RunRecord], now_ms: u64, hold: Hold) -> Plan {
        let plugins = self.runtime.plugins();
        let receiving: Vec<&Arc<LoadedPlugin>> = plugins
            .iter()
            .filter(|plugin| plugin.info.receives(event))
            .collect();
        let (subscribed, held): (Vec<&Arc<LoadedPlugin>>, Vec<&Arc<LoadedPlugin>>) = receiving
            .iter()
            .copied()
            .partition(|plugin| hold.lets_through(plugin));
        // A group's turn counts every member the event is for, held back
        // or not: an answer given before a pause still stands.
        let placed: Vec<(&str, &GroupPlace)> = plugins
            .iter()
            .filter_map(|plugin| Some((plugin.info.id.as_str(), plugin.info.group.as_ref()?)))
            .collect();
        let all_groups = if placed.is_empty() {
            std::borrow::Cow::Borrowed(self.groups.as_slice())
        } else {
            std::borrow::Cow::Owned(ExclusiveGroup::with_places(&self.groups, placed))
        };
        let turns: Vec<(&ExclusiveGroup, groups::Turn<'_>)> = all_groups
            .iter()
            .map(|group| {
                let members: Vec<&str> = group
                    .plugins
                    .iter()
                    .map(String::as_str)
                    .filter(|id| receiving.iter().any(|plugin| plugin.info.id == *id))
                    .collect();
                let turn = groups::turn(&members, runs);
                (group, turn)
            })
            .collect();
        // A member skipped for an answer that no longer stands (a replay
        // took it back) is not finished: its turn comes again.
        let revived = |id: &str| {
            turns.iter().any(|(group, turn)| {
                !matches!(turn, groups::Turn::Over { .. })
                    && group.plugins.iter().any(|member| member == id)
                    && groups::answer_taken_back(runs, id, &group.name)
            })
        };
        let finished = |id: &str| inbox::is_done_for(runs, id) && !revived(id);
        let due = |id: &str| inbox::is_due_for(runs, id, now_ms) || revived(id);
        let mut plan = Plan {
            run: Vec::new(),
            skip: Vec::new(),
            unfinished: subscribed
                .iter()
                .chain(&held)
                .filter(|p| !finished(&p.info.id))
                .count()
                // Fail closed: an installation the trust store holds back
                // keeps its events waiting.
                + plugins
                    .waiting()
                    .filter(|info| info.receives(event) && !finished(&info.id))
                    .count(),
        };
        plan.skip.extend(
            held.iter()
                .filter(|plugin| !finished(&plugin.info.id))
                .map(|plugin| hold.record(&plugin.info.id)),
        );
        let grouped = |id: &str| all_groups.iter().any(|g| g.plugins.iter().any(|p| p == id));
        plan.run.extend(
            subscribed
                .iter()
                .filter(|plugin| {
                    let id = plugin.info.id.as_str();
                    !grouped(id) && !finished(id) && due(id)
                })
                .map(|plugin| Arc::clone(plugin)),
        );
        for (group, turn) in &turns {
            match turn {
                groups::Turn::Next(id) if due(id) => plan.run.extend(
                    subscribed
                        .iter()
                        .find(|plugin| plugin.info.id == *id)
                        .map(|plugin| Arc::clone(plugin)),
                ),
                groups::Turn::Next(_) | groups::Turn::Done => {}
                groups::Turn::Over { by, skip } => plan.skip.extend(
                    skip.iter()
                        .map(|id| groups::skipped(id, &group.name, by))
                        // Recorded already (for this answer): nothing to write.
                        .filter(|record| {
                            !runs.iter().any(|run| {
                                run.plugin == record.plugin
                                    && run.outcome == record.outcome
                                    && run.detail == record.detail
                                    && run.retry_at_ms.is_none()
                            })
                        }),
                ),
            }
        }
        plan
    }

    /// Whether `account_id`'s events may run: not while Meta refuses its
    /// token.
    fn account_usable(&self, account_id: &str) -> bool {
        self.runtime.services().accounts().usable(account_id)
    }

    fn lock_in_flight(&self) -> std::sync::MutexGuard<'_, HashSet<Seq>> {
        self.in_flight
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Stop taking events, then wait up to `timeout` for the events under
    /// way to finish. Returns how many did not; they stay pending in the
    /// inbox and are handled after the next start.
    pub(crate) async fn drain(&self, timeout: Duration) -> usize {
        self.draining.store(true, Ordering::Release);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = self.lock_in_flight().len();
            if left == 0 || tokio::time::Instant::now() >= deadline {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Queue an event in its conversation's lane, starting the lane if it
    /// is idle. Events that wait while the lane is busy are taken in
    /// timestamp order, so a late delivery of an earlier event still goes
    /// first.
    fn enqueue(self: &Arc<Self>, queued: Queued) {
        self.lock_in_flight().insert(queued.pending.seq);
        let key = queued.pending.event.conversation_key();
        let mut lanes = self
            .lanes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let idle = !lanes.contains_key(&key);
        lanes.entry(key.clone()).or_default().push(Reverse(queued));
        if idle {
            tokio::spawn(Arc::clone(self).drain_lane(key));
        }
    }

    /// Process a conversation's events one at a time, then close the lane.
    async fn drain_lane(self: Arc<Self>, key: String) {
        loop {
            let next = {
                let mut lanes = self
                    .lanes
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner());
                let queue = lanes.get_mut(&key).expect("a running lane has a queue");
                match queue.pop() {
                    Some(Reverse(queued)) => queued,
                    None => {
                        lanes.remove(&key);
                        return;
                    }
                }
            };
            let account_id = next.pending.event.account_id.clone();
            let seq = next.pending.seq;
            if !self.draining.load(Ordering::Acquire) {
                let account = self.account_slots(&account_id);
                let in_flight = account.acquire().await.expect("never closed");
                let pending = if next.retaken {
                    self.read_afresh(seq).await
                } else {
                    Some(next.pending)
                };
                if let Some(pending) = pending {
                    self.process(pending).await;
                }
                drop(in_flight);
                drop(account);
                self.forget_idle_account(&account_id);
            }
            self.lock_in_flight().remove(&seq);
        }
    }

    /// The event as it stands now; `None` once it is complete (a lane
    /// finished it between the rescan's read and now).
    async fn read_afresh(&self, seq: Seq) -> Option<PendingEvent> {
        loop {
            match self.inbox.pending_event(seq).await {
                Ok(pending) => return pending,
                Err(error) => {
                    tracing::error!(%error, "reading an event again failed; retrying");
                    tokio::time::sleep(STORAGE_RETRY).await;
                }
            }
        }
    }

    fn lock_accounts(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Semaphore>>> {
        self.accounts
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn account_slots(&self, account_id: &str) -> Arc<Semaphore> {
        Arc::clone(
            self.lock_accounts()
                .entry(account_id.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_account))),
        )
    }

    /// Drop an account's semaphore once nothing holds it, so the map grows
    /// with the accounts in flight, not with every account ever seen.
    fn forget_idle_account(&self, account_id: &str) {
        let mut accounts = self.lock_accounts();
        if accounts
            .get(account_id)
            .is_some_and(|slots| Arc::strong_count(slots) == 1)
        {
            accounts.remove(account_id);
        }
    }

    /// Run every subscribed plugin on the event, side by side, so a slow or
    /// hostile plugin does not hold up the others (an exclusive group's
    /// members one at a time, until one handles it); record each run; then
    /// complete the event once every plugin is finished with it. A run that
    /// failed for a passing reason is scheduled again instead.
    async fn process(&self, pending: PendingEvent) {
        let event = Arc::clone(&pending.event);
        // Windows and comments are noted before any plugin runs, so a reply
        // to this very message finds its window open.
        while let Err(error) = self.runtime.observe(&event, pending.received_at_ms).await {
            tracing::error!(%error, "noting the event's window failed; retrying");
            tokio::time::sleep(STORAGE_RETRY).await;
        }
        if !self.account_usable(&event.account_id) {
            // Its token was refused since the event was read: it waits.
            return;
        }
        let hold = self.hold(&event, !pending.runs.is_empty()).await;
        let mut runs = pending.runs.clone();
        // A retry (or a replay) left for an installation no longer there
        // would keep the event from completing: it is a dead letter now.
        for run in pending.runs.iter().filter(|run| run.retry_at_ms.is_some()) {
            if !self.runtime.installed(&run.plugin) {
                let record = RunRecord::finished(
                    &run.plugin,
                    crate::installations::REMOVED,
                    "the installation is no longer there to run it",
                );
                self.retry_storage(|| self.inbox.record_run(pending.seq, record.clone()))
                    .await;
                replace_run(&mut runs, record);
            }
        }
        // Each plugin runs once per take, whatever its retry schedule says.
        let mut ran = HashSet::new();
        let unfinished = loop {
            let plan = self.plan(&event, &runs, crate::clock::now_ms(), hold);
            let skipped = !plan.skip.is_empty();
            for record in plan.skip {
                self.retry_storage(|| self.inbox.record_run(pending.seq, record.clone()))
                    .await;
                replace_run(&mut runs, record);
            }
            let now: Vec<_> = plan
                .run
                .into_iter()
                .filter(|plugin| ran.insert(plugin.info.id.clone()))
                .collect();
            if now.is_empty() && !skipped {
                break plan.unfinished;
            }
            let records =
                futures::future::join_all(now.iter().map(|plugin| self.run_one(plugin, &pending)))
                    .await;
            for record in records.into_iter().flatten() {
                replace_run(&mut runs, record);
            }
        };
        if unfinished == 0
            && let Some(timer) = timers::timer_of(&event)
        {
            // Its event has run: the timer is done with. Forgotten before
            // the event completes, so a stop in between leaves no row
            // behind (the event, taken again, finds every run finished).
            let scheduler = &self.runtime.services().scheduler;
            while let Err(error) = scheduler.forget(&timer).await {
                tracing::error!(%error, "forgetting a timer that ran failed; retrying");
                tokio::time::sleep(STORAGE_RETRY).await;
            }
        }
        let completed = unfinished == 0
            && self
                .retry_storage(|| self.inbox.complete(pending.seq))
                .await;
        if !completed {
            // Pending still, for plugins quarantined or waiting to retry
            // (or replayed by an operator meanwhile): looked at again.
            self.deferred.store(true, Ordering::Release);
        }
    }

    /// What holds plugins back from `event` now: a pause of its
    /// conversation, or, for a timer's event, the timer gone since.
    ///
    /// A cancel holds back the event's first take and every retry. Once it
    /// `ran`, a timer set again may be the run's own doing (a follow-up
    /// that schedules the next), and one that left no trace was forgotten
    /// when its event ran to its end (this is an operator's replay): the
    /// event runs.
    async fn hold(&self, event: &Event, ran: bool) -> Hold {
        let services = self.runtime.services();
        loop {
            let hold = match timers::timer_of(event) {
                Some(timer) => {
                    services
                        .scheduler
                        .standing(&timer)
                        .await
                        .map(|standing| match standing {
                            TimerStanding::Live => Hold::None,
                            TimerStanding::SetAgain | TimerStanding::Forgotten if ran => Hold::None,
                            TimerStanding::SetAgain
                            | TimerStanding::Forgotten
                            | TimerStanding::Cancelled => Hold::TimerGone,
                        })
                }
                None => services
                    .conversations
                    .holds_back(event)
                    .await
                    .map(|paused| if paused { Hold::Paused } else { Hold::None }),
            };
            match hold {
                Ok(hold) => return hold,
                Err(error) => {
                    tracing::error!(%error, "reading what holds an event back failed; retrying");
                    tokio::time::sleep(STORAGE_RETRY).await;
                }
            }
        }
    }

    /// Run `plugin` on `pending` and record the run; `None` if it did not
    /// run (its quarantine began meanwhile).
    async fn run_one(&self, plugin: &LoadedPlugin, pending: &PendingEvent) -> Option<RunRecord> {
        let journal = self
            .journal(pending.seq, &pending.journaled_plugins, &plugin.info.id)
            .await;
        let receipt = self
            .runtime
            .run(
                plugin,
                Arc::clone(&pending.event),
                pending.received_at_ms,
                journal,
            )
            .await;
        log_receipt(&receipt);
        self.metrics.receipt(&receipt);
        if receipt.outcome.is_deferred() {
            return None;
        }
        let attempts = pending.attempts_of(&plugin.info.id) + 1;
        let now = crate::clock::now_ms();
        let refused_for = self
            .runtime
            .services()
            .graph
            .backed_off_for(&pending.event.account_id)
            .unwrap_or_default();
        let not_before = now.saturating_add(refused_for.as_millis() as u64);
        let retry_at_ms = self
            .retries
            .next_attempt_at(&receipt, attempts, now, not_before);
        let record = RunRecord {
            plugin: receipt.plugin.clone(),
            outcome: receipt.outcome.label().to_owned(),
            detail: receipt.outcome.detail(),
            attempts,
            retry_at_ms,
        };
        log_disposition(&record);
        self.retry_storage(|| self.inbox.record_run(pending.seq, record.clone()))
            .await;
        Some(record)
    }

    /// The journal of `plugin`'s run on the event at `seq`: read back if an
    /// earlier execution wrote to it (`journaled`), so what it did is not
    /// done again.
    async fn journal(&self, seq: Seq, journaled: &[String], plugin: &str) -> RunJournal {
        let store: Arc<dyn JournalStore> = self.inbox.clone();
        let key = RunKey {
            seq,
            plugin: plugin.to_owned(),
        };
        if !journaled.iter().any(|id| id == plugin) {
            return RunJournal::fresh(store, key);
        }
        loop {
            match RunJournal::open(Arc::clone(&store), key.clone()).await {
                Ok(journal) => return journal,
                Err(error) => {
                    tracing::error!(%error, "reading a run's journal failed; retrying");
                    tokio::time::sleep(STORAGE_RETRY).await;
                }
            }
        }
    }

    /// Storage writes after a run must not be lost: retry until they land.
    async fn retry_storage<T, F, Fut>(&self, write: F) -> T
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, InboxError>>,
    {
        loop {
            match write().await {
                Ok(written) => return written,
                Err(error) => {
                    tracing::error!(%error, "recording a run failed; retrying");
                    tokio::time::sleep(STORAGE_RETRY).await;
                }
            }
        }
    }
}

/// Put `record` in `runs` in place of the plugin's earlier one: each pass
/// plans from the runs as they now stand (a skipped member is finished).
fn replace_run(runs: &mut Vec<RunRecord>, record: RunRecord) {
    runs.retain(|run| run.plugin != record.plugin);
    runs.push(record);
}

/// Say what becomes of a failed run: retried, or a dead letter.
fn log_disposition(record: &RunRecord) {
    match record.retry_at_ms {
        Some(at) => tracing::info!(
            plugin = %record.plugin, outcome = %record.outcome, attempts = record.attempts,
            in_ms = at.saturating_sub(crate::clock::now_ms()), "run failed for a passing reason; retrying"
        ),
        None if record.is_dead_letter() => tracing::warn!(
            plugin = %record.plugin, outcome = %record.outcome, attempts = record.attempts,
            "run is a dead letter: `igloo events replay` runs it again"
        ),
        None => {}
    }
}

/// The receipt as one structured log line.
fn log_receipt(receipt: &RunReceipt) {
    let outcome = receipt.outcome.label();
    let wall_us = receipt.wall.as_micros() as u64;
    if receipt.outcome.is_deferred() {
        tracing::debug!(plugin = %receipt.plugin, event = %receipt.event_key, reason = %receipt.outcome.detail(), "run deferred");
        return;
    }
    if matches!(receipt.outcome, RunOutcome::Ok | RunOutcome::Passed) {
        tracing::info!(
            plugin = %receipt.plugin, version = %receipt.version, event = %receipt.event_key,
            wall_us, upstream_us = receipt.upstream.as_micros() as u64, fuel = receipt.fuel_used,
            peak_memory = receipt.peak_memory_bytes, host_calls = receipt.host_calls, outcome,
            "plugin run"
        );
    } else {
        // The detail may be the plugin's own text: readable, and bounded
        // and stripped already (see `untrusted`).
        let detail = receipt.outcome.detail();
        let detail = crate::untrusted::log_text(&detail);
        if matches!(receipt.outcome, RunOutcome::Declined(_)) {
            tracing::info!(
                plugin = %receipt.plugin, version = %receipt.version, event = %receipt.event_key,
                host_calls = receipt.host_calls, outcome, %detail,
                "plugin run declined: igloo refused its call by rule"
            );
            return;
        }
        tracing::warn!(
            plugin = %receipt.plugin, version = %receipt.version, event = %receipt.event_key,
            wall_us, upstream_us = receipt.upstream.as_micros() as u64, fuel = receipt.fuel_used,
            peak_memory = receipt.peak_memory_bytes, host_calls = receipt.host_calls, outcome,
            %detail, "plugin run failed"
        );
    }
}
