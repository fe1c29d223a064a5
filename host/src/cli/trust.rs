//! `igloo trust list|add|remove|revoke`: the operator's trust store, in a
//! running igloo.

use clap::{Args, Subcommand};

use super::admin::{Admin, AdminArgs};
use crate::installations::TrustChange;

/// What to do with the trust store.
#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Trusted publishers and revocations.
    List,
    /// Trust a publisher's key (`ed25519:…`, from `igloo plugin keygen`).
    Add {
        /// Your name for the publisher.
        name: String,
        /// Its public key.
        key: String,
    },
    /// Stop trusting a publisher (by name) or a key: what it signed stops
    /// taking events in live mode.
    Remove {
        /// A name or key.
        what: String,
    },
    /// Revoke a publisher key or a bundle digest: whatever it covers stops
    /// taking events at once, everywhere (its events wait).
    Revoke {
        /// A key (`ed25519:…`) or digest (`sha256:…`).
        what: String,
    },
}

/// `igloo trust …`.
#[derive(Debug, Args)]
pub struct TrustArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(subcommand)]
    command: TrustCommand,
}

/// Run `igloo trust …`.
pub async fn run(args: TrustArgs) -> anyhow::Result<()> {
    let admin = Admin::new(args.admin);
    let change = match args.command {
        TrustCommand::List => None,
        TrustCommand::Add { name, key } => Some(TrustChange::Add { name, key }),
        TrustCommand::Remove { what } => Some(TrustChange::Remove { what }),
        TrustCommand::Revoke { what } => Some(TrustChange::Revoke { what }),
    };
    let (_, answer) = match change {
        None => {
            admin
                .send(reqwest::Method::GET, "/admin/trust", &[])
                .await?
        }
        Some(change) => {
            let body = serde_json::to_value(change)?;
            let post = reqwest::Method::POST;
            admin
                .send_body(post, "/admin/trust", &[], Some(&body))
                .await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}
