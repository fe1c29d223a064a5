//! `igloo:plugin/comments`: public replies (`comments:reply`, to the comment
//! being handled) and moderation (`comments:moderate`: hide, unhide,
//! delete any comment of the account).

use super::{Capability, guest_error};
use crate::events::EventKind;
use crate::graph::GraphId;
use crate::runtime::comments_api::Host;
use crate::runtime::{CallContext, HostError, InstanceState};

/// `comments:reply` reaches only the comment being handled, and not a live
/// comment (Meta does not take replies to those).
fn check_reply(call: &CallContext, comment_id: &str) -> Result<(), HostError> {
    if !call.granted(Capability::CommentsReply) {
        return Err(HostError::Denied(
            "replying to comments needs comments:reply".into(),
        ));
    }
    match &call.event.kind {
        EventKind::Comment(comment) if comment.id == comment_id => Ok(()),
        EventKind::LiveComment(comment) if comment.id == comment_id => Err(HostError::Invalid(
            "Meta does not take replies to live comments".into(),
        )),
        _ => Err(HostError::Denied(format!(
            "comments:reply may answer only the comment being handled; {comment_id} is not it"
        ))),
    }
}

/// Meta's limit on a comment's text, in characters.
const MAX_COMMENT_CHARS: usize = 2200;

fn check_comment_text(text: &str) -> Result<(), HostError> {
    super::messaging_policy::check_chars("a comment reply", text, MAX_COMMENT_CHARS)
}

fn check_moderate(call: &CallContext) -> Result<(), HostError> {
    if call.granted(Capability::CommentsModerate) {
        Ok(())
    } else {
        Err(HostError::Denied(
            "hiding and deleting comments needs comments:moderate".into(),
        ))
    }
}

impl Host for InstanceState {
    async fn reply(
        &mut self,
        comment_id: String,
        text: String,
    ) -> wasmtime::Result<Result<String, HostError>> {
        let call = &self.call;
        let result = async {
            let comment = GraphId::parse("comment id", &comment_id)?;
            check_reply(call, &comment_id)?;
            check_comment_text(&text)?;
            let graph = &call.services.graph;
            call.upstream(graph.reply_to_comment(&call.event.account_id, &comment, &text))
                .await
                .map_err(guest_error)
        };
        Ok(result.await)
    }

    async fn set_hidden(
        &mut self,
        comment_id: String,
        hidden: bool,
    ) -> wasmtime::Result<Result<(), HostError>> {
        let call = &self.call;
        let result = async {
            check_moderate(call)?;
            let comment = GraphId::parse("comment id", &comment_id)?;
            let graph = &call.services.graph;
            call.upstream(graph.set_comment_hidden(&call.event.account_id, &comment, hidden))
                .await
                .map_err(guest_error)
        };
        Ok(result.await)
    }

    async fn delete(&mut self, comment_id: String) -> wasmtime::Result<Result<(), HostError>> {
        let call = &self.call;
        let result = async {
            check_moderate(call)?;
            let comment = GraphId::parse("comment id", &comment_id)?;
            let graph = &call.services.graph;
            call.upstream(graph.delete_comment(&call.event.account_id, &comment))
                .await
                .map_err(guest_error)
        };
        Ok(result.await)
    }
}
