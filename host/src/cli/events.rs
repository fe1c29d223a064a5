//! `igloo events list|show|replay`: the inbox for an operator, through a
//! running igloo's admin API (so the dispatcher learns of a replay at once).

use anyhow::bail;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde_json::Value;

use super::admin::{Admin, AdminArgs};

/// What to do with events.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Events, newest first; every option narrows the list.
    List {
        /// Only this account's.
        #[arg(long)]
        account: Option<String>,
        /// Only this person's.
        #[arg(long)]
        person: Option<String>,
        /// Only those this plugin ran on.
        #[arg(long)]
        plugin: Option<String>,
        /// Only this kind (`message`, `comment`, …).
        #[arg(long)]
        kind: Option<String>,
        /// Only those with a run that ended so (`ok`, `trap`, …).
        #[arg(long)]
        outcome: Option<String>,
        /// Only dead letters: runs that failed and will not be retried.
        #[arg(long)]
        dead: bool,
        /// Received at or after (RFC 3339, e.g. 2026-11-23T10:00:00Z).
        #[arg(long)]
        since: Option<DateTime<Utc>>,
        /// Received before (RFC 3339).
        #[arg(long)]
        until: Option<DateTime<Utc>>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON instead of one line per event.
        #[arg(long)]
        json: bool,
    },
    /// One event: its raw body, its runs and their journal.
    Show {
        /// The event's position (`seq` in the list).
        seq: i64,
    },
    /// Run events again: their dead letters, or with `--force` their
    /// handled runs too (calls those completed are still not repeated).
    /// With `--sandbox`, run them now in the sandbox instead and print what
    /// each plugin would do: nothing is sent and nothing is recorded.
    Replay {
        /// The events' positions.
        #[arg(required = true)]
        seqs: Vec<i64>,
        /// Only this plugin's runs.
        #[arg(long)]
        plugin: Option<String>,
        /// Replay runs that ended `ok` too.
        #[arg(long, conflicts_with = "sandbox")]
        force: bool,
        /// Run in the sandbox: calls to Meta recorded, not sent; the
        /// host's state a copy; the inbox unchanged.
        #[arg(long)]
        sandbox: bool,
    },
}

/// The `events` subcommand with its connection.
#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(subcommand)]
    command: EventsCommand,
}

/// Run `igloo events …`.
pub async fn run(args: EventsArgs) -> anyhow::Result<()> {
    let admin = Admin::new(args.admin);
    match args.command {
        EventsCommand::List {
            account,
            person,
            plugin,
            kind,
            outcome,
            dead,
            since,
            until,
            limit,
            json,
        } => {
            let mut query: Vec<(&str, String)> = [
                ("account", account),
                ("person", person),
                ("plugin", plugin),
                ("kind", kind),
                ("outcome", outcome),
            ]
            .into_iter()
            .filter_map(|(name, value)| value.map(|value| (name, value)))
            .collect();
            if dead {
                query.push(("dead", "true".into()));
            }
            for (name, at) in [("since_ms", since), ("until_ms", until)] {
                if let Some(at) = at {
                    query.push((name, at.timestamp_millis().max(0).to_string()));
                }
            }
            query.push(("limit", limit.to_string()));
            let (_, answer) = admin
                .send(reqwest::Method::GET, "/admin/events", &query)
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                for event in answer["events"].as_array().into_iter().flatten() {
                    println!("{}", list_line(event));
                }
            }
            Ok(())
        }
        EventsCommand::Show { seq } => {
            let path = format!("/admin/events/{seq}");
            let (_, answer) = admin.send(reqwest::Method::GET, &path, &[]).await?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            Ok(())
        }
        EventsCommand::Replay {
            seqs,
            plugin,
            force,
            sandbox,
        } => {
            let mut query = Vec::new();
            if let Some(plugin) = plugin {
                query.push(("plugin", plugin));
            }
            if force {
                query.push(("force", "true".to_owned()));
            }
            if sandbox {
                query.push(("sandbox", "true".to_owned()));
            }
            let done = if sandbox {
                reqwest::StatusCode::OK
            } else {
                reqwest::StatusCode::ACCEPTED
            };
            let mut refused = 0;
            for seq in seqs {
                let path = format!("/admin/events/{seq}/replay");
                let (status, answer) = admin.send(reqwest::Method::POST, &path, &query).await?;
                println!("{seq}: {answer}");
                refused += usize::from(status != done);
            }
            if refused > 0 {
                bail!("{refused} event(s) were not replayed (see above)");
            }
            Ok(())
        }
    }
}

/// One event as a line: position, time, account, person, kind, and each
/// run as `plugin=outcome` (`×attempts`, `dead` or `retrying`).
fn list_line(event: &Value) -> String {
    let received = event["received_at_ms"]
        .as_i64()
        .and_then(DateTime::from_timestamp_millis)
        .map_or_else(
            || "?".to_owned(),
            |at| at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        );
    let runs: Vec<String> = event["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|run| {
            let state = match (run["outcome"].as_str(), run["retry_at_ms"].is_null()) {
                (_, false) => " retrying",
                (Some(outcome), true) if crate::inbox::is_settled(outcome) => "",
                (_, true) => " dead",
            };
            format!(
                "{}={}×{}{state}",
                run["plugin"].as_str().unwrap_or("?"),
                run["outcome"].as_str().unwrap_or("?"),
                run["attempts"]
            )
        })
        .collect();
    format!(
        "{:>8}  {received}  {}  {}  {}  {}",
        event["seq"],
        event["account_id"].as_str().unwrap_or("?"),
        event["person_id"].as_str().unwrap_or("-"),
        event["kind"].as_str().unwrap_or("?"),
        if runs.is_empty() {
            "pending".to_owned()
        } else {
            runs.join(" ")
        }
    )
}
