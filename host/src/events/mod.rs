//! Instagram events: Meta's webhook payloads ([`meta`]), the normalised
//! model igloo stores and hands to plugins ([`Event`]), and the step from
//! one to the other ([`normalise()`]).

pub mod meta;
mod normalise;
mod subscription;
mod timestamp;

use serde::{Deserialize, Serialize};

pub use normalise::{PayloadError, normalise};
pub use subscription::{AccountScope, Subscription, Subscriptions, webhook_field};
pub use timestamp::normalise_timestamp_ms;

/// One normalised Instagram event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Stable identity: the same event redelivered by Meta has the same
    /// key, so it is stored and dispatched once.
    pub key: String,
    /// The business account the event belongs to (`entry.id`).
    pub account_id: String,
    /// When it happened, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The business account itself caused it: a message echo, or its own
    /// comment. Plugins get these only if they ask (`echoes = true`).
    #[serde(default)]
    pub is_echo: bool,
    /// Meta's self-messaging flag.
    #[serde(default)]
    pub is_self: bool,
    /// Delivered in `entry.standby`: another app owns the thread.
    #[serde(default)]
    pub is_standby: bool,
    /// What happened.
    pub kind: EventKind,
}

/// What happened, with its typed fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EventKind {
    /// A direct message (or an echo of one the business sent).
    Message(Message),
    /// A message was unsent.
    MessageDeleted(MessageDeleted),
    /// A message was edited.
    MessageEdit(MessageEdit),
    /// A reaction was added or removed.
    Reaction(Reaction),
    /// A button, ice breaker or menu item was tapped.
    Postback(Postback),
    /// The person read the conversation.
    Seen(Seen),
    /// A conversation came from an ig.me link or an ad.
    Referral(ReferralEvent),
    /// The person opted in.
    Optin(Optin),
    /// Thread control moved between apps.
    Handover(Handover),
    /// A comment on a post, reel or ad.
    Comment(Comment),
    /// A comment on a live broadcast.
    LiveComment(Comment),
    /// The business was @mentioned.
    Mention(Mention),
    /// A story's metrics.
    StoryInsights(StoryInsights),
    /// Anything igloo does not model, verbatim.
    Unknown(Unknown),
    /// A timer a plugin set fired: for that plugin only, whatever the
    /// manifests subscribe to.
    Timer(Timer),
}

/// Every kind's name, as used in manifests' `events`.
pub const KIND_NAMES: &[&str] = &[
    "message",
    "message-deleted",
    "message-edit",
    "reaction",
    "postback",
    "seen",
    "referral",
    "optin",
    "handover",
    "comment",
    "live-comment",
    "mention",
    "story-insights",
    "unknown",
];

/// A direct message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Meta's message id.
    pub mid: String,
    /// Who sent it.
    pub sender_id: String,
    /// Who received it.
    pub recipient_id: String,
    /// The text, if any.
    pub text: Option<String>,
    /// Attachments, in order.
    pub attachments: Vec<Attachment>,
    /// Payload of the tapped quick reply.
    pub quick_reply_payload: Option<String>,
    /// What it replies to.
    pub reply_to: Option<ReplyTo>,
    /// The ad or link it came from.
    pub referral: Option<Referral>,
    /// Meta could not show its content.
    pub is_unsupported: bool,
}

/// Kinds of attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentType {
    /// Photo, GIF or sticker.
    Image,
    /// Video.
    Video,
    /// Audio.
    Audio,
    /// File.
    File,
    /// Shared post.
    Share,
    /// Story mention.
    StoryMention,
    /// Shared reel (`ig_reel`).
    IgReel,
    /// Shared reel (`reel`).
    Reel,
    /// Shared post (`ig_post`).
    IgPost,
    /// Heart sticker.
    LikeHeart,
    /// Anything else, by Meta's name.
    Other(String),
}

