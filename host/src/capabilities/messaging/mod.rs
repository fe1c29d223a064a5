//! `igloo:plugin/messaging`: direct messages through the Send API. The
//! rules live in [`policy`], the step to Meta's request in [`outgoing`],
//! and what events mean for later sends (windows, answerable comments) in
//! [`window`]; who opted out of automated messages, in [`opt_out`].

mod journaled;
pub(super) mod opt_out;
mod outgoing;
pub mod policy;
pub(super) mod window;

use std::sync::Arc;

use wasmtime::component::Linker;

use super::ServesHostCalls;
use crate::clock::now_ms;
use crate::graph::{GraphClient, GraphError, GraphId, MessageId, SendRequest, WebUrl};
use crate::journal::Call;
use crate::plugin_api::messaging::{Content, Host, MediaKind, Outgoing, Recipient, Sent};
use crate::plugin_api::{Capability, HostError, HostResult, HostView};
use crate::state::HostState;
use opt_out::OptOutRules;

/// The interface, and the capabilities importing it needs (either).
pub(super) const IMPORT: super::Import = (
    "igloo:plugin/messaging",
    &[Capability::MessagesReply, Capability::MessagesSend],
);

/// Messages through the Send API, within the windows `state` remembers,
/// to people who have not opted out.
pub struct Messaging {
    graph: Arc<GraphClient>,
    state: Arc<dyn HostState>,
    opt_out: OptOutRules,
}

impl Messaging {
    /// Messages sent through `graph`, checked against `state`, with each
    /// account's `opt_out` keywords.
    pub fn new(graph: Arc<GraphClient>, state: Arc<dyn HostState>, opt_out: OptOutRules) -> Self {
        Self {
            graph,
            state,
            opt_out,
        }
    }

    /// Note what `event`, acted on at `acted_at_ms`, means for later sends:
    /// windows, answerable comments, opt-outs.
    pub(crate) async fn observe(
        &self,
        event: &crate::events::Event,
        acted_at_ms: u64,
    ) -> Result<(), crate::state::StateError> {
        window::observe(self.state.as_ref(), event, acted_at_ms).await?;
        opt_out::observe(self.state.as_ref(), &self.opt_out, event, acted_at_ms).await
    }
}

pub(super) fn link<T: ServesHostCalls>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    super::link_every_version!(linker, messaging, Messaging, |services| &services.messaging)
}

impl HostView<'_, Messaging> {
    /// Whether `person_id`'s window is open for this send. Self-messaging
    /// (no window) covers only the account talking to itself in the event
    /// being handled, never a third person.
    async fn check_window(&self, person_id: &str, human_agent: bool) -> HostResult<()> {
        self.check_reachable(person_id).await?;
        let event = &self.run.event;
        let self_messaging = event.is_self && event.counterpart_id() == Some(person_id);
        let last = self
            .service
            .state
            .last_inbound(self.run.account_id(), person_id)
            .await?;
        Ok(policy::check_window(
            last,
            now_ms(),
            human_agent,
            self_messaging,
        )?)
    }

    /// Refuse any automated message to a person who opted out, or whose
    /// conversation a human took over (unless this plugin runs while
    /// paused).
    async fn check_reachable(&self, person_id: &str) -> HostResult<()> {
        let account_id = self.run.account_id();
        let state = &self.service.state;
        if state.opted_out(account_id, person_id).await? {
            return Err(HostError::OptedOut.into());
        }
        if !self.run.plugin.runs_while_paused()
            && state
                .pause_of(account_id, person_id, now_ms())
                .await?
                .is_some()
        {
            return Err(HostError::Paused.into());
        }
        Ok(())
    }

    /// Claim the one private reply `comment_id` may get. A private reply
    /// is a message to the comment's author, so the author must be known
    /// to be reachable (not opted out, not paused): one igloo was not told
    /// of is asked of Meta, and if Meta does not say, the reply is refused.
    async fn claim_private_reply(&self, comment_id: &str) -> HostResult<()> {
        policy::check_private_reply_scope(self.run, comment_id)?;
        let state = &self.service.state;
        let account_id = self.run.account_id();
        // A comment igloo never saw, or too old, is refused before Meta is
        // asked anything about it.
        let made_at = state.comment_time(account_id, comment_id).await?;
        policy::check_comment_age(made_at, now_ms())?;
        let author = match state.comment_author(account_id, comment_id).await? {
            Some(author) => Some(author).filter(|author| !author.is_empty()),
            None => self.learn_comment_author(comment_id).await?,
        };
        let author = author.ok_or_else(|| {
            HostError::Denied(format!(
                "Meta does not say who wrote comment {comment_id}, so igloo cannot check they \
                 may be messaged (opt-out, pause)"
            ))
        })?;
        self.check_reachable(&author).await?;
        if !state
            .claim_private_reply(account_id, comment_id, &self.run.plugin.id)
            .await?
        {
            return Err(HostError::Invalid(format!(
                "comment {comment_id} already had its one private reply"
            ))
            .into());
        }
        Ok(())
    }

    /// Ask Meta who wrote `comment_id`, and remember the answer, whatever
    /// it is, so Meta is asked once per comment however often a plugin
    /// tries.
    async fn learn_comment_author(&self, comment_id: &str) -> HostResult<Option<String>> {
        let account_id = self.run.account_id();
        let comment = GraphId::parse("comment id", comment_id)?;
        let graph = &self.service.graph;
        let learned = match self
            .run
            .upstream(graph.comment_author(account_id, &comment))
            .await
        {
            Ok(author) => author.filter(|author| GraphId::parse("comment author", author).is_ok()),
            // Meta will not say (the comment is gone, or not ours to
            // read): remembered as no answer, so it is not asked again.
            Err(
                error @ (GraphError::NotFound(_)
                | GraphError::Invalid(_)
                | GraphError::PermissionDenied(_)
                | GraphError::RecipientUnavailable(_)),
            ) => {
                self.service
                    .state
                    .learn_comment_author(account_id, comment_id, None)
                    .await?;
                return Err(error.into());
            }
            Err(error) => return Err(error.into()),
        };
        self.service
            .state
            .learn_comment_author(account_id, comment_id, learned.as_deref())
            .await?;
        Ok(learned)
    }

    /// Send `outgoing` to `to` at most once across executions of the run;
    /// the person it went to as the plugin sees people.
    async fn send_journaled(&self, to: Recipient, outgoing: Outgoing) -> HostResult<Sent> {
        let sent = self.send_once(to, outgoing).await?;
        Ok(Sent {
            recipient_id: self.run.person_for_plugin(sent.recipient_id),
            message_id: sent.message_id,
        })
    }

    async fn send_once(&self, to: Recipient, outgoing: Outgoing) -> HostResult<Sent> {
        let call = journaled::call(&to, &outgoing);
        let findable = journaled::findable(&to, &outgoing);
        self.run
            .journal
            .effect(
                call,
                async || self.send_checked(to, outgoing).await,
                async |started_at_ms| self.resolve_send(findable, started_at_ms).await,
            )
            .await
    }

    /// Check everything about sending `outgoing` to `to`, claim the private
    /// reply if it is one, and send.
    async fn send_checked(&self, to: Recipient, outgoing: Outgoing) -> HostResult<Sent> {
        policy::check_outgoing(&outgoing)?;
        policy::check_human_agent(self.run, outgoing.human_agent)?;
        let private_reply = match &to {
            Recipient::Person(person_id) => {
                GraphId::parse("recipient IGSID", person_id)?;
                policy::check_person(self.run, person_id)?;
                self.check_window(person_id, outgoing.human_agent).await?;
                None
            }
            Recipient::Comment(comment_id) => {
                GraphId::parse("comment id", comment_id)?;
                self.claim_private_reply(comment_id).await?;
                Some(comment_id.clone())
            }
        };
        let account_id = self.run.account_id();
        let request = outgoing::request(to, outgoing);
        let result = self
            .run
            .upstream(self.service.graph.send_message(account_id, &request))
            .await;
        if let (Err(error), Some(comment_id)) = (&result, &private_reply) {
            // Only when Meta surely did not send may the reply be tried again.
            if matches!(
                error,
                GraphError::RateLimited { .. }
                    | GraphError::NoToken(_)
                    | GraphError::TokenInvalid(_)
                    | GraphError::Transient(_)
            ) {
                self.service
                    .state
                    .release_private_reply(account_id, comment_id)
                    .await?;
            }
        }
        let sent = result?;
        Ok(Sent {
            recipient_id: sent.recipient_id,
            message_id: sent.message_id,
        })
    }
}

