//! From Meta's payload to normalised [`Event`]s: every entry, every
//! messaging, standby and changes item, each its own event with a stable
//! dedupe key. What igloo cannot read becomes [`EventKind::Unknown`], never
//! an error.

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::clock::now_ms;

use super::meta::{
    AttachmentBody, CommentValue, Entry, HandoverBody, MentionValue, MessageBody, MessagingItem,
    ReferralBody, StoryInsightsValue, WebhookPayload,
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

/// Split a webhook body into events.
pub fn normalise(body: &[u8]) -> Result<Vec<Event>, PayloadError> {
    let payload: WebhookPayload<'_> = serde_json::from_slice(body)?;
    let mut events = Vec::new();
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
        let digest = Sha256::new()
            .chain_update(field.as_bytes())
            .chain_update([0])
            .chain_update(raw_json.as_bytes())
            .finalize();
        let key = hex::encode(&digest[..16]);
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
                let key = comment.id.clone();
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
            "story_insights" => parse::<StoryInsightsValue>(raw).map(|value| {
                // Metrics are re-sent as they change: the time tells them apart.
                let key = format!(
                    "{}:{}",
                    value.media_id,
                    self.entry_time_ms.unwrap_or_default()
                );
                self.event(key, None, EventKind::StoryInsights(story_insights(value)))
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

        let (key, kind) = if let Some(message) = item.message {
            is_self |= message.is_self;
            if message.is_deleted {
                let key = message.mid.clone();
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
                    message.mid.clone(),
                    EventKind::Message(self::message(message, sender_id, recipient_id)),
                )
            }
        } else if let Some(edit) = item.message_edit {
            let key = format!("{}:{}", edit.mid, edit.num_edit);
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
            let key = format!(
                "{sender_id}:{}:{}:{what}:{stamp}",
                reaction.mid, reaction.action
            );
            let reaction = Reaction {
                mid: reaction.mid,
                sender_id,
                action,
                reaction: reaction.reaction,
                emoji: reaction.emoji,
            };
            (key, EventKind::Reaction(reaction))
        } else if let Some(postback) = item.postback {
            let key = match &postback.mid {
                Some(mid) => mid.clone(),
                None => format!("{sender_id}:{}:{stamp}", postback.payload),
            };
            let postback = Postback {
                mid: postback.mid,
                sender_id,
                title: postback.title,
                payload: postback.payload,
            };
            (key, EventKind::Postback(postback))
        } else if let Some(read) = item.read {
            let key = format!("{sender_id}:{}", read.mid);
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

fn attachment(body: AttachmentBody) -> Attachment {
    let payload = body.payload.unwrap_or_default();
    Attachment {
        attachment_type: AttachmentType::from_meta(&body.kind),
        url: payload.url,
        title: payload.title,
        media_id: payload.reel_video_id.or(payload.ig_post_media_id),
    }
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

fn story_insights(value: StoryInsightsValue) -> StoryInsights {
    StoryInsights {
        media_id: value.media_id,
        exits: value.exits,
        replies: value.replies,
        reach: value.reach,
        taps_forward: value.taps_forward,
        taps_back: value.taps_back,
        impressions: value.impressions,
    }
}

#[cfg(test)]
mod tests;
