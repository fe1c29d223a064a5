//! Installations: a plugin package installed under an operator's id, for
//! some accounts, with its grants, settings (per-account overrides), and
//! its bundle pinned by digest. Everything that is a plugin's (kv, timers,
//! journal, runs, breaker, metrics) is keyed by that id, so two
//! installations of one package share nothing.
//!
//! `[[plugins]]` in the config are installations fixed by the file; the
//! admin API adds, changes, upgrades, pauses and removes others while igloo
//! runs, and what it changes survives a restart ([`store`]). Bundles are
//! checked against the operator's trust store ([`trust`]) before they are
//! compiled, and again whenever it changes: a revoked bundle or key holds
//! its installations back (their events wait), failing closed.
//!
//! A change swaps one plugin of the runtime's set: runs under way finish
//! on the version they started with, new events go to the new one, and the
//! inbox's run records (keyed by the installation's id) make sure no event
//! is run twice by it across the switch.

mod store;
pub mod trust;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use store::StoreError;
pub use trust::{Refusal, TrustStore, TrustedKey};

use crate::bundle::oci::{FetchError, Registries};
use crate::bundle::{Bundle, BundleError, Digest};
use crate::config::{Config, GraphMode, PluginConfig, PluginSource};
use crate::inbox::{Inbox, RunRecord};
use crate::plugin_api::{Capability, Pseudonyms};
use crate::runtime::{LoadError, LoadedPlugin, PluginCode, Runtime};
use store::InstallationStore;

/// The outcome recorded for a removed installation on the events it had
/// not run on: a dead letter, visible, replayable once it is back.
pub const REMOVED: &str = "removed";
/// Why a paused installation's events wait.
const PAUSED: &str = "paused by the operator";

/// Where an installation is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// `[[plugins]]` in the config file: changed there, not through the API
    /// (a pause is kept, though).
    Config,
    /// Made through the admin API or the CLI.
    Api,
}

/// An installation as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Installation {
    /// What the operator installed.
    pub spec: PluginConfig,
    /// Where it is defined.
    pub origin: Origin,
    /// Paused by the operator: its events wait.
    #[serde(default)]
    pub paused: bool,
    /// An upgrade waiting for the operator to grant what it asks for.
    #[serde(default)]
    pub pending_upgrade: Option<Digest>,
}

/// A change refused, and why.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// No installation with that id.
    #[error("no installation `{0}`")]
    NotFound(String),
    /// Not possible as things stand.
    #[error("{0}")]
    Conflict(String),
    /// The request is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The plugin would not load, or the trust store refuses it.
    #[error("{0}")]
    Refused(#[from] LoadError),
    /// A bundle could not be fetched, or is not one.
    #[error("{0}")]
    Fetch(#[from] FetchError),
    /// A bundle is not one igloo reads.
    #[error("{0}")]
    Bundle(#[from] BundleError),
    /// The store failed.
    #[error("{0}")]
    Storage(String),
}

impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Self {
        Problem::Storage(error.to_string())
    }
}

/// What changes an installation: fields left out stay as they are.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Changes {
    /// Capabilities granted, in place of the old grants.
    pub grants: Option<Vec<String>>,
    /// Settings, in place of the old.
    pub settings: Option<BTreeMap<String, String>>,
    /// Per-account settings, in place of the old.
    pub account_settings: Option<BTreeMap<String, BTreeMap<String, String>>>,
    /// Accounts served, in place of the old.
    pub accounts: Option<Vec<String>>,
    /// Whether it may run unsigned code.
    pub allow_unsigned: Option<bool>,
    /// Whether it sees pseudonyms.
    pub pseudonymous: Option<bool>,
    /// Its place in an exclusive group (`null`: none).
    #[serde(default, deserialize_with = "present")]
    pub exclusive_group: Option<Option<crate::config::GroupPlace>>,
}

/// A field that is present: `null` is `Some(None)`, absent is `None`.
fn present<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A change to the trust store (the admin API's body; the CLI sends it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum TrustChange {
    /// Trust `key` as publisher `name`.
    Add {
        /// The publisher's name.
        name: String,
        /// Its key.
        key: String,
    },
    /// Forget a publisher (by name) or key.
    Remove {
        /// A name or key.
        what: String,
    },
    /// Revoke a key or a bundle digest.
    Revoke {
        /// A key or digest.
        what: String,
    },
}

