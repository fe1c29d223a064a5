//! Sends through the journal: a send done before returns its message id;
//! a send that may have gone out (a crash or a timeout with the request in
//! flight) is looked for in the conversation before it is sent again.

use super::Messaging;
use crate::graph::{GraphError, GraphId};
use crate::journal::{Call, Journaled, Resolution};
use crate::plugin_api::HostView;
use crate::plugin_api::messaging::{Content, Outgoing, Recipient, Sent};

impl Journaled for Sent {
    fn to_record(&self) -> String {
        serde_json::json!([self.recipient_id, self.message_id]).to_string()
    }

    fn from_record(record: &str) -> Option<Self> {
        let (recipient_id, message_id) = serde_json::from_str(record).ok()?;
        Some(Sent {
            recipient_id,
            message_id,
        })
    }
}

/// The journal's description of a send: everything that makes it differ.
pub(super) fn call(to: &Recipient, outgoing: &Outgoing) -> Call {
    Call::new("messaging.send", &format!("{to:?} {outgoing:?}"))
}

/// What a send that may have gone out can be looked for by: a text to a
/// person. Other sends (media, templates, private replies) cannot be told
/// apart in a conversation, and stay unknown.
pub(super) fn findable(to: &Recipient, outgoing: &Outgoing) -> Option<(String, String)> {
    match (to, &outgoing.content) {
        (Recipient::Person(person), Content::Text(text)) => Some((person.clone(), text.clone())),
        _ => None,
    }
}

impl HostView<'_, Messaging> {
    /// Whether the send `findable` describes, started at `started_at_ms`,
    /// is in the conversation: a message from the account to the person,
    /// with that text, no earlier, that no other journaled send accounts for.
    pub(super) async fn resolve_send(
        &self,
        findable: Option<(String, String)>,
        started_at_ms: u64,
    ) -> Resolution<Sent> {
        let Some((person, text)) = findable else {
            return Resolution::Unresolved(
                "only a text to a person can be looked for in the conversation".into(),
            );
        };
        let Ok(person_id) = GraphId::parse("recipient IGSID", &person) else {
            // Never sent: the check refuses it before anything goes out.
            return Resolution::NotDone;
        };
        let graph = &self.service.graph;
        let lookup = graph.find_sent_text(self.run.account_id(), &person_id, &text, started_at_ms);
        let found = match self.run.upstream(lookup).await {
            Ok(found) => found,
            // Not to be told now: looked for again once it has a new token.
            Err(error @ GraphError::TokenInvalid(_)) => {
                return Resolution::Later(error.into());
            }
            // Looked for again at the run's retry.
            Err(
                error @ (GraphError::RateLimited { .. }
                | GraphError::Transient(_)
                | GraphError::Unanswered(_)),
            ) => {
                return Resolution::LookupFailed(format!(
                    "reading the conversation failed: {error}"
                ));
            }
            Err(error) => {
                return Resolution::Unresolved(format!("reading the conversation failed: {error}"));
            }
        };
        for message in found {
            match self.run.journal.accounts_for(&message.message_id).await {
                Ok(true) => continue,
                Ok(false) => {
                    tracing::info!(
                        plugin = %self.run.plugin.id,
                        message_id = %message.message_id,
                        "a send cut short was found in the conversation: not sent again"
                    );
                    return Resolution::Done(Sent {
                        recipient_id: person,
                        message_id: message.message_id,
                    });
                }
                Err(error) => return Resolution::Unresolved(error.to_string()),
            }
        }
        Resolution::NotDone
    }
}