impl AttachmentType {
    /// The type for Meta's `type` string.
    pub fn from_meta(name: &str) -> Self {
        match name {
            "image" => Self::Image,
            "video" => Self::Video,
            "audio" => Self::Audio,
            "file" => Self::File,
            "share" => Self::Share,
            "story_mention" => Self::StoryMention,
            "ig_reel" => Self::IgReel,
            "reel" => Self::Reel,
            "ig_post" => Self::IgPost,
            "like_heart" => Self::LikeHeart,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// One attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// What it is.
    pub attachment_type: AttachmentType,
    /// Where it is; CDN URLs expire.
    pub url: Option<String>,
    /// Title of a reel or post.
    pub title: Option<String>,
    /// The media's id: a reel's video id, a post's or story's media id, …
    pub media_id: Option<String>,
}

/// What a message replies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyTo {
    /// An earlier message, by id.
    Message(String),
    /// A story.
    Story {
        /// The story's id.
        id: String,
        /// Its URL.
        url: Option<String>,
    },
}

/// Where a conversation came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referral {
    /// The link's `ref`.
    pub r#ref: Option<String>,
    /// The source, verbatim.
    pub source: Option<String>,
    /// The type, verbatim.
    pub referral_type: Option<String>,
    /// The ad's id.
    pub ad_id: Option<String>,
    /// The ad's title.
    pub ad_title: Option<String>,
    /// The ad's photo URL.
    pub ad_photo_url: Option<String>,
    /// The ad's video URL.
    pub ad_video_url: Option<String>,
}

/// An unsent message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDeleted {
    /// Its id.
    pub mid: String,
    /// Who unsent it.
    pub sender_id: String,
}

/// An edited message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageEdit {
    /// Its id.
    pub mid: String,
    /// Who edited it.
    pub sender_id: String,
    /// The new text.
    pub text: Option<String>,
    /// How many times it was edited.
    pub num_edit: u32,
}

/// Added or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReactionAction {
    /// Added.
    React,
    /// Removed.
    Unreact,
}

/// A reaction to a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    /// The message reacted to.
    pub mid: String,
    /// Who reacted.
    pub sender_id: String,
    /// Added or removed.
    pub action: ReactionAction,
    /// Its name, e.g. `love`.
    pub reaction: Option<String>,
    /// The emoji.
    pub emoji: Option<String>,
}

/// A tapped button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Postback {
    /// Message id, when sent.
    pub mid: Option<String>,
    /// Who tapped.
    pub sender_id: String,
    /// Button title.
    pub title: String,
    /// Developer-defined payload.
    pub payload: String,
    /// The ig.me link or ad the tap came from (Meta sends one with
    /// postbacks from such links).
    #[serde(default)]
    pub referral: Option<Referral>,
}

/// A read receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// Who read.
    pub sender_id: String,
    /// The last message read.
    pub mid: String,
}

/// A conversation opened from a link or an ad.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferralEvent {
    /// Who opened it.
    pub sender_id: String,
    /// Where from.
    pub referral: Referral,
}

/// An opt-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Optin {
    /// Who opted in.
    pub sender_id: String,
    /// The opt-in type.
    pub optin_type: Option<String>,
    /// Payload.
    pub payload: Option<String>,
    /// The `ref`.
    pub r#ref: Option<String>,
    /// Token for later messages.
    pub token: Option<String>,
}

/// How thread control moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoverAction {
    /// Passed to an app.
    Pass,
    /// Taken by an app.
    Take,
    /// Requested by an app.
    Request,
}

/// Thread control moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handover {
    /// Whose thread.
    pub sender_id: String,
    /// What happened.
    pub action: HandoverAction,
    /// Previous owner app.
    pub previous_owner_app_id: Option<String>,
    /// New owner app.
    pub new_owner_app_id: Option<String>,
    /// Metadata passed along.
    pub metadata: Option<String>,
}

/// The media a comment is on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    /// Media id.
    pub id: String,
    /// `FEED`, `REELS`, `LIVE`, `AD`, … verbatim.
    pub product_type: Option<String>,
    /// Ad id.
    pub ad_id: Option<String>,
    /// Ad title.
    pub ad_title: Option<String>,
    /// The organic post the ad came from.
    pub original_media_id: Option<String>,
}

/// A comment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    /// Comment id.
    pub id: String,
    /// Author id, when sent.
    pub from_id: Option<String>,
    /// Author username, when sent.
    pub from_username: Option<String>,
    /// Text.
    pub text: String,
    /// The comment this one replies to.
    pub parent_id: Option<String>,
    /// What it is on.
    pub media: Option<Media>,
}

