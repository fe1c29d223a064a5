//! Lead capture: greet the person by name (a best-effort profile lookup:
//! without consent there is no name, and the flow goes on), then ask for an
//! email and a phone number, one step per message. Progress is kept in kv,
//! so every event runs in a fresh instance and still knows where it was.

use igloo_plugin_sdk::{
    Envelope, Handled, Message, Outcome, Passed, Plugin, PluginError, kv, messaging, profiles,
};

struct LeadCapture;

/// Progress is forgotten after a week of silence.
const TTL_SECONDS: u64 = 7 * 24 * 3600;

fn key(person: &str, field: &str) -> String {
    format!("lead:{person}:{field}")
}

fn get(person: &str, field: &str) -> Result<Option<String>, PluginError> {
    Ok(kv::get(&key(person, field))?.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
}

fn set(person: &str, field: &str, value: &str) -> Result<(), PluginError> {
    kv::set(&key(person, field), value.as_bytes(), Some(TTL_SECONDS))?;
    Ok(())
}

impl Plugin for LeadCapture {
    fn on_message(_: &Envelope, message: &Message) -> Result<Outcome, PluginError> {
        let person = &message.sender_id;
        let text = message.text.as_deref().unwrap_or_default().trim();
        let reply = match get(person, "step")?.as_deref() {
            None => {
                let name = profiles::get(person)
                    .ok()
                    .and_then(|profile| profile.name.or(profile.username));
                set(person, "step", "email")?;
                match name {
                    Some(name) => format!("Hi {name}! What's your email address?"),
                    None => "Hi! What's your email address?".to_owned(),
                }
            }
            Some("email") if text.contains('@') => {
                set(person, "email", text)?;
                set(person, "step", "phone")?;
                "Thanks! And your phone number?".to_owned()
            }
            Some("email") => {
                "That doesn't look like an email address. Could you check it?".to_owned()
            }
            Some("phone") if text.chars().filter(char::is_ascii_digit).count() >= 6 => {
                set(person, "phone", text)?;
                set(person, "step", "done")?;
                "Got it, we'll be in touch soon!".to_owned()
            }
            Some("phone") => "Could you send the number with its digits?".to_owned(),
            Some(_) => return Ok(Passed),
        };
        messaging::send_text(person, &reply)?;
        Ok(Handled)
    }
}

igloo_plugin_sdk::register_plugin!(LeadCapture);
