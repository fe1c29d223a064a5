//! Meta's webhook payloads as sent on the wire. Only what igloo reads is
//! declared and every field is optional where real traffic omits it, so new
//! or missing fields never break parsing. Items are kept as raw JSON until
//! read, so anything igloo cannot read is passed on verbatim.

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// The body of `POST /webhooks/instagram`.
#[derive(Debug, Deserialize)]
pub struct WebhookPayload<'a> {
    /// `instagram` for Instagram webhooks.
    #[serde(default)]
    pub object: String,
    /// One entry per account and batch (Meta batches several).
    #[serde(default, borrow)]
    pub entry: Vec<Entry<'a>>,
}

/// Events for one account.
#[derive(Debug, Deserialize)]
pub struct Entry<'a> {
    /// The business account id, kept exactly as text (test tools send
    /// numbers above 2^53).
    #[serde(default, deserialize_with = "id_text")]
    pub id: String,
    /// When Meta sent the notification.
    #[serde(default)]
    pub time: Option<Value>,
    /// Messaging events.
    #[serde(default, borrow)]
    pub messaging: Vec<&'a RawValue>,
    /// Messaging events for threads another app controls.
    #[serde(default, borrow)]
    pub standby: Vec<&'a RawValue>,
    /// Field changes: comments, mentions, insights, dashboard tests.
    #[serde(default, borrow)]
    pub changes: Vec<Change<'a>>,
    /// The flattened form of a single change (`field` beside `id`).
    #[serde(default)]
    pub field: Option<String>,
    /// The flattened form's value.
    #[serde(default, borrow)]
    pub value: Option<&'a RawValue>,
}

/// One item of `entry.changes`.
#[derive(Debug, Deserialize)]
pub struct Change<'a> {
    /// Which webhook field changed.
    #[serde(default)]
    pub field: String,
    /// Its value, read according to `field`.
    #[serde(borrow)]
    pub value: Option<&'a RawValue>,
}

/// One messaging item (from `messaging`, `standby`, or a dashboard test's
/// `changes[].value`). Exactly one of the event keys is normally present.
#[derive(Debug, Default, Deserialize)]
pub struct MessagingItem {
    /// Who acted.
    pub sender: Option<Party>,
    /// Who was acted upon.
    pub recipient: Option<Party>,
    /// When (ms, s or string).
    pub timestamp: Option<Value>,
    /// Self-messaging flag (some payloads put it here).
    #[serde(default)]
    pub is_self: bool,
    /// A message.
    pub message: Option<MessageBody>,
    /// An edit.
    pub message_edit: Option<MessageEditBody>,
    /// A reaction.
    pub reaction: Option<ReactionBody>,
    /// A postback.
    pub postback: Option<PostbackBody>,
    /// A read receipt.
    pub read: Option<ReadBody>,
    /// A referral.
    pub referral: Option<ReferralBody>,
    /// An opt-in.
    pub optin: Option<OptinBody>,
    /// Thread control passed.
    pub pass_thread_control: Option<HandoverBody>,
    /// Thread control taken.
    pub take_thread_control: Option<HandoverBody>,
    /// Thread control requested.
    pub request_thread_control: Option<HandoverBody>,
}

/// A sender or recipient.
#[derive(Debug, Deserialize)]
pub struct Party {
    /// The IGSID or account id.
    #[serde(default, deserialize_with = "id_text")]
    pub id: String,
}

/// `message`.
#[derive(Debug, Default, Deserialize)]
pub struct MessageBody {
    /// Message id.
    #[serde(default)]
    pub mid: String,
    /// Text.
    pub text: Option<String>,
    /// Attachments.
    #[serde(default)]
    pub attachments: Vec<AttachmentBody>,
    /// Sent by the business.
    #[serde(default)]
    pub is_echo: bool,
    /// Unsent.
    #[serde(default)]
    pub is_deleted: bool,
    /// Content Meta cannot show.
    #[serde(default)]
    pub is_unsupported: bool,
    /// Self-messaging flag.
    #[serde(default)]
    pub is_self: bool,
    /// Tapped quick reply.
    pub quick_reply: Option<QuickReplyBody>,
    /// What it replies to.
    pub reply_to: Option<ReplyToBody>,
    /// Ad or link it came from.
    pub referral: Option<ReferralBody>,
}

