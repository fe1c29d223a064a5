//! `igloo trust list|add|remove|revoke`: the operator's trust store, in a
//! running igloo.

use clap::{Args, Subcommand};
use serde_json::json;

use super::admin::{Admin, AdminArgs};

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
    let post = reqwest::Method::POST;
    let (_, answer) = match args.command {
        TrustCommand::List => {
            admin
                .send(reqwest::Method::GET, "/admin/trust", &[])
                .await?
        }
        TrustCommand::Add { name, key } => {
            let body = json!({"add": {"name": name, "key": key}});
            admin
                .send_body(post, "/admin/trust", &[], Some(&body))
                .await?
        }
        TrustCommand::Remove { what } => {
            let body = json!({"remove": {"what": what}});
            admin
                .send_body(post, "/admin/trust", &[], Some(&body))
                .await?
        }
        TrustCommand::Revoke { what } => {
            let body = json!({"revoke": {"what": what}});
            admin
                .send_body(post, "/admin/trust", &[], Some(&body))
                .await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}
