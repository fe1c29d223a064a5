//! `igloo:plugin/conversations`: conversation control (capability
//! `conversations:control`). A conversation paused for automation (a human
//! took it over) gets no automated message: its message events reach only
//! plugins holding `conversations:while-paused`, and other plugins' sends to
//! the person are the typed `paused` error (enforced by messaging).
//!
//! A conversation is paused by a plugin holding the capability (for the
//! conversation it is handling), by the operator (admin API and CLI), or by
//! Meta's handover events: control passed to another app pauses it until
//! control comes back to this one. The same capability makes Meta's
//! handover calls (pass, take, release and request thread control).

use std::sync::Arc;

use wasmtime::component::Linker;

use super::ServesHostCalls;
use crate::clock::now_ms;
use crate::events::{Event, EventKind, HandoverAction};
use crate::graph::{GraphClient, GraphId, ThreadAction, ThreadControl};
use crate::journal::{Call, Resolution};
use crate::plugin_api::conversations::Host;
use crate::plugin_api::{Capability, HostError, HostResult, HostView, ViewOf};
use crate::state::{HostState, Pause, PausedBy, ResumedBy, StateError};

/// The interface, and the capability importing it needs.
pub(super) const IMPORT: super::Import = (
    "igloo:plugin/conversations",
    &[Capability::ConversationsControl],
);

/// The event kinds a pause holds back from plugins that do not run while
/// paused: what the person does in the direct conversation. (Handovers and
/// timers still arrive: a plugin's own timer is its to handle, and a
/// handover may end the pause.)
const HELD_BACK: &[&str] = &[
    "message",
    "message-deleted",
    "message-edit",
    "reaction",
    "postback",
    "seen",
    "referral",
    "optin",
];

/// Longest `metadata` of a handover call, in characters (Meta's limit).
const MAX_METADATA_CHARS: usize = 1000;

/// Pauses of conversations for automation, and Meta's handover calls.
pub struct Conversations {
    state: Arc<dyn HostState>,
    graph: Arc<GraphClient>,
    /// This app's id, to tell a handover to it from one away from it.
    app_id: Option<String>,
}

impl Conversations {
    /// Pauses kept in `state`, handover calls made through `graph`;
    /// `app_id` is this Meta app's id, if known.
    pub fn new(state: Arc<dyn HostState>, graph: Arc<GraphClient>, app_id: Option<String>) -> Self {
        Self {
            state,
            graph,
            app_id,
        }
    }

    /// Pause automation with `person_id` in `account_id`, for `for_ms`
    /// milliseconds or until resumed, as decided at `since_ms`.
    pub async fn pause(
        &self,
        account_id: &str,
        person_id: &str,
        for_ms: Option<u64>,
        by: PausedBy,
        since_ms: u64,
    ) -> Result<(), StateError> {
        let pause = Pause {
            account_id: account_id.to_owned(),
            person_id: person_id.to_owned(),
            until_ms: for_ms.map(|ms| now_ms().saturating_add(ms)),
            by,
            since_ms,
        };
        self.state.pause(pause).await
    }

    /// Resume automation, if `by` may lift the pause (the operator any; a
    /// plugin one a plugin made; a handover one a handover made before);
    /// whether the conversation was paused and now is not.
    pub async fn resume(
        &self,
        account_id: &str,
        person_id: &str,
        by: ResumedBy,
    ) -> Result<bool, StateError> {
        self.state.resume(account_id, person_id, by).await
    }

    /// Every paused conversation.
    pub async fn paused(&self) -> Result<Vec<Pause>, StateError> {
        self.state.pauses(now_ms()).await
    }

    /// Whether `event` is held back from plugins that do not run while
    /// paused: a message event of a paused conversation.
    pub async fn holds_back(&self, event: &Event) -> Result<bool, StateError> {
        let Some(person) = event.counterpart_id() else {
            return Ok(false);
        };
        if !HELD_BACK.contains(&event.kind_name()) {
            return Ok(false);
        }
        let pause = self
            .state
            .pause_of(&event.account_id, person, now_ms())
            .await?;
        Ok(pause.is_some())
    }

    /// Note a handover: control passed or taken away from this app pauses
    /// the conversation until resumed; control coming to it resumes (a
    /// pause by a handover, not one by the operator or a plugin). Counted
    /// from `acted_at_ms`, so an old handover handled again (a retry, a
    /// replay) cannot undo a newer one.
    pub(super) async fn observe(&self, event: &Event, acted_at_ms: u64) -> Result<(), StateError> {
        let (EventKind::Handover(handover), Some(app_id)) = (&event.kind, &self.app_id) else {
            return Ok(());
        };
        if handover.action == HandoverAction::Request {
            return Ok(());
        }
        let Some(new_owner) = &handover.new_owner_app_id else {
            return Ok(());
        };
        let person = &handover.sender_id;
        let account = &event.account_id;
        if new_owner == app_id {
            let by = ResumedBy::Handover { at_ms: acted_at_ms };
            self.resume(account, person, by).await.map(drop)
        } else {
            self.pause(account, person, None, PausedBy::Handover, acted_at_ms)
                .await
        }
    }
}

