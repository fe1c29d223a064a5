//! `igloo:plugin/comments`: public replies (`comments:reply`, to the comment
//! being handled) and moderation (`comments:moderate`: hide, unhide,
//! delete any comment igloo has received for the account).

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

/// `comments:moderate` reaches the account's comments that igloo has
/// received, and nothing else the account's token could touch (posts,
/// media, another account's objects).
async fn check_moderate(call: &CallContext, comment_id: &str) -> Result<GraphId, HostError> {
    if !call.granted(Capability::CommentsModerate) {
        return Err(HostError::Denied(
            "hiding and deleting comments needs comments:moderate".into(),
        ));
    }
    let comment = GraphId::parse("comment id", comment_id)?;
    let seen = call
        .services
        .state
        .comment_time(&call.event.account_id, comment_id)
        .await
        .map_err(|error| HostError::Transient(error.to_string()))?;
    if seen.is_none() {
        return Err(HostError::Denied(format!(
            "comments:moderate reaches only comments igloo has received for this account; \
             {comment_id} is not one"
        )));
    }
    Ok(comment)
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
            let comment = check_moderate(call, &comment_id).await?;
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
            let comment = check_moderate(call, &comment_id).await?;
            let graph = &call.services.graph;
            call.upstream(graph.delete_comment(&call.event.account_id, &comment))
                .await
                .map_err(guest_error)
        };
        Ok(result.await)
    }
}
