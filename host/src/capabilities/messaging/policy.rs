//! Meta's messaging rules, checked before Meta is called (PLATFORM.md A3,
//! A5, D): who a plugin may message, the 24-hour and 7-day windows, one
//! private reply per comment within 7 days, and the size of everything in
//! a message: text, quick replies, buttons, template elements, ids and
//! URLs. Each broken rule is a typed error; every string and list a plugin
//! hands over is bounded here before anything is built from it.

use crate::events::EventKind;
use crate::graph::{GraphId, WebUrl};
use crate::plugin_api::Capability;
use crate::plugin_api::messaging::{
    Button, Content, GenericElement, MediaSource, Outgoing, QuickReply,
};
use crate::plugin_api::{HostError, RunContext};

/// Meta's limit on a text message, in UTF-8 bytes.
pub const MAX_TEXT_BYTES: usize = 1000;
/// Quick replies per message.
pub const MAX_QUICK_REPLIES: usize = 13;
/// Characters in a quick reply's title.
pub const MAX_QUICK_REPLY_TITLE_CHARS: usize = 20;
/// Buttons per template (or per generic-template card).
pub const MAX_BUTTONS: usize = 3;
/// Characters in a button's title.
pub const MAX_BUTTON_TITLE_CHARS: usize = 20;
/// Bytes in a postback or quick-reply payload.
pub const MAX_PAYLOAD_BYTES: usize = 1000;
/// Cards in a generic template (PLATFORM.md marks it unverified; Meta's
/// Messenger limit).
pub const MAX_GENERIC_ELEMENTS: usize = 10;
/// Characters in a card's title or subtitle (unverified, as above).
pub const MAX_CARD_TEXT_CHARS: usize = 80;
/// Bytes in a reaction's name or emoji.
pub const MAX_REACTION_BYTES: usize = 32;
/// The standard messaging window.
pub const WINDOW_MS: u64 = 24 * 3600 * 1000;
/// The `HUMAN_AGENT` window, and the private-reply window after a comment.
pub const SEVEN_DAYS_MS: u64 = 7 * 24 * 3600 * 1000;

/// May the plugin message this person from this event?
pub fn check_person(run: &RunContext, person_id: &str) -> Result<(), HostError> {
    if run.granted(Capability::MessagesSend) {
        return Ok(());
    }
    if run.granted(Capability::MessagesReply) {
        if run.event.counterpart_id() == Some(person_id) {
            return Ok(());
        }
        return Err(HostError::Denied(format!(
            "messages:reply only reaches the person whose event is being handled; \
             {person_id} is not them (messages:send would allow it)"
        )));
    }
    Err(HostError::Denied(
        "messaging needs messages:reply or messages:send".into(),
    ))
}

/// May the plugin send a private reply to this comment from this event?
pub fn check_private_reply_scope(run: &RunContext, comment_id: &str) -> Result<(), HostError> {
    if run.granted(Capability::MessagesSend) {
        return Ok(());
    }
    let handled = match &run.event.kind {
        EventKind::Comment(comment) | EventKind::LiveComment(comment) => Some(comment.id.as_str()),
        _ => None,
    };
    if run.granted(Capability::MessagesReply) && handled == Some(comment_id) {
        return Ok(());
    }
    Err(HostError::Denied(format!(
        "messages:reply may privately answer only the comment being handled; \
         {comment_id} is not it (messages:send would allow it)"
    )))
}

/// The `HUMAN_AGENT` tag needs its own capability.
pub fn check_human_agent(run: &RunContext, human_agent: bool) -> Result<(), HostError> {
    if human_agent && !run.granted(Capability::MessagesHumanAgent) {
        return Err(HostError::Denied(
            "the HUMAN_AGENT tag needs messages:human-agent".into(),
        ));
    }
    Ok(())
}

/// Is the window with a person open at `now_ms`, given when they last
/// wrote? 24 hours, or 7 days with the `HUMAN_AGENT` tag. Self-messaging
/// has no window.
pub fn check_window(
    last_inbound_ms: Option<u64>,
    now_ms: u64,
    human_agent: bool,
    self_messaging: bool,
) -> Result<(), HostError> {
    if self_messaging {
        return Ok(());
    }
    let window = if human_agent {
        SEVEN_DAYS_MS
    } else {
        WINDOW_MS
    };
    match last_inbound_ms {
        Some(last) if now_ms.saturating_sub(last) < window => Ok(()),
        _ => Err(HostError::WindowClosed),
    }
}

/// A private reply must come within 7 days of the comment.
pub fn check_comment_age(comment_ms: Option<u64>, now_ms: u64) -> Result<(), HostError> {
    match comment_ms {
        None => Err(HostError::Invalid(
            "igloo has not seen this comment, so cannot privately reply to it".into(),
        )),
        Some(at) if now_ms.saturating_sub(at) >= SEVEN_DAYS_MS => Err(HostError::WindowClosed),
        Some(_) => Ok(()),
    }
}

