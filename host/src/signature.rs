//! Webhook signatures: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256>` over
//! the raw request bytes, keyed with an app secret; and, only where the
//! operator enables it, the legacy `X-Hub-Signature: sha1=<hex>`.
//!
//! Meta signs the body exactly as sent (with `\uXXXX` escapes), so the HMAC
//! runs over the raw bytes, never over re-serialised JSON. The keyed HMAC
//! state is computed once per secret and cloned per request.

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// The header Meta signs with.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// The legacy SHA-1 header, still named in Meta's Messenger FAQ.
pub const LEGACY_SIGNATURE_HEADER: &str = "x-hub-signature";

/// Why a delivery's signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature header (or only a legacy one that is not accepted).
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    /// The header is not `sha256=` (or `sha1=`) and the right hex digits.
    #[error("malformed signature header")]
    Malformed,
    /// No configured app secret produces this signature.
    #[error("signature does not match")]
    Mismatch,
}

/// The signature headers of one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignatureHeaders<'a> {
    /// `X-Hub-Signature-256`, if present.
    pub sha256: Option<&'a [u8]>,
    /// `X-Hub-Signature` (legacy SHA-1), if present.
    pub sha1: Option<&'a [u8]>,
}

/// Verifies deliveries against every configured app secret.
#[derive(Clone)]
pub struct SignatureVerifier {
    sha256_keys: Vec<Hmac<Sha256>>,
    /// Present only when the operator accepts legacy SHA-1 signatures.
    sha1_keys: Option<Vec<Hmac<Sha1>>>,
}

impl SignatureVerifier {
    /// A verifier accepting a SHA-256 signature made with any of
    /// `secrets`, and a legacy SHA-1 one too if `accept_sha1`.
    pub fn new<S: AsRef<[u8]>>(secrets: &[S], accept_sha1: bool) -> Self {
        Self {
            sha256_keys: keys(secrets),
            sha1_keys: accept_sha1.then(|| keys(secrets)),
        }
    }

    /// Check a request's signature against `body`, in constant time per
    /// secret. SHA-256 is checked whenever its header is present; SHA-1
    /// only in its absence, and only where accepted.
    pub fn verify(&self, headers: SignatureHeaders<'_>, body: &[u8]) -> Result<(), SignatureError> {
        match (headers.sha256, headers.sha1, &self.sha1_keys) {
            (Some(header), _, _) => check::<_, 32>(&self.sha256_keys, header, b"sha256=", body),
            (None, Some(header), Some(sha1_keys)) => {
                check::<_, 20>(sha1_keys, header, b"sha1=", body)
            }
            _ => Err(SignatureError::Missing),
        }
    }
}

/// The keyed HMAC state for each secret, computed once.
fn keys<M: KeyInit, S: AsRef<[u8]>>(secrets: &[S]) -> Vec<M> {
    secrets
        .iter()
        .map(|secret| M::new_from_slice(secret.as_ref()).expect("HMAC takes keys of any size"))
        .collect()
}

/// Check `header` (`prefix` then `LEN` bytes in hex) against `body`.
fn check<M: Mac + Clone, const LEN: usize>(
    keys: &[M],
    header: &[u8],
    prefix: &[u8],
    body: &[u8],
) -> Result<(), SignatureError> {
    let hex_digest = header
        .strip_prefix(prefix)
        .ok_or(SignatureError::Malformed)?;
    let mut expected = [0u8; LEN];
    hex::decode_to_slice(hex_digest, &mut expected).map_err(|_| SignatureError::Malformed)?;
    let matched = keys.iter().any(|key| {
        let mut mac = key.clone();
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The header value Meta would send for `body` signed with `secret`. Used by
/// `igloo simulate` and the tests.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any size");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256(header: &str) -> SignatureHeaders<'_> {
        SignatureHeaders {
            sha256: Some(header.as_bytes()),
            sha1: None,
        }
    }

    fn sha1(header: &str) -> SignatureHeaders<'_> {
        SignatureHeaders {
            sha256: None,
            sha1: Some(header.as_bytes()),
        }
    }

    #[test]
    fn legacy_sha1_is_refused_unless_enabled() {
        // Computed independently with Python's hmac module.
        let body = br#"{"object":"instagram","entry":[]}"#;
        let header = "sha1=c6833af2e11e6d6137c2745a958aeee48b5e5549";
        let strict = SignatureVerifier::new(&["fixture-app-secret"], false);
        assert_eq!(
            strict.verify(sha1(header), body),
            Err(SignatureError::Missing)
        );
        let lenient = SignatureVerifier::new(&["fixture-app-secret"], true);
        assert_eq!(lenient.verify(sha1(header), body), Ok(()));
        assert_eq!(
            lenient.verify(sha1(header), b"{}"),
            Err(SignatureError::Mismatch)
        );
        // A SHA-256 header, when present, decides alone.
        let both = SignatureHeaders {
            sha256: Some(b"sha256=00"),
            sha1: Some(header.as_bytes()),
        };
        assert_eq!(lenient.verify(both, body), Err(SignatureError::Malformed));
    }

    #[test]
    fn accepts_the_signature_meta_would_send() {
        // Computed independently with Python's hmac module.
        let body = br#"{"object":"instagram","entry":[]}"#;
        let header = "sha256=1faa7784c5f227c01172d4010d3bba14a0a440411ea659d22b9b9319e3ab6743";
        assert_eq!(sign(b"fixture-app-secret", body), header);
        let verifier = SignatureVerifier::new(&["fixture-app-secret"], false);
        assert_eq!(verifier.verify(sha256(header), body), Ok(()));
        let tampered = br#"{"object":"instagram","entry":[{}]}"#;
        assert_eq!(
            verifier.verify(sha256(header), tampered),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn any_configured_secret_verifies() {
        let body = b"{}";
        let verifier = SignatureVerifier::new(&["instagram-secret", "meta-secret"], false);
        for secret in ["instagram-secret", "meta-secret"] {
            let header = sign(secret.as_bytes(), body);
            assert_eq!(verifier.verify(sha256(&header), body), Ok(()));
        }
        let other = sign(b"someone-else", body);
        assert_eq!(
            verifier.verify(sha256(&other), body),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_raw_bytes_are_signed_not_the_parsed_json() {
        let escaped = br#"{"text":"\u00e4"}"#;
        let unescaped = "{\"text\":\"ä\"}".as_bytes();
        let verifier = SignatureVerifier::new(&["s"], false);
        let header = sign(b"s", escaped);
        assert_eq!(verifier.verify(sha256(&header), escaped), Ok(()));
        assert_eq!(
            verifier.verify(sha256(&header), unescaped),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_told_apart() {
        let verifier = SignatureVerifier::new(&["s"], false);
        assert_eq!(
            verifier.verify(SignatureHeaders::default(), b"{}"),
            Err(SignatureError::Missing)
        );
        for bad in ["sha1=00", "sha256=zz", "sha256=abcd", ""] {
            assert_eq!(
                verifier.verify(sha256(bad), b"{}"),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }
}