/// `message.attachments[]`. Read leniently: an attachment of an odd shape
/// loses its media, never the message it belongs to.
#[derive(Debug, Default)]
pub struct AttachmentBody {
    /// `image`, `video`, `ig_reel`, …; empty when absent or not a string.
    pub kind: String,
    /// `payload`'s members; empty when it is absent (`like_heart`), `null`
    /// or not an object.
    pub payload: Members,
    /// The attachment's own members: Messenger's `fallback` attachments
    /// carried `url` and `title` here, beside a `null` payload.
    pub members: Members,
}

impl<'de> Deserialize<'de> for AttachmentBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let members = Members::parse(&raw).unwrap_or_default();
        Ok(Self {
            kind: members.text("type").unwrap_or_default(),
            payload: members
                .get("payload")
                .and_then(Members::parse)
                .unwrap_or_default(),
            members,
        })
    }
}

/// A JSON object's members in document order, their values unread: for
/// objects whose keys vary with what they carry (attachment payloads), read
/// by key rather than by a fixed shape. Values stay raw so integer ids keep
/// every digit, however large.
#[derive(Debug, Default)]
pub struct Members(pub Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Members;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Box<RawValue>>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }

        deserializer.deserialize_map(Visitor)
    }
}

impl Members {
    /// The members of `raw`; `None` if it is not an object.
    pub fn parse(raw: &RawValue) -> Option<Self> {
        serde_json::from_str(raw.get()).ok()
    }

    /// The raw value of the first member named `key`.
    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.0
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| &**value)
    }

    /// Member `key` as a non-empty string.
    pub fn text(&self, key: &str) -> Option<String> {
        self.get(key).and_then(raw_text)
    }

    /// Member `key` as an id: a non-empty string, or an integer kept
    /// digit for digit.
    pub fn id(&self, key: &str) -> Option<String> {
        self.get(key).and_then(raw_id)
    }

    /// The members whose values are objects, in document order.
    pub fn objects(&self) -> impl Iterator<Item = Members> + '_ {
        self.0.iter().filter_map(|(_, value)| Members::parse(value))
    }
}

/// A raw value as a non-empty string.
pub fn raw_text(raw: &RawValue) -> Option<String> {
    serde_json::from_str::<String>(raw.get())
        .ok()
        .filter(|text| !text.is_empty())
}

/// A raw value as an id: a non-empty string, or an integer's exact digits
/// (never through a float, which would round ids above 2^53).
pub fn raw_id(raw: &RawValue) -> Option<String> {
    let literal = raw.get();
    let digits = literal.strip_prefix('-').unwrap_or(literal);
    if !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Some(literal.to_owned());
    }
    raw_text(raw)
}

/// `message.quick_reply`.
#[derive(Debug, Deserialize)]
pub struct QuickReplyBody {
    /// Payload.
    pub payload: Option<String>,
}

/// `message.reply_to`.
#[derive(Debug, Deserialize)]
pub struct ReplyToBody {
    /// Replied message id.
    pub mid: Option<String>,
    /// Replied story.
    pub story: Option<StoryBody>,
}

/// `reply_to.story`.
#[derive(Debug, Deserialize)]
pub struct StoryBody {
    /// Story id.
    #[serde(default, deserialize_with = "id_text")]
    pub id: String,
    /// Story URL.
    pub url: Option<String>,
}

/// `referral`: inside a message or a postback, or at item level (alone,
/// or beside a message from an ad).
#[derive(Debug, Deserialize)]
pub struct ReferralBody {
    /// Link `ref`.
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    /// Source.
    pub source: Option<String>,
    /// Type.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Ad id.
    #[serde(default, deserialize_with = "optional_id_text")]
    pub ad_id: Option<String>,
    /// Ad details.
    pub ads_context_data: Option<AdsContext>,
}

/// `referral.ads_context_data`.
#[derive(Debug, Deserialize)]
pub struct AdsContext {
    /// Ad title.
    pub ad_title: Option<String>,
    /// Photo URL.
    pub photo_url: Option<String>,
    /// Video URL.
    pub video_url: Option<String>,
}

/// `message_edit`.
#[derive(Debug, Deserialize)]
pub struct MessageEditBody {
    /// Message id.
    #[serde(default)]
    pub mid: String,
    /// New text.
    pub text: Option<String>,
    /// Edit count.
    #[serde(default)]
    pub num_edit: u32,
}