/// What an upgrade did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Upgrade {
    /// The new version runs; new events go to it.
    Upgraded {
        /// Its bundle.
        digest: Digest,
    },
    /// The new version asks for capabilities the installation was not
    /// granted: it waits for the grant, and the old version runs on.
    WaitingForGrant {
        /// Its bundle.
        digest: Digest,
        /// What it asks for beyond the grants.
        missing: Vec<String>,
    },
}

/// The installations of a running igloo, and the trust store their
/// bundles answer to.
pub struct Installations {
    runtime: Arc<Runtime>,
    inbox: Arc<dyn Inbox>,
    store: InstallationStore,
    bundles: PathBuf,
    registries: Registries,
    live: bool,
    configured: Vec<PluginConfig>,
    pseudonym_secret: [u8; 32],
    /// One change at a time: each reads what the last one wrote.
    changes: tokio::sync::Mutex<()>,
    /// One bundle stored at a time: each is up to 64 MiB in memory.
    storing: tokio::sync::Semaphore,
}

impl Installations {
    /// Open the store under the data directory.
    pub fn open(
        config: &Config,
        runtime: Arc<Runtime>,
        inbox: Arc<dyn Inbox>,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let data_dir = &config.storage.data_dir;
        let store = InstallationStore::open(&data_dir.join("installations.sqlite3"))
            .context("opening the installations store")?;
        let bundles = data_dir.join("bundles");
        std::fs::create_dir_all(&bundles)
            .with_context(|| format!("creating {}", bundles.display()))?;
        let pseudonym_secret = store.secret("pseudonyms")?;
        Ok(Self {
            runtime,
            inbox,
            store,
            bundles,
            registries: Registries {
                insecure: config.bundles.insecure_registries.clone(),
            },
            live: config.graph.mode == GraphMode::Live,
            configured: config.plugins.clone(),
            pseudonym_secret,
            changes: tokio::sync::Mutex::new(()),
            storing: tokio::sync::Semaphore::new(1),
        })
    }

    /// Load every installation: the config's, then those made through the
    /// API, in the order they were made. One that does not load is listed
    /// as failed; the others run.
    pub async fn load_all(&self) -> anyhow::Result<()> {
        let stored: BTreeMap<String, Installation> = self
            .store
            .installations()?
            .into_iter()
            .map(|installation| (installation.spec.id.clone(), installation))
            .collect();
        let mut all = Vec::new();
        for spec in &self.configured {
            all.push(Installation {
                paused: stored.get(&spec.id).is_some_and(|stored| stored.paused),
                spec: spec.clone(),
                origin: Origin::Config,
                pending_upgrade: None,
            });
        }
        let configured: BTreeSet<&str> = self.configured.iter().map(|p| p.id.as_str()).collect();
        for installation in stored.into_values() {
            if installation.origin == Origin::Api {
                if configured.contains(installation.spec.id.as_str()) {
                    tracing::warn!(id = %installation.spec.id, "an installation made through the API has the id of a [[plugins]] entry: the config's is loaded");
                    continue;
                }
                all.push(installation);
            }
        }
        for installation in &all {
            if let Err(error) = self.bring_up(installation).await {
                tracing::error!(plugin = %installation.spec.id, %error, "plugin not loaded");
                // Fail closed: a bundle's events wait for it, whatever kept
                // it from loading (untrusted, revoked, unreadable, broken),
                // until the operator fixes, upgrades or removes it.
                let waits = self.describe(&installation.spec);
                self.runtime.put_failed(&installation.spec.id, error, waits);
            }
        }
        Ok(())
    }

    /// Every installation, as stored or configured.
    pub fn list(&self) -> Result<Vec<Installation>, Problem> {
        let stored = self.store.installations()?;
        let mut all: Vec<Installation> = self
            .configured
            .iter()
            .map(|spec| Installation {
                paused: stored
                    .iter()
                    .any(|stored| stored.spec.id == spec.id && stored.paused),
                spec: spec.clone(),
                origin: Origin::Config,
                pending_upgrade: None,
            })
            .collect();
        all.extend(
            stored
                .into_iter()
                .filter(|stored| stored.origin == Origin::Api)
                .filter(|stored| !self.configured.iter().any(|c| c.id == stored.spec.id)),
        );
        Ok(all)
    }

