//! The generated bindings of `wit/igloo.wit`, kept private to the runtime
//! and re-exported under short names, with the conversion from igloo's
//! event model to the guest's.

#[expect(
    missing_docs,
    reason = "generated from wit/igloo.wit, which documents every item"
)]
mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "automation",
        imports: {
            "igloo:plugin/messaging": async | trappable,
            default: trappable,
        },
        exports: { default: async },
    });
}

pub use generated::igloo::plugin::types::{Error as HostError, Event as GuestEvent};
pub use generated::igloo::plugin::{config, log, messaging, types};
pub use generated::{Automation, AutomationPre};

use crate::events::{Event, EventKind};

impl From<&Event> for GuestEvent {
    fn from(event: &Event) -> Self {
        GuestEvent {
            envelope: types::Envelope {
                account_id: event.account_id.clone(),
                event_id: event.key.clone(),
                timestamp_ms: event.timestamp_ms,
            },
            kind: match &event.kind {
                EventKind::Message(message) => types::EventKind::Message(types::Message {
                    mid: message.mid.clone(),
                    sender_id: message.sender_id.clone(),
                    recipient_id: message.recipient_id.clone(),
                    text: message.text.clone(),
                }),
            },
        }
    }
}

/// `types` declares no functions; the host has nothing to provide.
impl types::Host for super::InstanceState {}
