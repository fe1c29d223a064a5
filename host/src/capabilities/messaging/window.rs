//! What an event means for later sends, noted before any plugin runs on
//! it: a person writing opens their messaging window; a comment becomes
//! answerable by one private reply (and reachable by moderation).

use std::collections::BTreeSet;

use crate::events::{AccountScope, Comment, Event, EventKind, Subscription};
use crate::state::{CommentSeen, HostState, StateError};

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
/// Windows count from `acted_at`, when the person acted (see
/// [`crate::capabilities::HostServices::observe`]), never from when igloo got round to the
/// event, so a delivery hours late or a backlog handled after downtime
/// does not reopen a window Meta has closed.
pub(crate) async fn observe(
    state: &dyn HostState,
    event: &Event,
    acted_at: u64,
) -> Result<(), StateError> {
    if event.is_echo {
        return Ok(());
    }
    let account = &event.account_id;
    match noted(&event.kind) {
        Noted::Inbound => {
            if let Some(person) = event.counterpart_id() {
                state.record_inbound(account, person, acted_at).await?;
            }
        }
        Noted::Comment(comment) => {
            let seen = CommentSeen {
                account_id: account,
                comment_id: &comment.id,
                author_id: comment.from_id.as_deref(),
                at_ms: acted_at,
            };
            state.record_comment(&seen).await?;
        }
        Noted::Nothing => {}
    }
    Ok(())
}

/// What the host notes of an event of one kind.
enum Noted<'a> {
    /// The person wrote: their messaging window opens.
    Inbound,
    /// A comment that can get one private reply.
    Comment(&'a Comment),
    /// Nothing later sends depend on.
    Nothing,
}

/// The rule itself; `OBSERVED_KINDS` must name exactly the kinds it notes
/// (a test checks both against every fixture).
fn noted(kind: &EventKind) -> Noted<'_> {
    match kind {
        EventKind::Message(_)
        | EventKind::Postback(_)
        | EventKind::Referral(_)
        | EventKind::Optin(_) => Noted::Inbound,
        EventKind::Comment(comment) | EventKind::LiveComment(comment) => Noted::Comment(comment),
        _ => Noted::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{KIND_NAMES, normalise};

    #[test]
    fn the_observed_kinds_are_event_kinds() {
        for kind in OBSERVED_KINDS {
            assert!(KIND_NAMES.contains(kind), "{kind}");
        }
    }

    /// The subscription and the rule must agree, or windows stay closed
    /// for a kind only the rule knows (no plugin subscribes, the host never
    /// sees it) or the host stores events it then ignores.
    #[test]
    fn the_host_subscribes_to_exactly_the_kinds_the_rule_notes() {
        let dir = format!("{}/../tests/fixtures/webhooks", env!("CARGO_MANIFEST_DIR"));
        let mut seen = BTreeSet::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let body = std::fs::read(entry.unwrap().path()).unwrap();
            for event in normalise(&body).unwrap_or_default() {
                let name = event.kind.name();
                let notes = !matches!(noted(&event.kind), Noted::Nothing);
                assert_eq!(notes, OBSERVED_KINDS.contains(&name), "{name}");
                seen.insert(name);
            }
        }
        for kind in ["message", "postback", "referral", "comment", "live-comment"] {
            assert!(seen.contains(kind), "no fixture of kind {kind}");
        }
    }
}