    /// The installation `id`.
    pub fn get(&self, id: &str) -> Result<Installation, Problem> {
        self.list()?
            .into_iter()
            .find(|installation| installation.spec.id == id)
            .ok_or_else(|| Problem::NotFound(id.to_owned()))
    }

    /// Install `spec` (its source a stored bundle's digest): it loads now,
    /// or nothing is kept.
    pub async fn add(&self, spec: PluginConfig) -> Result<Installation, Problem> {
        let _one = self.changes.lock().await;
        crate::config::check_plugin_id(&spec.id)
            .map_err(|error| Problem::Invalid(error.to_string()))?;
        if self
            .list()?
            .iter()
            .any(|existing| existing.spec.id == spec.id)
        {
            return Err(Problem::Conflict(format!(
                "an installation `{}` exists: upgrade or remove it",
                spec.id
            )));
        }
        if !matches!(
            spec.source,
            PluginSource::Digest(_) | PluginSource::Builtin(_)
        ) {
            return Err(Problem::Invalid(
                "an installation made through the API names a stored bundle by digest \
                 (upload or fetch it first) or a built-in plugin"
                    .into(),
            ));
        }
        let installation = Installation {
            spec,
            origin: Origin::Api,
            paused: false,
            pending_upgrade: None,
        };
        self.commit(&installation, None).await?;
        tracing::info!(plugin = %installation.spec.id, "installed");
        Ok(installation)
    }

    /// Change what the operator set for `id`; it is loaded again with it
    /// (runs under way finish as they were). A waiting upgrade whose
    /// capabilities are now granted is applied.
    pub async fn set(&self, id: &str, changes: Changes) -> Result<Installation, Problem> {
        let _one = self.changes.lock().await;
        let mut installation = self.api_made(id)?;
        let before = installation.clone();
        let spec = &mut installation.spec;
        if let Some(grants) = changes.grants {
            spec.grants = grants;
        }
        if let Some(settings) = changes.settings {
            spec.settings = settings;
        }
        if let Some(account_settings) = changes.account_settings {
            spec.account_settings = account_settings;
        }
        if let Some(accounts) = changes.accounts {
            spec.accounts = accounts;
        }
        if let Some(allow) = changes.allow_unsigned {
            spec.allow_unsigned = allow;
        }
        if let Some(pseudonymous) = changes.pseudonymous {
            // Its kv and timers may hold real ids already: a pseudonymous
            // installation starts with nothing.
            if pseudonymous && !spec.pseudonymous {
                return Err(Problem::Conflict(
                    "pseudonyms are chosen when an installation is made: install it anew, \
                     under a new id, with pseudonyms"
                        .into(),
                ));
            }
            spec.pseudonymous = pseudonymous;
        }
        if let Some(place) = changes.exclusive_group {
            spec.exclusive_group = place;
        }
        if let Some(pending) = installation.pending_upgrade.clone() {
            let upgraded = Installation {
                spec: PluginConfig {
                    source: PluginSource::Digest(pending.clone()),
                    ..installation.spec.clone()
                },
                pending_upgrade: None,
                ..installation.clone()
            };
            if self.missing_grants(&upgraded.spec, &pending)?.is_empty() {
                installation = upgraded;
                tracing::info!(plugin = %id, digest = %pending, "the waiting upgrade is granted what it asks for: applied");
            }
        }
        self.commit(&installation, Some(&before)).await?;
        Ok(installation)
    }

