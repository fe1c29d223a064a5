//! `igloo conversations pause|resume|list`: a human takes a conversation
//! over, or hands it back, through a running igloo's admin API.

use std::time::Duration;

use clap::{Args, Subcommand};

use super::admin::{Admin, AdminArgs};

/// What to do with conversations.
#[derive(Debug, Subcommand)]
pub enum ConversationsCommand {
    /// Pause automation in a conversation: no plugin (but those holding
    /// `conversations:while-paused`) gets its messages or may message the
    /// person.
    Pause {
        /// The business account's id.
        account: String,
        /// The person's IGSID.
        person: String,
        /// For this long (`30m`, `2h`, `1day`); until resumed if absent.
        #[arg(long = "for", value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
    },
    /// Resume automation in a conversation.
    Resume {
        /// The business account's id.
        account: String,
        /// The person's IGSID.
        person: String,
    },
    /// Every paused conversation.
    List,
}

/// `igloo conversations …`.
#[derive(Debug, Args)]
pub struct ConversationsArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(subcommand)]
    command: ConversationsCommand,
}

/// Run `igloo conversations …`.
pub async fn run(args: ConversationsArgs) -> anyhow::Result<()> {
    let admin = Admin::new(args.admin);
    let (path, query) = match args.command {
        ConversationsCommand::Pause {
            account,
            person,
            duration,
        } => {
            let query = duration
                .map(|duration| vec![("for_secs", duration.as_secs().max(1).to_string())])
                .unwrap_or_default();
            (
                format!("/admin/conversations/{account}/{person}/pause"),
                query,
            )
        }
        ConversationsCommand::Resume { account, person } => (
            format!("/admin/conversations/{account}/{person}/resume"),
            Vec::new(),
        ),
        ConversationsCommand::List => {
            let (_, answer) = admin
                .send(reqwest::Method::GET, "/admin/conversations/paused", &[])
                .await?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            return Ok(());
        }
    };
    let (_, answer) = admin.send(reqwest::Method::POST, &path, &query).await?;
    println!("{answer}");
    Ok(())
}
