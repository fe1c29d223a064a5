//! Write igloo plugins in Rust.
//!
//! Implement [`Plugin`] and register it with [`register_plugin!`]; build the
//! crate as a `cdylib` for `wasm32-wasip2`. The host functions live in
//! [`messaging`], [`log`] and [`config`]; each returns a typed [`Error`] the
//! plugin can match on.
//!
//! ```ignore
//! use igloo_plugin_sdk::{Plugin, Message, Envelope, PluginError, messaging};
//!
//! struct Echo;
//!
//! impl Plugin for Echo {
//!     fn on_message(envelope: &Envelope, message: &Message) -> Result<(), PluginError> {
//!         if let Some(text) = &message.text {
//!             messaging::send_text(&message.sender_id, text)?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! igloo_plugin_sdk::register_plugin!(Echo);
//! ```

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "automation",
        pub_export_macro: true,
        export_macro_name: "__export_automation",
        default_bindings_module: "igloo_plugin_sdk::bindings",
    });
}

pub use bindings::igloo::plugin::types::{
    Envelope, Error, Event, EventKind, Message, PluginError,
};
pub use bindings::igloo::plugin::{config, log, messaging};

/// An automation. igloo calls [`Plugin::handle`] once per subscribed event,
/// each time in a fresh instance, so keep state in the host, not in statics.
///
/// Override the `on_*` method for each kind of event the plugin cares about;
/// the rest are ignored by default.
pub trait Plugin {
    /// A direct message arrived.
    fn on_message(envelope: &Envelope, message: &Message) -> Result<(), PluginError> {
        let _ = (envelope, message);
        Ok(())
    }

    /// Route an event to its `on_*` method. Override only to see every
    /// event in one place.
    fn handle(event: Event) -> Result<(), PluginError> {
        match &event.kind {
            EventKind::Message(message) => Self::on_message(&event.envelope, message),
        }
    }
}

impl From<Error> for PluginError {
    fn from(error: Error) -> Self {
        PluginError {
            message: format!("host call failed: {error:?}"),
        }
    }
}

impl From<&str> for PluginError {
    fn from(message: &str) -> Self {
        PluginError {
            message: message.to_owned(),
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
            fn handle(event: $crate::Event) -> ::core::result::Result<(), $crate::PluginError> {
                <$plugin as $crate::Plugin>::handle(event)
            }
        }

        $crate::bindings::__export_automation!(__IglooHandler with_types_in $crate::bindings);
    };
}