    /// Upgrade `id` to the stored bundle `digest`. If it asks for
    /// capabilities not granted, it waits for the grant (see
    /// [`Installations::diff`]) and the old version runs on.
    pub async fn upgrade(&self, id: &str, digest: Digest) -> Result<Upgrade, Problem> {
        let _one = self.changes.lock().await;
        let mut installation = self.api_made(id)?;
        let before = installation.clone();
        let missing = self.missing_grants(&installation.spec, &digest)?;
        if !missing.is_empty() {
            // Refused now if it could never run here (untrusted, revoked).
            let bundle = self.stored_bundle(id, &digest)?;
            self.vouch(id, &bundle, installation.spec.allow_unsigned)?;
            installation.pending_upgrade = Some(digest.clone());
            self.store.save(&installation)?;
            tracing::info!(plugin = %id, %digest, ?missing, "upgrade waits for the operator to grant what it asks for");
            return Ok(Upgrade::WaitingForGrant { digest, missing });
        }
        installation.spec.source = PluginSource::Digest(digest.clone());
        installation.pending_upgrade = None;
        self.commit(&installation, Some(&before)).await?;
        tracing::info!(plugin = %id, %digest, "upgraded");
        Ok(Upgrade::Upgraded { digest })
    }

    /// Keep `installation`, then make it live; if it does not load, keep
    /// what was there `before` (nothing, for a new one) and say why. Kept
    /// first, so nothing runs that a restart would not bring back.
    async fn commit(
        &self,
        installation: &Installation,
        before: Option<&Installation>,
    ) -> Result<(), Problem> {
        self.store.save(installation)?;
        if let Err(error) = self.bring_up(installation).await {
            match before {
                Some(before) => self.store.save(before)?,
                None => self.store.delete(&installation.spec.id)?,
            }
            return Err(error.into());
        }
        Ok(())
    }

