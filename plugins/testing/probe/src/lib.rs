//! Test-only: the text of the message or comment being handled is a JSON
//! command naming one host call; the probe makes it and returns the
//! result, debug-printed, as its plugin error, so the test reads it from
//! the run's record. One plugin reaches every host function.
//!
//! With `"then": "handle"` or `"then": "pass"`, the probe makes the call
//! and ends its run that way instead, reporting nothing (for exclusive
//! groups), or with `"then": "retryable"` report through a retryable
//! error. `"then"` may also map the probe's `role` setting to either, so
//! probes sharing an event end it differently.

use igloo_plugin_sdk::messaging::{
    Button, ButtonTemplate, Content, GenericElement, Media, MediaKind, MediaSource, Outgoing,
    PostbackButton, QuickReply, Recipient, UrlButton,
};
use igloo_plugin_sdk::{
    Comment, Envelope, Handled, Message, Outcome, Passed, Plugin, PluginError, Timer, comments,
    config, conversations, kv, messaging, profiles, public_profiles, scheduler,
};
use serde_json::Value;

struct Probe;

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_owned()
}

fn kind(value: &Value) -> MediaKind {
    match value.as_str() {
        Some("audio") => MediaKind::Audio,
        Some("video") => MediaKind::Video,
        Some("file") => MediaKind::File,
        _ => MediaKind::Image,
    }
}

fn buttons(value: &Value) -> Vec<Button> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|button| match button.get("url") {
            Some(pair) => Button::WebUrl(UrlButton {
                title: pair[0].as_str().unwrap_or_default().into(),
                url: pair[1].as_str().unwrap_or_default().into(),
            }),
            None => Button::Postback(PostbackButton {
                title: button["postback"][0].as_str().unwrap_or_default().into(),
                payload: button["postback"][1].as_str().unwrap_or_default().into(),
            }),
        })
        .collect()
}

fn content(value: &Value) -> Content {
    if value.as_str() == Some("like_heart") {
        return Content::LikeHeart;
    }
    if let Some(text) = value.get("text") {
        return Content::Text(text.as_str().unwrap_or_default().into());
    }
    if let Some(media) = value.get("media") {
        let source = match media.get("url") {
            Some(url) => MediaSource::Url(url.as_str().unwrap_or_default().into()),
            None => MediaSource::AttachmentId(text(media, "attachment_id")),
        };
        return Content::Media(Media {
            kind: kind(&media["kind"]),
            source,
        });
    }
    if let Some(template) = value.get("button_template") {
        return Content::ButtonTemplate(ButtonTemplate {
            text: text(template, "text"),
            buttons: buttons(&template["buttons"]),
        });
    }
    if let Some(elements) = value.get("generic").and_then(Value::as_array) {
        return Content::GenericTemplate(
            elements
                .iter()
                .map(|element| GenericElement {
                    title: text(element, "title"),
                    subtitle: element["subtitle"].as_str().map(Into::into),
                    image_url: element["image_url"].as_str().map(Into::into),
                    default_action_url: element["default_action_url"].as_str().map(Into::into),
                    buttons: buttons(&element["buttons"]),
                })
                .collect(),
        );
    }
    Content::MediaShare(text(value, "media_share"))
}

