//! A plugin's manifest (`plugin.toml`): who it is, which events it wants and
//! which capabilities it needs.

use serde::Deserialize;

use crate::capabilities::Capability;

/// The parsed manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginManifest {
    /// Unique name, used in logs, metrics and the inbox.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// One line on what it does.
    #[serde(default)]
    pub description: String,
    /// Event kinds it is called for (`message`, …).
    pub events: Vec<String>,
    /// Capabilities it needs; each must also be granted by the operator.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
}

/// Event kinds a manifest may subscribe to.
pub const EVENT_KINDS: &[&str] = &["message"];

impl PluginManifest {
    /// Parse and check a manifest.
    pub fn parse(text: &str) -> Result<Self, String> {
        let manifest: PluginManifest =
            toml::from_str(text).map_err(|error| format!("invalid plugin.toml: {error}"))?;
        if manifest.name.is_empty() {
            return Err("invalid plugin.toml: name is empty".into());
        }
        if let Some(unknown) = manifest
            .events
            .iter()
            .find(|kind| !EVENT_KINDS.contains(&kind.as_str()))
        {
            return Err(format!(
                "invalid plugin.toml: unknown event kind `{unknown}` (known: {})",
                EVENT_KINDS.join(", ")
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
    }
}
