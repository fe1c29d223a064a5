//! From Meta's payload to normalised [`Event`]s: every entry, every
//! messaging, standby and changes item, each its own event with a stable
//! dedupe key. What igloo cannot read becomes [`EventKind::Unknown`], never
//! an error.

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::clock::now_ms;

use super::meta::{
    self, AttachmentBody, CommentValue, Entry, HandoverBody, Members, MentionValue, MessageBody,
    MessagingItem, ReferralBody, WebhookPayload,
};
use super::{
    Attachment, AttachmentType, Comment, Event, EventKind, Handover, HandoverAction, Media,
    Mention, Message, MessageDeleted, MessageEdit, Optin, Postback, Reaction, ReactionAction,
    Referral, ReferralEvent, ReplyTo, Seen, StoryInsights, Unknown, normalise_timestamp_ms,
};

/// Why a webhook body could not be read at all. Anything that parses as a
/// webhook but holds nothing igloo knows yields no events, not an error.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The body is not JSON of the webhook's shape.
    #[error("malformed webhook body: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// The `object` of the bodies igloo makes events of. Meta can deliver other
/// products' webhooks (Messenger's `page`, `whatsapp_business_account`, …)
/// to the same callback: they are kept and acknowledged, but they are not
/// Instagram events.
const INSTAGRAM_OBJECT: &str = "instagram";

/// Split a webhook body into events: none for a body of another product.
pub fn normalise(body: &[u8]) -> Result<Vec<Event>, PayloadError> {
    let payload: WebhookPayload<'_> = serde_json::from_slice(body)?;
    let mut events = Vec::new();
    if payload.object != INSTAGRAM_OBJECT {
        return Ok(events);
    }
    for entry in &payload.entry {
        let context = EntryContext::new(entry);
        for item in &entry.messaging {
            events.extend(context.messaging(item, false));
        }
        for item in &entry.standby {
            events.extend(context.messaging(item, true));
        }
        for change in &entry.changes {
            events.push(context.change(&change.field, change.value));
        }
        if let Some(field) = &entry.field {
            events.push(context.change(field, entry.value));
        }
    }
    Ok(events)
}

/// What every event of one entry shares.
struct EntryContext<'a> {
    account_id: &'a str,
    entry_time_ms: Option<u64>,
}

/// Webhook fields whose value is a messaging item (dashboard tests send
/// messaging events this way).
const MESSAGING_FIELDS: &[&str] = &[
    "messages",
    "messaging_postbacks",
    "messaging_seen",
    "message_reactions",
    "messaging_referral",
    "messaging_optins",
    "message_edit",
    "messaging_handover",
    "standby",
];

impl<'a> EntryContext<'a> {
    fn new(entry: &'a Entry<'a>) -> Self {
        Self {
            account_id: &entry.id,
            entry_time_ms: entry.time.as_ref().and_then(normalise_timestamp_ms),
        }
    }

    fn event(&self, key: String, timestamp_ms: Option<u64>, kind: EventKind) -> Event {
        Event {
            key: format!("{}:{}:{key}", kind.name(), self.account_id),
            account_id: self.account_id.to_owned(),
            timestamp_ms: timestamp_ms.or(self.entry_time_ms).unwrap_or_else(now_ms),
            is_echo: false,
            is_self: false,
            is_standby: false,
            kind,
        }
    }

    /// An event carrying `raw` verbatim, keyed by its content.
    fn unknown(&self, field: &str, raw: Option<&RawValue>) -> Event {
        let raw_json = raw.map_or("null", RawValue::get).to_owned();
        let key = digest(&[field, &raw_json]);
        let field = field.to_owned();
        self.event(key, None, EventKind::Unknown(Unknown { field, raw_json }))
    }

