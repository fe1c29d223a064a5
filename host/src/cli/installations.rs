//! `igloo installations …`: the installations of a running igloo, added,
//! changed, upgraded, paused and removed while it runs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::admin::{Admin, AdminArgs};

/// Where an installation's bundle comes from.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct BundleSource {
    /// A bundle file, uploaded to igloo.
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// A reference igloo fetches: oci://REGISTRY/REPOSITORY:TAG or an
    /// https:// URL.
    #[arg(long)]
    from: Option<String>,
    /// A bundle igloo stored already, by digest.
    #[arg(long)]
    digest: Option<String>,
}

/// What an installation is given.
#[derive(Debug, Args)]
pub struct InstallationOptions {
    /// An account it serves (repeat); every account when none.
    #[arg(long = "account")]
    accounts: Vec<String>,
    /// A capability granted (repeat).
    #[arg(long = "grant")]
    grants: Vec<String>,
    /// A setting, KEY=VALUE (repeat).
    #[arg(long = "setting")]
    settings: Vec<String>,
    /// A setting for one account, ACCOUNT:KEY=VALUE (repeat).
    #[arg(long = "account-setting")]
    account_settings: Vec<String>,
    /// Run it even unsigned, or signed by a publisher not in the trust
    /// store.
    #[arg(long)]
    allow_unsigned: bool,
    /// It sees pseudonyms in place of people's IGSIDs.
    #[arg(long)]
    pseudonymous: bool,
    /// The exclusive group it answers in (one answer per event between
    /// the group's members).
    #[arg(long)]
    exclusive_group: Option<String>,
    /// Its rank in that group among installations placed there (lowest
    /// first; after the members the config lists).
    #[arg(long, default_value_t = 0, requires = "exclusive_group")]
    position: u32,
}

impl InstallationOptions {
    fn group_place(&self) -> Option<Value> {
        let name = self.exclusive_group.as_ref()?;
        Some(json!({ "name": name, "position": self.position }))
    }
}

/// What to do with installations.
#[derive(Debug, Subcommand)]
pub enum InstallationsCommand {
    /// Every installation, with its state.
    List,
    /// One installation, with a waiting upgrade's difference.
    Show {
        /// Its id.
        id: String,
    },
    /// Install a bundle under the id ID.
    Add {
        /// The operator's id for it.
        id: String,
        /// Where its bundle comes from.
        #[command(flatten)]
        source: BundleSource,
        /// What it is given.
        #[command(flatten)]
        options: InstallationOptions,
    },
    /// Change an installation: each option given replaces what it names.
    Set {
        /// Its id.
        id: String,
        /// What it is given.
        #[command(flatten)]
        options: InstallationOptions,
    },
    /// Upgrade it to another bundle; if that asks for capabilities not
    /// granted, it waits for the grant (`set --grant`) and the old one runs.
    Upgrade {
        /// Its id.
        id: String,
        /// Where its bundle comes from.
        #[command(flatten)]
        source: BundleSource,
    },
    /// What a waiting upgrade asks for beyond the grants.
    Diff {
        /// Its id.
        id: String,
    },
    /// Hold its events back until resumed.
    Pause {
        /// Its id.
        id: String,
    },
    /// Let it run again.
    Resume {
        /// Its id.
        id: String,
    },
    /// Remove it; the events it had not run on become dead letters.
    Remove {
        /// Its id.
        id: String,
    },
}

/// `igloo installations …`.
#[derive(Debug, Args)]
pub struct InstallationsArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(subcommand)]
    command: InstallationsCommand,
}

/// The digest igloo stores `source` under: uploaded or fetched first.
async fn stored(admin: &Admin, source: BundleSource) -> anyhow::Result<String> {
    let answer = if let Some(file) = source.bundle {
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        admin.upload("/admin/bundles", bytes).await?
    } else if let Some(reference) = source.from {
        let body = json!({ "reference": reference });
        let post = reqwest::Method::POST;
        admin
            .send_body(post, "/admin/bundles/fetch", &[], Some(&body))
            .await?
            .1
    } else if let Some(digest) = source.digest {
        return Ok(digest);
    } else {
        bail!("name a bundle: --bundle, --from or --digest");
    };
    answer["digest"]
        .as_str()
        .map(str::to_owned)
        .context("igloo did not say the bundle's digest")
}

