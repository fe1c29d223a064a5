//! Text a plugin chose, made safe to write to a log line or a record: cut
//! to a bound, and stripped of every character that could end a line, move
//! the cursor or reorder what a reader sees, so a plugin can neither fill
//! the database nor forge a line of igloo's log.

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
    fn long_text_is_cut_on_a_character_boundary_with_a_note() {
        let long = "€".repeat(1000); // 3000 bytes
        let clean = sanitize(&long, 100);
        assert!(clean.starts_with(&"€".repeat(33)), "{clean}");
        assert!(clean.ends_with("…[2901 more bytes cut]"), "{clean}");
        assert!(clean.len() < 130);
    }
}
