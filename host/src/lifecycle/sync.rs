//! `igloo accounts sync`: each account delivers exactly the webhook fields
//! its plugins need (PLATFORM.md A1: without `subscribed_apps` an account
//! receives nothing), and shows the ice breakers and persistent menu the
//! configuration gives it. Without `apply`, only what differs is reported
//! (`igloo accounts status`).

use std::collections::BTreeSet;

use serde::Serialize;

use crate::config::MessengerProfileConfig;
use crate::graph::GraphClient;

/// Where one part of an account's setup stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum SetupState {
    /// Meta has what is wanted.
    InStep,
    /// The configuration says nothing about it: left as it is.
    Unmanaged,
    /// Meta has something else (a status, nothing changed).
    Differs,
    /// It differed, and was set.
    Set,
    /// It could not be read or set (see `errors`).
    Failed,
}

/// One account's setup at Meta against what igloo wants.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AccountSync {
    /// The account.
    pub account: String,
    /// The webhook fields its plugins need.
    pub needed_fields: BTreeSet<String>,
    /// The fields Meta delivered before, if they could be read.
    pub subscribed_fields: Option<BTreeSet<String>>,
    /// The subscription.
    pub fields: SetupState,
    /// The ice breakers.
    pub ice_breakers: SetupState,
    /// The persistent menu.
    pub persistent_menu: SetupState,
    /// What failed, in Meta's words.
    pub errors: Vec<String>,
}

/// Compare `account_id`'s setup at Meta with `needed_fields` and `profile`;
/// with `apply`, set what differs.
pub(crate) async fn sync_account(
    graph: &GraphClient,
    account_id: &str,
    needed_fields: BTreeSet<String>,
    profile: &MessengerProfileConfig,
    apply: bool,
) -> AccountSync {
    let mut errors = Vec::new();
    let subscribed = graph.subscribed_fields(account_id).await;
    let (subscribed_fields, fields) = match subscribed {
        Ok(subscribed) if subscribed == needed_fields => (Some(subscribed), SetupState::InStep),
        // Nothing to ask for: an empty list would not unsubscribe anyway.
        Ok(subscribed) if needed_fields.is_empty() => (Some(subscribed), SetupState::Unmanaged),
        Ok(subscribed) if !apply => (Some(subscribed), SetupState::Differs),
        Ok(subscribed) => match graph.subscribe(account_id, &needed_fields).await {
            Ok(()) => (Some(subscribed), SetupState::Set),
            Err(error) => {
                errors.push(format!("subscribing: {error}"));
                (Some(subscribed), SetupState::Failed)
            }
        },
        Err(error) => {
            errors.push(format!("reading the subscription: {error}"));
            (None, SetupState::Failed)
        }
    };
    let ice_breakers = match &profile.ice_breakers {
        None => SetupState::Unmanaged,
        Some(wanted) => {
            let current = graph.ice_breakers(account_id).await;
            let set = async || graph.set_ice_breakers(account_id, wanted).await;
            settle(
                "ice breakers",
                current.map(|current| &current == wanted),
                apply,
                set,
                &mut errors,
            )
            .await
        }
    };
    let persistent_menu = match &profile.persistent_menu {
        None => SetupState::Unmanaged,
        Some(wanted) => {
            let current = graph.persistent_menu(account_id).await;
            let set = async || graph.set_persistent_menu(account_id, wanted).await;
            settle(
                "persistent menu",
                current.map(|current| &current == wanted),
                apply,
                set,
                &mut errors,
            )
            .await
        }
    };
    AccountSync {
        account: account_id.to_owned(),
        needed_fields,
        subscribed_fields,
        fields,
        ice_breakers,
        persistent_menu,
        errors,
    }
}

/// Where a profile part stands, given whether Meta's matches; set it when
/// it does not and `apply`.
async fn settle(
    what: &str,
    matches: Result<bool, crate::graph::GraphError>,
    apply: bool,
    set: impl AsyncFnOnce() -> Result<(), crate::graph::GraphError>,
    errors: &mut Vec<String>,
) -> SetupState {
    match matches {
        Ok(true) => SetupState::InStep,
        Ok(false) if !apply => SetupState::Differs,
        Ok(false) => match set().await {
            Ok(()) => SetupState::Set,
            Err(error) => {
                errors.push(format!("setting the {what}: {error}"));
                SetupState::Failed
            }
        },
        Err(error) => {
            errors.push(format!("reading the {what}: {error}"));
            SetupState::Failed
        }
    }
}
