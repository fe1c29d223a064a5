//! Webhook signatures: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256>` over
//! the raw request bytes, keyed with an app secret.
//!
//! Meta signs the body exactly as sent (with `\uXXXX` escapes), so the HMAC
//! runs over the raw bytes, never over re-serialised JSON. The keyed HMAC
//! state is computed once per secret and cloned per request.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header Meta signs with.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// Why a delivery's signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Hub-Signature-256` header.
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    /// The header is not `sha256=` followed by 64 hex digits.
    #[error("malformed X-Hub-Signature-256 header")]
    Malformed,
    /// No configured app secret produces this signature.
    #[error("signature does not match")]
    Mismatch,
}

/// Verifies deliveries against every configured app secret.
#[derive(Clone)]
pub struct SignatureVerifier {
    keys: Vec<Hmac<Sha256>>,
}

impl SignatureVerifier {
    /// A verifier accepting a signature made with any of `secrets`.
    pub fn new<S: AsRef<[u8]>>(secrets: &[S]) -> Self {
        let keys = secrets
            .iter()
            .map(|secret| {
                Hmac::<Sha256>::new_from_slice(secret.as_ref())
                    .expect("HMAC takes keys of any size")
            })
            .collect();
        Self { keys }
    }

    /// Check `header` (the value of `X-Hub-Signature-256`, if present)
    /// against `body`, in constant time per secret.
    pub fn verify(&self, header: Option<&[u8]>, body: &[u8]) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let hex_digest = header
            .strip_prefix(b"sha256=")
            .ok_or(SignatureError::Malformed)?;
        let mut expected = [0u8; 32];
        hex::decode_to_slice(hex_digest, &mut expected).map_err(|_| SignatureError::Malformed)?;
        let matched = self.keys.iter().any(|key| {
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
}

/// The header value Meta would send for `body` signed with `secret`. Used by
/// `igloo simulate` and the tests.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any size");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_signature_meta_would_send() {
        // Computed independently with Python's hmac module.
        let body = br#"{"object":"instagram","entry":[]}"#;
        let header = "sha256=1faa7784c5f227c01172d4010d3bba14a0a440411ea659d22b9b9319e3ab6743";
        assert_eq!(sign(b"fixture-app-secret", body), header);
        let verifier = SignatureVerifier::new(&["fixture-app-secret"]);
        assert_eq!(verifier.verify(Some(header.as_bytes()), body), Ok(()));
        let tampered = br#"{"object":"instagram","entry":[{}]}"#;
        assert_eq!(
            verifier.verify(Some(header.as_bytes()), tampered),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn any_configured_secret_verifies() {
        let body = b"{}";
        let verifier = SignatureVerifier::new(&["instagram-secret", "meta-secret"]);
        for secret in ["instagram-secret", "meta-secret"] {
            let header = sign(secret.as_bytes(), body);
            assert_eq!(verifier.verify(Some(header.as_bytes()), body), Ok(()));
        }
        let other = sign(b"someone-else", body);
        assert_eq!(
            verifier.verify(Some(other.as_bytes()), body),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_raw_bytes_are_signed_not_the_parsed_json() {
        let escaped = br#"{"text":"\u00e4"}"#;
        let unescaped = "{\"text\":\"ä\"}".as_bytes();
        let verifier = SignatureVerifier::new(&["s"]);
        let header = sign(b"s", escaped);
        assert_eq!(verifier.verify(Some(header.as_bytes()), escaped), Ok(()));
        assert_eq!(
            verifier.verify(Some(header.as_bytes()), unescaped),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_told_apart() {
        let verifier = SignatureVerifier::new(&["s"]);
        assert_eq!(verifier.verify(None, b"{}"), Err(SignatureError::Missing));
        for bad in ["sha1=00", "sha256=zz", "sha256=abcd", ""] {
            assert_eq!(
                verifier.verify(Some(bad.as_bytes()), b"{}"),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }
}
