//! A plugin's manifest (`plugin.toml`): who it is, which events it wants and
//! which capabilities it needs.

use serde::Deserialize;

use super::limits::RequestedLimits;
use crate::events::KIND_NAMES;
use crate::plugin_api::Capability;

/// Why a manifest is refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not TOML, or not the manifest's shape (unknown keys or capabilities
    /// are named).
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    /// A label shown in logs and status pages is not short and plain.
    #[error("{0} must be 1 to 64 letters, digits, `-`, `_`, `.` or `+`")]
    Label(&'static str),
    /// An event kind igloo does not know.
    #[error("unknown event kind `{kind}` (known: {known})", known = KIND_NAMES.join(", "))]
    UnknownEvent {
        /// The kind given.
        kind: String,
    },
}

/// The parsed manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginManifest {
    /// The name the plugin gives itself, for display. Nothing is keyed by
    /// it: the operator's id in `[[plugins]]` is the plugin's identity.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// One line on what it does.
    #[serde(default)]
    pub description: String,
    /// Event kinds it is called for (`message`, `comment`, …).
    pub events: Vec<String>,
    /// Only events of these accounts; every account when empty.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Also deliver the business's own activity (message echoes, its own
    /// comments). Off by default, so a reply never triggers its plugin again.
    #[serde(default)]
    pub echoes: bool,
    /// Capabilities it needs; each must also be granted by the operator.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// Limits it asks for; the operator's are the ceiling.
    #[serde(default)]
    pub limits: RequestedLimits,
}

impl PluginManifest {
    /// Parse and check a manifest.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let manifest: PluginManifest = toml::from_str(text)?;
        // Shown in logs and status pages: a short, plain label.
        for (field, value) in [("name", &manifest.name), ("version", &manifest.version)] {
            let plain = value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'));
            if value.is_empty() || value.len() > 64 || !plain {
                return Err(ManifestError::Label(field));
            }
        }
        if let Some(unknown) = manifest
            .events
            .iter()
            .find(|kind| !KIND_NAMES.contains(&kind.as_str()))
        {
            return Err(ManifestError::UnknownEvent {
                kind: unknown.clone(),
            });
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_manifest_parses() {
        let manifest = PluginManifest::parse(igloo_plugin_artifacts::AUTO_REPLY.manifest).unwrap();
        assert_eq!(manifest.name, "auto-reply");
        assert_eq!(manifest.events, vec!["message"]);
        assert_eq!(manifest.capabilities, vec![Capability::MessagesReply]);
    }

    /// Every example's manifest, as igloo reads it (as Spin's manifest
    /// tests record theirs).
    #[test]
    fn the_example_manifests_parse_as_recorded() {
        for example in igloo_plugin_artifacts::EXAMPLES {
            let manifest = PluginManifest::parse(example.manifest).unwrap();
            insta::assert_debug_snapshot!(format!("manifest_{}", example.name), manifest);
        }
    }

    #[test]
    fn unknown_capabilities_and_events_are_named() {
        let error = PluginManifest::parse(
            "name='x'\nversion='1'\nevents=['message']\ncapabilities=['messages:everything']",
        )
        .unwrap_err();
        assert!(matches!(error, ManifestError::Toml(_)), "{error}");
        assert!(error.to_string().contains("messages:everything"), "{error}");
        let error =
            PluginManifest::parse("name='x'\nversion='1'\nevents=['telepathy']").unwrap_err();
        assert!(matches!(&error, ManifestError::UnknownEvent { kind } if kind == "telepathy"));
        let error =
            PluginManifest::parse("name='x\\nINFO forged'\nversion='1'\nevents=[]").unwrap_err();
        assert!(matches!(error, ManifestError::Label("name")), "{error}");
    }
}
