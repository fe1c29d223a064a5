//! `igloo:plugin@0.1.0`, frozen in `wit/v0.1.0`: plugins built against it
//! load and run unchanged. Each of its host functions is answered by the
//! current version's, its values converted on the way in and out; an error
//! 0.1.0 has no case for becomes `denied`, with the reason in words.
//!
//! The interfaces differ from 0.2.0's only by what 0.2.0 added, so a value
//! crosses by its serde form, which both versions' bindings derive; a value
//! that does not convert is a host bug, and traps the run.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::v0_2_0 as latest;
use crate::plugin_api::{HostError, HostFailure, HostResult, HostView};

#[expect(
    missing_docs,
    reason = "generated from wit/v0.1.0/igloo.wit, which documents every item"
)]
mod generated {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "automation",
        imports: {
            "igloo:plugin/messaging": async | trappable,
            "igloo:plugin/comments": async | trappable,
            "igloo:plugin/profiles": async | trappable,
            "igloo:plugin/public-profiles": async | trappable,
            "igloo:plugin/kv": async | trappable,
        },
        exports: { default: async },
        trappable_error_type: { "igloo:plugin/types.error" => crate::plugin_api::HostFailure },
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

pub use generated::igloo::plugin::{
    comments, config as settings, kv, log, messaging, profiles, public_profiles, run, types,
};
pub use generated::{Automation, AutomationPre};

/// `value` as the same value of another version's type.
pub(super) fn convert_or_trap<A: Serialize, B: DeserializeOwned>(value: A) -> wasmtime::Result<B> {
    serde_json::to_value(value)
        .and_then(serde_json::from_value)
        .map_err(|error| {
            wasmtime::format_err!(
                "igloo:plugin@0.1.0: a value did not convert (a host bug): {error}"
            )
        })
}

/// [`convert_or_trap`], for host functions.
fn convert<A: Serialize, B: DeserializeOwned>(value: A) -> HostResult<B> {
    convert_or_trap(value).map_err(HostFailure::Trap)
}

/// The event as a 0.1.0 plugin sees it; `None` for a kind 0.1.0 does not
/// know (a timer, which a 0.1.0 plugin cannot have set: only a plugin
/// replaced by an older build under the same id meets one).
pub fn guest_event(event: &latest::GuestEvent) -> wasmtime::Result<Option<types::Event>> {
    if matches!(event.kind, latest::types::EventKind::Timer(_)) {
        return Ok(None);
    }
    convert_or_trap(event).map(Some)
}

impl<S> types::Host for HostView<'_, S> {
    fn convert_error(&mut self, failure: HostFailure) -> wasmtime::Result<types::Error> {
        let error = latest::types::Host::convert_error(self, failure)?;
        let denied = |why: &str| types::Error::Denied(why.to_owned());
        Ok(match error {
            HostError::Paused => denied("automation is paused in this conversation"),
            HostError::OptedOut => denied("the person opted out of automated messages"),
            other => convert_or_trap(other)?,
        })
    }
}

impl<'a, S: Sync> messaging::Host for HostView<'a, S>
where
    HostView<'a, S>: latest::messaging::Host,
{
    async fn send(
        &mut self,
        to: messaging::Recipient,
        message: messaging::Outgoing,
    ) -> HostResult<messaging::Sent> {
        let sent = latest::messaging::Host::send(self, convert(to)?, convert(message)?).await?;
        convert(sent)
    }

    async fn send_text(
        &mut self,
        recipient_id: String,
        text: String,
    ) -> HostResult<messaging::Sent> {
        let sent = latest::messaging::Host::send_text(self, recipient_id, text).await?;
        convert(sent)
    }

    async fn react(
        &mut self,
        recipient_id: String,
        message_id: String,
        reaction: Option<String>,
    ) -> HostResult<()> {
        latest::messaging::Host::react(self, recipient_id, message_id, reaction).await
    }

    async fn upload_attachment(
        &mut self,
        kind: messaging::MediaKind,
        url: String,
    ) -> HostResult<String> {
        latest::messaging::Host::upload_attachment(self, convert(kind)?, url).await
    }
}

impl<'a, S: Sync> comments::Host for HostView<'a, S>
where
    HostView<'a, S>: latest::comments::Host,
{
    async fn reply(&mut self, comment_id: String, text: String) -> HostResult<String> {
        latest::comments::Host::reply(self, comment_id, text).await
    }

    async fn set_hidden(&mut self, comment_id: String, hidden: bool) -> HostResult<()> {
        latest::comments::Host::set_hidden(self, comment_id, hidden).await
    }

    async fn delete(&mut self, comment_id: String) -> HostResult<()> {
        latest::comments::Host::delete(self, comment_id).await
    }
}

