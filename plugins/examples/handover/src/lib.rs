//! Example plugin: the path to a human that Meta requires of apps that
//! message people. When a person sends the keyword, they are told a person
//! will answer, the operator is told in the log, and automation pauses in
//! the conversation: no plugin (but those that run while paused) messages
//! them until it resumes (`igloo conversations resume`, or after
//! `pause_hours`).
//!
//! Settings: `keyword` (`human` by default; matched as a whole message,
//! ignoring case); `message`, what the person is told; `pause_hours`, how
//! long automation stays paused (until resumed when unset).

use igloo_plugin_sdk::{
    Envelope, Handled, Message, Outcome, Passed, Plugin, PluginError, config, conversations, log,
    messaging,
};

const DEFAULT_KEYWORD: &str = "human";
const DEFAULT_MESSAGE: &str = "Connecting you with a person: they will answer here soon.";

struct Handover;

impl Plugin for Handover {
    fn on_message(_: &Envelope, message: &Message) -> Result<Outcome, PluginError> {
        let keyword = config::get("keyword").unwrap_or_else(|| DEFAULT_KEYWORD.to_owned());
        let text = message.text.as_deref().unwrap_or_default().trim();
        if !text.eq_ignore_ascii_case(keyword.trim()) {
            return Ok(Passed);
        }
        let told = config::get("message").unwrap_or_else(|| DEFAULT_MESSAGE.to_owned());
        // Told first: once paused, this plugin may not message them either.
        messaging::send_text(&message.sender_id, &told)?;
        let hours: Option<u64> = config::get("pause_hours").and_then(|hours| hours.parse().ok());
        conversations::pause(hours.map(|hours| hours * 3600 * 1000))?;
        log::write(
            log::Level::Warn,
            &format!("{} asked for a human: automation paused", message.sender_id),
        );
        Ok(Handled)
    }
}

igloo_plugin_sdk::register_plugin!(Handover);
