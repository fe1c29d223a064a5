//! `igloo:plugin@0.2.0`, the current API: its generated bindings, which
//! host functions implement, and the conversion from igloo's event model
//! to the guest's.

#[expect(
    missing_docs,
    reason = "generated from wit/v0.2.0/igloo.wit, which documents every item"
)]
mod generated {
    wasmtime::component::bindgen!({
        path: "../wit/v0.2.0",
        world: "automation",
        imports: {
            "igloo:plugin/messaging": async | trappable,
            "igloo:plugin/comments": async | trappable,
            "igloo:plugin/profiles": async | trappable,
            "igloo:plugin/public-profiles": async | trappable,
            "igloo:plugin/kv": async | trappable,
            "igloo:plugin/scheduler": async | trappable,
            "igloo:plugin/conversations": async | trappable,
        },
        exports: { default: async },
        // Host functions return `HostResult`: checks compose with `?`, and
        // a trap stays distinct from a refusal the plugin sees.
        trappable_error_type: { "igloo:plugin/types.error" => crate::plugin_api::HostFailure },
        // Older API versions are served by converting their values to and
        // from these through their (identical) serde forms.
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

pub use generated::igloo::plugin::types::{
    Error as HostError, Event as GuestEvent, Outcome, PluginError,
};
pub use generated::igloo::plugin::{
    comments, config as settings, conversations, kv, log, messaging, profiles, public_profiles,
    run, scheduler, types,
};
pub use generated::{Automation, AutomationPre};

use crate::events::{
    Attachment, AttachmentType, Comment, Event, EventKind, HandoverAction, Media, ReactionAction,
    Referral, ReplyTo,
};

impl From<&Event> for GuestEvent {
    fn from(event: &Event) -> Self {
        GuestEvent {
            envelope: types::Envelope {
                account_id: event.account_id.clone(),
                event_id: event.key.clone(),
                timestamp_ms: event.timestamp_ms,
                is_echo: event.is_echo,
                is_self: event.is_self,
                is_standby: event.is_standby,
            },
            kind: guest_kind(event.kind.clone()),
        }
    }
}

/// The guest's view of each kind: the same fields, in the WIT's types.
fn guest_kind(kind: EventKind) -> types::EventKind {
    use types::EventKind as Guest;
    match kind {
        EventKind::Message(m) => Guest::Message(types::Message {
            mid: m.mid,
            sender_id: m.sender_id,
            recipient_id: m.recipient_id,
            text: m.text,
            attachments: m.attachments.into_iter().map(attachment).collect(),
            quick_reply_payload: m.quick_reply_payload,
            reply_to: m.reply_to.map(|reply| match reply {
                ReplyTo::Message(mid) => types::ReplyTo::Message(mid),
                ReplyTo::Story { id, url } => types::ReplyTo::Story(types::StoryRef { id, url }),
            }),
            referral: m.referral.map(referral),
            is_unsupported: m.is_unsupported,
        }),
        EventKind::MessageDeleted(d) => Guest::MessageDeleted(types::MessageDeleted {
            mid: d.mid,
            sender_id: d.sender_id,
        }),
        EventKind::MessageEdit(e) => Guest::MessageEdit(types::MessageEdit {
            mid: e.mid,
            sender_id: e.sender_id,
            text: e.text,
            num_edit: e.num_edit,
        }),
        EventKind::Reaction(r) => Guest::Reaction(types::Reaction {
            mid: r.mid,
            sender_id: r.sender_id,
            action: match r.action {
                ReactionAction::React => types::ReactionAction::React,
                ReactionAction::Unreact => types::ReactionAction::Unreact,
            },
            reaction: r.reaction,
            emoji: r.emoji,
        }),
        EventKind::Postback(p) => Guest::Postback(types::Postback {
            mid: p.mid,
            sender_id: p.sender_id,
            title: p.title,
            payload: p.payload,
            referral: p.referral.map(referral),
        }),
        EventKind::Seen(s) => Guest::Seen(types::Seen {
            sender_id: s.sender_id,
            mid: s.mid,
        }),
        EventKind::Referral(r) => Guest::Referral(types::ReferralEvent {
            sender_id: r.sender_id,
            referral: referral(r.referral),
        }),
        EventKind::Optin(o) => Guest::Optin(types::Optin {
            sender_id: o.sender_id,
            optin_type: o.optin_type,
            payload: o.payload,
            ref_: o.r#ref,
            token: o.token,
        }),
        EventKind::Handover(h) => Guest::Handover(types::Handover {
            sender_id: h.sender_id,
            action: match h.action {
                HandoverAction::Pass => types::HandoverAction::Pass,
                HandoverAction::Take => types::HandoverAction::Take,
                HandoverAction::Request => types::HandoverAction::Request,
            },
            previous_owner_app_id: h.previous_owner_app_id,
            new_owner_app_id: h.new_owner_app_id,
            metadata: h.metadata,
        }),
        EventKind::Comment(c) => Guest::Comment(comment(c)),
        EventKind::LiveComment(c) => Guest::LiveComment(comment(c)),
        EventKind::Mention(m) => Guest::Mention(types::Mention {
            media_id: m.media_id,
            comment_id: m.comment_id,
        }),
        EventKind::StoryInsights(i) => Guest::StoryInsights(types::StoryInsights {
            media_id: i.media_id,
            exits: i.exits,
            replies: i.replies,
            reach: i.reach,
            taps_forward: i.taps_forward,
            taps_back: i.taps_back,
            impressions: i.impressions,
        }),
        EventKind::Unknown(u) => Guest::Unknown(types::UnknownEvent {
            field: u.field,
            raw_json: u.raw_json,
        }),
        EventKind::Timer(t) => Guest::Timer(types::Timer {
            key: t.key,
            person_id: t.person_id,
            payload: t.payload,
            due_at_ms: t.due_at_ms,
        }),
    }
}

fn attachment(a: Attachment) -> types::Attachment {
    use types::AttachmentType as Guest;
    types::Attachment {
        attachment_type: match a.attachment_type {
            AttachmentType::Image => Guest::Image,
            AttachmentType::Video => Guest::Video,
            AttachmentType::Audio => Guest::Audio,
            AttachmentType::File => Guest::File,
            AttachmentType::Share => Guest::Share,
            AttachmentType::StoryMention => Guest::StoryMention,
            AttachmentType::IgReel => Guest::IgReel,
            AttachmentType::Reel => Guest::Reel,
            AttachmentType::IgPost => Guest::IgPost,
            AttachmentType::LikeHeart => Guest::LikeHeart,
            AttachmentType::Other(name) => Guest::Other(name),
        },
        url: a.url,
        title: a.title,
        media_id: a.media_id,
    }
}

fn referral(r: Referral) -> types::Referral {
    types::Referral {
        ref_: r.r#ref,
        source: r.source,
        referral_type: r.referral_type,
        ad_id: r.ad_id,
        ad_title: r.ad_title,
        ad_photo_url: r.ad_photo_url,
        ad_video_url: r.ad_video_url,
    }
}

fn comment(c: Comment) -> types::Comment {
    types::Comment {
        id: c.id,
        from_id: c.from_id,
        from_username: c.from_username,
        text: c.text,
        parent_id: c.parent_id,
        media: c.media.map(|m: Media| types::Media {
            id: m.id,
            product_type: m.product_type,
            ad_id: m.ad_id,
            ad_title: m.ad_title,
            original_media_id: m.original_media_id,
        }),
    }
}
