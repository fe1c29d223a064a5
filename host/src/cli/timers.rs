//! `igloo timers list|cancel`: the plugins' timers waiting in
//! conversations, through a running igloo's admin API.

use clap::{Args, Subcommand};
use serde_json::json;

use super::admin::{Admin, AdminArgs};

/// What to do with timers.
#[derive(Debug, Subcommand)]
pub enum TimersCommand {
    /// Timers soonest first; every option narrows the list. A fired one
    /// is waiting for its event to run.
    List {
        /// One plugin's.
        #[arg(long)]
        plugin: Option<String>,
        /// In one account.
        #[arg(long)]
        account: Option<String>,
        /// In conversations with one person (IGSID).
        #[arg(long)]
        person: Option<String>,
        /// At most this many (100 by default).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Cancel a timer: it never fires, or, fired already, its event does
    /// not run.
    Cancel {
        /// The plugin's id.
        plugin: String,
        /// The account.
        account: String,
        /// The person the conversation is with (IGSID).
        person: String,
        /// The plugin's key for the timer.
        key: String,
    },
}

/// `igloo timers …`.
#[derive(Debug, Args)]
pub struct TimersArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(subcommand)]
    command: TimersCommand,
}

/// Run `igloo timers …`.
pub async fn run(args: TimersArgs) -> anyhow::Result<()> {
    let admin = Admin::new(args.admin);
    let (_, answer) = match args.command {
        TimersCommand::List {
            plugin,
            account,
            person,
            limit,
        } => {
            let query: Vec<(&str, String)> = [
                ("plugin", plugin),
                ("account", account),
                ("person", person),
                ("limit", limit.map(|limit| limit.to_string())),
            ]
            .into_iter()
            .filter_map(|(name, value)| Some((name, value?)))
            .collect();
            admin
                .send(reqwest::Method::GET, "/admin/timers", &query)
                .await?
        }
        TimersCommand::Cancel {
            plugin,
            account,
            person,
            key,
        } => {
            let body = json!({"plugin": plugin, "account": account, "person": person, "key": key});
            admin
                .send_body(
                    reqwest::Method::POST,
                    "/admin/timers/cancel",
                    &[],
                    Some(&body),
                )
                .await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}