    /// What a waiting upgrade of `id` asks for beyond its grants, and what
    /// it no longer asks for: `None` when nothing waits.
    pub fn diff(&self, id: &str) -> Result<Option<serde_json::Value>, Problem> {
        let installation = self.get(id)?;
        let Some(pending) = &installation.pending_upgrade else {
            return Ok(None);
        };
        let bundle = self.stored_bundle(id, pending)?;
        let asked: BTreeSet<String> = bundle
            .manifest()
            .capabilities
            .iter()
            .map(ToString::to_string)
            .collect();
        let current = self.runtime.plugin(id);
        let had: BTreeSet<String> = current
            .as_ref()
            .map(|plugin| {
                plugin
                    .info
                    .capabilities
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let granted: BTreeSet<&String> = installation.spec.grants.iter().collect();
        Ok(Some(serde_json::json!({
            "installation": id,
            "from": current.map(|plugin| format!("{} {}", plugin.info.name, plugin.info.version)),
            "to": format!("{} {}", bundle.manifest().name, bundle.manifest().version),
            "digest": pending,
            "added": asked.difference(&had).collect::<Vec<_>>(),
            "removed": had.difference(&asked).collect::<Vec<_>>(),
            "needs_grant": asked.iter().filter(|c| !granted.contains(c)).collect::<Vec<_>>(),
        })))
    }

    /// Grant `id` what its waiting upgrade asks for: the upgrade runs.
    pub async fn grant_waiting(&self, id: &str) -> Result<Installation, Problem> {
        let installation = self.get(id)?;
        let Some(pending) = &installation.pending_upgrade else {
            return Err(Problem::Conflict(format!("no upgrade of `{id}` waits")));
        };
        let mut grants = installation.spec.grants.clone();
        grants.extend(self.missing_grants(&installation.spec, pending)?);
        let changes = Changes {
            grants: Some(grants),
            ..Changes::default()
        };
        self.set(id, changes).await
    }

    /// Apply `change` to the trust store; how many entries it changed.
    pub async fn change_trust(&self, change: TrustChange) -> Result<usize, Problem> {
        match change {
            TrustChange::Add { name, key } => self.trust_key(&name, &key).await.map(|()| 1),
            TrustChange::Remove { what } => self.distrust(&what).await,
            TrustChange::Revoke { what } => self.revoke(&what).await.map(|()| 1),
        }
    }

    /// Pause or resume `id`: while paused, its events wait for it.
    pub async fn pause(&self, id: &str, paused: bool) -> Result<Installation, Problem> {
        let _one = self.changes.lock().await;
        let mut installation = self.get(id)?;
        installation.paused = paused;
        self.store.save(&installation)?;
        if let Some(plugin) = self.runtime.plugin(id) {
            plugin.set_hold(self.hold_reason(&installation, &plugin));
        }
        if !paused {
            self.runtime.rescan();
        }
        tracing::info!(plugin = %id, paused, "installation {}", if paused { "paused" } else { "resumed" });
        Ok(installation)
    }

    /// Remove `id`: it takes no new events, its runs under way finish, and
    /// each event it had not run on is recorded as a dead letter
    /// ([`REMOVED`]): visible, never dropped. Returns how many.
    pub async fn remove(&self, id: &str) -> Result<u64, Problem> {
        let _one = self.changes.lock().await;
        self.api_made(id)?;
        let plugin = self.runtime.plugin(id);
        if let Some(plugin) = &plugin {
            plugin.set_hold(Some("being removed".into()));
        }
        // Every run under way, of any version, ends before its events are
        // looked at; none starts after (it is held).
        self.runtime.runs_ended(id).await;
        let waiting = self
            .runtime
            .plugins()
            .waiting()
            .find(|info| info.id == id)
            .cloned();
        let info = plugin
            .as_ref()
            .map(|plugin| Arc::clone(&plugin.info))
            .or(waiting);
        let mut left = 0;
        if let Some(info) = &info {
            left = match self.dead_letter_pending(info).await {
                Ok(left) => left,
                Err(problem) => {
                    // Not removed: it runs again.
                    if let Some(plugin) = &plugin {
                        let installation = self.get(id)?;
                        plugin.set_hold(self.hold_reason(&installation, plugin));
                    }
                    return Err(problem);
                }
            };
        }
        self.runtime.take_out(id);
        self.store.delete(id)?;
        // Its kv and timers go with it: an installation made later under
        // this id (of another publisher, pseudonymous) must not read them.
        if let Err(error) = self.runtime.services().forget_plugin(id).await {
            tracing::error!(plugin = %id, %error, "forgetting a removed installation's kv and timers failed");
        }
        tracing::warn!(plugin = %id, left, "installation removed; the events it had not run on are dead letters");
        Ok(left)
    }

    /// Record [`REMOVED`] on each pending event `plugin` has not finished.
    async fn dead_letter_pending(
        &self,
        plugin: &crate::plugin_api::PluginInfo,
    ) -> Result<u64, Problem> {
        let id = &plugin.id;
        let (mut after, mut recorded) = (0, 0);
        loop {
            let batch = self
                .inbox
                .pending(after, 256, &[], u64::MAX)
                .await
                .map_err(|error| Problem::Storage(error.to_string()))?;
            let Some(last) = batch.last() else {
                return Ok(recorded);
            };
            after = last.seq;
            for pending in batch {
                if plugin.receives(&pending.event) && !pending.is_done_for(id) {
                    let record = RunRecord::finished(
                        id,
                        REMOVED,
                        "the installation was removed before it ran on this event",
                    );
                    self.inbox
                        .record_run(pending.seq, record)
                        .await
                        .map_err(|error| Problem::Storage(error.to_string()))?;
                    recorded += 1;
                }
            }
        }
    }

    /// Store a bundle file's bytes, once they are checked to be one. One
    /// at a time, off the async threads: a bundle is up to
    /// [`crate::bundle::MAX_BUNDLE_BYTES`], hashed whole.
    pub async fn store_bundle(&self, bytes: bytes::Bytes) -> Result<Bundle, Problem> {
        let _one = self.storing.acquire().await.expect("never closed");
        let (dir, trust) = (self.bundles.clone(), self.trust()?);
        tokio::task::spawn_blocking(move || {
            let bundle = Bundle::from_bytes(&bytes)?;
            keep(&dir, &bundle, &trust)?;
            Ok(bundle)
        })
        .await
        .map_err(|error| Problem::Storage(format!("storing the bundle stopped: {error}")))?
    }

    /// Fetch the bundle `reference` names, check it, and store it.
    pub async fn fetch(&self, reference: &str) -> Result<Bundle, Problem> {
        let bundle = self.registries.fetch(reference).await?;
        // A changed signature or a revoked bundle is refused here already.
        if let Err(refusal) = self.trust()?.check(&bundle, false, true) {
            return Err(Problem::Refused(LoadError::Untrusted {
                plugin: reference.to_owned(),
                why: refusal,
            }));
        }
        let _one = self.storing.acquire().await.expect("never closed");
        let (dir, trust) = (self.bundles.clone(), self.trust()?);
        let bundle = tokio::task::spawn_blocking(move || {
            keep(&dir, &bundle, &trust)?;
            Ok::<_, Problem>(bundle)
        })
        .await
        .map_err(|error| Problem::Storage(format!("storing the bundle stopped: {error}")))??;
        tracing::info!(%reference, digest = %bundle.digest(), "bundle fetched");
        Ok(bundle)
    }

    /// What the trust store says of `bundle` for an installation that
    /// does (not) allow unsigned code.
    pub fn verdict(
        &self,
        bundle: &Bundle,
        allow_unsigned: bool,
    ) -> Result<trust::Verdict, Refusal> {
        self.trust()
            .map_err(|_| Refusal::Unsigned)?
            .check(bundle, self.live, allow_unsigned)
    }

    /// The trust store as it stands.
    pub fn trust(&self) -> Result<TrustStore, Problem> {
        Ok(self.store.trust()?)
    }

    /// Trust `key` as the publisher `name`.
    pub async fn trust_key(&self, name: &str, key: &str) -> Result<(), Problem> {
        let key: crate::bundle::PublisherKey =
            key.parse()
                .map_err(|error: crate::bundle::signing::KeyError| {
                    Problem::Invalid(error.to_string())
                })?;
        check_label("publisher name", name)?;
        self.store.trust_key(name, &key.to_string())?;
        self.recheck().await
    }

    /// Stop trusting the key (or every key of the publisher) named.
    pub async fn distrust(&self, name_or_key: &str) -> Result<usize, Problem> {
        let removed = self.store.distrust(name_or_key)?;
        self.recheck().await?;
        Ok(removed)
    }

    /// Revoke a bundle digest or a publisher key: what it covers stops
    /// taking events at once.
    pub async fn revoke(&self, item: &str) -> Result<(), Problem> {
        let item = if item.starts_with("sha256:") {
            Digest::parse(item).map_err(Problem::Invalid)?.to_string()
        } else {
            item.parse::<crate::bundle::PublisherKey>()
                .map_err(|error| Problem::Invalid(error.to_string()))?
                .to_string()
        };
        self.store.revoke(&item)?;
        tracing::warn!(%item, "revoked");
        self.recheck().await
    }

    /// Hold back, or let run again, each loaded plugin as the trust store
    /// and its pause now say: at once, whatever change is under way (a
    /// revocation does not wait for a compile). Then load the installations
    /// held back at start that the trust store may now allow.
    async fn recheck(&self) -> Result<(), Problem> {
        let installations = self.list()?;
        let waiting: BTreeSet<String> = self
            .runtime
            .plugins()
            .waiting()
            .map(|info| info.id.clone())
            .collect();
        for installation in &installations {
            let id = &installation.spec.id;
            if let Some(plugin) = self.runtime.plugin(id) {
                let reason = self.hold_reason(installation, &plugin);
                if let Some(reason) = &reason {
                    tracing::warn!(plugin = %id, %reason, "installation held back");
                }
                plugin.set_hold(reason);
            }
        }
        let _one = self.changes.lock().await;
        for installation in installations {
            let id = &installation.spec.id;
            if !waiting.contains(id) || self.runtime.plugin(id).is_some() {
                continue;
            }
            match self.bring_up(&installation).await {
                Ok(_) => {
                    tracing::info!(plugin = %id, "installation loaded: the trust store now allows it");
                }
                Err(error) => {
                    let waits = self.describe(&installation.spec);
                    self.runtime.put_failed(id, error, waits);
                }
            }
        }
        self.runtime.rescan();
        Ok(())
    }

    /// Why `plugin` of `installation` may not run now: paused, or its
    /// bundle no longer trusted.
    fn hold_reason(&self, installation: &Installation, plugin: &LoadedPlugin) -> Option<String> {
        if let Some(digest) = &plugin.provenance.digest {
            // Fail closed: what cannot be checked does not run.
            let Ok(trust) = self.trust() else {
                return Some("the trust store cannot be read: held until it can".into());
            };
            let Ok(digest) = Digest::parse(digest) else {
                return Some("its bundle's digest does not read back".into());
            };
            let signature = match plugin.provenance.signature.as_deref() {
                Some(text) => match crate::bundle::Signature::parse(text) {
                    Ok(signature) => Some(signature),
                    Err(_) => return Some("its signature does not read back".into()),
                },
                None => None,
            };
            if let Err(refusal) = trust.check_parts(
                &digest,
                signature.as_ref(),
                self.live,
                installation.spec.allow_unsigned,
            ) {
                return Some(refusal.to_string());
            }
        }
        installation.paused.then(|| PAUSED.to_owned())
    }

    /// Load `installation` and make it live, held back if it is paused.
    async fn bring_up(&self, installation: &Installation) -> Result<Arc<LoadedPlugin>, LoadError> {
        let code = self.code(&installation.spec)?;
        let loaded = self.runtime.load(&installation.spec, code).await?;
        loaded.set_hold(self.hold_reason(installation, &loaded));
        let live = self.runtime.put(loaded);
        // Again once live: a revocation written meanwhile is not missed
        // (its recheck saw the plugin this one replaced).
        live.set_hold(self.hold_reason(installation, &live));
        Ok(live)
    }

    /// What `spec`'s bundle is, from its manifest alone (nothing compiled):
    /// for an installation held back by the trust store, whose events
    /// wait for it.
    fn describe(&self, spec: &PluginConfig) -> Option<crate::plugin_api::PluginInfo> {
        let bundle = match &spec.source {
            PluginSource::Digest(digest) => self.stored_bundle(&spec.id, digest).ok()?,
            PluginSource::Bundle(path) => Bundle::from_bytes(&std::fs::read(path).ok()?).ok()?,
            PluginSource::Builtin(_) | PluginSource::Path(_) => return None,
        };
        let pseudonyms = spec
            .pseudonymous
            .then(|| Pseudonyms::new(&self.pseudonym_secret, &spec.id));
        crate::runtime::describe(spec, bundle.manifest_text(), pseudonyms)
            .ok()
            .map(|(info, _)| info)
    }

    /// The code `spec` names, checked against the trust store when it
    /// comes in a bundle.
    fn code(&self, spec: &PluginConfig) -> Result<PluginCode, LoadError> {
        let id = &spec.id;
        let pseudonyms = spec
            .pseudonymous
            .then(|| Pseudonyms::new(&self.pseudonym_secret, id));
        let bundle = match &spec.source {
            PluginSource::Builtin(name) => {
                return Ok(PluginCode {
                    pseudonyms,
                    ..PluginCode::builtin(name)?
                });
            }
            PluginSource::Path(dir) => {
                let read = |file: &'static str| {
                    std::fs::read(dir.join(file)).map_err(|error| LoadError::Read { file, error })
                };
                return Ok(PluginCode {
                    manifest: String::from_utf8_lossy(&read("plugin.toml")?).into_owned(),
                    component: read("plugin.wasm")?,
                    provenance: Default::default(),
                    pseudonyms,
                });
            }
            PluginSource::Bundle(path) => {
                let bytes = std::fs::read(path).map_err(|error| LoadError::Read {
                    file: "bundle",
                    error,
                })?;
                Bundle::from_bytes(&bytes).map_err(|error| LoadError::Bundle {
                    plugin: id.clone(),
                    error,
                })?
            }
            PluginSource::Digest(digest) => self.stored_bundle(id, digest)?,
        };
        let verdict = self.vouch(id, &bundle, spec.allow_unsigned)?;
        if verdict.publisher.is_none() {
            tracing::warn!(plugin = %id, live = self.live, "running a bundle no trusted publisher signed");
        }
        Ok(PluginCode {
            provenance: crate::runtime::Provenance {
                digest: Some(bundle.digest().to_string()),
                publisher: verdict.publisher.clone(),
                signature: bundle.signature().map(ToString::to_string),
                unsigned: verdict.publisher.is_none(),
            },
            manifest: bundle.manifest_text().to_owned(),
            component: bundle.component().to_vec(),
            pseudonyms,
        })
    }

    /// The trust store's verdict on `bundle` for installation `id`.
    fn vouch(
        &self,
        id: &str,
        bundle: &Bundle,
        allow_unsigned: bool,
    ) -> Result<trust::Verdict, LoadError> {
        self.verdict(bundle, allow_unsigned)
            .map_err(|why| LoadError::Untrusted {
                plugin: id.to_owned(),
                why,
            })
    }

    /// The stored bundle `digest`, checked to still be those bytes.
    fn stored_bundle(&self, id: &str, digest: &Digest) -> Result<Bundle, LoadError> {
        let bytes = std::fs::read(self.bundle_path(digest)).map_err(|error| LoadError::Read {
            file: "stored bundle",
            error,
        })?;
        let bundle = Bundle::from_bytes(&bytes).map_err(|error| LoadError::Bundle {
            plugin: id.to_owned(),
            error,
        })?;
        if bundle.digest() != digest {
            return Err(LoadError::Bundle {
                plugin: id.to_owned(),
                error: BundleError::Tampered {
                    claimed: digest.to_string(),
                    actual: bundle.digest().clone(),
                },
            });
        }
        Ok(bundle)
    }

    fn bundle_path(&self, digest: &Digest) -> PathBuf {
        self.bundles.join(format!("{}.igloo", digest.hex()))
    }

    /// The capabilities the bundle `digest` asks for that `spec` does not
    /// grant.
    fn missing_grants(&self, spec: &PluginConfig, digest: &Digest) -> Result<Vec<String>, Problem> {
        let bundle = self.stored_bundle(&spec.id, digest)?;
        let granted: BTreeSet<Capability> = spec
            .grants
            .iter()
            .filter_map(|grant| grant.parse().ok())
            .collect();
        Ok(bundle
            .manifest()
            .capabilities
            .iter()
            .filter(|capability| !granted.contains(capability))
            .map(ToString::to_string)
            .collect())
    }

    /// The installation `id`, if the API made it (the config's are changed
    /// in the file).
    fn api_made(&self, id: &str) -> Result<Installation, Problem> {
        let installation = self.get(id)?;
        if installation.origin == Origin::Config {
            return Err(Problem::Conflict(format!(
                "`{id}` is a [[plugins]] entry of the config file: change it there"
            )));
        }
        Ok(installation)
    }
}

/// Store `bundle` in `dir` under its digest. One stored already is kept
/// unless this copy carries a signature that verifies and the stored one
/// is not vouched for by a publisher `trust` holds (signing changes no
/// signed byte, so a signed copy may follow an unsigned one; nobody's can
/// replace a trusted publisher's). Written whole, synced, then renamed into place.
fn keep(dir: &std::path::Path, bundle: &Bundle, trust: &TrustStore) -> Result<(), Problem> {
    use std::io::Write as _;
    let vouched = |bundle: &Bundle| {
        trust
            .check(bundle, true, false)
            .is_ok_and(|verdict| verdict.publisher.is_some())
    };
    let path = dir.join(format!("{}.igloo", bundle.digest().hex()));
    if path.exists() {
        let stored = std::fs::read(&path)
            .ok()
            .and_then(|bytes| Bundle::from_bytes(&bytes).ok());
        let signed = bundle
            .signature()
            .is_some_and(|signature| signature.verifies(bundle.digest()));
        if !signed || stored.is_some_and(|stored| vouched(&stored)) {
            return Ok(());
        }
    }
    let failed = |error: std::io::Error| Problem::Storage(format!("storing the bundle: {error}"));
    let mut temporary = tempfile::NamedTempFile::new_in(dir).map_err(failed)?;
    temporary.write_all(&bundle.to_bytes()).map_err(failed)?;
    temporary.as_file().sync_all().map_err(failed)?;
    temporary
        .persist(&path)
        .map_err(|error| failed(error.error))?;
    std::fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(failed)
}

fn check_label(what: &str, value: &str) -> Result<(), Problem> {
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ' '));
    if value.is_empty() || value.len() > 64 || !plain {
        return Err(Problem::Invalid(format!(
            "{what} must be 1 to 64 letters, digits, spaces, `-`, `_` or `.`"
        )));
    }
    Ok(())
}
