//! The Send API's request bodies, exactly as the seed reference shows them,
//! built from the plugin's typed message.

use serde_json::{Value, json};

use crate::graph::SendClass;
use crate::runtime::messaging_api::{Button, Content, MediaKind, MediaSource, Outgoing, Recipient};

/// Meta's name for a media kind.
pub fn media_type(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "image",
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
        MediaKind::File => "file",
    }
}

fn button(button: &Button) -> Value {
    match button {
        Button::WebUrl(button) => {
            json!({"type": "web_url", "title": button.title, "url": button.url})
        }
        Button::Postback(button) => {
            json!({"type": "postback", "title": button.title, "payload": button.payload})
        }
    }
}

fn message(content: &Content) -> Value {
    match content {
        Content::Text(text) => json!({ "text": text }),
        Content::Media(media) => {
            let payload = match &media.source {
                MediaSource::Url(url) => json!({ "url": url }),
                MediaSource::AttachmentId(id) => json!({ "attachment_id": id }),
            };
            json!({"attachment": {"type": media_type(media.kind), "payload": payload}})
        }
        Content::LikeHeart => json!({"attachment": {"type": "like_heart"}}),
        Content::GenericTemplate(elements) => {
            let elements: Vec<Value> = elements
                .iter()
                .map(|element| {
                    let mut card = json!({ "title": element.title });
                    if let Some(subtitle) = &element.subtitle {
                        card["subtitle"] = json!(subtitle);
                    }
                    if let Some(image_url) = &element.image_url {
                        card["image_url"] = json!(image_url);
                    }
                    if let Some(url) = &element.default_action_url {
                        card["default_action"] = json!({"type": "web_url", "url": url});
                    }
                    if !element.buttons.is_empty() {
                        card["buttons"] = element.buttons.iter().map(button).collect();
                    }
                    card
                })
                .collect();
            json!({"attachment": {"type": "template", "payload": {"template_type": "generic", "elements": elements}}})
        }
        Content::ButtonTemplate(template) => json!({"attachment": {"type": "template", "payload": {
            "template_type": "button",
            "text": template.text,
            "buttons": template.buttons.iter().map(button).collect::<Vec<_>>(),
        }}}),
        Content::MediaShare(post_id) => {
            json!({"attachment": {"type": "MEDIA_SHARE", "payload": {"id": post_id}}})
        }
    }
}

/// The whole request body for sending `outgoing` to `to`.
pub fn send_body(to: &Recipient, outgoing: &Outgoing) -> Value {
    let recipient = match to {
        Recipient::Person(id) => json!({ "id": id }),
        Recipient::Comment(comment_id) => json!({ "comment_id": comment_id }),
    };
    let mut message = message(&outgoing.content);
    if !outgoing.quick_replies.is_empty() {
        message["quick_replies"] = outgoing
            .quick_replies
            .iter()
            .map(|quick| json!({"content_type": "text", "title": quick.title, "payload": quick.payload}))
            .collect();
    }
    let mut body = json!({ "recipient": recipient, "message": message });
    if outgoing.human_agent {
        body["messaging_type"] = json!("MESSAGE_TAG");
        body["tag"] = json!("HUMAN_AGENT");
    }
    body
}

/// `sender_action` react / unreact.
pub fn reaction_body(recipient_id: &str, message_id: &str, reaction: Option<&str>) -> Value {
    match reaction {
        Some(reaction) => json!({"recipient": {"id": recipient_id}, "sender_action": "react",
            "payload": {"message_id": message_id, "reaction": reaction}}),
        None => json!({"recipient": {"id": recipient_id}, "sender_action": "unreact",
            "payload": {"message_id": message_id}}),
    }
}

/// Which rate budget a message draws on.
pub fn send_class(to: &Recipient, content: &Content) -> SendClass {
    match (to, content) {
        (Recipient::Comment(_), _) => SendClass::PrivateReply,
        (_, Content::Media(media)) if matches!(media.kind, MediaKind::Audio | MediaKind::Video) => {
            SendClass::Media
        }
        _ => SendClass::Text,
    }
}