/// Text: present and at most 1000 bytes of UTF-8.
pub fn check_text(text: &str) -> Result<(), HostError> {
    if text.is_empty() {
        return Err(HostError::Invalid("text is empty".into()));
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(HostError::Invalid(format!(
            "text is {} bytes; Meta accepts at most {MAX_TEXT_BYTES}",
            text.len()
        )));
    }
    Ok(())
}

/// Characters of `text`, between 1 and `max`.
pub fn check_chars(what: &str, text: &str, max: usize) -> Result<(), HostError> {
    let chars = text.chars().count();
    if chars == 0 || chars > max {
        return Err(HostError::Invalid(format!(
            "{what} is {chars} characters; Meta accepts 1 to {max}"
        )));
    }
    Ok(())
}

/// A payload Meta echoes back: at most [`MAX_PAYLOAD_BYTES`].
fn check_payload(payload: &str) -> Result<(), HostError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(HostError::Invalid(format!(
            "a payload is {} bytes; Meta accepts at most {MAX_PAYLOAD_BYTES}",
            payload.len()
        )));
    }
    Ok(())
}

fn check_buttons(buttons: &[Button]) -> Result<(), HostError> {
    if buttons.len() > MAX_BUTTONS {
        return Err(HostError::Invalid(format!(
            "{} buttons; Meta accepts at most {MAX_BUTTONS}",
            buttons.len()
        )));
    }
    for button in buttons {
        match button {
            Button::WebUrl(button) => {
                check_chars("a button title", &button.title, MAX_BUTTON_TITLE_CHARS)?;
                WebUrl::parse(&button.url)?;
            }
            Button::Postback(button) => {
                check_chars("a button title", &button.title, MAX_BUTTON_TITLE_CHARS)?;
                check_payload(&button.payload)?;
            }
        }
    }
    Ok(())
}

fn check_element(element: &GenericElement) -> Result<(), HostError> {
    check_chars("a card title", &element.title, MAX_CARD_TEXT_CHARS)?;
    if let Some(subtitle) = &element.subtitle {
        check_chars("a card subtitle", subtitle, MAX_CARD_TEXT_CHARS)?;
    }
    for url in [&element.image_url, &element.default_action_url]
        .into_iter()
        .flatten()
    {
        WebUrl::parse(url)?;
    }
    check_buttons(&element.buttons)
}

fn check_quick_replies(quick_replies: &[QuickReply]) -> Result<(), HostError> {
    if quick_replies.len() > MAX_QUICK_REPLIES {
        return Err(HostError::Invalid(format!(
            "{} quick replies; Meta accepts at most {MAX_QUICK_REPLIES}",
            quick_replies.len()
        )));
    }
    for quick_reply in quick_replies {
        check_chars(
            "a quick reply title",
            &quick_reply.title,
            MAX_QUICK_REPLY_TITLE_CHARS,
        )?;
        check_payload(&quick_reply.payload)?;
    }
    Ok(())
}

/// Everything Meta would refuse about the message itself, and every id,
/// URL, string and list in it bounded.
pub fn check_outgoing(message: &Outgoing) -> Result<(), HostError> {
    match &message.content {
        Content::Text(text) => check_text(text)?,
        Content::ButtonTemplate(template) => {
            check_text(&template.text)?;
            if template.buttons.is_empty() {
                return Err(HostError::Invalid(
                    "a button template needs at least one button".into(),
                ));
            }
            check_buttons(&template.buttons)?;
        }
        Content::GenericTemplate(elements) => {
            if elements.is_empty() || elements.len() > MAX_GENERIC_ELEMENTS {
                return Err(HostError::Invalid(format!(
                    "a generic template has 1 to {MAX_GENERIC_ELEMENTS} elements; this one has {}",
                    elements.len()
                )));
            }
            elements.iter().try_for_each(check_element)?;
        }
        Content::MediaShare(post_id) => {
            GraphId::parse("post id", post_id)?;
        }
        Content::Media(media) => match &media.source {
            MediaSource::Url(url) => {
                WebUrl::parse(url)?;
            }
            MediaSource::AttachmentId(id) => {
                GraphId::parse("attachment id", id)?;
            }
        },
        Content::LikeHeart => {}
    }
    check_quick_replies(&message.quick_replies)
}

