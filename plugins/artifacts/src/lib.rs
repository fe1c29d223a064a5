//! The plugins under `plugins/`, built to `wasm32-wasip2` components by this
//! crate's build script. The host embeds [`EXAMPLES`]; tests use the rest,
//! and [`foreach_hostile!`] to test every hostile plugin.

/// A plugin built from this repository.
#[derive(Debug, Clone, Copy)]
pub struct BuiltPlugin {
    /// The crate's folder name, e.g. `auto-reply`.
    pub name: &'static str,
    /// The text of its `plugin.toml`.
    pub manifest: &'static str,
    /// The component's bytes.
    pub component: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
