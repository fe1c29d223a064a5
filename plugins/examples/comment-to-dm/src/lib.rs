//! Comment-to-DM: when a comment contains the keyword, answer it privately
//! (a DM to its author, Meta's one private reply per comment) and publicly.
//!
//! Settings: `keyword` (default `PRICE`, matched case-insensitively),
//! `dm` (the private reply), `public_reply` (the public one; empty for none).

use igloo_plugin_sdk::messaging::{Content, Outgoing, Recipient};
use igloo_plugin_sdk::{
    Comment, Envelope, Handled, Outcome, Passed, Plugin, PluginError, comments, config, log,
    messaging,
};

struct CommentToDm;

fn setting(key: &str, default: &str) -> String {
    config::get(key).unwrap_or_else(|| default.to_owned())
}

impl Plugin for CommentToDm {
    fn on_comment(_: &Envelope, comment: &Comment) -> Result<Outcome, PluginError> {
        let keyword = setting("keyword", "PRICE").to_lowercase();
        if !comment.text.to_lowercase().contains(&keyword) {
            return Ok(Passed);
        }
        let dm = setting("dm", "Thanks for asking! Here are the details.");
        let private = Outgoing {
            content: Content::Text(dm),
            quick_replies: Vec::new(),
            human_agent: false,
        };
        match messaging::send(&Recipient::Comment(comment.id.clone()), &private) {
            Ok(_) => log::write(
                log::Level::Info,
                &format!("sent the private reply to comment {}", comment.id),
            ),
            // Already answered (by us or another automation): not an error.
            Err(error) => log::write(
                log::Level::Warn,
                &format!("no private reply to {}: {error:?}", comment.id),
            ),
        }
        let public = setting("public_reply", "Sent you a DM!");
        if !public.is_empty() {
            comments::reply(&comment.id, &public)?;
        }
        Ok(Handled)
    }
}

igloo_plugin_sdk::register_plugin!(CommentToDm);
