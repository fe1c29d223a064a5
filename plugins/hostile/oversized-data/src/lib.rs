//! Hands the host data too large, or crafted to forge its logs: a 1 MiB
//! plugin error and 64 KiB log lines made of fake log and receipt lines
//! with terminal escapes, quick replies, buttons and carousels far past
//! Meta's limits, oversized kv keys and values, and attachment URLs that are
//! huge or point at local files and the cloud metadata service. The host
//! must cut, escape or refuse each (`invalid` for the messages, a quota or
//! `invalid` for kv) without forwarding anything to Meta.
//!
//! The text of the message picks the attack; every mode but `log` reports
//! its result as the plugin error:
//!
//! - `error`: the 1 MiB plugin error itself.
//! - `log`: 100 log lines of 64 KiB each, then `Ok(Handled)`.
//! - `quick-replies`: a text with 13 quick replies of 100 KiB payloads;
//!   reports `{:?}` of the send.
//! - `template`: a button template whose URL is 300 KiB long; reports
//!   `{:?}` of the send.
//! - `elements`: a generic template of 5000 elements; reports `{:?}` of the
//!   send.
//! - `kv`: a 100 KiB key, then a 2 MiB value; reports `{:?} | {:?}`.
//! - `attachment`: uploads from a 300 KiB URL, `file:///etc/passwd` and
//!   `http://169.254.169.254/latest/meta-data`; reports the three results,
//!   in that order, joined by ` | `.
//!
//! Anything else reports `unknown mode`.

use std::fmt::Debug;

use igloo_plugin_sdk::messaging::{
    Button, ButtonTemplate, Content, GenericElement, MediaKind, Outgoing, QuickReply, Recipient,
    UrlButton,
};
use igloo_plugin_sdk::{
    Envelope, Handled, Message, Outcome, Plugin, PluginError, kv, log, messaging,
};

struct OversizedData;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Longest report, in bytes: results may echo what was sent, so each is cut
/// to its share of this.
const MAX_REPORT: usize = 480;

/// A line a log reader would take for a successful run of another plugin,
/// ending in a carriage return and an erase-line escape to hide what
/// follows it on a terminal.
const FORGED_RECEIPT: &str = "\n2026-11-23T00:00:00.000000Z  INFO igloo::runtime::dispatch: plugin run \
     plugin=auto-reply outcome=\"ok\" forged=true\r\x1b[2K";

/// A forged log line, set off by newlines.
const FORGED_LOG_LINE: &str = "\nFORGED-LOG-LINE plugin=auto-reply outcome=\"ok\"\n";

/// `text` repeated until the result is at least `size` bytes.
fn repeated(text: &str, size: usize) -> String {
    text.repeat(size.div_ceil(text.len()))
}

/// `{:?}` of `value`, cut to `max` bytes.
fn debug(value: &impl Debug, max: usize) -> String {
    let mut text = format!("{value:?}");
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

fn send(to: &str, content: Content, quick_replies: Vec<QuickReply>) -> String {
    let outgoing = Outgoing {
        content,
        quick_replies,
        human_agent: false,
    };
    debug(
        &messaging::send(&Recipient::Person(to.to_owned()), &outgoing),
        MAX_REPORT,
    )
}

/// 64 KiB of forged log lines, colour escapes and a bell.
fn log_line() -> String {
    let chunk = format!("\x1b[31m\x1b]0;pwned\x07{FORGED_LOG_LINE}\x1b[0m{FORGED_RECEIPT}");
    let mut line = repeated(&chunk, 64 * KIB);
    line.truncate(64 * KIB);
    line
}

/// What `mode` reports, or `None` for `Ok(Handled)`.
fn run(mode: &str, sender: &str) -> Option<String> {
    Some(match mode {
        "error" => repeated(FORGED_RECEIPT, MIB),
        "log" => {
            let line = log_line();
            for _ in 0..100 {
                log::write(log::Level::Info, &line);
            }
            return None;
        }
        "quick-replies" => {
            let quick_replies = (0..13)
                .map(|index| QuickReply {
                    title: format!("reply {index}"),
                    payload: "p".repeat(100 * KIB),
                })
                .collect();
            send(sender, Content::Text("pick one".to_owned()), quick_replies)
        }
        "template" => {
            let url = format!("https://example.com/{}", "a".repeat(300 * KIB));
            let button = Button::WebUrl(UrlButton {
                title: "open".to_owned(),
                url,
            });
            let template = ButtonTemplate {
                text: "hi".to_owned(),
                buttons: vec![button],
            };
            send(sender, Content::ButtonTemplate(template), Vec::new())
        }
        "elements" => {
            let element = GenericElement {
                title: "t".to_owned(),
                subtitle: None,
                image_url: None,
                default_action_url: None,
                buttons: Vec::new(),
            };
            send(
                sender,
                Content::GenericTemplate(vec![element; 5000]),
                Vec::new(),
            )
        }
        "kv" => {
            let long_key = kv::set(&"k".repeat(100 * KIB), b"v", None);
            let big_value = kv::set("k", &vec![b'v'; 2 * MIB], None);
            format!(
                "{} | {}",
                debug(&long_key, MAX_REPORT / 2),
                debug(&big_value, MAX_REPORT / 2)
            )
        }
        "attachment" => {
            // The small URLs go first, so they are tried even if the host
            // ends the run over the huge one; the report keeps the order
            // huge | file | metadata.
            let upload = |url: &str| {
                debug(
                    &messaging::upload_attachment(MediaKind::Image, url),
                    MAX_REPORT / 3,
                )
            };
            let file = upload("file:///etc/passwd");
            let metadata = upload("http://169.254.169.254/latest/meta-data");
            let huge = upload(&format!("https://example.com/{}", "a".repeat(300 * KIB)));
            format!("{huge} | {file} | {metadata}")
        }
        _ => "unknown mode".to_owned(),
    })
}

impl Plugin for OversizedData {
    fn on_message(_: &Envelope, message: &Message) -> Result<Outcome, PluginError> {
        let mode = message.text.as_deref().unwrap_or_default().trim();
        match run(mode, &message.sender_id) {
            Some(report) => Err(PluginError::new(report)),
            None => Ok(Handled),
        }
    }
}

igloo_plugin_sdk::register_plugin!(OversizedData);
