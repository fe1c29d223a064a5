//! What a component really imports and exports, read from its bytes
//! (wasmparser, no compiling and nothing run): `inspect` shows it, and the
//! plugin API version a bundle targets is read from here, never from its
//! manifest.

use crate::plugin_api::ApiVersion;

/// A component's outward faces.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ComponentDescription {
    /// The interfaces it imports (`igloo:plugin/messaging@0.2.0`,
    /// `wasi:clocks/wall-clock@0.2.3`, …).
    pub imports: Vec<String>,
    /// What it exports.
    pub exports: Vec<String>,
    /// The plugin API version its handler export names, if igloo serves it.
    pub api_version: Option<&'static str>,
}

/// Read `bytes`' top-level imports and exports; an error if they are not
/// a component.
pub fn describe(bytes: &[u8]) -> Result<ComponentDescription, String> {
    use wasmparser::{Parser, Payload};
    let mut description = ComponentDescription {
        imports: Vec::new(),
        exports: Vec::new(),
        api_version: None,
    };
    // Nested modules and components have imports of their own: only the
    // outermost component's are what the host must provide.
    let mut depth = 0usize;
    let mut seen_header = false;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|error| format!("not a valid component: {error}"))?;
        match payload {
            Payload::Version { encoding, .. } => {
                if !seen_header && encoding != wasmparser::Encoding::Component {
                    return Err("a core module, not a component: build for wasm32-wasip2".into());
                }
                if seen_header {
                    depth += 1;
                }
                seen_header = true;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|error| error.to_string())?;
                    description.imports.push(import.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(|error| error.to_string())?;
                    description.exports.push(export.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    description.api_version = description
        .exports
        .iter()
        .find_map(|export| ApiVersion::of_export(export))
        .map(ApiVersion::as_str);
    Ok(description)
}
