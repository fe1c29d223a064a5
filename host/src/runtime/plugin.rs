//! Loading a plugin: parse its manifest, check its capabilities against the
//! operator's grants and its imports, compile it, and pre-link it once so
//! each event only instantiates.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use super::bindings::AutomationPre;
use super::breaker::CircuitBreaker;
use super::instance::InstanceState;
use super::limits::Limits;
use super::manifest::PluginManifest;
use crate::capabilities::{Capability, required_for_import};
use crate::config::{PluginConfig, PluginSource, RuntimeConfig};
use crate::events::Event;

/// Why a plugin did not load. The host refuses to start rather than run
/// without a plugin the operator configured.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// No built-in plugin by that name.
    #[error("no built-in plugin named `{0}` (built in: {1})")]
    UnknownBuiltin(String, String),
    /// A file could not be read.
    #[error("reading {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// The manifest is invalid.
    #[error("plugin {plugin}: {message}")]
    Manifest {
        /// Where the plugin came from.
        plugin: String,
        /// What is wrong.
        message: String,
    },
    /// The manifest declares a capability the operator did not grant.
    #[error(
        "plugin `{plugin}` declares capability `{capability}` but the config does not grant it \
         (add it to the plugin's `grants`)"
    )]
    NotGranted {
        /// The plugin.
        plugin: String,
        /// The capability.
        capability: Capability,
    },
    /// The component imports an interface none of its capabilities allow.
    #[error(
        "plugin `{plugin}` imports `{import}`, which needs capability {needs}; it was not granted"
    )]
    ImportNotGranted {
        /// The plugin.
        plugin: String,
        /// The imported interface.
        import: String,
        /// The capabilities that would allow it.
        needs: String,
    },
    /// Compiling or linking the component failed.
    #[error("plugin `{plugin}`: {error:#}")]
    Component {
        /// The plugin.
        plugin: String,
        /// What wasmtime said.
        error: wasmtime::Error,
    },
}

/// What host functions and the dispatcher need to know about a plugin.
#[derive(Debug)]
pub struct PluginInfo {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Event kinds it subscribed to.
    pub events: BTreeSet<String>,
    /// Accounts it is limited to; all when empty.
    pub accounts: BTreeSet<String>,
    /// Whether it receives the business's own activity.
    pub echoes: bool,
    /// Capabilities it declared and was granted.
    pub capabilities: BTreeSet<Capability>,
    /// Its settings from the operator.
    pub settings: BTreeMap<String, String>,
}

impl PluginInfo {
    /// Whether the plugin wants `event`: its kind, its account, and echoes
    /// only if asked for.
    pub fn subscribes_to(&self, event: &Event) -> bool {
        self.events.contains(event.kind_name())
            && (self.accounts.is_empty() || self.accounts.contains(&event.account_id))
            && (self.echoes || !event.is_echo)
    }
}

/// A plugin ready to run: compiled and pre-linked.
pub struct LoadedPlugin {
    /// Its identity, subscriptions and grants.
    pub info: Arc<PluginInfo>,
    /// Instantiates it cheaply, once per event.
    pub pre: AutomationPre<InstanceState>,
    /// What each run may use.
    pub limits: Limits,
    /// Quarantines it when its runs keep crashing.
    pub breaker: CircuitBreaker,
    /// Bounds its runs in flight; the rest wait.
    pub concurrency: Semaphore,
}

/// Where the manifest text and component bytes come from.
fn read_source(source: &PluginSource) -> Result<(String, Vec<u8>), LoadError> {
    match source {
        PluginSource::Builtin(name) => {
            let builtin = igloo_plugin_artifacts::EXAMPLES
                .iter()
                .find(|plugin| plugin.name == name)
                .ok_or_else(|| {
                    let names: Vec<_> = igloo_plugin_artifacts::EXAMPLES
                        .iter()
                        .map(|p| p.name)
                        .collect();
                    LoadError::UnknownBuiltin(name.clone(), names.join(", "))
                })?;
            Ok((builtin.manifest.to_owned(), builtin.component.to_vec()))
        }
        PluginSource::Path(dir) => {
            let read = |file: &str| {
                let path = dir.join(file);
                std::fs::read(&path).map_err(|error| LoadError::Read { path, error })
            };
            let manifest = String::from_utf8_lossy(&read("plugin.toml")?).into_owned();
            Ok((manifest, read("plugin.wasm")?))
        }
    }
}

