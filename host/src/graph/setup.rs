//! Setting an account up at Meta: which webhook fields it delivers to this
//! app (`/{account}/subscribed_apps`), and what people see before they
//! write (`/{account}/messenger_profile`: ice breakers, persistent menu).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{GraphClient, GraphError, Repeat, SendClass};

/// One ice breaker: a question offered before the first message, and the
/// postback payload it sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceBreaker {
    /// The question shown.
    pub question: String,
    /// The postback payload it sends.
    pub payload: String,
}

/// One entry of the persistent menu.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum MenuItem {
    /// Sends a postback with `payload`.
    Postback {
        /// The entry's title.
        title: String,
        /// The postback payload.
        payload: String,
    },
    /// Opens `url`.
    WebUrl {
        /// The entry's title.
        title: String,
        /// The page it opens.
        url: String,
    },
}

impl GraphClient {
    /// `GET /{account}/subscribed_apps`: the webhook fields the account
    /// delivers to this app.
    pub async fn subscribed_fields(
        &self,
        account_id: &str,
    ) -> Result<BTreeSet<String>, GraphError> {
        let request = self.request(
            account_id,
            reqwest::Method::GET,
            &[account_id, "subscribed_apps"],
            &[],
            None,
        );
        let answer = self
            .call(account_id, request, SendClass::Other, Repeat::Idempotent)
            .await?;
        let fields = answer["data"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|app| {
                app["subscribed_fields"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|field| field.as_str().map(str::to_owned))
            .collect();
        Ok(fields)
    }

    /// `POST /{account}/subscribed_apps?subscribed_fields=…`: deliver
    /// exactly `fields` to this app.
    pub async fn subscribe(
        &self,
        account_id: &str,
        fields: &BTreeSet<String>,
    ) -> Result<(), GraphError> {
        let fields = fields
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(",");
        let request = self.request(
            account_id,
            reqwest::Method::POST,
            &[account_id, "subscribed_apps"],
            &[("subscribed_fields", &fields)],
            None,
        );
        self.call(account_id, request, SendClass::Other, Repeat::Idempotent)
            .await
            .map(drop)
    }

    /// The account's ice breakers, as Meta has them.
    pub async fn ice_breakers(&self, account_id: &str) -> Result<Vec<IceBreaker>, GraphError> {
        let profile = self.messenger_profile(account_id, "ice_breakers").await?;
        let mut found = Vec::new();
        collect(&profile, &mut |object| {
            let text = |key: &str| object.get(key)?.as_str().map(str::to_owned);
            match (text("question"), text("payload")) {
                (Some(question), Some(payload)) => {
                    found.push(IceBreaker { question, payload });
                    true
                }
                _ => false,
            }
        });
        Ok(found)
    }

    /// The account's persistent menu, as Meta has it.
    pub async fn persistent_menu(&self, account_id: &str) -> Result<Vec<MenuItem>, GraphError> {
        let profile = self
            .messenger_profile(account_id, "persistent_menu")
            .await?;
        let mut found = Vec::new();
        collect(&profile, &mut |object| {
            let text = |key: &str| object.get(key)?.as_str().map(str::to_owned);
            let item = match (text("type").as_deref(), text("title")) {
                (Some("postback"), Some(title)) => {
                    text("payload").map(|payload| MenuItem::Postback { title, payload })
                }
                (Some("web_url"), Some(title)) => {
                    text("url").map(|url| MenuItem::WebUrl { title, url })
                }
                _ => return false,
            };
            // An entry of another kind is Meta's, not igloo's to compare.
            found.extend(item);
            true
        });
        Ok(found)
    }

    /// Set the account's ice breakers (the default locale's).
    pub async fn set_ice_breakers(
        &self,
        account_id: &str,
        ice_breakers: &[IceBreaker],
    ) -> Result<(), GraphError> {
        let body = json!({"platform": "instagram",
            "ice_breakers": [{"call_to_actions": ice_breakers, "locale": "default"}]});
        self.set_messenger_profile(account_id, body).await
    }

    /// Set the account's persistent menu (the default locale's).
    pub async fn set_persistent_menu(
        &self,
        account_id: &str,
        menu: &[MenuItem],
    ) -> Result<(), GraphError> {
        let body = json!({"platform": "instagram",
            "persistent_menu": [{"locale": "default", "call_to_actions": menu}]});
        self.set_messenger_profile(account_id, body).await
    }

    async fn messenger_profile(&self, account_id: &str, field: &str) -> Result<Value, GraphError> {
        let request = self.request(
            account_id,
            reqwest::Method::GET,
            &[account_id, "messenger_profile"],
            &[("fields", field), ("platform", "instagram")],
            None,
        );
        self.call(account_id, request, SendClass::Other, Repeat::Idempotent)
            .await
    }

    async fn set_messenger_profile(&self, account_id: &str, body: Value) -> Result<(), GraphError> {
        let request = self.request(
            account_id,
            reqwest::Method::POST,
            &[account_id, "messenger_profile"],
            &[],
            Some(body),
        );
        self.call(account_id, request, SendClass::Other, Repeat::Idempotent)
            .await
            .map(drop)
    }
}

/// Walk `value`, handing each object to `take`; an object taken is not
/// walked into, nor one of a locale other than the default (igloo sets
/// only the default's). Meta nests the profile's entries differently by
/// API and version (`data[].ice_breakers[].call_to_actions[]`,
/// `data[].call_to_actions[]`).
fn collect(value: &Value, take: &mut impl FnMut(&serde_json::Map<String, Value>) -> bool) {
    match value {
        Value::Object(object)
            if object
                .get("locale")
                .is_some_and(|locale| locale.as_str() != Some("default")) => {}
        Value::Object(object) if !take(object) => {
            object.values().for_each(|inner| collect(inner, take));
        }
        Value::Array(items) => items.iter().for_each(|inner| collect(inner, take)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_entries_are_found_however_meta_nests_them() {
        let nested = json!({"data": [{"ice_breakers": [{"call_to_actions": [
            {"question": "Hours?", "payload": "FAQ_HOURS"}], "locale": "default"}]}]});
        let flat = json!({"data": [{"call_to_actions": [{"question": "Hours?", "payload": "FAQ_HOURS"}],
            "locale": "default"}]});
        for profile in [nested, flat] {
            let mut found = Vec::new();
            collect(&profile, &mut |object| {
                let hit = object.get("question").is_some();
                if hit {
                    found.push(object["payload"].clone());
                }
                hit
            });
            assert_eq!(found, [json!("FAQ_HOURS")]);
        }
        let other_locale = json!({"data": [{"call_to_actions": [{"question": "Horário?", "payload": "FAQ_HOURS"}],
            "locale": "pt_BR"}]});
        let mut found = 0;
        collect(&other_locale, &mut |object| {
            found += usize::from(object.get("question").is_some());
            false
        });
        assert_eq!(found, 0, "another locale's entries are not compared");
    }
}