pub(super) fn link<T: ServesHostCalls>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    fn view<T: ServesHostCalls>(host: &mut T) -> HostView<'_, Conversations> {
        host.view(|services| &services.conversations)
    }
    // Only the current version has conversation control.
    crate::plugin_api::conversations::add_to_linker::<T, ViewOf<Conversations>>(linker, view::<T>)
}

impl HostView<'_, Conversations> {
    /// The person of the conversation being handled, once the grant is
    /// checked.
    fn person(&self) -> HostResult<&str> {
        if !self.run.granted(Capability::ConversationsControl) {
            return Err(HostError::Denied(
                "conversation control needs conversations:control".into(),
            )
            .into());
        }
        self.run.event.counterpart_id().ok_or_else(|| {
            HostError::Invalid("this event is with no person: there is no conversation".into())
                .into()
        })
    }
}

impl HostView<'_, Conversations> {
    /// Make the handover call `action` for this conversation, then pause
    /// (the thread went elsewhere) or resume (it came here) as it says.
    async fn thread_control(
        &self,
        action: ThreadAction,
        target_app_id: Option<String>,
        metadata: Option<String>,
    ) -> HostResult<()> {
        let call = Call::new(
            "conversations.thread-control",
            &format!("{action:?} {target_app_id:?} {metadata:?}"),
        );
        let control = async || {
            let person = GraphId::parse("recipient IGSID", self.person()?)?;
            let target = target_app_id
                .as_deref()
                .map(|id| GraphId::parse("app id", id))
                .transpose()?;
            if metadata
                .as_deref()
                .is_some_and(|text| text.chars().count() > MAX_METADATA_CHARS)
            {
                return Err(HostError::Invalid(format!(
                    "metadata is at most {MAX_METADATA_CHARS} characters"
                ))
                .into());
            }
            let account = self.run.account_id();
            let request = ThreadControl {
                action,
                recipient: &person,
                target_app_id: target.as_ref(),
                metadata: metadata.as_deref(),
            };
            let service = self.service;
            self.run
                .upstream(service.graph.thread_control(account, request))
                .await?;
            match action {
                ThreadAction::Pass => {
                    // A handover's pause: the thread coming back ends it.
                    let (person, by) = (person.as_str(), PausedBy::Handover);
                    service.pause(account, person, None, by, now_ms()).await?;
                }
                ThreadAction::Take => {
                    // The thread is this app's again, whoever had paused.
                    let by = ResumedBy::Handover { at_ms: now_ms() };
                    service.resume(account, person.as_str(), by).await?;
                    service
                        .resume(account, person.as_str(), ResumedBy::Plugin)
                        .await?;
                }
                ThreadAction::Release | ThreadAction::Request => {}
            }
            Ok(())
        };
        self.run
            .journal
            .effect(call, control, async |_| Resolution::NotDone)
            .await
    }
}

impl Host for HostView<'_, Conversations> {
    async fn pause(&mut self, for_ms: Option<u64>) -> HostResult<()> {
        let call = Call::new("conversations.pause", &format!("{for_ms:?}"));
        let pause = async || {
            let person = self.person()?;
            let by = PausedBy::Plugin(self.run.plugin.id.clone());
            let account = self.run.account_id();
            Ok(self
                .service
                .pause(account, person, for_ms, by, now_ms())
                .await?)
        };
        self.run.journal.repeatable(call, pause).await
    }

    async fn resume(&mut self) -> HostResult<bool> {
        let call = Call::new("conversations.resume", "");
        let resume = async || {
            let person = self.person()?;
            let account = self.run.account_id();
            Ok(self
                .service
                .resume(account, person, ResumedBy::Plugin)
                .await?)
        };
        self.run.journal.repeatable(call, resume).await
    }

    async fn pass_thread_control(
        &mut self,
        target_app_id: String,
        metadata: Option<String>,
    ) -> HostResult<()> {
        self.thread_control(ThreadAction::Pass, Some(target_app_id), metadata)
            .await
    }

    async fn take_thread_control(&mut self, metadata: Option<String>) -> HostResult<()> {
        self.thread_control(ThreadAction::Take, None, metadata)
            .await
    }

    async fn release_thread_control(&mut self, metadata: Option<String>) -> HostResult<()> {
        self.thread_control(ThreadAction::Release, None, metadata)
            .await
    }

    async fn request_thread_control(&mut self, metadata: Option<String>) -> HostResult<()> {
        self.thread_control(ThreadAction::Request, None, metadata)
            .await
    }
}