/// An @mention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mention {
    /// The media.
    pub media_id: String,
    /// The comment holding the mention; none for a caption.
    pub comment_id: Option<String>,
}

/// Story metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoryInsights {
    /// The story. Meta's `story_insights` value parses straight into this
    /// type: its id may come as a number.
    #[serde(deserialize_with = "meta::id_text")]
    pub media_id: String,
    /// Exits.
    pub exits: Option<u64>,
    /// Replies.
    pub replies: Option<u64>,
    /// Reach.
    pub reach: Option<u64>,
    /// Taps forward.
    pub taps_forward: Option<u64>,
    /// Taps back.
    pub taps_back: Option<u64>,
    /// Impressions.
    pub impressions: Option<u64>,
}

/// A timer firing (see [`crate::capabilities::Scheduler`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    /// The operator's id of the plugin that set it: the only one it reaches.
    pub plugin: String,
    /// The key it was set with.
    pub key: String,
    /// The person whose conversation it was set in.
    pub person_id: String,
    /// The payload it was set with.
    pub payload: Vec<u8>,
    /// When it was due, in milliseconds since the epoch.
    pub due_at_ms: u64,
}

/// Something igloo does not model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unknown {
    /// The webhook field or messaging key.
    pub field: String,
    /// The item's JSON, verbatim.
    pub raw_json: String,
}

impl EventKind {
    /// The name plugins subscribe to in their manifest, e.g. `message`.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Message(_) => "message",
            EventKind::MessageDeleted(_) => "message-deleted",
            EventKind::MessageEdit(_) => "message-edit",
            EventKind::Reaction(_) => "reaction",
            EventKind::Postback(_) => "postback",
            EventKind::Seen(_) => "seen",
            EventKind::Referral(_) => "referral",
            EventKind::Optin(_) => "optin",
            EventKind::Handover(_) => "handover",
            EventKind::Comment(_) => "comment",
            EventKind::LiveComment(_) => "live-comment",
            EventKind::Mention(_) => "mention",
            EventKind::StoryInsights(_) => "story-insights",
            EventKind::Unknown(_) => "unknown",
            EventKind::Timer(_) => "timer",
        }
    }
}

impl Event {
    /// The one plugin this event is for, whatever the subscriptions say:
    /// a timer's, which only its plugin may see.
    pub fn addressee(&self) -> Option<&str> {
        match &self.kind {
            EventKind::Timer(timer) => Some(&timer.plugin),
            _ => None,
        }
    }

    /// The name plugins subscribe to in their manifest.
    pub fn kind_name(&self) -> &'static str {
        self.kind.name()
    }

    /// The person on the other side of the conversation, if the event
    /// belongs to one: for an echo the recipient, otherwise the sender or
    /// the comment's author; for a timer, the person it was set for.
    pub fn counterpart_id(&self) -> Option<&str> {
        let id = match &self.kind {
            EventKind::Message(message) if message.sender_id == self.account_id => {
                &message.recipient_id
            }
            EventKind::Message(message) => &message.sender_id,
            EventKind::MessageDeleted(deleted) => &deleted.sender_id,
            EventKind::MessageEdit(edit) => &edit.sender_id,
            EventKind::Reaction(reaction) => &reaction.sender_id,
            EventKind::Postback(postback) => &postback.sender_id,
            EventKind::Seen(seen) => &seen.sender_id,
            EventKind::Referral(referral) => &referral.sender_id,
            EventKind::Optin(optin) => &optin.sender_id,
            EventKind::Handover(handover) => &handover.sender_id,
            EventKind::Comment(comment) | EventKind::LiveComment(comment) => {
                comment.from_id.as_ref()?
            }
            EventKind::Timer(timer) => &timer.person_id,
            EventKind::Mention(_) | EventKind::StoryInsights(_) | EventKind::Unknown(_) => {
                return None;
            }
        };
        Some(id)
    }

    /// Events with the same conversation key are dispatched one at a time,
    /// in timestamp order: one lane per (account, person). Events outside
    /// any conversation get a lane of their own.
    pub fn conversation_key(&self) -> String {
        match self.counterpart_id() {
            Some(person) => format!("{}/{person}", self.account_id),
            None => self.key.clone(),
        }
    }
}
