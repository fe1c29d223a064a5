//! Publishers' keys and signatures: Ed25519 (ed25519-dalek), over a
//! bundle's digest with a domain-separating prefix, so a signature made
//! for a bundle is never valid for anything else.
//!
//! Written forms: a public key `ed25519:<base64>`; a signature
//! `ed25519:<base64 key>:<base64 signature>` (it names the key that made
//! it, and the trust store decides whether that key is trusted); a secret
//! key file `igloo-secret-key:ed25519:<base64 seed>`.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use super::Digest;

/// What a signature covers: this prefix, then the digest as written.
const SIGNED_PREFIX: &[u8] = b"igloo-bundle-signature/v1\0";
const SECRET_PREFIX: &str = "igloo-secret-key:ed25519:";

/// A key, signature or secret that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

/// A publisher's public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublisherKey(VerifyingKey);

impl PublisherKey {
    /// A short, stable fingerprint for display: the first 16 hex digits of
    /// the key's SHA-256.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest as _;
        hex::encode(&sha2::Sha256::digest(self.0.as_bytes())[..8])
    }
}

impl fmt::Display for PublisherKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ed25519:{}", BASE64.encode(self.0.as_bytes()))
    }
}

impl fmt::Debug for PublisherKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for PublisherKey {
    type Err = KeyError;
    fn from_str(text: &str) -> Result<Self, KeyError> {
        let bytes: [u8; 32] = decode(text.strip_prefix("ed25519:"), "a public key", 32)?
            .try_into()
            .expect("length checked");
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| KeyError("not a valid Ed25519 public key".into()))
    }
}

/// A publisher's secret key.
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A new key from the operating system's randomness.
    pub fn generate() -> Self {
        use chacha20poly1305::aead::rand_core::RngCore as _;
        let mut seed = [0u8; 32];
        chacha20poly1305::aead::OsRng.fill_bytes(&mut seed);
        Self(SigningKey::from_bytes(&seed))
    }

    /// Its public half, for operators' trust stores.
    pub fn public(&self) -> PublisherKey {
        PublisherKey(self.0.verifying_key())
    }

    /// The signature of `digest` by this key.
    pub fn sign(&self, digest: &Digest) -> Signature {
        Signature {
            key: self.public(),
            signature: self.0.sign(&signed_message(digest)),
        }
    }

    /// The key file's text.
    pub fn to_file_text(&self) -> String {
        format!("{SECRET_PREFIX}{}\n", BASE64.encode(self.0.to_bytes()))
    }

    /// Read a key file's text.
    pub fn from_file_text(text: &str) -> Result<Self, KeyError> {
        let seed: [u8; 32] = decode(
            text.trim().strip_prefix(SECRET_PREFIX),
            "a secret key file",
            32,
        )?
        .try_into()
        .expect("length checked");
        Ok(Self(SigningKey::from_bytes(&seed)))
    }
}

/// A publisher's signature over a bundle's digest, naming its key.
#[derive(Clone, PartialEq, Eq)]
pub struct Signature {
    key: PublisherKey,
    signature: ed25519_dalek::Signature,
}

impl Signature {
    /// Parse the written form.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let rest = text
            .strip_prefix("ed25519:")
            .ok_or_else(|| KeyError("a signature starts with ed25519:".into()))?;
        let (key, signature) = rest
            .split_once(':')
            .ok_or_else(|| KeyError("a signature is ed25519:<key>:<signature>".into()))?;
        let key: PublisherKey = format!("ed25519:{key}").parse()?;
        let bytes: [u8; 64] = decode(Some(signature), "a signature", 64)?
            .try_into()
            .expect("length checked");
        Ok(Self {
            key,
            signature: ed25519_dalek::Signature::from_bytes(&bytes),
        })
    }

    /// The key it says made it.
    pub fn key(&self) -> &PublisherKey {
        &self.key
    }

    /// Whether that key made it, over `digest` (strict verification: no
    /// malleable or small-order forms).
    pub fn verifies(&self, digest: &Digest) -> bool {
        self.key
            .0
            .verify_strict(&signed_message(digest), &self.signature)
            .is_ok()
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            self.key,
            BASE64.encode(self.signature.to_bytes())
        )
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(by {})", self.key)
    }
}

fn signed_message(digest: &Digest) -> Vec<u8> {
    [SIGNED_PREFIX, digest.as_str().as_bytes()].concat()
}

fn decode(text: Option<&str>, what: &str, length: usize) -> Result<Vec<u8>, KeyError> {
    let bytes = text
        .and_then(|text| BASE64.decode(text.trim()).ok())
        .ok_or_else(|| KeyError(format!("not {what} (ed25519: and base64)")))?;
    if bytes.len() != length {
        return Err(KeyError(format!("{what} is {length} bytes")));
    }
    Ok(bytes)
}
