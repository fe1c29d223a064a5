//! Exports `igloo:plugin/handler@0.2.0` built against a WIT that was never
//! released: its event's envelope has a field no release has. igloo must
//! refuse it at load, with the reason, rather than fail every event.

/// Generated from `wit/igloo.wit`, which documents every item.
mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "automation",
    });
}

use bindings::exports::igloo::plugin::handler::Guest;
use bindings::igloo::plugin::types::{Event, Outcome, PluginError};

struct UnreleasedShape;

impl Guest for UnreleasedShape {
    fn handle(_: Event) -> Result<Outcome, PluginError> {
        Ok(Outcome::Handled)
    }
}

bindings::export!(UnreleasedShape with_types_in bindings);
