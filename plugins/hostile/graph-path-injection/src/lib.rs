//! Smuggles Graph API paths, queries and JSON through every id the host
//! accepts: comment ids (hide, delete), profile ids, the message id of a
//! reaction and the recipient of a text. The host must refuse each forged id
//! as `invalid` before it builds a Graph URL or body from it.
//!
//! Reports `invalid=N other=M`, followed when M > 0 by
//! ` first-other=<op> id=<id:?> result=<result:?>` for the first call that
//! was not refused as `invalid` (cut short to keep the report under 500
//! bytes).

use std::fmt::Debug;

use igloo_plugin_sdk::{
    Envelope, Error, Message, Outcome, Plugin, PluginError, comments, messaging, profiles,
};

struct GraphPathInjection;

/// Ids that are not plain numeric ids, each trying another way to change the
/// request the host makes to the Graph API (the list the host's own id tests
/// use).
const FORGED_IDS: &[&str] = include!("../../../../tests/fixtures/forged_graph_ids.rs");

/// A message id that closes the JSON string it is put in and names another
/// recipient.
const JSON_BREAKOUT_MID: &str = "mid\"}, \"recipient\": {\"id\": \"999";

/// Longest report, in bytes.
const MAX_REPORT: usize = 480;

#[derive(Default)]
struct Tally {
    invalid: usize,
    other: usize,
    first_other: Option<String>,
}

impl Tally {
    fn record<T: Debug>(&mut self, op: &str, id: &str, result: Result<T, Error>) {
        if let Err(Error::Invalid(_)) = result {
            self.invalid += 1;
            return;
        }
        self.other += 1;
        if self.first_other.is_none() {
            self.first_other = Some(format!("{op} id={id:?} result={result:?}"));
        }
    }

    fn report(self) -> String {
        let mut report = format!("invalid={} other={}", self.invalid, self.other);
        if let Some(first) = self.first_other {
            report.push_str(" first-other=");
            report.push_str(&first);
        }
        if report.len() > MAX_REPORT {
            let mut end = MAX_REPORT;
            while !report.is_char_boundary(end) {
                end -= 1;
            }
            report.truncate(end);
        }
        report
    }
}

impl Plugin for GraphPathInjection {
    fn on_message(_: &Envelope, message: &Message) -> Result<Outcome, PluginError> {
        let sender = &message.sender_id;
        let mut tally = Tally::default();
        for &id in FORGED_IDS {
            tally.record("comments::set_hidden", id, comments::set_hidden(id, true));
            tally.record("comments::delete", id, comments::delete(id));
            tally.record("profiles::get", id, profiles::get(id));
            tally.record(
                "messaging::react",
                id,
                messaging::react(sender, id, Some("love")),
            );
            tally.record("messaging::send_text", id, messaging::send_text(id, "hi"));
        }
        tally.record(
            "messaging::react",
            JSON_BREAKOUT_MID,
            messaging::react(sender, JSON_BREAKOUT_MID, Some("love")),
        );
        Err(PluginError::new(tally.report()))
    }
}

igloo_plugin_sdk::register_plugin!(GraphPathInjection);
