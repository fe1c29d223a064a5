//! Opt-out: a person who sends a stop keyword gets no automated message
//! from any plugin until they opt back in (a start keyword, or, if the
//! account is configured so, any message). Enforced here, in the host, so
//! no plugin can forget it; a send to them is the typed `opted-out` error.
//!
//! Each decision is kept with the time of the message that made it, and
//! only a later message changes it: an old STOP handled again (a retry, a
//! replay) cannot undo the START that followed it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::events::{Event, EventKind};
use crate::state::{HostState, StateError};

/// `[opt_out]`, and each account's `accounts.<id>.opt_out`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptOutConfig {
    /// A message that is one of these (ignoring case and surrounding
    /// spaces) opts its sender out.
    pub stop_keywords: Vec<String>,
    /// A message that is one of these opts its sender back in.
    pub start_keywords: Vec<String>,
    /// Any message from the person (not only a start keyword) opts them
    /// back in.
    pub any_message_opts_in: bool,
}

impl Default for OptOutConfig {
    fn default() -> Self {
        Self {
            stop_keywords: vec!["STOP".into(), "UNSUBSCRIBE".into()],
            start_keywords: vec!["START".into(), "SUBSCRIBE".into()],
            any_message_opts_in: false,
        }
    }
}

impl OptOutConfig {
    /// A keyword must not be empty, nor both a stop and a start keyword.
    pub fn validate(&self, section: &str) -> Result<(), String> {
        let all = self.stop_keywords.iter().chain(&self.start_keywords);
        if all.clone().any(|keyword| bare(keyword).is_empty()) {
            return Err(format!("{section}: keywords must not be empty"));
        }
        if let Some(both) = self.stop_keywords.iter().find(|stop| {
            self.start_keywords
                .iter()
                .any(|start| bare(stop) == bare(start))
        }) {
            return Err(format!(
                "{section}: `{both}` is both a stop and a start keyword"
            ));
        }
        Ok(())
    }

    /// What a person decides by saying `said` (a message's text, a
    /// button's title) and tapping something that carries `payloads`:
    /// `Some(true)` opts out, `Some(false)` opts in, `None` leaves things
    /// as they are. A payload is the business's text, not the person's:
    /// it may opt them out (a "Stop these" button), never back in.
    fn decide(&self, said: &[Option<&str>], payloads: &[Option<&str>]) -> Option<bool> {
        let bare_all = |texts: &[Option<&str>]| -> Vec<String> {
            texts
                .iter()
                .map(|text| bare(text.unwrap_or_default()))
                .collect()
        };
        let (said, payloads) = (bare_all(said), bare_all(payloads));
        let any_is = |texts: &[String], keywords: &[String]| {
            keywords
                .iter()
                .any(|keyword| texts.contains(&bare(keyword)))
        };
        if any_is(&said, &self.stop_keywords) || any_is(&payloads, &self.stop_keywords) {
            Some(true)
        } else if any_is(&said, &self.start_keywords) || self.any_message_opts_in {
            Some(false)
        } else {
            None
        }
    }
}

/// Text as keywords are compared: compatibility-normalised (full-width
/// letters are letters), without invisible characters, without what is not
/// a letter or digit at either end (spaces, "!", an emoji), in lower case.
/// So "Stop!", "ＳＴＯＰ" and "stop 🛑" are all "stop"; "please stop" is not.
fn bare(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let invisible = |c: &char| matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}');
    let normal: String = text.nfkc().filter(|c| !invisible(c)).collect();
    normal
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase()
}

/// The opt-out rules of every account: its own, or the default.
#[derive(Debug, Clone, Default)]
pub struct OptOutRules {
    /// `[opt_out]`.
    pub default: OptOutConfig,
    /// Accounts with their own.
    pub accounts: BTreeMap<String, OptOutConfig>,
}

impl OptOutRules {
    fn of(&self, account_id: &str) -> &OptOutConfig {
        self.accounts.get(account_id).unwrap_or(&self.default)
    }
}

/// The kinds [`observe`] reads, which the host must see even when no
/// plugin subscribes to them.
pub(crate) const OBSERVED_KINDS: &[&str] = &["message", "message-edit", "postback"];