fn run(command: &Value) -> String {
    match command["op"].as_str().unwrap_or_default() {
        "send" => {
            let to = match command["to"].get("comment") {
                Some(id) => Recipient::Comment(id.as_str().unwrap_or_default().into()),
                None => Recipient::Person(text(&command["to"], "person")),
            };
            let quick_replies = command["quick_replies"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|pair| QuickReply {
                    title: pair[0].as_str().unwrap_or_default().into(),
                    payload: pair[1].as_str().unwrap_or_default().into(),
                })
                .collect();
            let outgoing = Outgoing {
                content: content(&command["content"]),
                quick_replies,
                human_agent: command["human_agent"].as_bool().unwrap_or(false),
            };
            format!("{:?}", messaging::send(&to, &outgoing))
        }
        "send_text" => format!(
            "{:?}",
            messaging::send_text(&text(command, "to"), &text(command, "text"))
        ),
        "react" => format!(
            "{:?}",
            messaging::react(
                &text(command, "to"),
                &text(command, "mid"),
                command["reaction"].as_str()
            )
        ),
        "upload" => format!(
            "{:?}",
            messaging::upload_attachment(kind(&command["kind"]), &text(command, "url"))
        ),
        "comment_reply" => format!(
            "{:?}",
            comments::reply(&text(command, "id"), &text(command, "text"))
        ),
        "hide" => format!(
            "{:?}",
            comments::set_hidden(
                &text(command, "id"),
                command["hidden"].as_bool().unwrap_or(true)
            )
        ),
        "delete" => format!("{:?}", comments::delete(&text(command, "id"))),
        "profile" => format!("{:?}", profiles::get(&text(command, "id"))),
        "public_by_username" => format!(
            "{:?}",
            public_profiles::by_username(&text(command, "value"))
        ),
        "public_by_id" => format!("{:?}", public_profiles::by_id(&text(command, "value"))),
        "kv_set" => format!(
            "{:?}",
            kv::set(
                &text(command, "key"),
                text(command, "value").as_bytes(),
                command["ttl"].as_u64()
            )
        ),
        "kv_get" => format!(
            "{:?}",
            kv::get(&text(command, "key"))
                .map(|value| value.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
        ),
        "kv_delete" => format!("{:?}", kv::delete(&text(command, "key"))),
        "kv_list" => format!("{:?}", kv::list_keys(&text(command, "prefix"))),
        "timer_set" => format!(
            "{:?}",
            scheduler::set(
                &text(command, "key"),
                scheduler::When::AfterMs(command["after_ms"].as_u64().unwrap_or_default()),
                text(command, "payload").as_bytes(),
            )
        ),
        "timer_cancel" => format!("{:?}", scheduler::cancel(&text(command, "key"))),
        "pause" => format!("{:?}", conversations::pause(command["for_ms"].as_u64())),
        "resume" => format!("{:?}", conversations::resume()),
        "pass_thread" => format!(
            "{:?}",
            conversations::pass_thread_control(
                &text(command, "target"),
                command["metadata"].as_str()
            )
        ),
        "take_thread" => format!(
            "{:?}",
            conversations::take_thread_control(command["metadata"].as_str())
        ),
        "retry_on_failure" => {
            igloo_plugin_sdk::run::retry_on_failure();
            "retry asked for".to_owned()
        }
        "all" => command["commands"]
            .as_array()
            .into_iter()
            .flatten()
            .map(run)
            .collect::<Vec<_>>()
            .join(" | "),
        other => format!("unknown op {other:?}"),
    }
}

fn report(text: &str) -> Result<Outcome, PluginError> {
    let command: Value = serde_json::from_str(text)
        .map_err(|error| PluginError::new(format!("bad command: {error}")))?;
    let result = run(&command);
    let then = &command["then"];
    let then = match config::get("role") {
        Some(role) if then.is_object() => &then[role.as_str()],
        _ => then,
    };
    match then.as_str() {
        Some("handle") => Ok(Handled),
        Some("pass") => Ok(Passed),
        Some("retryable") => Err(PluginError::retryable(result)),
        _ => Err(PluginError::new(result)),
    }
}

impl Plugin for Probe {
    fn on_message(_: &Envelope, message: &Message) -> Result<Outcome, PluginError> {
        report(message.text.as_deref().unwrap_or_default())
    }

    fn on_comment(_: &Envelope, comment: &Comment) -> Result<Outcome, PluginError> {
        report(&comment.text)
    }

    /// A timer sends its payload, as text, to its person, and reports
    /// how that went; one whose payload is `rearm` sets itself again
    /// instead, 100 ms on, and reports that.
    fn on_timer(_: &Envelope, timer: &Timer) -> Result<Outcome, PluginError> {
        if timer.payload == b"rearm" {
            let set = scheduler::set(&timer.key, scheduler::When::AfterMs(100), b"rearm");
            return Err(PluginError::new(format!("timer {}: {set:?}", timer.key)));
        }
        let text = String::from_utf8_lossy(&timer.payload);
        let sent = messaging::send_text(&timer.person_id, &text);
        Err(PluginError::new(format!("timer {}: {sent:?}", timer.key)))
    }
}

igloo_plugin_sdk::register_plugin!(Probe);
