//! `igloo accounts sync`: each account delivers exactly the webhook fields
//! its plugins need (PLATFORM.md A1: without `subscribed_apps` an account
//! receives nothing), and shows the ice breakers and persistent menu the
//! configuration gives it. Without `apply`, only what differs is reported
//! (`igloo accounts status`).

use std::collections::BTreeSet;

use serde::Serialize;

use crate::config::{LoginKind, MessengerProfileConfig};
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

/// What an account should have at Meta.
pub(crate) struct Wanted<'a> {
    /// The webhook fields its plugins need.
    pub(crate) fields: BTreeSet<String>,
    /// Keep every field it has too (some plugin did not load, so what it
    /// needs is unknown).
    pub(crate) keep_subscribed: bool,
    /// Its ice breakers and menu.
    pub(crate) profile: &'a MessengerProfileConfig,
}

/// Compare `account_id`'s setup at Meta with what is `wanted`;
/// with `apply`, set what differs.
pub(crate) async fn sync_account(
    graph: &GraphClient,
    account_id: &str,
    wanted: Wanted<'_>,
    apply: bool,
) -> AccountSync {
    let Wanted {
        fields: mut needed_fields,
        keep_subscribed,
        profile,
    } = wanted;
    let mut errors = Vec::new();
    if graph.accounts().login(account_id) == LoginKind::Facebook {
        // Set up on its Page (`/{page-id}/…`, the Page's token), which
        // igloo does not hold: left to the operator.
        return AccountSync {
            account: account_id.to_owned(),
            needed_fields,
            subscribed_fields: None,
            fields: SetupState::Unmanaged,
            ice_breakers: SetupState::Unmanaged,
            persistent_menu: SetupState::Unmanaged,
            errors: vec!["a Facebook Login account is set up on its Page, not by igloo".into()],
        };
    }
    let subscribed = graph.subscribed_fields(account_id).await;
    if let (true, Ok(subscribed)) = (keep_subscribed, &subscribed) {
        // Some plugin did not load: what it needs is not known, so nothing
        // is taken away.
        needed_fields.extend(subscribed.iter().cloned());
    }
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
