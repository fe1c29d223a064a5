//! Text a plugin chose, made safe to write to a log line or a record: cut
//! to a bound, and stripped of every character that could end a line, move
//! the cursor or reorder what a reader sees, so a plugin can neither fill
//! the database nor forge a line of igloo's log.

use std::sync::atomic::{AtomicBool, Ordering};

/// Most bytes of plugin text kept in a run record or a log field.
pub(crate) const MAX_RECORDED_BYTES: usize = 1024;

/// `text` with control and display-reordering characters replaced by
/// U+FFFD, cut to at most `max_bytes` bytes (on a character boundary) with
/// a note of how much was cut.
pub(crate) fn sanitize(text: &str, max_bytes: usize) -> String {
    let mut end = text.len().min(max_bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut clean: String = text[..end]
        .chars()
        .map(|c| if is_unsafe(c) { '\u{FFFD}' } else { c })
        .collect();
    if end < text.len() {
        clean.push_str(&format!(" …[{} more bytes cut]", text.len() - end));
    }
    clean
}

/// Whether igloo's log is JSON (`[log] format = "json"`): set once, when
/// the log is set up.
static JSON_LOGS: AtomicBool = AtomicBool::new(false);

/// Tell [`LogText`] that the log is JSON (or not).
pub(crate) fn set_json_logs(json: bool) {
    JSON_LOGS.store(json, Ordering::Relaxed);
}

/// Plugin text (already [`sanitize`]d) as a log field's value, written
/// with `%`: printable Unicode (accents, emoji and their variation
/// selectors, other scripts) as itself, never as Rust's `\u{fe0f}`. In the
/// text log it is quoted, with `"` and `\` escaped, so it cannot pose as
/// another field; the JSON log quotes and escapes it itself. A character
/// that could break or rearrange a line, should one get here, is escaped
/// either way.
pub(crate) fn log_text(text: &str) -> LogText<'_> {
    LogText::for_format(text, JSON_LOGS.load(Ordering::Relaxed))
}

/// See [`log_text`].
pub(crate) struct LogText<'a> {
    text: &'a str,
    /// For the text log: in quotes, `"` and `\` escaped.
    quoted: bool,
}

impl<'a> LogText<'a> {
    /// `text` for the JSON log (`json`) or the text log.
    pub(crate) fn for_format(text: &'a str, json: bool) -> Self {
        Self {
            text,
            quoted: !json,
        }
    }
}

impl std::fmt::Display for LogText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        if self.quoted {
            f.write_char('"')?;
        }
        for c in self.text.chars() {
            match c {
                '"' | '\\' if self.quoted => write!(f, "\\{c}")?,
                c if is_unsafe(c) => write!(f, "{}", c.escape_unicode())?,
                c => f.write_char(c)?,
            }
        }
        if self.quoted {
            f.write_char('"')?;
        }
        Ok(())
    }
}

/// Characters that break or rearrange a line: C0 and C1 controls (newline,
/// carriage return, escape…), Unicode line and paragraph separators, and
/// bidirectional overrides and isolates.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_escapes_and_bidi_overrides_cannot_pass() {
        let forged =
            "ok\n2026-11-23T00:00:00Z INFO plugin run outcome=\"ok\"\r\x1b[2K\u{202E}\u{2028}";
        let clean = sanitize(forged, 1024);
        assert!(!clean.chars().any(is_unsafe), "{clean:?}");
        assert!(clean.starts_with("ok\u{FFFD}2026"), "{clean:?}");
        assert_eq!(sanitize("héllo wörld", 1024), "héllo wörld");
    }

    #[test]
    fn plugin_text_in_the_log_is_printable_unicode_as_itself() {
        let text = sanitize("thumbs 👍️ \"ok\" C:\\ 日本 café\n\u{1b}[2K", 1024);
        let quoted = |text: &str| LogText { text, quoted: true }.to_string();
        let field = quoted(&text);
        assert_eq!(
            field,
            "\"thumbs 👍️ \\\"ok\\\" C:\\\\ 日本 café\u{FFFD}\u{FFFD}[2K\""
        );
        assert!(!field.contains("\\u{"), "{field}");
        assert_eq!(
            quoted("a\u{202E}b\rc"),
            "\"a\\u{202e}b\\u{d}c\"",
            "escaped, should one get here"
        );
        let bare = LogText {
            text: &text,
            quoted: false,
        };
        assert_eq!(
            bare.to_string(),
            "thumbs 👍️ \"ok\" C:\\ 日本 café\u{FFFD}\u{FFFD}[2K",
            "the JSON log quotes it itself"
        );
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary_with_a_note() {
        let long = "€".repeat(1000); // 3000 bytes
        let clean = sanitize(&long, 100);
        assert!(clean.starts_with(&"€".repeat(33)), "{clean}");
        assert!(clean.ends_with("…[2901 more bytes cut]"), "{clean}");
        assert!(clean.len() < 130);
    }
}
