//! A plugin's manifest (`plugin.toml`): who it is, which events it wants and
//! which capabilities it needs.

use serde::Deserialize;

use super::limits::RequestedLimits;
use crate::capabilities::Capability;
use crate::events::KIND_NAMES;

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
    pub fn parse(text: &str) -> Result<Self, String> {
        let manifest: PluginManifest =
            toml::from_str(text).map_err(|error| format!("invalid plugin.toml: {error}"))?;
        // Shown in logs and status pages: a short, plain label.
        for (field, value) in [("name", &manifest.name), ("version", &manifest.version)] {
            let plain = value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'));
            if value.is_empty() || value.len() > 64 || !plain {
                return Err(format!(
                    "invalid plugin.toml: {field} must be 1 to 64 letters, digits, `-`, `_`, `.` or `+`"
                ));
            }
        }
        if let Some(unknown) = manifest
            .events
            .iter()
            .find(|kind| !KIND_NAMES.contains(&kind.as_str()))
        {
            return Err(format!(
                "invalid plugin.toml: unknown event kind `{unknown}` (known: {})",
                KIND_NAMES.join(", ")
            ));
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

    #[test]
    fn unknown_capabilities_and_events_are_named() {
        let error = PluginManifest::parse(
            "name='x'\nversion='1'\nevents=['message']\ncapabilities=['messages:everything']",
        )
        .unwrap_err();
        assert!(error.contains("messages:everything"), "{error}");
        let error =
            PluginManifest::parse("name='x'\nversion='1'\nevents=['telepathy']").unwrap_err();
        assert!(error.contains("telepathy"), "{error}");
        let error =
            PluginManifest::parse("name='x\\nINFO forged'\nversion='1'\nevents=[]").unwrap_err();
        assert!(error.contains("name must be"), "{error}");
    }
}