/// Note what `event` decides, if a person wrote it or tapped a button.
pub(crate) async fn observe(
    state: &dyn HostState,
    rules: &OptOutRules,
    event: &Event,
    acted_at_ms: u64,
) -> Result<(), StateError> {
    if event.is_echo || event.is_self {
        return Ok(());
    }
    // Whatever the person said: a message's text or the payload of the
    // quick reply they tapped, a message's new text, a button's title or
    // payload.
    let (person, said, payload) = match &event.kind {
        EventKind::Message(message) => (
            &message.sender_id,
            message.text.as_deref(),
            message.quick_reply_payload.as_deref(),
        ),
        EventKind::MessageEdit(edit) => (&edit.sender_id, edit.text.as_deref(), None),
        EventKind::Postback(postback) => (
            &postback.sender_id,
            Some(postback.title.as_str()),
            Some(postback.payload.as_str()),
        ),
        _ => return Ok(()),
    };
    let Some(opted_out) = rules.of(&event.account_id).decide(&[said], &[payload]) else {
        return Ok(());
    };
    state
        .record_opt_out(&event.account_id, person, opted_out, acted_at_ms)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_match_whole_messages_ignoring_case_and_spaces() {
        let rules = OptOutConfig::default();
        assert_eq!(rules.decide(&[Some("stop")], &[]), Some(true));
        assert_eq!(rules.decide(&[Some("  Stop \n")], &[]), Some(true));
        assert_eq!(rules.decide(&[Some("START")], &[]), Some(false));
        assert_eq!(rules.decide(&[Some("please stop")], &[]), None);
        for stop in [
            "Stop!",
            "STOP.",
            "ＳＴＯＰ",
            "stop 🛑",
            "s\u{200B}top",
            "\u{FEFF}stop",
        ] {
            assert_eq!(rules.decide(&[Some(stop)], &[]), Some(true), "{stop:?}");
        }
        assert_eq!(
            rules.decide(&[Some("Unsubscribe me")], &[Some("STOP")]),
            Some(true),
            "a button whose payload is a stop keyword"
        );
        assert_eq!(
            rules.decide(&[Some("Yes please")], &[Some("START")]),
            None,
            "a payload never opts back in: the business wrote it"
        );
        assert_eq!(rules.decide(&[Some("start")], &[None]), Some(false));
        assert_eq!(rules.decide(&[Some("hello")], &[]), None);
        assert_eq!(rules.decide(&[None], &[]), None);
        let any = OptOutConfig {
            any_message_opts_in: true,
            ..OptOutConfig::default()
        };
        assert_eq!(any.decide(&[Some("hello")], &[]), Some(false));
        assert_eq!(
            any.decide(&[None], &[]),
            Some(false),
            "a photo is writing again"
        );
        assert_eq!(any.decide(&[Some("STOP")], &[]), Some(true));
    }

    #[test]
    fn a_keyword_both_stop_and_start_or_empty_is_refused() {
        let both = OptOutConfig {
            stop_keywords: vec!["end".into()],
            start_keywords: vec!["END ".into()],
            any_message_opts_in: false,
        };
        assert!(both.validate("opt_out").is_err());
        let empty = OptOutConfig {
            stop_keywords: vec![" ".into()],
            ..OptOutConfig::default()
        };
        assert!(empty.validate("opt_out").is_err());
        assert!(OptOutConfig::default().validate("opt_out").is_ok());
    }

    #[test]
    fn an_account_may_have_its_own_keywords() {
        let own = OptOutConfig {
            stop_keywords: vec!["PARAR".into()],
            start_keywords: vec!["VOLTAR".into()],
            any_message_opts_in: false,
        };
        let rules = OptOutRules {
            default: OptOutConfig::default(),
            accounts: BTreeMap::from([("pt".to_owned(), own)]),
        };
        assert_eq!(rules.of("pt").decide(&[Some("parar")], &[]), Some(true));
        assert_eq!(rules.of("pt").decide(&[Some("stop")], &[]), None);
        assert_eq!(rules.of("other").decide(&[Some("stop")], &[]), Some(true));
    }

    #[tokio::test]
    async fn a_quick_reply_payload_or_an_edit_to_a_stop_keyword_opts_out() {
        use crate::events::{Message, MessageEdit};
        let dir = tempfile::tempdir().unwrap();
        let state = crate::state::SqliteState::open(&dir.path().join("state.sqlite3")).unwrap();
        let rules = OptOutRules::default();
        let event = |kind| Event {
            key: String::new(),
            account_id: "1".into(),
            timestamp_ms: 1,
            is_echo: false,
            is_self: false,
            is_standby: false,
            kind,
        };
        let quick_reply = event(EventKind::Message(Message {
            sender_id: "tapped".into(),
            text: Some("No thanks".into()),
            quick_reply_payload: Some("STOP".into()),
            ..Message::default()
        }));
        let edited = event(EventKind::MessageEdit(MessageEdit {
            mid: "m".into(),
            sender_id: "edited".into(),
            text: Some("Stop!".into()),
            num_edit: 1,
        }));
        for (event, person) in [(quick_reply, "tapped"), (edited, "edited")] {
            observe(&state, &rules, &event, 10).await.unwrap();
            assert!(state.opted_out("1", person).await.unwrap(), "{person}");
        }
        let observed = crate::capabilities::HostServices::observed_events();
        for kind in ["message", "message-edit", "postback"] {
            assert!(
                observed.kinds.contains(kind),
                "the host sees {kind} events even when no plugin subscribes to them"
            );
        }
    }
}
