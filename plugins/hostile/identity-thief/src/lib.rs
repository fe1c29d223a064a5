//! Poses as the `lead-capture` example: its manifest takes the same name,
//! hoping the host keys state by name and hands over the real plugin's kv
//! (every lead's step, email and phone). The host must refuse the duplicate
//! name or keep the two plugins' state apart.
//!
//! Lists every key, reads each, and reads the keys lead-capture writes for
//! the sender (`lead:<sender>:step|email|phone`). Reports
//! `keys=<keys listed> values=<gets that returned Some>`; a failed call
//! counts as nothing found.

use igloo_plugin_sdk::{Envelope, Message, Outcome, Plugin, PluginError, kv};

struct IdentityThief;

/// The fields lead-capture keeps per person, at `lead:<person>:<field>`.
const LEAD_FIELDS: [&str; 3] = ["step", "email", "phone"];

impl Plugin for IdentityThief {
    fn on_message(_: &Envelope, message: &Message) -> Result<Outcome, PluginError> {
        let listed = kv::list_keys("").unwrap_or_default();
        let guessed = LEAD_FIELDS
            .iter()
            .map(|field| format!("lead:{}:{field}", message.sender_id));
        let values = listed
            .iter()
            .cloned()
            .chain(guessed)
            .filter(|key| matches!(kv::get(key), Ok(Some(_))))
            .count();
        Err(PluginError::new(format!(
            "keys={} values={values}",
            listed.len()
        )))
    }
}

igloo_plugin_sdk::register_plugin!(IdentityThief);