fn pairs(given: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    given
        .iter()
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("`{pair}` is not KEY=VALUE"))?;
            Ok((key.to_owned(), value.to_owned()))
        })
        .collect()
}

fn per_account(given: &[String]) -> anyhow::Result<BTreeMap<String, BTreeMap<String, String>>> {
    let mut settings: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for entry in given {
        let (account, pair) = entry
            .split_once(':')
            .with_context(|| format!("`{entry}` is not ACCOUNT:KEY=VALUE"))?;
        settings
            .entry(account.to_owned())
            .or_default()
            .extend(pairs(&[pair.to_owned()])?);
    }
    Ok(settings)
}

/// Run `igloo installations …`.
pub async fn run(args: InstallationsArgs) -> anyhow::Result<()> {
    let admin = Admin::new(args.admin);
    let (get, post) = (reqwest::Method::GET, reqwest::Method::POST);
    // Only an id's alphabet goes into the path.
    let id = match &args.command {
        InstallationsCommand::List => None,
        InstallationsCommand::Show { id }
        | InstallationsCommand::Add { id, .. }
        | InstallationsCommand::Set { id, .. }
        | InstallationsCommand::Upgrade { id, .. }
        | InstallationsCommand::Diff { id }
        | InstallationsCommand::Pause { id }
        | InstallationsCommand::Resume { id }
        | InstallationsCommand::Remove { id } => Some(id),
    };
    if let Some(id) = id {
        crate::config::check_plugin_id(id)?;
    }
    let path = |id: &str, action: &str| format!("/admin/installations/{id}{action}");
    let (_, answer): (_, Value) = match args.command {
        InstallationsCommand::List => admin.send(get, "/admin/installations", &[]).await?,
        InstallationsCommand::Show { id } => admin.send(get, &path(&id, ""), &[]).await?,
        InstallationsCommand::Diff { id } => {
            let (status, shown) = admin.send(get, &path(&id, ""), &[]).await?;
            (status, json!({ "installation": id, "diff": shown["diff"] }))
        }
        InstallationsCommand::Add {
            id,
            source,
            options,
        } => {
            let digest = stored(&admin, source).await?;
            let body = json!({
                "id": id,
                "digest": digest,
                "accounts": options.accounts,
                "grants": options.grants,
                "settings": pairs(&options.settings)?,
                "account_settings": per_account(&options.account_settings)?,
                "allow_unsigned": options.allow_unsigned,
                "pseudonymous": options.pseudonymous,
                "exclusive_group": options.group_place(),
            });
            admin
                .send_body(post, "/admin/installations", &[], Some(&body))
                .await?
        }
        InstallationsCommand::Set { id, options } => {
            let mut body = serde_json::Map::new();
            if !options.grants.is_empty() {
                body.insert("grants".into(), json!(options.grants));
            }
            if !options.accounts.is_empty() {
                body.insert("accounts".into(), json!(options.accounts));
            }
            if !options.settings.is_empty() {
                body.insert("settings".into(), json!(pairs(&options.settings)?));
            }
            if !options.account_settings.is_empty() {
                let settings = per_account(&options.account_settings)?;
                body.insert("account_settings".into(), json!(settings));
            }
            if options.allow_unsigned {
                body.insert("allow_unsigned".into(), json!(true));
            }
            if options.pseudonymous {
                body.insert("pseudonymous".into(), json!(true));
            }
            if let Some(place) = options.group_place() {
                body.insert("exclusive_group".into(), place);
            }
            let patch = reqwest::Method::PATCH;
            admin
                .send_body(patch, &path(&id, ""), &[], Some(&Value::Object(body)))
                .await?
        }
        InstallationsCommand::Upgrade { id, source } => {
            let digest = stored(&admin, source).await?;
            let body = json!({ "digest": digest });
            admin
                .send_body(post, &path(&id, "/upgrade"), &[], Some(&body))
                .await?
        }
        InstallationsCommand::Pause { id } => admin.send(post, &path(&id, "/pause"), &[]).await?,
        InstallationsCommand::Resume { id } => admin.send(post, &path(&id, "/resume"), &[]).await?,
        InstallationsCommand::Remove { id } => {
            admin
                .send(reqwest::Method::DELETE, &path(&id, ""), &[])
                .await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}
