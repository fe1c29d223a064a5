//! Write igloo plugins in Rust.
//!
//! Implement [`Plugin`] and register it with [`register_plugin!`]; build the
//! crate as a `cdylib` for `wasm32-wasip2`. The plugin targets
//! `igloo:plugin@0.2.0` (`wit/v0.2.0`). Each `on_*` method says whether it
//! [`Handled`] the event or [`Passed`]: in an exclusive group, the first
//! plugin that handles an event is the only one to answer it.
//!
//! The host functions live in [`messaging`], [`comments`], [`profiles`],
//! [`public_profiles`], [`kv`], [`log`], [`config`], [`scheduler`] and
//! [`conversations`]; each returns a typed [`Error`] the plugin can match
//! on. A component imports only the interfaces it uses, so a plugin needs
//! capabilities only for what it calls.
//!
//! ```ignore
//! use igloo_plugin_sdk::{Envelope, Handled, Message, Outcome, Passed, Plugin, PluginError, messaging};
//!
//! struct Echo;
//!
//! impl Plugin for Echo {
//!     fn on_message(envelope: &Envelope, message: &Message) -> Result<Outcome, PluginError> {
//!         let Some(text) = &message.text else {
//!             return Ok(Passed);
//!         };
//!         messaging::send_text(&message.sender_id, text)?;
//!         Ok(Handled)
//!     }
//! }
//!
//! igloo_plugin_sdk::register_plugin!(Echo);
//! ```

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/v0.2.0",
        world: "automation",
        pub_export_macro: true,
        export_macro_name: "__export_automation",
        default_bindings_module: "igloo_plugin_sdk::bindings",
    });
}

/// The plugin acted on the event.
pub use Outcome::Handled;
/// The event was not for the plugin.
pub use Outcome::Passed;
pub use bindings::igloo::plugin::types::{
    Attachment, AttachmentType, Comment, Envelope, Error, Event, EventKind, Handover,
    HandoverAction, Media, Mention, Message, MessageDeleted, MessageEdit, Optin, Outcome,
    PluginError, Postback, Reaction, ReactionAction, Referral, ReferralEvent, ReplyTo, Seen,
    StoryInsights, StoryRef, Timer, UnknownEvent,
};
pub use bindings::igloo::plugin::{
    comments, config, conversations, kv, log, messaging, profiles, public_profiles, run, scheduler,
};

/// An automation. igloo calls [`Plugin::handle`] once per subscribed event,
/// each time in a fresh instance, so keep state in the host, not in statics.
///
/// Override the `on_*` method for each kind of event the plugin subscribes
/// to in its manifest; the others pass by default.
#[expect(unused_variables, reason = "default methods ignore their arguments")]
pub trait Plugin {
    /// A direct message arrived (or, with `envelope.is_echo`, was sent).
    fn on_message(envelope: &Envelope, message: &Message) -> Result<Outcome, PluginError> {
        Ok(Passed)
    }
    /// A message was unsent.
    fn on_message_deleted(
        envelope: &Envelope,
        deleted: &MessageDeleted,
    ) -> Result<Outcome, PluginError> {
        Ok(Passed)
    }
    /// A message was edited.
    fn on_message_edit(envelope: &Envelope, edit: &MessageEdit) -> Result<Outcome, PluginError> {
        Ok(Passed)
    }
    /// A reaction was added or removed.
    fn on_reaction(envelope: &Envelope, reaction: &Reaction) -> Result<Outcome, PluginError> {
        Ok(Passed)
    }
    /// An ice breaker, button or menu item was tapped.
    fn on_postback(envelope: &Envelope, postback: &Postback) -> Result<Outcome, PluginError> {
        Ok(Passed)
    }
    /// The conversation was read.
    fn on_seen(envelope: &Envelope, seen: &Seen) -> Result<Outcome, PluginError> {
        Ok(Passed)
    }
    /// A conversation came from an ig.me link or an ad.
    fn on_referral(envelope: &Envelope, referral: &ReferralEvent) -> Result<Outcome, PluginError> {
        Ok(Passed)
    }
    /// The person opted in.
    fn on_optin(envelope: &Envelope, optin: &Optin) -> Result<Outcome, PluginError> {
        Ok(Passed)
    }
    /// Thread control moved between apps.
    fn on_handover(envelope: &Envelope, handover: &Handover) -> Result<Outcome, PluginError> {
        Ok(Passed)
    }
    /// A comment on a post, reel or ad.
    fn on_comment(envelope: &Envelope, comment: &Comment) -> Result<Outcome, PluginError> {
        Ok(Passed)
    }
    /// A comment on a live broadcast.
    fn on_live_comment(envelope: &Envelope, comment: &Comment) -> Result<Outcome, PluginError> {
        Ok(Passed)
    }
    /// The business was @mentioned.
    fn on_mention(envelope: &Envelope, mention: &Mention) -> Result<Outcome, PluginError> {
        Ok(Passed)
    }
    /// A story's metrics arrived.
    fn on_story_insights(
        envelope: &Envelope,
        insights: &StoryInsights,
    ) -> Result<Outcome, PluginError> {
        Ok(Passed)
    }
    /// Something igloo does not model; its JSON is verbatim.
    fn on_unknown(envelope: &Envelope, unknown: &UnknownEvent) -> Result<Outcome, PluginError> {
        Ok(Passed)
    }

