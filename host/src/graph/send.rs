//! The Send API's request bodies (`POST /{account}/messages`) and the
//! Attachment Upload API's, as serde types shaped exactly as the seed
//! reference shows them. Capabilities build these from a plugin's checked
//! message; the client sends them and picks the rate budget they draw on.

use serde::Serialize;

use super::SendClass;

/// One request to the Send API: a message or a sender action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SendRequest {
    recipient: Recipient,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<Message>,
    #[serde(skip_serializing_if = "Option::is_none")]
    messaging_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sender_action: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<ReactionPayload>,
}

/// Who a message goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipient {
    /// A person, by IGSID: `{"id": …}`.
    Id(String),
    /// The author of a comment, as a private reply: `{"comment_id": …}`.
    CommentId(String),
}

/// A message: its content and any quick replies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// What it says or shows.
    #[serde(flatten)]
    pub content: Content,
    /// Buttons offered under it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quick_replies: Vec<QuickReply>,
}

/// A message's content: `{"text": …}` or `{"attachment": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Content {
    /// Text.
    Text(String),
    /// Media, a sticker, a template or a shared post.
    Attachment(Attachment),
}

/// An attachment, by Meta's `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
pub enum Attachment {
    /// A photo or GIF.
    Image(MediaPayload),
    /// Audio.
    Audio(MediaPayload),
    /// A video.
    Video(MediaPayload),
    /// A file.
    File(MediaPayload),
    /// The heart sticker.
    LikeHeart,
    /// A generic or button template.
    Template(Template),
    /// A post the account published, by id.
    #[serde(rename = "MEDIA_SHARE")]
    MediaShare {
        /// The post's id.
        id: String,
    },
}

/// Kinds of media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// A photo or GIF.
    Image,
    /// Audio.
    Audio,
    /// A video.
    Video,
    /// A file.
    File,
}

/// Where media comes from: a URL, or an uploaded attachment's id.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct MediaPayload {
    /// A public URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// An uploaded attachment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachment_id: Option<String>,
    /// Asks Meta to keep the upload for reuse.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_reusable: Option<bool>,
}

impl Attachment {
    /// Media of `kind` from `payload`.
    pub fn media(kind: MediaKind, payload: MediaPayload) -> Self {
        match kind {
            MediaKind::Image => Attachment::Image(payload),
            MediaKind::Audio => Attachment::Audio(payload),
            MediaKind::Video => Attachment::Video(payload),
            MediaKind::File => Attachment::File(payload),
        }
    }
}

/// A structured template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "template_type", rename_all = "snake_case")]
pub enum Template {
    /// Cards side by side.
    Generic {
        /// The cards.
        elements: Vec<Card>,
    },
    /// Text with buttons.
    Button {
        /// The text.
        text: String,
        /// The buttons.
        buttons: Vec<Button>,
    },
}

/// One card of a generic template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Card {
    /// Its title.
    pub title: String,
    /// Its subtitle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtitle: Option<String>,
    /// Its image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// What tapping the card opens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_action: Option<DefaultAction>,
    /// Its buttons.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<Button>,
}

/// What tapping a card does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DefaultAction {
    /// Open a URL.
    WebUrl {
        /// The URL.
        url: String,
    },
}

/// A template button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Button {
    /// Opens a URL.
    WebUrl {
        /// Its label.
        title: String,
        /// The URL.
        url: String,
    },
    /// Sends a postback event with `payload`.
    Postback {
        /// Its label.
        title: String,
        /// What the postback carries.
        payload: String,
    },
}

/// A quick reply (always `content_type: text` on Instagram).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuickReply {
    content_type: &'static str,
    title: String,
    payload: String,
}