pub(super) fn source_label(source: &PluginSource) -> String {
    match source {
        PluginSource::Builtin(name) => format!("builtin `{name}`"),
        PluginSource::Path(dir) => Path::new(dir).display().to_string(),
    }
}

/// Load the plugin `config` names, with the operator's `runtime` limits.
pub fn load(
    engine: &Engine,
    linker: &Linker<InstanceState>,
    config: &PluginConfig,
    runtime: &RuntimeConfig,
) -> Result<LoadedPlugin, LoadError> {
    let (manifest_text, bytes) = read_source(&config.source)?;
    let manifest =
        PluginManifest::parse(&manifest_text).map_err(|message| LoadError::Manifest {
            plugin: source_label(&config.source),
            message,
        })?;
    let plugin = manifest.name.clone();

    let mut granted = BTreeSet::new();
    for name in &config.grants {
        let capability: Capability = name.parse().map_err(|message| LoadError::Manifest {
            plugin: plugin.clone(),
            message: format!("in grants: {message}"),
        })?;
        granted.insert(capability);
    }
    for capability in &manifest.capabilities {
        if !granted.contains(capability) {
            return Err(LoadError::NotGranted {
                plugin,
                capability: *capability,
            });
        }
    }
    let capabilities: BTreeSet<Capability> = manifest.capabilities.iter().copied().collect();
    for extra in granted.difference(&capabilities) {
        tracing::warn!(%plugin, capability = %extra, "granted but not declared in the manifest; ignored");
    }

    let component_error = |error| LoadError::Component {
        plugin: plugin.clone(),
        error,
    };
    let component = Component::new(engine, &bytes).map_err(component_error)?;
    for (import, _) in component.component_type().imports(engine) {
        if let Some(needs) = required_for_import(import)
            && !needs
                .iter()
                .any(|capability| capabilities.contains(capability))
        {
            let needs: Vec<_> = needs.iter().map(|c| format!("`{c}`")).collect();
            return Err(LoadError::ImportNotGranted {
                plugin,
                import: import.to_owned(),
                needs: needs.join(" or "),
            });
        }
    }
    let pre = linker
        .instantiate_pre(&component)
        .map_err(component_error)?;
    let pre = AutomationPre::new(pre).map_err(component_error)?;

    let limits = Limits::new(runtime, manifest.limits);
    Ok(LoadedPlugin {
        limits,
        breaker: CircuitBreaker::new(
            runtime.breaker_threshold,
            Duration::from_secs(runtime.breaker_cooldown_secs),
        ),
        concurrency: Semaphore::new(limits.max_concurrency as usize),
        info: Arc::new(PluginInfo {
            name: manifest.name,
            version: manifest.version,
            events: manifest.events.into_iter().collect(),
            accounts: manifest.accounts.into_iter().collect(),
            echoes: manifest.echoes,
            capabilities,
            settings: config.settings.clone(),
        }),
        pre,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::normalise;

    fn info(events: &[&str], accounts: &[&str], echoes: bool) -> PluginInfo {
        PluginInfo {
            name: "p".into(),
            version: "1".into(),
            events: events.iter().map(|kind| kind.to_string()).collect(),
            accounts: accounts.iter().map(|account| account.to_string()).collect(),
            echoes,
            capabilities: BTreeSet::new(),
            settings: BTreeMap::new(),
        }
    }

    fn fixture_event(name: &str) -> Event {
        let path = format!(
            "{}/../../shared/fixtures/webhooks/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        normalise(&std::fs::read(path).unwrap()).unwrap().remove(0)
    }

    #[test]
    fn subscriptions_filter_by_kind_account_and_echo() {
        let message = fixture_event("message_text.json");
        let echo = fixture_event("message_echo.json");
        let comment = fixture_event("comment_changes.json");

        assert!(info(&["message"], &[], false).subscribes_to(&message));
        assert!(!info(&["message"], &[], false).subscribes_to(&comment));
        assert!(
            !info(&["message"], &[], false).subscribes_to(&echo),
            "echoes only on request"
        );
        assert!(info(&["message"], &[], true).subscribes_to(&echo));
        assert!(info(&["message"], &["17841400000000001"], false).subscribes_to(&message));
        assert!(!info(&["message"], &["17841400000000999"], false).subscribes_to(&message));
    }
}