    /// A timer this plugin set for the conversation fired.
    fn on_timer(envelope: &Envelope, timer: &Timer) -> Result<Outcome, PluginError> {
        Ok(Passed)
    }

    /// Route an event to its `on_*` method. Override only to see every
    /// event in one place.
    fn handle(event: Event) -> Result<Outcome, PluginError> {
        let envelope = &event.envelope;
        match &event.kind {
            EventKind::Message(message) => Self::on_message(envelope, message),
            EventKind::MessageDeleted(deleted) => Self::on_message_deleted(envelope, deleted),
            EventKind::MessageEdit(edit) => Self::on_message_edit(envelope, edit),
            EventKind::Reaction(reaction) => Self::on_reaction(envelope, reaction),
            EventKind::Postback(postback) => Self::on_postback(envelope, postback),
            EventKind::Seen(seen) => Self::on_seen(envelope, seen),
            EventKind::Referral(referral) => Self::on_referral(envelope, referral),
            EventKind::Optin(optin) => Self::on_optin(envelope, optin),
            EventKind::Handover(handover) => Self::on_handover(envelope, handover),
            EventKind::Comment(comment) => Self::on_comment(envelope, comment),
            EventKind::LiveComment(comment) => Self::on_live_comment(envelope, comment),
            EventKind::Mention(mention) => Self::on_mention(envelope, mention),
            EventKind::StoryInsights(insights) => Self::on_story_insights(envelope, insights),
            EventKind::Unknown(unknown) => Self::on_unknown(envelope, unknown),
            EventKind::Timer(timer) => Self::on_timer(envelope, timer),
        }
    }
}

impl From<Error> for PluginError {
    fn from(error: Error) -> Self {
        PluginError {
            message: format!("host call failed: {error:?}"),
            retry: false,
        }
    }
}

impl PluginError {
    /// A failure of the plugin's own: recorded, not retried.
    pub fn new(message: impl Into<String>) -> Self {
        PluginError {
            message: message.into(),
            retry: false,
        }
    }

    /// A failure outside the plugin (a service it depends on is down):
    /// igloo retries the run on its retry schedule, and calls the run
    /// already completed are not repeated.
    ///
    /// The mark travels with the error: only an error `handle` returns
    /// asks for the retry.
    pub fn retryable(message: impl Into<String>) -> Self {
        PluginError {
            message: message.into(),
            retry: true,
        }
    }
}

impl From<&str> for PluginError {
    fn from(message: &str) -> Self {
        PluginError {
            message: message.to_owned(),
            retry: false,
        }
    }
}

/// Export a [`Plugin`] implementation as the component's `handler`.
#[macro_export]
macro_rules! register_plugin {
    ($plugin:ty) => {
        #[doc(hidden)]
        pub struct __IglooHandler;

        impl $crate::bindings::exports::igloo::plugin::handler::Guest for __IglooHandler {
            fn handle(
                event: $crate::Event,
            ) -> ::core::result::Result<$crate::Outcome, $crate::PluginError> {
                <$plugin as $crate::Plugin>::handle(event)
            }
        }

        $crate::bindings::__export_automation!(__IglooHandler with_types_in $crate::bindings);
    };
}