/// `reaction`.
#[derive(Debug, Deserialize)]
pub struct ReactionBody {
    /// Message id.
    #[serde(default)]
    pub mid: String,
    /// `react` or `unreact`.
    #[serde(default)]
    pub action: String,
    /// Reaction name.
    pub reaction: Option<String>,
    /// Emoji.
    pub emoji: Option<String>,
}

/// `postback`.
#[derive(Debug, Deserialize)]
pub struct PostbackBody {
    /// Message id (absent for some ice breakers).
    pub mid: Option<String>,
    /// Button title.
    #[serde(default)]
    pub title: String,
    /// Payload.
    #[serde(default)]
    pub payload: String,
    /// The ig.me link or ad the tap came from.
    pub referral: Option<ReferralBody>,
}

/// `read`.
#[derive(Debug, Deserialize)]
pub struct ReadBody {
    /// Last read message id.
    #[serde(default)]
    pub mid: String,
}

/// `optin`.
#[derive(Debug, Deserialize)]
pub struct OptinBody {
    /// Opt-in type.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Payload.
    pub payload: Option<String>,
    /// `ref`.
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    /// Token.
    pub notification_messages_token: Option<String>,
}

/// `pass_thread_control` / `take_thread_control` / `request_thread_control`.
#[derive(Debug, Deserialize)]
pub struct HandoverBody {
    /// Previous owner.
    #[serde(default, deserialize_with = "optional_id_text")]
    pub previous_owner_app_id: Option<String>,
    /// New owner.
    #[serde(default, deserialize_with = "optional_id_text")]
    pub new_owner_app_id: Option<String>,
    /// Requesting app (request_thread_control).
    #[serde(default, deserialize_with = "optional_id_text")]
    pub requested_owner_app_id: Option<String>,
    /// Metadata.
    pub metadata: Option<String>,
}

/// `comments` / `live_comments` value.
#[derive(Debug, Deserialize)]
pub struct CommentValue {
    /// Comment id (Facebook Login examples call it `comment_id`).
    #[serde(default, alias = "comment_id", deserialize_with = "id_text")]
    pub id: String,
    /// Author.
    pub from: Option<CommentAuthor>,
    /// Text.
    #[serde(default)]
    pub text: String,
    /// Parent comment.
    #[serde(default, deserialize_with = "optional_id_text")]
    pub parent_id: Option<String>,
    /// Media.
    pub media: Option<MediaBody>,
}

/// `value.from`.
#[derive(Debug, Deserialize)]
pub struct CommentAuthor {
    /// Author id.
    #[serde(default, deserialize_with = "optional_id_text")]
    pub id: Option<String>,
    /// Username.
    pub username: Option<String>,
}

/// `value.media`.
#[derive(Debug, Deserialize)]
pub struct MediaBody {
    /// Media id.
    #[serde(default, deserialize_with = "id_text")]
    pub id: String,
    /// Product type.
    pub media_product_type: Option<String>,
    /// Ad id.
    #[serde(default, deserialize_with = "optional_id_text")]
    pub ad_id: Option<String>,
    /// Ad title.
    pub ad_title: Option<String>,
    /// Organic post behind an ad.
    #[serde(default, deserialize_with = "optional_id_text")]
    pub original_media_id: Option<String>,
}

/// `mentions` value.
#[derive(Debug, Deserialize)]
pub struct MentionValue {
    /// Media id.
    #[serde(deserialize_with = "id_text")]
    pub media_id: String,
    /// Comment id, for mentions in comments.
    #[serde(default, deserialize_with = "optional_id_text")]
    pub comment_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Unsigned(u64),
    Signed(i64),
}

impl From<Id> for String {
    fn from(id: Id) -> Self {
        match id {
            Id::Text(text) => text,
            Id::Unsigned(number) => number.to_string(),
            Id::Signed(number) => number.to_string(),
        }
    }
}

/// Accept an id sent as a JSON string or integer, keeping every digit.
pub fn id_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Id::deserialize(deserializer).map(String::from)
}

/// [`id_text`] for optional ids (`null` or absent is `None`).
pub fn optional_id_text<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Option::<Id>::deserialize(deserializer).map(|id| id.map(String::from))
}