    fn change(&self, field: &str, value: Option<&RawValue>) -> Event {
        let Some(raw) = value else {
            return self.unknown(field, None);
        };
        let parsed = match field {
            "comments" | "live_comments" => parse::<CommentValue>(raw).map(|value| {
                let comment = comment(value);
                let key = id_or_digest(&comment.id, raw);
                let is_echo = comment.from_id.as_deref() == Some(self.account_id);
                let kind = if field == "comments" {
                    EventKind::Comment(comment)
                } else {
                    EventKind::LiveComment(comment)
                };
                Event {
                    is_echo,
                    ..self.event(key, None, kind)
                }
            }),
            "mentions" => parse::<MentionValue>(raw).map(|value| {
                let key = format!(
                    "{}:{}",
                    value.media_id,
                    value.comment_id.as_deref().unwrap_or("")
                );
                let mention = Mention {
                    media_id: value.media_id,
                    comment_id: value.comment_id,
                };
                self.event(key, None, EventKind::Mention(mention))
            }),
            "story_insights" => parse::<StoryInsights>(raw).map(|value| {
                // Metrics are re-sent as they change, so their values tell
                // the events apart; `entry.time` does not, as a retry gets
                // a new one. The whole value is digested so that metrics
                // igloo does not model count too.
                let key = format!("{}:{}", value.media_id, digest_of(raw));
                self.event(key, None, EventKind::StoryInsights(value))
            }),
            _ if MESSAGING_FIELDS.contains(&field) => self.messaging(raw, false),
            _ => None,
        };
        parsed.unwrap_or_else(|| self.unknown(field, Some(raw)))
    }

    /// The event in one messaging item; `None` for an item that carries no
    /// event at all (only sender, recipient and timestamp).
    fn messaging(&self, raw: &RawValue, is_standby: bool) -> Option<Event> {
        let Some(item) = parse::<MessagingItem>(raw) else {
            return Some(self.unknown("messaging", Some(raw)));
        };
        let sender_id = item.sender.map(|party| party.id).unwrap_or_default();
        let recipient_id = item
            .recipient
            .map(|party| party.id)
            .unwrap_or_else(|| self.account_id.to_owned());
        let timestamp_ms = item.timestamp.as_ref().and_then(normalise_timestamp_ms);
        let stamp = timestamp_ms.unwrap_or_default();
        let mut is_self = item.is_self;
        let mut is_echo = false;

        // Where the id a key is built from is missing, the item's own JSON
        // stands in: Meta's retry of it is identical, other items are not.
        let key_id = |id: &str| id_or_digest(id, raw);
        let (key, kind) = if let Some(mut message) = item.message {
            is_self |= message.is_self;
            // Click-to-message ads and ig.me links put the referral beside
            // the message rather than in it.
            message.referral = message.referral.or(item.referral);
            if message.is_deleted {
                let key = key_id(&message.mid);
                (
                    key,
                    EventKind::MessageDeleted(MessageDeleted {
                        mid: message.mid,
                        sender_id,
                    }),
                )
            } else {
                // Courier's echo fixture keeps the customer as sender, so the
                // flag counts as much as the direction.
                is_echo = message.is_echo || sender_id == self.account_id;
                (
                    key_id(&message.mid),
                    EventKind::Message(self::message(message, sender_id, recipient_id)),
                )
            }
        } else if let Some(edit) = item.message_edit {
            let key = if edit.mid.is_empty() {
                digest_of(raw)
            } else {
                format!("{}:{}", edit.mid, edit.num_edit)
            };
            let edit = MessageEdit {
                mid: edit.mid,
                sender_id,
                text: edit.text,
                num_edit: edit.num_edit,
            };
            (key, EventKind::MessageEdit(edit))
        } else if let Some(reaction) = item.reaction {
            let action = match reaction.action.as_str() {
                "react" => ReactionAction::React,
                "unreact" => ReactionAction::Unreact,
                _ => return Some(self.unknown("reaction", Some(raw))),
            };
            let what = reaction
                .emoji
                .as_deref()
                .or(reaction.reaction.as_deref())
                .unwrap_or("");
            let key = if reaction.mid.is_empty() {
                digest_of(raw)
            } else {
                format!(
                    "{sender_id}:{}:{}:{what}:{stamp}",
                    reaction.mid, reaction.action
                )
            };
            let reaction = Reaction {
                mid: reaction.mid,
                sender_id,
                action,
                reaction: reaction.reaction,
                emoji: reaction.emoji,
            };
            (key, EventKind::Reaction(reaction))
        } else if let Some(postback) = item.postback {
            let key = key_id(postback.mid.as_deref().unwrap_or(""));
            let postback = Postback {
                mid: postback.mid,
                sender_id,
                title: postback.title,
                payload: postback.payload,
                referral: postback.referral.or(item.referral).map(referral),
            };
            (key, EventKind::Postback(postback))
        } else if let Some(read) = item.read {
            // Messenger-style reads carry a `watermark`, not a `mid`.
            let key = if read.mid.is_empty() {
                digest_of(raw)
            } else {
                format!("{sender_id}:{}", read.mid)
            };
            (
                key,
                EventKind::Seen(Seen {
                    sender_id,
                    mid: read.mid,
                }),
            )
        } else if let Some(body) = item.referral {
            let key = format!(
                "{sender_id}:{}:{stamp}",
                body.reference.as_deref().unwrap_or("")
            );
            (
                key,
                EventKind::Referral(ReferralEvent {
                    sender_id,
                    referral: referral(body),
                }),
            )
        } else if let Some(optin) = item.optin {
            let key = format!("{sender_id}:{stamp}");
            let optin = Optin {
                sender_id,
                optin_type: optin.kind,
                payload: optin.payload,
                r#ref: optin.reference,
                token: optin.notification_messages_token,
            };
            (key, EventKind::Optin(optin))
        } else if let Some((action, body)) = handover_body(
            item.pass_thread_control,
            item.take_thread_control,
            item.request_thread_control,
        ) {
            let key = format!("{sender_id}:{action:?}:{stamp}");
            (key, EventKind::Handover(handover(sender_id, action, body)))
        } else if carries_other_keys(raw) {
            return Some(self.unknown("messaging", Some(raw)));
        } else {
            return None;
        };
        Some(Event {
            is_echo,
            is_self,
            is_standby,
            ..self.event(key, timestamp_ms, kind)
        })
    }
}

