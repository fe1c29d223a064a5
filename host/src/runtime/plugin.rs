//! Loading a plugin: parse its manifest, check its capabilities against the
//! operator's grants and its imports, compile it, and pre-link it once so
//! each event only instantiates.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use super::breaker::CircuitBreaker;
use super::instance::InstanceState;
use super::limits::Limits;
use super::manifest::{ManifestError, PluginManifest};
use crate::capabilities::required_for_import;
use crate::config::{PluginConfig, RuntimeConfig};
use crate::events::{AccountScope, Subscription};
use crate::plugin_api::{Capability, GuestPre, PluginInfo, UnknownCapability};

/// Why a plugin did not load. igloo starts without it, and `/healthz`
/// shows it as failed with this error.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Its bundle could not be read, or is not what was signed.
    #[error("plugin `{plugin}`: {error}")]
    Bundle {
        /// The plugin.
        plugin: String,
        /// What is wrong.
        error: crate::bundle::BundleError,
    },
    /// The trust store refuses its bundle (live mode).
    #[error("plugin `{plugin}` refused: {why}")]
    Untrusted {
        /// The plugin.
        plugin: String,
        /// Why.
        why: crate::installations::Refusal,
    },
    /// A pseudonymous installation asks for a capability that would tell
    /// it who people are, or act on people other than the one whose event
    /// it handles.
    #[error(
        "plugin `{plugin}` is installed with pseudonyms, but declares `{capability}`, which \
         would tell it who people are or let it act on others"
    )]
    NotWithPseudonyms {
        /// The plugin.
        plugin: String,
        /// The capability.
        capability: Capability,
    },
    /// No built-in plugin by that name.
    #[error("no built-in plugin named `{0}` (built in: {1})")]
    UnknownBuiltin(String, String),
    /// A file of the plugin's folder could not be read. Shown by file
    /// name only: the error reaches `/healthz`, which names no host paths.
    #[error("reading the plugin's {file}: {error}")]
    Read {
        /// The file, relative to the plugin's folder.
        file: &'static str,
        /// What failed.
        error: std::io::Error,
    },
    /// The manifest is invalid.
    #[error("plugin `{plugin}`: invalid plugin.toml: {error}")]
    Manifest {
        /// The plugin.
        plugin: String,
        /// What is wrong.
        error: ManifestError,
    },
    /// The operator's grants name a capability igloo does not know.
    #[error("plugin `{plugin}`: in grants: {error}")]
    UnknownGrant {
        /// The plugin.
        plugin: String,
        /// The unknown name.
        error: UnknownCapability,
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
    /// The component's types match no shape igloo serves for the API
    /// version it names (built against a WIT that was never released, say):
    /// it would fail every run, so it is not loaded.
    #[error("plugin `{plugin}`: its types match no release of igloo:plugin@{version}: {why}")]
    Shape {
        /// The plugin.
        plugin: String,
        /// The version its handler export names.
        version: &'static str,
        /// What each shape's instantiation said.
        why: String,
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

/// A plugin compiled and pre-linked in every shape of its API version, not
/// yet instantiated: [`Unproven::prove`] keeps the shape its types match.
pub(super) struct Unproven {
    pub(super) info: Arc<PluginInfo>,
    pub(super) limits: Limits,
    pub(super) breaker: CircuitBreaker,
    /// Newest first.
    pub(super) shapes: Vec<GuestPre<InstanceState>>,
    pub(super) provenance: Provenance,
}

/// Why a shape did not fit a component at load.
pub(super) enum Misfit {
    /// It instantiated, and its exports' types are not the shape's.
    Types(String),
    /// It did not instantiate (a trap in its start, a limit, a host call
    /// while instantiating), so its types were never checked.
    Unchecked(String),
}

impl Unproven {
    /// The plugin served as the first of its shapes whose types its
    /// exports match, checked by instantiating it (`fits`), so a component
    /// that matches nothing igloo serves is refused here, at load, rather
    /// than failing every event. One whose instantiation fails before its
    /// types can be checked, in every shape but those its types refuse, is
    /// loaded as the newest of those: its runs fail on their own, and its
    /// circuit breaker sees to them.
    pub(super) async fn prove(self, runtime: &super::Runtime) -> Result<LoadedPlugin, LoadError> {
        let mut refusals = Vec::new();
        let version = self.shapes.first().map(|shape| shape.version().as_str());
        let (mut chosen, mut unchecked) = (None, None);
        for shape in self.shapes {
            match runtime
                .fits(&shape, Arc::clone(&self.info), self.limits)
                .await
            {
                Ok(()) => {
                    chosen = Some(shape);
                    break;
                }
                Err(Misfit::Types(why)) => refusals.push(format!("as {}: {why}", shape.shape())),
                // Another shape may still instantiate and fit.
                Err(Misfit::Unchecked(why)) => {
                    if unchecked.is_none() {
                        unchecked = Some((shape, why));
                    }
                }
            }
        }
        if chosen.is_none()
            && let Some((shape, why)) = unchecked
        {
            tracing::warn!(
                plugin = %self.info.id, reason = %why,
                "the plugin did not instantiate at load; loaded unchecked, its runs will say why"
            );
            chosen = Some(shape);
        }
        let Some(pre) = chosen else {
            return Err(LoadError::Shape {
                plugin: self.info.id.clone(),
                version: version.unwrap_or("?"),
                why: refusals.join("; "),
            });
        };
        Ok(LoadedPlugin {
            concurrency: Semaphore::new(self.limits.max_concurrency as usize),
            info: self.info,
            pre,
            limits: self.limits,
            breaker: self.breaker,
            provenance: self.provenance,
            hold: std::sync::Mutex::new(None),
        })
    }
}

/// A plugin ready to run: compiled and pre-linked.
pub struct LoadedPlugin {
    /// Its identity, subscriptions and grants.
    pub info: Arc<PluginInfo>,
    /// Instantiates it cheaply, once per event, as the API version it
    /// targets.
    pub pre: GuestPre<InstanceState>,
    /// What each run may use.
    pub limits: Limits,
    /// Quarantines it when its runs keep crashing.
    pub breaker: CircuitBreaker,
    /// Bounds its runs in flight; the rest wait.
    pub concurrency: Semaphore,
    /// Where its code came from.
    pub provenance: Provenance,
    /// Why the operator holds it back, if they do: its events wait.
    hold: std::sync::Mutex<Option<String>>,
}

impl LoadedPlugin {
    /// Why it is held back, if it is (paused, revoked, being removed).
    pub fn held(&self) -> Option<String> {
        self.lock_hold().clone()
    }

    /// Hold it back for `reason` (`None`: let it run again).
    pub fn set_hold(&self, reason: Option<String>) {
        *self.lock_hold() = reason;
    }

    /// Whether a run may start now: it is not held, nor quarantined.
    pub fn accepts_runs(&self) -> bool {
        self.lock_hold().is_none() && self.breaker.accepts_runs()
    }

    fn lock_hold(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.hold
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// A plugin's code, as read from its source: the manifest's text and the
/// component's bytes, and where they came from.
pub struct PluginCode {
    /// `plugin.toml`.
    pub manifest: String,
    /// The component.
    pub component: Vec<u8>,
    /// Who vouches for it.
    pub provenance: Provenance,
    /// The pseudonyms it sees people by, if it is not to see IGSIDs.
    pub pseudonyms: Option<crate::plugin_api::Pseudonyms>,
}

impl PluginCode {
    /// The example plugin built into the binary as `name`.
    pub fn builtin(name: &str) -> Result<Self, LoadError> {
        let builtin = igloo_plugin_artifacts::EXAMPLES
            .iter()
            .find(|plugin| plugin.name == name)
            .ok_or_else(|| {
                let names: Vec<_> = igloo_plugin_artifacts::EXAMPLES
                    .iter()
                    .map(|p| p.name)
                    .collect();
                LoadError::UnknownBuiltin(name.to_owned(), names.join(", "))
            })?;
        Ok(Self {
            manifest: builtin.manifest.to_owned(),
            component: builtin.component.to_vec(),
            provenance: Provenance::default(),
            pseudonyms: None,
        })
    }
}

/// Where a loaded plugin's code came from, for the operator.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Provenance {
    /// The bundle's digest, when it came in one.
    pub digest: Option<String>,
    /// The trusted publisher whose signature it carries.
    pub publisher: Option<String>,
    /// The signature it carries, trusted or not (checked again whenever
    /// the trust store changes).
    pub signature: Option<String>,
    /// Loaded unsigned: the operator allowed it, or it is a dry run.
    pub unsigned: bool,
}

/// Load the plugin `config` names, with the operator's `runtime` limits.
pub(super) fn load(
    engine: &Engine,
    linker: &Linker<InstanceState>,
    config: &PluginConfig,
    runtime: &RuntimeConfig,
    code: PluginCode,
) -> Result<Unproven, LoadError> {
    let PluginCode {
        manifest: manifest_text,
        component: bytes,
        provenance,
        pseudonyms,
    } = code;
    let (info, requested) = describe(config, &manifest_text, pseudonyms)?;
    let plugin = info.id.clone();
    let capabilities = &info.capabilities;

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
    let shapes = GuestPre::shapes(pre).map_err(component_error)?;

    Ok(Unproven {
        limits: Limits::new(runtime, requested),
        breaker: CircuitBreaker::new(
            runtime.breaker_threshold,
            Duration::from_secs(runtime.breaker_cooldown_secs),
        ),
        info: Arc::new(info),
        shapes,
        provenance,
    })
}

/// What the plugin `config` installs is, from its manifest, before its
/// component is compiled (or when it is not to be: an untrusted bundle's
/// installation, whose events wait): its identity, events, capabilities
/// (declared, granted, and fit for how it sees people), and the limits it
/// asks for.
pub(crate) fn describe(
    config: &PluginConfig,
    manifest_text: &str,
    pseudonyms: Option<crate::plugin_api::Pseudonyms>,
) -> Result<(PluginInfo, super::RequestedLimits), LoadError> {
    let plugin = config.id.clone();
    let manifest = PluginManifest::parse(manifest_text).map_err(|error| LoadError::Manifest {
        plugin: plugin.clone(),
        error,
    })?;
    let mut granted = BTreeSet::new();
    for name in &config.grants {
        let capability: Capability = name.parse().map_err(|error| LoadError::UnknownGrant {
            plugin: plugin.clone(),
            error,
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
    if pseudonyms.is_some()
        && let Some(capability) = capabilities.iter().find(|capability| {
            matches!(
                capability,
                Capability::ProfilesRead
                    | Capability::ProfilesPublicLookup
                    | Capability::CommentsModerate
            )
        })
    {
        return Err(LoadError::NotWithPseudonyms {
            plugin,
            capability: *capability,
        });
    }
    for extra in granted.difference(&capabilities) {
        tracing::warn!(%plugin, capability = %extra, "granted but not declared in the manifest; ignored");
    }
    let accounts = AccountScope::intersect(&manifest.accounts, &config.accounts);
    if accounts == AccountScope::Only(BTreeSet::new()) {
        tracing::warn!(%plugin, "the manifest's and the config's accounts have none in common: the plugin gets no events");
    }
    let info = PluginInfo {
        id: plugin,
        name: manifest.name,
        version: manifest.version,
        subscription: Subscription {
            kinds: manifest.events.into_iter().collect(),
            accounts,
            echoes: manifest.echoes,
        },
        capabilities,
        settings: config.settings.clone(),
        account_settings: config.account_settings.clone(),
        pseudonyms,
        group: config.exclusive_group.clone(),
    };
    Ok((info, manifest.limits))
}
