//! From a plugin's message (the WIT's types) to the Send API's request
//! ([`crate::graph::send`]). Only messages [`super::policy`] has checked
//! are converted.

use crate::graph::send::{self, Attachment, MediaPayload};
use crate::plugin_api::messaging::{
    Button, Content, GenericElement, MediaKind, MediaSource, Outgoing, Recipient,
};

/// The Send API's name for a media kind.
pub(super) fn media_kind(kind: MediaKind) -> send::MediaKind {
    match kind {
        MediaKind::Image => send::MediaKind::Image,
        MediaKind::Audio => send::MediaKind::Audio,
        MediaKind::Video => send::MediaKind::Video,
        MediaKind::File => send::MediaKind::File,
    }
}

/// The request that sends `outgoing` to `to`.
pub(super) fn request(to: Recipient, outgoing: Outgoing) -> send::SendRequest {
    let recipient = match to {
        Recipient::Person(id) => send::Recipient::Id(id),
        Recipient::Comment(comment_id) => send::Recipient::CommentId(comment_id),
    };
    let message = send::Message {
        content: content(outgoing.content),
        quick_replies: outgoing
            .quick_replies
            .into_iter()
            .map(|quick| send::QuickReply::text(quick.title, quick.payload))
            .collect(),
    };
    send::SendRequest::message(recipient, message, outgoing.human_agent)
}

fn content(content: Content) -> send::Content {
    let attachment = match content {
        Content::Text(text) => return send::Content::Text(text),
        Content::Media(media) => {
            let payload = match media.source {
                MediaSource::Url(url) => MediaPayload {
                    url: Some(url),
                    ..MediaPayload::default()
                },
                MediaSource::AttachmentId(id) => MediaPayload {
                    attachment_id: Some(id),
                    ..MediaPayload::default()
                },
            };
            Attachment::media(media_kind(media.kind), payload)
        }
        Content::LikeHeart => Attachment::LikeHeart,
        Content::GenericTemplate(elements) => Attachment::Template(send::Template::Generic {
            elements: elements.into_iter().map(card).collect(),
        }),
        Content::ButtonTemplate(template) => Attachment::Template(send::Template::Button {
            text: template.text,
            buttons: template.buttons.into_iter().map(button).collect(),
        }),
        Content::MediaShare(id) => Attachment::MediaShare { id },
    };
    send::Content::Attachment(attachment)
}

fn card(element: GenericElement) -> send::Card {
    send::Card {
        title: element.title,
        subtitle: element.subtitle,
        image_url: element.image_url,
        default_action: element
            .default_action_url
            .map(|url| send::DefaultAction::WebUrl { url }),
        buttons: element.buttons.into_iter().map(button).collect(),
    }
}

fn button(button: Button) -> send::Button {
    match button {
        Button::WebUrl(button) => send::Button::WebUrl {
            title: button.title,
            url: button.url,
        },
        Button::Postback(button) => send::Button::Postback {
            title: button.title,
            payload: button.payload,
        },
    }
}