fn parse<T: DeserializeOwned>(raw: &RawValue) -> Option<T> {
    serde_json::from_str(raw.get()).ok()
}

/// A stable digest of `parts` for keys built from content rather than ids:
/// hex of the first 16 bytes of SHA-256, parts separated by a NUL byte.
fn digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            hasher.update([0]);
        }
        hasher.update(part.as_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}

/// A [`digest`] of a JSON value's content: keys sorted and whitespace
/// dropped first, so it does not depend on how the JSON was laid out.
fn digest_of(raw: &RawValue) -> String {
    let canonical = parse::<serde_json::Value>(raw)
        .map_or_else(|| raw.get().to_owned(), |value| value.to_string());
    digest(&[&canonical])
}

/// `id` as a key, or, when it is empty, a digest of the item it came from,
/// so items without ids neither share one key nor lose their dedupe.
fn id_or_digest(id: &str, raw: &RawValue) -> String {
    if id.is_empty() {
        digest_of(raw)
    } else {
        id.to_owned()
    }
}

/// Whether a messaging item has keys beyond the envelope's: an event kind
/// igloo does not know, to pass on as unknown.
fn carries_other_keys(raw: &RawValue) -> bool {
    const ENVELOPE: &[&str] = &["sender", "recipient", "timestamp", "is_self"];
    parse::<serde_json::Map<String, serde_json::Value>>(raw)
        .is_some_and(|object| object.keys().any(|key| !ENVELOPE.contains(&key.as_str())))
}

fn message(body: MessageBody, sender_id: String, recipient_id: String) -> Message {
    let reply_to = body
        .reply_to
        .and_then(|reply| match (reply.story, reply.mid) {
            (Some(story), _) => Some(ReplyTo::Story {
                id: story.id,
                url: story.url,
            }),
            (None, Some(mid)) => Some(ReplyTo::Message(mid)),
            (None, None) => None,
        });
    Message {
        mid: body.mid,
        sender_id,
        recipient_id,
        text: body.text,
        attachments: body.attachments.into_iter().map(attachment).collect(),
        quick_reply_payload: body.quick_reply.and_then(|quick_reply| quick_reply.payload),
        reply_to,
        referral: body.referral.map(referral),
        is_unsupported: body.is_unsupported,
    }
}

