//! Bundles: one file holding a plugin's component and manifest, the
//! digest of both, and optionally a publisher's signature over that
//! digest. Everything read from a bundle is hostile until checked: sizes
//! are bounded before anything is read, only the known entries are
//! accepted, and a digest that is not the bytes' own refuses the bundle.
//!
//! A bundle is a tar archive with `plugin.toml`, `plugin.wasm`, `digest`
//! and, once signed, `signature`. The digest covers the manifest and the
//! component (framed, so no bytes can move from one to the other); the
//! signature is detached from them, over the digest, so signing adds an
//! entry and changes nothing that is signed.

mod describe;
pub mod oci;
pub mod signing;

use std::fmt;
use std::io::Read as _;
use std::path::Path;

use sha2::{Digest as _, Sha256};

pub use describe::{ComponentDescription, describe};
pub use signing::{PublisherKey, SecretKey, Signature};

use crate::runtime::PluginManifest;

/// The largest bundle igloo reads, whole: components of JavaScript and
/// Python plugins run to tens of megabytes.
pub const MAX_BUNDLE_BYTES: u64 = 64 * 1024 * 1024;
/// The largest manifest a bundle may hold.
const MAX_MANIFEST_BYTES: u64 = 64 * 1024;

/// Why a bundle is refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Reading it failed.
    #[error("reading the bundle: {0}")]
    Io(#[from] std::io::Error),
    /// Not a bundle: not a tar archive of the known entries.
    #[error("not an igloo bundle: {0}")]
    Format(String),
    /// Larger than igloo reads.
    #[error("the bundle's {what} is larger than {limit} bytes")]
    TooLarge {
        /// Which part.
        what: &'static str,
        /// The most allowed.
        limit: u64,
    },
    /// The digest it carries is not its bytes': changed after packing.
    #[error(
        "the bundle's bytes changed after it was packed (its digest is {claimed}, its bytes' is {actual})"
    )]
    Tampered {
        /// The digest it says it has.
        claimed: String,
        /// The digest of what it holds.
        actual: Digest,
    },
    /// Its manifest does not parse.
    #[error("the bundle's plugin.toml: {0}")]
    Manifest(#[from] crate::runtime::ManifestError),
    /// Its signature entry does not parse.
    #[error("the bundle's signature: {0}")]
    Signature(#[from] signing::KeyError),
}

/// A bundle's digest: SHA-256 over its manifest and component, framed,
/// written `sha256:` and 64 lowercase hex digits.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    /// Parse `sha256:<64 hex>`; anything else is refused, so a digest is
    /// safe to use as a file name.
    pub fn parse(text: &str) -> Result<Self, String> {
        let hex = text.strip_prefix("sha256:").ok_or_else(|| {
            format!(
                "`{}` is not a digest (sha256:…)",
                crate::untrusted::log_text(text)
            )
        })?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err("a digest is sha256: and 64 lowercase hex digits".into());
        }
        Ok(Self(text.to_owned()))
    }

    /// The digest as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex digits alone (a file name).
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Digest {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text)
    }
}

impl From<Digest> for String {
    fn from(digest: Digest) -> String {
        digest.0
    }
}

/// A plugin's component and manifest, as published.
#[derive(Clone)]
pub struct Bundle {
    manifest_text: String,
    manifest: PluginManifest,
    component: Vec<u8>,
    digest: Digest,
    signature: Option<Signature>,
}

impl fmt::Debug for Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bundle")
            .field("name", &self.manifest.name)
            .field("version", &self.manifest.version)
            .field("digest", &self.digest)
            .field("component_bytes", &self.component.len())
            .finish()
    }
}

impl Bundle {
    /// A bundle of `manifest_text` and `component`, unsigned.
    pub fn new(manifest_text: String, component: Vec<u8>) -> Result<Self, BundleError> {
        let manifest = PluginManifest::parse(&manifest_text)?;
        let digest = digest_of(&manifest_text, &component);
        Ok(Self {
            manifest_text,
            manifest,
            component,
            digest,
            signature: None,
        })
    }

