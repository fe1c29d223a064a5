//! `igloo accounts add|list|remove`: the accounts a running igloo acts for,
//! through its admin API. A token is read from standard input or an
//! environment variable, never from the command line (which `ps` shows).

use std::io::Read as _;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use super::admin::{Admin, AdminArgs};
use crate::config::LoginKind;

/// What to do with accounts.
#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Add an account, or give one a new token (an account in
    /// `token-invalid` is active again, and its waiting events run).
    Add {
        /// The Instagram account id (`entry.id` of its webhooks).
        id: String,
        /// Read the token from this environment variable instead of
        /// standard input.
        #[arg(long)]
        token_env: Option<String>,
        /// How the account was connected.
        #[arg(long, value_enum, default_value = "instagram")]
        login: Login,
        /// Its username, to show.
        #[arg(long)]
        username: Option<String>,
        /// When the token expires, if known (RFC 3339, e.g.
        /// `2027-01-31T00:00:00Z`).
        #[arg(long, value_parser = humantime::parse_rfc3339_weak)]
        expires_at: Option<std::time::SystemTime>,
    },
    /// Every account, its token's health and expiry.
    List,
    /// Take an account out of `token-invalid` with the token it has (once
    /// its owner fixed what Meta complained of); its waiting events run.
    Retry {
        /// The account id.
        id: String,
    },
    /// Every account's health: token expiry, the webhook fields Meta
    /// delivers against those its plugins need, the ice breakers and menu,
    /// the last webhook, and whether it went quiet. Changes nothing.
    Status,
    /// Subscribe every account to exactly the webhook fields its plugins
    /// need, and set its configured ice breakers and persistent menu where
    /// Meta's differ; reports what was done.
    Sync,
    /// Forget an account added by hand.
    Remove {
        /// The account id.
        id: String,
    },
}

/// How an account was connected, on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Login {
    /// Instagram API with Instagram Login.
    Instagram,
    /// Instagram API with Facebook Login.
    Facebook,
}

/// `igloo accounts …`.
#[derive(Debug, Args)]
pub struct AccountsArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(subcommand)]
    command: AccountsCommand,
}

/// Run `igloo accounts …`.
pub async fn run(args: AccountsArgs) -> anyhow::Result<()> {
    let admin = Admin::new(args.admin);
    let (_, answer) = match args.command {
        AccountsCommand::Add {
            id,
            token_env,
            login,
            username,
            expires_at,
        } => {
            let token = read_token(token_env.as_deref())?;
            let expires_at_ms = expires_at
                .map(|at| {
                    at.duration_since(std::time::UNIX_EPOCH)
                        .map(|since| since.as_millis() as u64)
                })
                .transpose()
                .context("--expires-at is before 1970")?;
            let login = match login {
                Login::Instagram => LoginKind::Instagram,
                Login::Facebook => LoginKind::Facebook,
            };
            let body = json!({"id": id, "access_token": token, "login": login,
                "username": username, "expires_at_ms": expires_at_ms});
            admin
                .send_body(reqwest::Method::POST, "/admin/accounts", &[], Some(&body))
                .await?
        }
        AccountsCommand::Status => {
            admin
                .send(reqwest::Method::GET, "/admin/accounts/status", &[])
                .await?
        }
        AccountsCommand::Sync => {
            admin
                .send(reqwest::Method::POST, "/admin/accounts/sync", &[])
                .await?
        }
        AccountsCommand::Retry { id } => {
            admin
                .send(
                    reqwest::Method::POST,
                    &format!("/admin/accounts/{id}/retry"),
                    &[],
                )
                .await?
        }
        AccountsCommand::List => {
            admin
                .send(reqwest::Method::GET, "/admin/accounts", &[])
                .await?
        }
        AccountsCommand::Remove { id } => {
            admin
                .send(
                    reqwest::Method::DELETE,
                    &format!("/admin/accounts/{id}"),
                    &[],
                )
                .await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}

/// The token from `variable`, or the first line of standard input.
fn read_token(variable: Option<&str>) -> anyhow::Result<String> {
    let token = match variable {
        Some(name) => {
            std::env::var(name).with_context(|| format!("reading the token from ${name}"))?
        }
        None => {
            let mut text = String::new();
            std::io::stdin()
                .take(64 * 1024)
                .read_to_string(&mut text)
                .context("reading the token from standard input")?;
            text
        }
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        bail!("no token given: pipe it to standard input, or name a variable with --token-env");
    }
    Ok(token)
}
