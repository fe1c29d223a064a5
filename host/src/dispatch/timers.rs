//! Due timers become events: each a `timer` event for the plugin that set
//! it, stored in the inbox, so it is dispatched in its conversation's lane
//! with the journal and retry rules of every other event.
//!
//! A timer is stored as an event, then marked fired; if igloo stops in
//! between, it is stored again at the next start and deduplicated by its
//! key (the plugin, the conversation, the key and the due time), so it
//! fires once. It is forgotten only once its event has run: until then a
//! cancel (or setting the key again) still stops the event from running
//! ([`timer_of`], checked by the dispatcher).

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::capabilities::HostServices;
use crate::events::{Event, EventKind, Timer};
use crate::inbox::Inbox;
use crate::state::TimerEntry;

/// Timers fired per inbox write at most.
const BATCH: usize = 256;
/// The longest wait between looks at the timers: a safety net for a clock
/// that jumps; a timer set sooner wakes the loop at once.
const MAX_WAIT: Duration = Duration::from_secs(1);
/// How long to wait after a storage error.
const STORAGE_RETRY: Duration = Duration::from_secs(1);

/// Fire due timers, for as long as the task runs.
pub(crate) async fn fire_forever(inbox: Arc<dyn Inbox>, services: Arc<HostServices>) {
    let scheduler = &services.scheduler;
    loop {
        match fire_due(inbox.as_ref(), &services).await {
            Ok(fired) if fired == BATCH => continue,
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "firing timers failed; retrying");
                tokio::time::sleep(STORAGE_RETRY).await;
                continue;
            }
        }
        let next = scheduler.next_due().await.ok().flatten();
        let wait = next.map_or(MAX_WAIT, |due| {
            Duration::from_millis(due.saturating_sub(crate::clock::now_ms())).min(MAX_WAIT)
        });
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = scheduler.timer_set() => {}
        }
    }
}

/// Store the timers due now as events, then forget them; how many fired.
async fn fire_due(inbox: &dyn Inbox, services: &HostServices) -> anyhow::Result<usize> {
    let due = services
        .scheduler
        .due(crate::clock::now_ms(), BATCH)
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let fired = due.len();
    inbox
        .append_internal(due.iter().map(timer_event).collect())
        .await?;
    services.scheduler.fired(due).await?;
    Ok(fired)
}

/// The timer `event` fired for, if it is a timer's event.
pub(crate) fn timer_of(event: &Event) -> Option<TimerEntry> {
    let EventKind::Timer(timer) = &event.kind else {
        return None;
    };
    Some(TimerEntry {
        plugin: timer.plugin.clone(),
        account_id: event.account_id.clone(),
        person_id: timer.person_id.clone(),
        key: timer.key.clone(),
        due_at_ms: timer.due_at_ms,
        payload: timer.payload.clone(),
    })
}

/// The event a timer fires as.
fn timer_event(timer: &TimerEntry) -> Event {
    // A digest: a plugin's key may hold any character, and no two timers
    // may share an event key.
    let mut identity = Sha256::new();
    for part in [
        &timer.plugin,
        &timer.account_id,
        &timer.person_id,
        &timer.key,
    ] {
        identity.update(part.len().to_le_bytes());
        identity.update(part.as_bytes());
    }
    identity.update(timer.due_at_ms.to_le_bytes());
    Event {
        key: format!("timer:{}", hex::encode(identity.finalize())),
        account_id: timer.account_id.clone(),
        timestamp_ms: timer.due_at_ms,
        is_echo: false,
        is_self: false,
        is_standby: false,
        kind: EventKind::Timer(Timer {
            plugin: timer.plugin.clone(),
            key: timer.key.clone(),
            person_id: timer.person_id.clone(),
            payload: timer.payload.clone(),
            due_at_ms: timer.due_at_ms,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer(key: &str, due_at_ms: u64) -> TimerEntry {
        TimerEntry {
            plugin: "p".into(),
            account_id: "a".into(),
            person_id: "1".into(),
            key: key.into(),
            due_at_ms,
            payload: b"x".to_vec(),
        }
    }

    #[test]
    fn a_timer_fires_as_an_event_keyed_by_what_it_is() {
        let event = timer_event(&timer("k", 5));
        assert_eq!(event, timer_event(&timer("k", 5)), "stored again: same key");
        assert_ne!(event.key, timer_event(&timer("k", 6)).key, "set again: new");
        assert_ne!(event.key, timer_event(&timer("k:", 5)).key);
        assert_eq!(event.addressee(), Some("p"));
        assert_eq!(event.conversation_key(), "a/1", "in the person's lane");
        assert_eq!(event.timestamp_ms, 5);
        assert_eq!(timer_of(&event), Some(timer("k", 5)), "and back");
    }
}
