//! `igloo:plugin/comments`: public replies (`comments:reply`, to the comment
//! being handled) and moderation (`comments:moderate`: hide, unhide,
//! delete any comment of the account).

use super::{Capability, guest_error};
use crate::events::EventKind;
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
        self.call.charge(&[&comment_id, &text])?;
        if let Err(error) = check_reply(&self.call, &comment_id) {
            return Ok(Err(error));
        }
        if text.is_empty() {
            return Ok(Err(HostError::Invalid("text is empty".into())));
        }
        let account_id = self.call.event.account_id.clone();
        Ok(self
            .call
            .services
            .graph
            .reply_to_comment(&account_id, &comment_id, &text)
            .await
            .map_err(guest_error))
    }

    async fn set_hidden(
        &mut self,
        comment_id: String,
        hidden: bool,
    ) -> wasmtime::Result<Result<(), HostError>> {
        self.call.charge(&[&comment_id])?;
        if let Err(error) = check_moderate(&self.call) {
            return Ok(Err(error));
        }
        let account_id = self.call.event.account_id.clone();
        Ok(self
            .call
            .services
            .graph
            .set_comment_hidden(&account_id, &comment_id, hidden)
            .await
            .map_err(guest_error))
    }

    async fn delete(&mut self, comment_id: String) -> wasmtime::Result<Result<(), HostError>> {
        self.call.charge(&[&comment_id])?;
        if let Err(error) = check_moderate(&self.call) {
            return Ok(Err(error));
        }
        let account_id = self.call.event.account_id.clone();
        Ok(self
            .call
            .services
            .graph
            .delete_comment(&account_id, &comment_id)
            .await
            .map_err(guest_error))
    }
}
