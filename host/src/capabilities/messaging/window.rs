//! What an event means for later sends, noted before any plugin runs on
//! it: a person writing opens their messaging window; a comment becomes
//! answerable by one private reply (and reachable by moderation).

use std::collections::BTreeSet;

use crate::events::{AccountScope, Event, EventKind, Subscription};
use crate::state::{HostState, StateError};

/// The kinds that open a window or make a comment answerable.
const OBSERVED_KINDS: &[&str] = &[
    "message",
    "postback",
    "referral",
    "optin",
    "comment",
    "live-comment",
];

/// The host's own subscription: events it must see even when no plugin
/// subscribes to them, or windows would never open.
pub(crate) fn observed_events() -> Subscription {
    Subscription {
        kinds: OBSERVED_KINDS
            .iter()
            .map(|kind| kind.to_string())
            .collect::<BTreeSet<_>>(),
        accounts: AccountScope::All,
        echoes: false,
    }
}

/// Note what `event` means for later host calls.
///
/// Windows count from when the person acted: Meta's timestamp, or the
/// time igloo received the event if that is earlier (a clock running
/// ahead cannot stretch a window). Never from when igloo got round to
/// the event, so a delivery hours late or a backlog handled after
/// downtime does not reopen a window Meta has closed.
pub(crate) async fn observe(
    state: &dyn HostState,
    event: &Event,
    received_at_ms: u64,
) -> Result<(), StateError> {
    if event.is_echo {
        return Ok(());
    }
    let account = &event.account_id;
    let acted_at = event.timestamp_ms.min(received_at_ms);
    match &event.kind {
        EventKind::Message(_)
        | EventKind::Postback(_)
        | EventKind::Referral(_)
        | EventKind::Optin(_) => {
            if let Some(person) = event.counterpart_id() {
                state.record_inbound(account, person, acted_at).await?;
            }
        }
        EventKind::Comment(comment) | EventKind::LiveComment(comment) => {
            state
                .record_comment(account, &comment.id, comment.from_id.as_deref(), acted_at)
                .await?;
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::KIND_NAMES;

    #[test]
    fn the_observed_kinds_are_event_kinds() {
        for kind in OBSERVED_KINDS {
            assert!(KIND_NAMES.contains(kind), "{kind}");
        }
    }
}
