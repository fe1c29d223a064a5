//! `igloo:plugin/comments`: public replies (`comments:reply`, to the comment
//! being handled) and moderation (`comments:moderate`: hide, unhide,
//! delete any comment igloo has received for the account).

use std::sync::Arc;

use wasmtime::component::Linker;

use super::ServesHostCalls;
use super::messaging::policy::check_chars;
use crate::events::EventKind;
use crate::graph::{GraphClient, GraphId};
use crate::journal::{Call, Resolution};
use crate::plugin_api::comments::Host;
use crate::plugin_api::{Capability, HostError, HostResult, HostView, RunContext};
use crate::state::HostState;

/// The interface, and the capabilities importing it needs (either).
pub(super) const IMPORT: super::Import = (
    "igloo:plugin/comments",
    &[Capability::CommentsReply, Capability::CommentsModerate],
);

/// Meta's limit on a comment's text, in characters.
const MAX_COMMENT_CHARS: usize = 2200;

/// Replies and moderation through the Graph API, limited to comments igloo
/// has received.
pub struct Comments {
    graph: Arc<GraphClient>,
    state: Arc<dyn HostState>,
}

impl Comments {
    /// Comments answered through `graph`, checked against what `state`
    /// remembers receiving.
    pub fn new(graph: Arc<GraphClient>, state: Arc<dyn HostState>) -> Self {
        Self { graph, state }
    }
}

pub(super) fn link<T: ServesHostCalls>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    super::link_every_version!(linker, comments, Comments, |services| &services.comments)
}

/// `comments:reply` reaches only the comment being handled, and not a live
/// comment (Meta does not take replies to those).
fn check_reply(run: &RunContext, comment_id: &str) -> Result<(), HostError> {
    if !run.granted(Capability::CommentsReply) {
        return Err(HostError::Denied(
            "replying to comments needs comments:reply".into(),
        ));
    }
    match &run.event.kind {
        EventKind::Comment(comment) if comment.id == comment_id => Ok(()),
        EventKind::LiveComment(comment) if comment.id == comment_id => Err(HostError::Invalid(
            "Meta does not take replies to live comments".into(),
        )),
        _ => Err(HostError::Denied(format!(
            "comments:reply may answer only the comment being handled; {comment_id} is not it"
        ))),
    }
}

impl HostView<'_, Comments> {
    /// `comments:moderate` reaches the account's comments that igloo has
    /// received, and nothing else the account's token could touch (posts,
    /// media, another account's objects).
    async fn moderated(&self, comment_id: &str) -> HostResult<GraphId> {
        if !self.run.granted(Capability::CommentsModerate) {
            return Err(HostError::Denied(
                "hiding and deleting comments needs comments:moderate".into(),
            )
            .into());
        }
        let comment = GraphId::parse("comment id", comment_id)?;
        let seen = self
            .service
            .state
            .comment_time(self.run.account_id(), comment_id)
            .await?;
        if seen.is_none() {
            return Err(HostError::Denied(format!(
                "comments:moderate reaches only comments igloo has received for this account; \
                 {comment_id} is not one"
            ))
            .into());
        }
        Ok(comment)
    }
}

impl Host for HostView<'_, Comments> {
    async fn reply(&mut self, comment_id: String, text: String) -> HostResult<String> {
        let call = Call::new("comments.reply", &format!("{comment_id:?} {text:?}"));
        let reply = async || {
            let comment = GraphId::parse("comment id", &comment_id)?;
            check_reply(self.run, &comment_id)?;
            check_chars("a comment reply", &text, MAX_COMMENT_CHARS)?;
            let graph = &self.service.graph;
            let reply = graph.reply_to_comment(self.run.account_id(), &comment, &text);
            Ok(self.run.upstream(reply).await?)
        };
        // A reply cut short is not looked for among the comment's replies
        // (yet): it stays unknown rather than risk a second public reply.
        let unresolved = async |_| {
            Resolution::Unresolved("comment replies are not read back to find one cut short".into())
        };
        self.run.journal.effect(call, reply, unresolved).await
    }

    async fn set_hidden(&mut self, comment_id: String, hidden: bool) -> HostResult<()> {
        let call = Call::new("comments.set-hidden", &format!("{comment_id:?} {hidden}"));
        let hide = async || {
            let comment = self.moderated(&comment_id).await?;
            let graph = &self.service.graph;
            let hide = graph.set_comment_hidden(self.run.account_id(), &comment, hidden);
            Ok(self.run.upstream(hide).await?)
        };
        self.run.journal.repeatable(call, hide).await
    }

    async fn delete(&mut self, comment_id: String) -> HostResult<()> {
        let call = Call::new("comments.delete", &format!("{comment_id:?}"));
        let delete = async || {
            let comment = self.moderated(&comment_id).await?;
            let graph = &self.service.graph;
            let delete = graph.delete_comment(self.run.account_id(), &comment);
            Ok(self.run.upstream(delete).await?)
        };
        self.run.journal.repeatable(call, delete).await
    }
}
