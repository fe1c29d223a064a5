//! `igloo:plugin@0.1.0` as igloo first released it, frozen in
//! `wit/v0.1.0-first`. Plugins built with that release's SDK name the same
//! version as [`super::v0_1_0`] but were built before `postback` gained its
//! `referral` and before the `run` interface was added: the event they take
//! has another shape, so they are instantiated with bindings of their own.
//!
//! Only the event differs. Every interface it imports has the same name and
//! types as 0.1.0's as it stands, so the host functions linked for 0.1.0
//! answer its calls (only its handler is used from these bindings); the
//! event crosses by its serde form, which drops what the first release did
//! not know.

use super::v0_1_0;
use super::v0_2_0 as latest;

/// Generated from `wit/v0.1.0-first/igloo.wit`, which documents every item.
mod generated {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0-first",
        world: "automation",
        exports: { default: async },
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

pub(super) use generated::igloo::plugin::types;
pub(super) use generated::{Automation, AutomationPre};

/// The event as a plugin of the first release sees it; `None` for a kind
/// it does not know (see [`v0_1_0::guest_event`]).
pub(super) fn guest_event(event: &latest::GuestEvent) -> wasmtime::Result<Option<types::Event>> {
    v0_1_0::guest_event(event)?
        .map(v0_1_0::convert_or_trap)
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postback_reaches_the_first_release_without_its_referral() {
        let event = latest::GuestEvent {
            envelope: latest::types::Envelope {
                account_id: "a".into(),
                event_id: "e".into(),
                timestamp_ms: 7,
                is_echo: false,
                is_self: false,
                is_standby: false,
            },
            kind: latest::types::EventKind::Postback(latest::types::Postback {
                sender_id: "s".into(),
                mid: Some("m".into()),
                title: "Yes".into(),
                payload: "YES".into(),
                referral: Some(latest::types::Referral {
                    ref_: Some("r".into()),
                    source: Some("ADS".into()),
                    referral_type: Some("OPEN_THREAD".into()),
                    ad_id: None,
                    ad_title: None,
                    ad_photo_url: None,
                    ad_video_url: None,
                }),
            }),
        };
        let Some(old) = guest_event(&event).unwrap() else {
            panic!("a postback reaches every version");
        };
        let types::EventKind::Postback(postback) = old.kind else {
            panic!("still a postback: {old:?}");
        };
        assert_eq!(
            (postback.title.as_str(), postback.payload.as_str()),
            ("Yes", "YES")
        );
    }
}