    /// Pack a plugin folder: its `plugin.toml` and `plugin.wasm`.
    pub fn pack(dir: &Path) -> Result<Self, BundleError> {
        let read = |file: &'static str, limit: u64| -> Result<Vec<u8>, BundleError> {
            let path = dir.join(file);
            let opened = std::fs::File::open(&path).map_err(|error| {
                std::io::Error::new(error.kind(), format!("{}: {error}", path.display()))
            })?;
            read_bounded(opened, limit, file)
        };
        let manifest = String::from_utf8(read("plugin.toml", MAX_MANIFEST_BYTES)?)
            .map_err(|_| BundleError::Format("plugin.toml is not UTF-8".into()))?;
        Self::new(manifest, read("plugin.wasm", MAX_BUNDLE_BYTES)?)
    }

    /// Read a bundle file's bytes, checking that its digest is its own.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BundleError> {
        if bytes.len() as u64 > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge {
                what: "file",
                limit: MAX_BUNDLE_BYTES,
            });
        }
        let mut archive = tar::Archive::new(bytes);
        let (mut manifest, mut component, mut claimed, mut signature) = (None, None, None, None);
        for entry in archive.entries()? {
            let entry = entry?;
            if !matches!(entry.header().entry_type(), tar::EntryType::Regular) {
                return Err(BundleError::Format("an entry is not a plain file".into()));
            }
            let name = entry.path_bytes().into_owned();
            let slot = match name.as_slice() {
                b"plugin.toml" => &mut manifest,
                b"plugin.wasm" => &mut component,
                b"digest" => &mut claimed,
                b"signature" => &mut signature,
                other => {
                    return Err(BundleError::Format(format!(
                        "unexpected entry `{}`",
                        crate::untrusted::log_text(&String::from_utf8_lossy(other))
                    )));
                }
            };
            if slot.is_some() {
                return Err(BundleError::Format("an entry appears twice".into()));
            }
            let limit = if name == b"plugin.wasm" {
                MAX_BUNDLE_BYTES
            } else {
                MAX_MANIFEST_BYTES
            };
            *slot = Some(read_bounded(entry, limit, "entry")?);
        }
        let text = |bytes: Option<Vec<u8>>, what: &str| {
            let bytes = bytes.ok_or_else(|| BundleError::Format(format!("no {what}")))?;
            String::from_utf8(bytes)
                .map_err(|_| BundleError::Format(format!("{what} is not UTF-8")))
        };
        let manifest_text = text(manifest, "plugin.toml")?;
        let claimed = text(claimed, "digest")?;
        let component = component.ok_or_else(|| BundleError::Format("no plugin.wasm".into()))?;
        let mut bundle = Self::new(manifest_text, component)?;
        if claimed.trim() != bundle.digest.as_str() {
            return Err(BundleError::Tampered {
                claimed: crate::untrusted::log_text(claimed.trim()).to_string(),
                actual: bundle.digest,
            });
        }
        if let Some(signature) = signature {
            let signature = std::str::from_utf8(&signature)
                .map_err(|_| BundleError::Format("signature is not UTF-8".into()))?;
            bundle.signature = Some(Signature::parse(signature.trim())?);
        }
        Ok(bundle)
    }

    /// The bundle file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut archive = tar::Builder::new(Vec::new());
        let mut add = |name: &str, bytes: &[u8]| {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            archive
                .append_data(&mut header, name, bytes)
                .expect("writing to memory does not fail");
        };
        add("plugin.toml", self.manifest_text.as_bytes());
        add("plugin.wasm", &self.component);
        add("digest", self.digest.as_str().as_bytes());
        if let Some(signature) = &self.signature {
            add("signature", signature.to_string().as_bytes());
        }
        archive
            .into_inner()
            .expect("writing to memory does not fail")
    }

    /// The digest of its manifest and component.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Its manifest, parsed.
    pub fn manifest(&self) -> &PluginManifest {
        &self.manifest
    }

    /// Its manifest, as written.
    pub fn manifest_text(&self) -> &str {
        &self.manifest_text
    }

    /// Its component's bytes.
    pub fn component(&self) -> &[u8] {
        &self.component
    }

    /// The publisher's signature, if it is signed. Not yet checked: the
    /// trust store decides (see `installations::trust`).
    pub fn signature(&self) -> Option<&Signature> {
        self.signature.as_ref()
    }

    /// What it is, before anything runs: its manifest's claims, and what
    /// its component really imports and which plugin API it targets (read
    /// from the component, not from the manifest).
    pub fn inspect(&self) -> serde_json::Value {
        let manifest = &self.manifest;
        let (described, unreadable) = match describe(&self.component) {
            Ok(described) => (Some(described), None),
            Err(why) => (None, Some(why)),
        };
        serde_json::json!({
            "name": manifest.name,
            "version": manifest.version,
            "description": manifest.description,
            "digest": self.digest,
            "publisher": self.signature.as_ref().map(|signature| serde_json::json!({
                "key": signature.key().to_string(),
                "fingerprint": signature.key().fingerprint(),
                "signature_verifies": signature.verifies(&self.digest),
            })),
            "api_version": described.as_ref().and_then(|described| described.api_version),
            "events": manifest.events,
            "capabilities": manifest.capabilities.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "imports": described.as_ref().map(|described| described.imports.clone()),
            "exports": described.as_ref().map(|described| described.exports.clone()),
            "component_error": unreadable,
            "limits": manifest.limits,
            "component_bytes": self.component.len(),
        })
    }

    /// Sign it as the publisher holding `key`, replacing any signature.
    pub fn sign(&mut self, key: &SecretKey) {
        self.signature = Some(key.sign(&self.digest));
    }

    /// Attach a signature made elsewhere (carried beside the bundle, as in
    /// an OCI manifest's annotations).
    pub fn with_signature(mut self, signature: Option<Signature>) -> Self {
        self.signature = signature;
        self
    }
}

/// The digest of a manifest and component: each framed by its length.
fn digest_of(manifest: &str, component: &[u8]) -> Digest {
    let mut hash = Sha256::new();
    hash.update(b"igloo-bundle/v1\0");
    hash.update((manifest.len() as u64).to_be_bytes());
    hash.update(manifest.as_bytes());
    hash.update((component.len() as u64).to_be_bytes());
    hash.update(component);
    Digest(format!("sha256:{}", hex::encode(hash.finalize())))
}

/// Read all of `reader`, refusing more than `limit` bytes.
fn read_bounded(
    reader: impl std::io::Read,
    limit: u64,
    what: &'static str,
) -> Result<Vec<u8>, BundleError> {
    let mut bytes = Vec::new();
    reader.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(BundleError::TooLarge { what, limit });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests;
