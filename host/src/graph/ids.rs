//! The ids and URLs a plugin may hand to the Graph API, each checked
//! against the alphabet Meta uses for its kind before it goes anywhere near
//! a request. The client takes only these types, so no string a plugin
//! chose can become part of a path or a query: a forged id is refused
//! `invalid`, and nothing reaches Meta.

use std::fmt;

use crate::untrusted;

/// A value that is not an id (or URL) of the kind asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{shown}` is not a valid {kind}: {rule}")]
pub struct InvalidId {
    /// What was expected.
    pub kind: &'static str,
    /// The rule it broke.
    pub rule: &'static str,
    /// The value, cut and stripped for the message.
    pub shown: String,
}

fn invalid(kind: &'static str, rule: &'static str, text: &str) -> InvalidId {
    InvalidId {
        kind,
        rule,
        shown: untrusted::sanitize(text, 48),
    }
}

/// Meta's numeric ids: accounts, IGSIDs, comments, media, attachments.
/// ASCII digits only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GraphId(String);

/// Longest numeric id accepted (Meta's are under 20 digits).
const MAX_NUMERIC_ID_DIGITS: usize = 32;

impl GraphId {
    /// Check `text` as a numeric id of `kind` (named in the error).
    pub fn parse(kind: &'static str, text: &str) -> Result<Self, InvalidId> {
        if text.is_empty() || text.len() > MAX_NUMERIC_ID_DIGITS {
            return Err(invalid(kind, "1 to 32 ASCII digits", text));
        }
        if !text.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(invalid(kind, "only ASCII digits", text));
        }
        Ok(Self(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A message id (`mid`): Meta's are base64-like text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageId(String);

/// Longest message id accepted.
const MAX_MESSAGE_ID_BYTES: usize = 512;

impl MessageId {
    /// Check `text` as a message id.
    pub fn parse(text: &str) -> Result<Self, InvalidId> {
        const KIND: &str = "message id";
        if text.is_empty() || text.len() > MAX_MESSAGE_ID_BYTES {
            return Err(invalid(KIND, "1 to 512 characters", text));
        }
        let allowed = |byte: u8| {
            byte.is_ascii_alphanumeric()
                || matches!(byte, b'_' | b'-' | b'+' | b'/' | b'=' | b'.' | b':')
        };
        if !text.bytes().all(allowed) {
            return Err(invalid(
                KIND,
                "letters, digits and _ - + / = . : only",
                text,
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An Instagram username: letters, digits, `.` and `_`, at most 30.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Check `text` as a username.
    pub fn parse(text: &str) -> Result<Self, InvalidId> {
        const KIND: &str = "username";
        let allowed = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_');
        if text.is_empty() || text.len() > 30 || !text.bytes().all(allowed) {
            return Err(invalid(KIND, "1 to 30 letters, digits, `.` and `_`", text));
        }
        Ok(Self(text.to_owned()))
    }

    /// The username as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A web address for Meta to fetch or show: absolute `https` or `http`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebUrl(reqwest::Url);

/// Longest URL accepted, in bytes.
pub const MAX_URL_BYTES: usize = 2048;

impl WebUrl {
    /// Check `text` as a web URL.
    pub fn parse(text: &str) -> Result<Self, InvalidId> {
        const KIND: &str = "web URL";
        if text.len() > MAX_URL_BYTES {
            return Err(invalid(KIND, "at most 2048 bytes", text));
        }
        let url = reqwest::Url::parse(text)
            .map_err(|_| invalid(KIND, "an absolute http(s) URL", text))?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(invalid(KIND, "an absolute http(s) URL with a host", text));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(KIND, "no credentials in the URL", text));
        }
        Ok(Self(url))
    }

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for GraphId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids a hostile plugin tried; every one must be refused.
    const FORGED: &[&str] = include!("../../../tests/fixtures/forged_graph_ids.rs");

    #[test]
    fn numeric_ids_are_ascii_digits_and_nothing_else() {
        assert_eq!(
            GraphId::parse("comment id", "17858893269000001")
                .unwrap()
                .as_str(),
            "17858893269000001"
        );
        for forged in FORGED {
            assert!(GraphId::parse("comment id", forged).is_err(), "{forged:?}");
        }
        assert!(GraphId::parse("comment id", &"1".repeat(33)).is_err());
        let error = GraphId::parse("comment id", "12/../me").unwrap_err();
        assert_eq!(error.kind, "comment id");
    }

    #[test]
    fn message_ids_take_meta_base64_and_refuse_structure() {
        for mid in [
            "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDAwMDAwMDAwMDAxOjM0MDI4ZDZD",
            "m_AG5Hz2Uq7tuw-NE",
            "mid.1457764197618:41d102a3e1ae206a38",
        ] {
            assert!(MessageId::parse(mid).is_ok(), "{mid}");
        }
        for forged in [
            "",
            "mid\"}, \"recipient\": {\"id\": \"999",
            "a b",
            "a?b",
            "a&b",
            "a#b",
            "a\nb",
            "a%2F",
        ] {
            assert!(MessageId::parse(forged).is_err(), "{forged:?}");
        }
    }

    #[test]
    fn usernames_follow_instagrams_alphabet() {
        assert!(Username::parse("maria.silva_88").is_ok());
        for forged in ["", "a/b", "a?x=1", "../x", "a b", &"a".repeat(31)] {
            assert!(Username::parse(forged).is_err(), "{forged:?}");
        }
    }

    #[test]
    fn web_urls_are_absolute_http_with_a_host_and_bounded() {
        assert!(WebUrl::parse("https://cdn.example.com/a.png?x=1").is_ok());
        for bad in [
            "file:///etc/passwd",
            "javascript:alert(1)",
            "/relative",
            "https://user:pass@host/",
            "ftp://host/x",
        ] {
            assert!(WebUrl::parse(bad).is_err(), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES));
        assert!(WebUrl::parse(&long).is_err());
    }
}
