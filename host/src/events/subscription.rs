//! Who wants which events: each plugin's subscription (kinds, accounts,
//! echoes), and the set of them the webhook route consults to tell events
//! the dispatcher must see from those it can store already complete.

use std::collections::BTreeSet;

use super::Event;

/// Which accounts' events a subscription covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountScope {
    /// Every account's.
    All,
    /// Only these accounts' (none, if the manifest's and the operator's
    /// lists have no account in common).
    Only(BTreeSet<String>),
}

impl AccountScope {
    /// The scope both the manifest and the operator allow; an empty list
    /// means every account.
    pub fn intersect(manifest: &[String], operator: &[String]) -> Self {
        let set = |list: &[String]| list.iter().cloned().collect::<BTreeSet<_>>();
        match (manifest.is_empty(), operator.is_empty()) {
            (true, true) => AccountScope::All,
            (false, true) => AccountScope::Only(set(manifest)),
            (true, false) => AccountScope::Only(set(operator)),
            (false, false) => AccountScope::Only(&set(manifest) & &set(operator)),
        }
    }

    /// Whether `account_id` is in scope.
    pub fn contains(&self, account_id: &str) -> bool {
        match self {
            AccountScope::All => true,
            AccountScope::Only(accounts) => accounts.contains(account_id),
        }
    }
}

/// The events one party wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Event kinds, by [`Event::kind_name`].
    pub kinds: BTreeSet<String>,
    /// Accounts.
    pub accounts: AccountScope,
    /// Whether the business's own activity (echoes) is wanted too.
    pub echoes: bool,
}

impl Subscription {
    /// Whether `event` is wanted: its kind, its account, and echoes only if
    /// asked for.
    pub fn matches(&self, event: &Event) -> bool {
        self.kinds.contains(event.kind_name())
            && self.accounts.contains(&event.account_id)
            && (self.echoes || !event.is_echo)
    }
}

/// The webhook field (`subscribed_apps`) that delivers events of `kind`;
/// `None` for igloo's own (timers) and unknown kinds. Message edits and
/// deletions come in `messages`.
pub fn webhook_field(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "message" | "message-deleted" | "message-edit" => "messages",
        "reaction" => "message_reactions",
        "postback" => "messaging_postbacks",
        "seen" => "messaging_seen",
        "referral" => "messaging_referral",
        "optin" => "messaging_optins",
        "handover" => "messaging_handover",
        "comment" => "comments",
        "live-comment" => "live_comments",
        "mention" => "mentions",
        "story-insights" => "story_insights",
        _ => return None,
    })
}

impl Subscription {
    /// The webhook fields that deliver what this subscription wants for
    /// `account_id` (none if the account is out of scope).
    pub fn webhook_fields(&self, account_id: &str) -> BTreeSet<&'static str> {
        if !self.accounts.contains(account_id) {
            return BTreeSet::new();
        }
        // Echoes come in their kind's field.
        self.kinds
            .iter()
            .filter_map(|kind| webhook_field(kind))
            .collect()
    }
}

/// Every subscription there is: the plugins' and the host's own (the
/// events that open messaging windows and make comments answerable).
#[derive(Debug, Clone, Default)]
pub struct Subscriptions(Vec<Subscription>);

impl Subscriptions {
    /// All of `subscriptions`.
    pub fn new(subscriptions: impl IntoIterator<Item = Subscription>) -> Self {
        Self(subscriptions.into_iter().collect())
    }

    /// Whether anyone wants `event`; events nobody wants are stored (for
    /// dedupe and audit) but never dispatched.
    pub fn wanted(&self, event: &Event) -> bool {
        self.0
            .iter()
            .any(|subscription| subscription.matches(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::normalise;

    fn subscription(kinds: &[&str], accounts: &[&str], echoes: bool) -> Subscription {
        let accounts: Vec<String> = accounts.iter().map(|a| a.to_string()).collect();
        Subscription {
            kinds: kinds.iter().map(|kind| kind.to_string()).collect(),
            accounts: AccountScope::intersect(&accounts, &[]),
            echoes,
        }
    }

    fn fixture_event(name: &str) -> Event {
        let path = format!(
            "{}/../tests/fixtures/webhooks/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        normalise(&std::fs::read(path).unwrap()).unwrap().remove(0)
    }

    #[test]
    fn subscriptions_filter_by_kind_account_and_echo() {
        let message = fixture_event("message_text.json");
        let echo = fixture_event("message_echo.json");
        let comment = fixture_event("comment_changes.json");

        assert!(subscription(&["message"], &[], false).matches(&message));
        assert!(!subscription(&["message"], &[], false).matches(&comment));
        assert!(
            !subscription(&["message"], &[], false).matches(&echo),
            "echoes only on request"
        );
        assert!(subscription(&["message"], &[], true).matches(&echo));
        assert!(subscription(&["message"], &["17841400000000001"], false).matches(&message));
        assert!(!subscription(&["message"], &["17841400000000999"], false).matches(&message));

        let all = Subscriptions::new([
            subscription(&["comment"], &[], false),
            subscription(&["message"], &[], false),
        ]);
        assert!(all.wanted(&message) && all.wanted(&comment) && !all.wanted(&echo));
        assert!(!Subscriptions::default().wanted(&message));
    }

    #[test]
    fn the_operator_can_only_narrow_a_plugins_accounts() {
        let list = |ids: &[&str]| ids.iter().map(|id| id.to_string()).collect::<Vec<_>>();
        let only = |ids: &[&str]| AccountScope::Only(ids.iter().map(|id| id.to_string()).collect());
        assert_eq!(AccountScope::intersect(&[], &[]), AccountScope::All);
        assert_eq!(AccountScope::intersect(&list(&["a"]), &[]), only(&["a"]));
        assert_eq!(AccountScope::intersect(&[], &list(&["b"])), only(&["b"]));
        assert_eq!(
            AccountScope::intersect(&list(&["a", "b"]), &list(&["b", "c"])),
            only(&["b"])
        );
        let disjoint = AccountScope::intersect(&list(&["a"]), &list(&["c"]));
        assert!(
            !disjoint.contains("a") && !disjoint.contains("c"),
            "nothing in common, nothing"
        );
    }
}