/// A reaction's name or emoji: short, and plain text.
pub fn check_reaction(reaction: Option<&str>) -> Result<(), HostError> {
    if let Some(reaction) = reaction
        && (reaction.is_empty()
            || reaction.len() > MAX_REACTION_BYTES
            || reaction.chars().any(char::is_control))
    {
        return Err(HostError::Invalid(format!(
            "a reaction is 1 to {MAX_REACTION_BYTES} bytes of text"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3600 * 1000;

    #[test]
    fn the_window_is_24_hours_or_7_days_with_human_agent_and_none_for_self_messaging() {
        let now = 100 * 24 * HOUR;
        assert!(check_window(Some(now - 23 * HOUR), now, false, false).is_ok());
        assert!(matches!(
            check_window(Some(now - 25 * HOUR), now, false, false),
            Err(HostError::WindowClosed)
        ));
        assert!(check_window(Some(now - 6 * 24 * HOUR), now, true, false).is_ok());
        assert!(matches!(
            check_window(Some(now - 8 * 24 * HOUR), now, true, false),
            Err(HostError::WindowClosed)
        ));
        assert!(matches!(
            check_window(None, now, false, false),
            Err(HostError::WindowClosed)
        ));
        assert!(check_window(None, now, false, true).is_ok());
    }

    #[test]
    fn a_private_reply_must_come_within_7_days_of_a_known_comment() {
        let now = 100 * 24 * HOUR;
        assert!(check_comment_age(Some(now - 6 * 24 * HOUR), now).is_ok());
        assert!(matches!(
            check_comment_age(Some(now - 7 * 24 * HOUR), now),
            Err(HostError::WindowClosed)
        ));
        assert!(matches!(
            check_comment_age(None, now),
            Err(HostError::Invalid(_))
        ));
    }

    fn outgoing(content: Content, quick_replies: Vec<QuickReply>) -> Outgoing {
        Outgoing {
            content,
            quick_replies,
            human_agent: false,
        }
    }

    #[test]
    fn every_string_and_list_in_a_message_is_bounded() {
        use crate::plugin_api::messaging::{ButtonTemplate, Media, MediaKind, UrlButton};
        let text = || Content::Text("hi".into());
        let quick = |payload: String| QuickReply {
            title: "Yes".into(),
            payload,
        };
        assert!(check_outgoing(&outgoing(text(), vec![quick("YES".into())])).is_ok());
        let huge_payload = outgoing(text(), vec![quick("p".repeat(100 * 1024))]);
        assert!(matches!(
            check_outgoing(&huge_payload),
            Err(HostError::Invalid(_))
        ));

        let button = |url: String| {
            Content::ButtonTemplate(ButtonTemplate {
                text: "hi".into(),
                buttons: vec![Button::WebUrl(UrlButton {
                    title: "Open".into(),
                    url,
                })],
            })
        };
        assert!(check_outgoing(&outgoing(button("https://example.com/a".into()), vec![])).is_ok());
        for bad in [
            format!("https://example.com/{}", "a".repeat(300 * 1024)),
            "javascript:alert(1)".into(),
        ] {
            assert!(matches!(
                check_outgoing(&outgoing(button(bad), vec![])),
                Err(HostError::Invalid(_))
            ));
        }

        let card = GenericElement {
            title: "t".into(),
            subtitle: None,
            image_url: None,
            default_action_url: None,
            buttons: vec![],
        };
        let cards = |n: usize| Content::GenericTemplate(vec![card.clone(); n]);
        assert!(check_outgoing(&outgoing(cards(10), vec![])).is_ok());
        assert!(matches!(
            check_outgoing(&outgoing(cards(5000), vec![])),
            Err(HostError::Invalid(_))
        ));

        let media = |source| {
            Content::Media(Media {
                kind: MediaKind::Image,
                source,
            })
        };
        for source in [
            MediaSource::Url("file:///etc/passwd".into()),
            MediaSource::AttachmentId("1/../me".into()),
        ] {
            assert!(matches!(
                check_outgoing(&outgoing(media(source), vec![])),
                Err(HostError::Invalid(_))
            ));
        }
        assert!(matches!(
            check_outgoing(&outgoing(Content::MediaShare("1?x=y".into()), vec![])),
            Err(HostError::Invalid(_))
        ));
        assert!(check_reaction(Some("love")).is_ok());
        assert!(check_reaction(Some(&"x".repeat(33))).is_err());
    }

    #[test]
    fn text_is_counted_in_bytes_not_characters() {
        assert!(check_text(&"a".repeat(1000)).is_ok());
        assert!(matches!(
            check_text(&"a".repeat(1001)),
            Err(HostError::Invalid(_))
        ));
        // 334 three-byte characters: 1002 bytes.
        assert!(matches!(
            check_text(&"€".repeat(334)),
            Err(HostError::Invalid(_))
        ));
        assert!(matches!(check_text(""), Err(HostError::Invalid(_))));
    }
}
