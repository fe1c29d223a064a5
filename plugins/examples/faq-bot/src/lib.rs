//! FAQ bot: ice breakers (postbacks) and quick replies carry a payload; the
//! answer to each payload is a setting. Any other message gets the list of
//! questions as quick replies.
//!
//! Settings: `questions` = `Title|PAYLOAD;Title|PAYLOAD;…` (at most 13),
//! `answer.PAYLOAD` = the answer to that question, `intro` = the text sent
//! with the questions.

use igloo_plugin_sdk::messaging::{Content, Outgoing, QuickReply, Recipient};
use igloo_plugin_sdk::{
    Envelope, Handled, Message, Outcome, Plugin, PluginError, Postback, config, messaging,
};

struct FaqBot;

fn send(to: &str, text: String, quick_replies: Vec<QuickReply>) -> Result<(), PluginError> {
    let outgoing = Outgoing {
        content: Content::Text(text),
        quick_replies,
        human_agent: false,
    };
    messaging::send(&Recipient::Person(to.to_owned()), &outgoing)?;
    Ok(())
}

fn questions() -> Vec<QuickReply> {
    config::get("questions")
        .unwrap_or_default()
        .split(';')
        .filter_map(|pair| pair.split_once('|'))
        .map(|(title, payload)| QuickReply {
            title: title.trim().to_owned(),
            payload: payload.trim().to_owned(),
        })
        .collect()
}

fn answer(to: &str, payload: &str) -> Result<(), PluginError> {
    match config::get(&format!("answer.{payload}")) {
        Some(answer) => send(to, answer, questions()),
        None => offer_questions(to),
    }
}

fn offer_questions(to: &str) -> Result<(), PluginError> {
    let intro =
        config::get("intro").unwrap_or_else(|| "Hi! What would you like to know?".to_owned());
    send(to, intro, questions())
}

impl Plugin for FaqBot {
    fn on_postback(_: &Envelope, postback: &Postback) -> Result<Outcome, PluginError> {
        answer(&postback.sender_id, &postback.payload)?;
        Ok(Handled)
    }

    fn on_message(_: &Envelope, message: &Message) -> Result<Outcome, PluginError> {
        match &message.quick_reply_payload {
            Some(payload) => answer(&message.sender_id, payload)?,
            None => offer_questions(&message.sender_id)?,
        }
        Ok(Handled)
    }
}

igloo_plugin_sdk::register_plugin!(FaqBot);
