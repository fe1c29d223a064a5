//! Example plugin: a follow-up sequence. When the business messages a
//! person (a bot's reply or a human's, seen as an echo), a timer starts;
//! when the person writes, it is cancelled. If it fires, the person has
//! been silent since the business last wrote: they get one reminder.
//!
//! Settings: `after_seconds`, the silence before the reminder (two hours
//! by default); `reminder`, its text.

use igloo_plugin_sdk::scheduler::{self, When};
use igloo_plugin_sdk::{
    Envelope, Error, Handled, Message, Outcome, Passed, Plugin, PluginError, Timer, config, log,
    messaging,
};

const TIMER: &str = "follow-up";
const DEFAULT_AFTER_SECONDS: u64 = 2 * 3600;
const DEFAULT_REMINDER: &str = "Just checking in: is there anything else I can help you with?";

fn reminder() -> String {
    config::get("reminder").unwrap_or_else(|| DEFAULT_REMINDER.to_owned())
}

struct FollowUp;

impl Plugin for FollowUp {
    fn on_message(envelope: &Envelope, message: &Message) -> Result<Outcome, PluginError> {
        if !envelope.is_echo {
            // The person wrote: no reminder.
            scheduler::cancel(TIMER)?;
            return Ok(Passed);
        }
        // The echo of the reminder itself starts no new wait: one reminder.
        if message.text.as_deref() == Some(reminder().as_str()) {
            return Ok(Passed);
        }
        let after_seconds = config::get("after_seconds")
            .and_then(|seconds| seconds.parse().ok())
            .unwrap_or(DEFAULT_AFTER_SECONDS);
        scheduler::set(TIMER, When::AfterMs(after_seconds * 1000), &[])?;
        Ok(Passed)
    }

    fn on_timer(_: &Envelope, timer: &Timer) -> Result<Outcome, PluginError> {
        match messaging::send_text(&timer.person_id, &reminder()) {
            Ok(_) => Ok(Handled),
            // Their 24-hour window closed meanwhile: Meta would refuse any
            // message, so there is nothing to send.
            Err(Error::WindowClosed) => {
                log::write(log::Level::Info, "window closed; no reminder sent");
                Ok(Handled)
            }
            Err(error) => Err(error.into()),
        }
    }
}

igloo_plugin_sdk::register_plugin!(FollowUp);