impl QuickReply {
    /// A text quick reply.
    pub fn text(title: String, payload: String) -> Self {
        Self {
            content_type: "text",
            title,
            payload,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct ReactionPayload {
    message_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reaction: Option<String>,
}

impl SendRequest {
    /// `message` to `recipient`; with `human_agent`, tagged `HUMAN_AGENT`.
    pub fn message(recipient: Recipient, message: Message, human_agent: bool) -> Self {
        Self {
            recipient,
            message: Some(message),
            messaging_type: human_agent.then_some("MESSAGE_TAG"),
            tag: human_agent.then_some("HUMAN_AGENT"),
            sender_action: None,
            payload: None,
        }
    }

    /// Plain `text` to a person.
    pub fn text(recipient_id: &str, text: &str) -> Self {
        let message = Message {
            content: Content::Text(text.to_owned()),
            quick_replies: Vec::new(),
        };
        Self::message(Recipient::Id(recipient_id.to_owned()), message, false)
    }

    /// React to a message with `reaction`, or take the reaction back.
    pub fn reaction(recipient_id: &str, message_id: &str, reaction: Option<&str>) -> Self {
        Self {
            recipient: Recipient::Id(recipient_id.to_owned()),
            message: None,
            messaging_type: None,
            tag: None,
            sender_action: Some(if reaction.is_some() {
                "react"
            } else {
                "unreact"
            }),
            payload: Some(ReactionPayload {
                message_id: message_id.to_owned(),
                reaction: reaction.map(str::to_owned),
            }),
        }
    }

    /// Which rate budget the request draws on: private replies and media
    /// (audio, video) have budgets of their own.
    pub fn class(&self) -> SendClass {
        let media = |attachment: &Attachment| {
            matches!(attachment, Attachment::Audio(_) | Attachment::Video(_))
        };
        match (&self.recipient, &self.message) {
            (Recipient::CommentId(_), _) => SendClass::PrivateReply,
            (
                _,
                Some(Message {
                    content: Content::Attachment(attachment),
                    ..
                }),
            ) if media(attachment) => SendClass::Media,
            _ => SendClass::Text,
        }
    }
}

/// The Attachment Upload API's body: `{"message":{"attachment":…}}`, with
/// the media kept for reuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct UploadRequest {
    message: UploadMessage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct UploadMessage {
    attachment: Attachment,
}

impl UploadRequest {
    pub(super) fn new(kind: MediaKind, url: &str) -> Self {
        let payload = MediaPayload {
            url: Some(url.to_owned()),
            attachment_id: None,
            is_reusable: Some(true),
        };
        Self {
            message: UploadMessage {
                attachment: Attachment::media(kind, payload),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(request: &impl Serialize) -> serde_json::Value {
        serde_json::to_value(request).unwrap()
    }

    #[test]
    fn bodies_are_shaped_as_the_send_api_reference_shows() {
        assert_eq!(
            body(&SendRequest::text("1001", "hi")),
            json!({"recipient": {"id": "1001"}, "message": {"text": "hi"}})
        );
        let quick = Message {
            content: Content::Attachment(Attachment::Template(Template::Button {
                text: "Pick".into(),
                buttons: vec![Button::Postback {
                    title: "A".into(),
                    payload: "PICK_A".into(),
                }],
            })),
            quick_replies: vec![QuickReply::text("Yes".into(), "YES".into())],
        };
        assert_eq!(
            body(&SendRequest::message(
                Recipient::CommentId("9".into()),
                quick,
                true
            )),
            json!({
                "recipient": {"comment_id": "9"},
                "message": {
                    "attachment": {"type": "template", "payload": {
                        "template_type": "button", "text": "Pick",
                        "buttons": [{"type": "postback", "title": "A", "payload": "PICK_A"}],
                    }},
                    "quick_replies": [{"content_type": "text", "title": "Yes", "payload": "YES"}],
                },
                "messaging_type": "MESSAGE_TAG",
                "tag": "HUMAN_AGENT",
            })
        );
        let heart = Message {
            content: Content::Attachment(Attachment::LikeHeart),
            quick_replies: vec![],
        };
        assert_eq!(
            body(&SendRequest::message(
                Recipient::Id("1".into()),
                heart,
                false
            )),
            json!({"recipient": {"id": "1"}, "message": {"attachment": {"type": "like_heart"}}})
        );
        let share = Message {
            content: Content::Attachment(Attachment::MediaShare { id: "77".into() }),
            quick_replies: vec![],
        };
        assert_eq!(
            body(&SendRequest::message(
                Recipient::Id("1".into()),
                share,
                false
            ))["message"],
            json!({"attachment": {"type": "MEDIA_SHARE", "payload": {"id": "77"}}})
        );
        assert_eq!(
            body(&SendRequest::reaction("1", "m_1", None)),
            json!({"recipient": {"id": "1"}, "sender_action": "unreact",
                   "payload": {"message_id": "m_1"}})
        );
        assert_eq!(
            body(&UploadRequest::new(
                MediaKind::Video,
                "https://example.com/v.mp4"
            )),
            json!({"message": {"attachment": {"type": "video", "payload":
                {"url": "https://example.com/v.mp4", "is_reusable": true}}}})
        );
    }

    #[test]
    fn private_replies_and_audio_or_video_draw_on_their_own_budgets() {
        let media = |kind| Message {
            content: Content::Attachment(Attachment::media(kind, MediaPayload::default())),
            quick_replies: vec![],
        };
        let to = || Recipient::Id("1".into());
        assert_eq!(SendRequest::text("1", "hi").class(), SendClass::Text);
        assert_eq!(
            SendRequest::message(to(), media(MediaKind::Video), false).class(),
            SendClass::Media
        );
        assert_eq!(
            SendRequest::message(to(), media(MediaKind::Image), false).class(),
            SendClass::Text
        );
        let private = SendRequest::message(
            Recipient::CommentId("5".into()),
            media(MediaKind::Image),
            false,
        );
        assert_eq!(private.class(), SendClass::PrivateReply);
    }
}