impl Host for HostView<'_, Messaging> {
    async fn send(&mut self, to: Recipient, message: Outgoing) -> HostResult<Sent> {
        let to = match to {
            Recipient::Person(person) => Recipient::Person(self.run.person_from_plugin(person)?),
            Recipient::Comment(comment) => {
                Recipient::Comment(self.run.comment_from_plugin(comment)?)
            }
        };
        self.send_journaled(to, message).await
    }

    async fn send_text(&mut self, recipient_id: String, text: String) -> HostResult<Sent> {
        let outgoing = Outgoing {
            content: Content::Text(text),
            quick_replies: Vec::new(),
            human_agent: false,
        };
        let person = self.run.person_from_plugin(recipient_id)?;
        self.send_journaled(Recipient::Person(person), outgoing)
            .await
    }

    async fn react(
        &mut self,
        recipient_id: String,
        message_id: String,
        reaction: Option<String>,
    ) -> HostResult<()> {
        let recipient_id = self.run.person_from_plugin(recipient_id)?;
        let call = Call::new(
            "messaging.react",
            &format!("{recipient_id:?} {message_id:?} {reaction:?}"),
        );
        // Reacting again sets the same reaction: harmless to repeat.
        let react = async || {
            GraphId::parse("recipient IGSID", &recipient_id)?;
            let message_id = MessageId::parse(&message_id)?;
            policy::check_reaction(reaction.as_deref())?;
            policy::check_person(self.run, &recipient_id)?;
            self.check_window(&recipient_id, false).await?;
            let request =
                SendRequest::reaction(&recipient_id, message_id.as_str(), reaction.as_deref());
            let graph = &self.service.graph;
            self.run
                .upstream(graph.send_message(self.run.account_id(), &request))
                .await?;
            Ok(())
        };
        self.run.journal.repeatable(call, react).await
    }

    async fn upload_attachment(&mut self, kind: MediaKind, url: String) -> HostResult<String> {
        let call = Call::new("messaging.upload-attachment", &format!("{kind:?} {url:?}"));
        // A second upload only makes a second, unused attachment id.
        let upload = async || {
            let url = WebUrl::parse(&url)?;
            let graph = &self.service.graph;
            let upload =
                graph.upload_attachment(self.run.account_id(), outgoing::media_kind(kind), &url);
            Ok(self.run.upstream(upload).await?)
        };
        self.run.journal.repeatable(call, upload).await
    }
}
