//! The account's recent media and their comments, read back: Meta drops a
//! comment webhook now and then, and cannot be asked to send it again
//! (PLATFORM.md A1, D15), so the reconciler reads what webhooks missed.

use serde::Deserialize;

use super::{GraphClient, GraphError, GraphId, Repeat, SendClass, parse};

/// One of the account's posts, reels or stories.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Media {
    /// Its id.
    #[serde(deserialize_with = "crate::events::meta::id_text")]
    pub id: String,
    /// `FEED`, `REELS`, `STORY`, … when Meta says.
    #[serde(default)]
    pub media_product_type: Option<String>,
}

/// A top-level comment on a media, as the comments edge lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaComment {
    /// Its id.
    pub id: String,
    /// Its text.
    pub text: String,
    /// Its author's IGSID, when Meta gives it.
    pub from_id: Option<String>,
    /// Its author's username, when Meta gives it.
    pub from_username: Option<String>,
    /// When it was made.
    pub created_ms: u64,
}

#[derive(Deserialize)]
struct Listed<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
}

#[derive(Deserialize)]
struct ListedComment {
    #[serde(deserialize_with = "crate::events::meta::id_text")]
    id: String,
    #[serde(default)]
    text: String,
    timestamp: Option<String>,
    from: Option<Author>,
    username: Option<String>,
}

#[derive(Deserialize)]
struct Author {
    #[serde(default, deserialize_with = "crate::events::meta::id_text")]
    id: String,
    username: Option<String>,
}

/// `GET /{comment}?fields=from`'s answer.
#[derive(Deserialize)]
struct CommentFrom {
    from: Option<Author>,
}

impl GraphClient {
    /// `GET /{comment}?fields=from`: the IGSID of who wrote `comment`, when
    /// Meta says (a webhook for a live video's comment, or a comment read
    /// back, may not have said).
    pub async fn comment_author(
        &self,
        account_id: &str,
        comment: &GraphId,
    ) -> Result<Option<String>, GraphError> {
        let request = self.request(
            account_id,
            reqwest::Method::GET,
            &[comment.as_str()],
            &[("fields", "from")],
            None,
        );
        let answer = self
            .call(account_id, request, SendClass::Other, Repeat::Idempotent)
            .await?;
        let from = parse::<CommentFrom>(answer, "comment")?.from;
        Ok(from.map(|author| author.id).filter(|id| !id.is_empty()))
    }

    /// `GET /{account}/media`: its `limit` newest media.
    pub async fn recent_media(
        &self,
        account_id: &str,
        limit: u32,
    ) -> Result<Vec<Media>, GraphError> {
        let limit = limit.to_string();
        let request = self.request(
            account_id,
            reqwest::Method::GET,
            &[account_id, "media"],
            &[("fields", "id,media_product_type"), ("limit", &limit)],
            None,
        );
        let answer = self
            .call(account_id, request, SendClass::Other, Repeat::Idempotent)
            .await?;
        Ok(parse::<Listed<Media>>(answer, "media")?.data)
    }

    /// `GET /{media}/comments`: its `limit` newest top-level comments.
    /// Comments Meta lists without a readable time are left out.
    pub async fn media_comments(
        &self,
        account_id: &str,
        media: &GraphId,
        limit: u32,
    ) -> Result<Vec<MediaComment>, GraphError> {
        let limit = limit.to_string();
        let request = self.request(
            account_id,
            reqwest::Method::GET,
            &[media.as_str(), "comments"],
            &[
                ("fields", "id,text,timestamp,from,username"),
                ("limit", &limit),
            ],
            None,
        );
        let answer = self
            .call(account_id, request, SendClass::Other, Repeat::Idempotent)
            .await?;
        let listed = parse::<Listed<ListedComment>>(answer, "comments")?.data;
        Ok(listed
            .into_iter()
            .filter_map(|comment| {
                let created = comment.timestamp.as_deref().and_then(super::meta_time_ms)?;
                let (from_id, from_username) = match comment.from {
                    Some(author) => (Some(author.id).filter(|id| !id.is_empty()), author.username),
                    None => (None, None),
                };
                Some(MediaComment {
                    id: comment.id,
                    text: comment.text,
                    from_id,
                    from_username: from_username.or(comment.username),
                    created_ms: created,
                })
            })
            .collect())
    }
}
