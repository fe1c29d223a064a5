//! `igloo:plugin/messaging`: direct messages through the Send API. The
//! rules live in [`policy`], the request bodies in [`wire`].

pub mod policy;
mod wire;

use super::{guest_error, now_ms};
use crate::graph::{GraphId, MessageId, SendClass, WebUrl};
use crate::runtime::messaging_api::{Content, Host, MediaKind, Outgoing, Recipient, Sent};
use crate::runtime::{CallContext, HostError, InstanceState};

fn storage(error: crate::state::StateError) -> HostError {
    HostError::Transient(error.to_string())
}

/// Self-messaging (no window) covers only the account talking to itself
/// in the event being handled, never a third person.
fn is_self_messaging(call: &CallContext, person_id: &str) -> bool {
    call.event.is_self && call.event.counterpart_id() == Some(person_id)
}

/// Check everything about sending `outgoing` to `to`, claim the private
/// reply if it is one, and send.
async fn send_checked(
    call: &CallContext,
    to: Recipient,
    outgoing: Outgoing,
) -> Result<Sent, HostError> {
    policy::check_outgoing(&outgoing)?;
    policy::check_human_agent(call, outgoing.human_agent)?;
    let account_id = &call.event.account_id;
    let state = &call.services.state;
    let private_reply = match &to {
        Recipient::Person(person_id) => {
            GraphId::parse("recipient IGSID", person_id)?;
            policy::check_person(call, person_id)?;
            let last = state
                .last_inbound(account_id, person_id)
                .await
                .map_err(storage)?;
            let self_messaging =
                call.event.is_self && call.event.counterpart_id() == Some(person_id);
            policy::check_window(last, now_ms(), outgoing.human_agent, self_messaging)?;
            None
        }
        Recipient::Comment(comment_id) => {
            GraphId::parse("comment id", comment_id)?;
            policy::check_private_reply_scope(call, comment_id)?;
            let made_at = state
                .comment_time(account_id, comment_id)
                .await
                .map_err(storage)?;
            policy::check_comment_age(made_at, now_ms())?;
            if !state
                .claim_private_reply(account_id, comment_id, &call.plugin.id)
                .await
                .map_err(storage)?
            {
                return Err(HostError::Invalid(format!(
                    "comment {comment_id} already had its one private reply"
                )));
            }
            Some(comment_id.clone())
        }
    };
    let class = wire::send_class(&to, &outgoing.content);
    let body = wire::send_body(&to, &outgoing);
    let graph = &call.services.graph;
    let result = call
        .upstream(graph.send_message(account_id, body, class))
        .await;
    if let (Err(error), Some(comment_id)) = (&result, &private_reply) {
        // Only when Meta surely did not send may the reply be tried again.
        if matches!(
            error,
            crate::graph::GraphError::RateLimited { .. } | crate::graph::GraphError::NoToken(_)
        ) {
            state
                .release_private_reply(account_id, comment_id)
                .await
                .map_err(storage)?;
        }
    }
    result
        .map(|sent| Sent {
            recipient_id: sent.recipient_id,
            message_id: sent.message_id,
        })
        .map_err(guest_error)
}

async fn react_checked(
    call: &CallContext,
    recipient_id: &str,
    message_id: &str,
    reaction: Option<&str>,
) -> Result<(), HostError> {
    GraphId::parse("recipient IGSID", recipient_id)?;
    let message_id = MessageId::parse(message_id)?;
    policy::check_reaction(reaction)?;
    policy::check_person(call, recipient_id)?;
    let account_id = &call.event.account_id;
    let last = call
        .services
        .state
        .last_inbound(account_id, recipient_id)
        .await
        .map_err(storage)?;
    policy::check_window(last, now_ms(), false, is_self_messaging(call, recipient_id))?;
    let body = wire::reaction_body(recipient_id, message_id.as_str(), reaction);
    let graph = &call.services.graph;
    call.upstream(graph.send_message(account_id, body, SendClass::Text))
        .await
        .map(drop)
        .map_err(guest_error)
}

impl Host for InstanceState {
    async fn send(
        &mut self,
        to: Recipient,
        message: Outgoing,
    ) -> wasmtime::Result<Result<Sent, HostError>> {
        Ok(send_checked(&self.call, to, message).await)
    }

    async fn send_text(
        &mut self,
        recipient_id: String,
        text: String,
    ) -> wasmtime::Result<Result<Sent, HostError>> {
        let outgoing = Outgoing {
            content: Content::Text(text),
            quick_replies: Vec::new(),
            human_agent: false,
        };
        Ok(send_checked(&self.call, Recipient::Person(recipient_id), outgoing).await)
    }

    async fn react(
        &mut self,
        recipient_id: String,
        message_id: String,
        reaction: Option<String>,
    ) -> wasmtime::Result<Result<(), HostError>> {
        Ok(react_checked(&self.call, &recipient_id, &message_id, reaction.as_deref()).await)
    }

    async fn upload_attachment(
        &mut self,
        kind: MediaKind,
        url: String,
    ) -> wasmtime::Result<Result<String, HostError>> {
        let call = &self.call;
        let result = async {
            let url = WebUrl::parse(&url)?;
            let graph = &call.services.graph;
            let account_id = &call.event.account_id;
            call.upstream(graph.upload_attachment(account_id, wire::media_type(kind), &url))
                .await
                .map_err(guest_error)
        };
        Ok(result.await)
    }
}