/// Where the media sits differs by attachment type (`url`, `media_url`,
/// `story_media_url`, `reel_video_id`, `story_media_id`, a nested `story`
/// or `media` object, …), so it is found by key rather than by a fixed
/// shape: the payload first, then objects one level down, then (for
/// Messenger's `fallback`) the attachment itself.
fn attachment(body: AttachmentBody) -> Attachment {
    let payload = &body.payload;
    let find = |read: fn(&Members) -> Option<String>| {
        read(payload)
            .or_else(|| payload.objects().find_map(|nested| read(&nested)))
            .or_else(|| read(&body.members))
    };
    Attachment {
        attachment_type: AttachmentType::from_meta(&body.kind),
        url: find(media_url),
        title: payload
            .text("title")
            .or_else(|| payload.text("name"))
            .or_else(|| find(|members| members.text("title"))),
        media_id: find(media_id),
    }
}

/// `url`, else the first string under a key ending in `url` (`media_url`,
/// `story_media_url`, `video_url`, …) or in `src`.
fn media_url(members: &Members) -> Option<String> {
    let is_url_key = |key: &str| {
        let key = key.to_ascii_lowercase();
        key.ends_with("url") || key == "src" || key.ends_with("_src")
    };
    members.text("url").or_else(|| {
        members
            .0
            .iter()
            .filter(|(key, _)| is_url_key(key))
            .find_map(|(_, value)| meta::raw_text(value))
    })
}

/// The first known id key, in order of how surely it names the media; else
/// the first other `…_id` that is not a sticker's.
fn media_id(members: &Members) -> Option<String> {
    const KNOWN: &[&str] = &[
        "reel_video_id",
        "ig_post_media_id",
        "story_media_id",
        "media_id",
        "story_id",
        "video_id",
        "attachment_id",
        "id",
    ];
    KNOWN.iter().find_map(|key| members.id(key)).or_else(|| {
        members
            .0
            .iter()
            .filter(|(key, _)| key.ends_with("_id") && key != "sticker_id")
            .find_map(|(_, value)| meta::raw_id(value))
    })
}

fn referral(body: ReferralBody) -> Referral {
    let ads = body.ads_context_data;
    let (ad_title, ad_photo_url, ad_video_url) = match ads {
        Some(ads) => (ads.ad_title, ads.photo_url, ads.video_url),
        None => (None, None, None),
    };
    Referral {
        r#ref: body.reference,
        source: body.source,
        referral_type: body.kind,
        ad_id: body.ad_id,
        ad_title,
        ad_photo_url,
        ad_video_url,
    }
}

fn handover_body(
    pass: Option<HandoverBody>,
    take: Option<HandoverBody>,
    request: Option<HandoverBody>,
) -> Option<(HandoverAction, HandoverBody)> {
    pass.map(|body| (HandoverAction::Pass, body))
        .or(take.map(|body| (HandoverAction::Take, body)))
        .or(request.map(|body| (HandoverAction::Request, body)))
}

fn handover(sender_id: String, action: HandoverAction, body: HandoverBody) -> Handover {
    Handover {
        sender_id,
        action,
        previous_owner_app_id: body.previous_owner_app_id,
        new_owner_app_id: body.new_owner_app_id.or(body.requested_owner_app_id),
        metadata: body.metadata,
    }
}

fn comment(value: CommentValue) -> Comment {
    let (from_id, from_username) = match value.from {
        Some(from) => (from.id, from.username),
        None => (None, None),
    };
    Comment {
        id: value.id,
        from_id,
        from_username,
        text: value.text,
        parent_id: value.parent_id,
        media: value.media.map(|media| Media {
            id: media.id,
            product_type: media.media_product_type,
            ad_id: media.ad_id,
            ad_title: media.ad_title,
            original_media_id: media.original_media_id,
        }),
    }
}

#[cfg(test)]
mod tests;