impl<'a, S: Sync> profiles::Host for HostView<'a, S>
where
    HostView<'a, S>: latest::profiles::Host,
{
    async fn get(&mut self, igsid: String) -> HostResult<profiles::Profile> {
        convert(latest::profiles::Host::get(self, igsid).await?)
    }
}

impl<'a, S: Sync> public_profiles::Host for HostView<'a, S>
where
    HostView<'a, S>: latest::public_profiles::Host,
{
    async fn by_username(
        &mut self,
        username: String,
    ) -> HostResult<public_profiles::PublicProfile> {
        convert(latest::public_profiles::Host::by_username(self, username).await?)
    }

    async fn by_id(&mut self, id: String) -> HostResult<public_profiles::PublicProfile> {
        convert(latest::public_profiles::Host::by_id(self, id).await?)
    }
}

impl<'a, S: Sync> kv::Host for HostView<'a, S>
where
    HostView<'a, S>: latest::kv::Host,
{
    async fn get(&mut self, key: String) -> HostResult<Option<Vec<u8>>> {
        latest::kv::Host::get(self, key).await
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_seconds: Option<u64>,
    ) -> HostResult<()> {
        latest::kv::Host::set(self, key, value, ttl_seconds).await
    }

    async fn delete(&mut self, key: String) -> HostResult<()> {
        latest::kv::Host::delete(self, key).await
    }

    async fn list_keys(&mut self, prefix: String) -> HostResult<Vec<String>> {
        latest::kv::Host::list_keys(self, prefix).await
    }
}

impl<'a, S> log::Host for HostView<'a, S>
where
    HostView<'a, S>: latest::log::Host,
{
    fn write(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Debug => latest::log::Level::Debug,
            log::Level::Info => latest::log::Level::Info,
            log::Level::Warn => latest::log::Level::Warn,
            log::Level::Error => latest::log::Level::Error,
        };
        latest::log::Host::write(self, level, message);
    }
}

impl<'a, S> settings::Host for HostView<'a, S>
where
    HostView<'a, S>: latest::settings::Host,
{
    fn get(&mut self, key: String) -> Option<String> {
        latest::settings::Host::get(self, key)
    }
}

impl<'a, S> run::Host for HostView<'a, S>
where
    HostView<'a, S>: latest::run::Host,
{
    fn retry_on_failure(&mut self) {
        latest::run::Host::retry_on_failure(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_0_1_0_error_has_a_counterpart() {
        let cases = [
            HostError::Denied("d".into()),
            HostError::WindowClosed,
            HostError::ConsentRequired,
            HostError::RateLimited(5),
            HostError::Invalid("i".into()),
            HostError::NotFound,
            HostError::Transient("t".into()),
            HostError::Rejected("r".into()),
            HostError::Blocked,
            HostError::PrivateAccount,
            HostError::QuotaExceeded("q".into()),
        ];
        for error in cases {
            let debug = format!("{error:?}");
            let old: types::Error = convert_or_trap(error).unwrap();
            assert_eq!(format!("{old:?}"), debug, "same case, same payload");
        }
    }

    #[test]
    fn a_message_with_every_field_converts_to_0_1_0() {
        let event = latest::GuestEvent {
            envelope: latest::types::Envelope {
                account_id: "a".into(),
                event_id: "e".into(),
                timestamp_ms: 7,
                is_echo: false,
                is_self: true,
                is_standby: false,
            },
            kind: latest::types::EventKind::Message(latest::types::Message {
                mid: "m".into(),
                sender_id: "s".into(),
                recipient_id: "r".into(),
                text: Some("hi".into()),
                attachments: vec![latest::types::Attachment {
                    attachment_type: latest::types::AttachmentType::Other("x".into()),
                    url: None,
                    title: Some("t".into()),
                    media_id: None,
                }],
                quick_reply_payload: None,
                reply_to: Some(latest::types::ReplyTo::Message("m0".into())),
                referral: None,
                is_unsupported: false,
            }),
        };
        let old = guest_event(&event).unwrap().unwrap();
        assert_eq!(format!("{old:?}"), format!("{event:?}"));
    }
}
