//! The operator's trust store: which publishers' keys may sign the code
//! igloo runs, and what is revoked. The policy is the operator's (as in
//! Kubewarden's policy server): checked before a bundle is compiled, and
//! again whenever the store changes, failing closed.

use std::collections::BTreeSet;

use crate::bundle::{Bundle, Digest, PublisherKey};

/// Why a bundle may not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No signature, in live mode.
    #[error(
        "the bundle is unsigned; in live mode igloo runs only bundles signed by a trusted \
         publisher (`igloo plugin sign`, `igloo trust add`), or with `allow_unsigned` for this \
         installation"
    )]
    Unsigned,
    /// The signature is not the named key's over these bytes: the bundle
    /// changed after it was signed, or the signature was forged.
    #[error("the bundle's signature does not verify: its bytes changed after it was signed")]
    BadSignature,
    /// Signed by a key the trust store does not hold, in live mode.
    #[error(
        "the bundle is signed by {key} (fingerprint {fingerprint}), which is not in the trust \
         store (`igloo trust add`)"
    )]
    UnknownPublisher {
        /// The key.
        key: String,
        /// Its fingerprint.
        fingerprint: String,
    },
    /// The operator revoked this bundle.
    #[error("the bundle {0} is revoked")]
    RevokedBundle(String),
    /// The operator revoked the key that signed it.
    #[error("the publisher key {0} that signed the bundle is revoked")]
    RevokedKey(String),
}

/// A publisher the operator trusts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrustedKey {
    /// The operator's name for the publisher.
    pub name: String,
    /// Its public key.
    #[serde(serialize_with = "as_text")]
    pub key: PublisherKey,
    /// Its fingerprint.
    pub fingerprint: String,
}

fn as_text<S: serde::Serializer>(key: &PublisherKey, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(key)
}

/// What the trust store says of a bundle that may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The trusted publisher that signed it, if one did.
    pub publisher: Option<String>,
    /// The key that signed it, trusted or not.
    pub key: Option<String>,
}

/// Trusted keys and revocations.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    /// Trusted publishers.
    pub keys: Vec<TrustedKey>,
    /// Revoked digests and keys, as written.
    pub revoked: BTreeSet<String>,
}

impl TrustStore {
    /// Whether `bundle` may run. A revocation, or a signature that does
    /// not verify, refuses it always; an unsigned bundle or an unknown
    /// publisher only in live mode, unless `allow_unsigned`.
    pub fn check(
        &self,
        bundle: &Bundle,
        live: bool,
        allow_unsigned: bool,
    ) -> Result<Verdict, Refusal> {
        self.check_parts(bundle.digest(), bundle.signature(), live, allow_unsigned)
    }

    /// [`TrustStore::check`], of a digest and its signature.
    pub fn check_parts(
        &self,
        digest: &Digest,
        signature: Option<&crate::bundle::Signature>,
        live: bool,
        allow_unsigned: bool,
    ) -> Result<Verdict, Refusal> {
        if self.revoked.contains(digest.as_str()) {
            return Err(Refusal::RevokedBundle(digest.to_string()));
        }
        let strict = live && !allow_unsigned;
        let Some(signature) = signature else {
            return if strict {
                Err(Refusal::Unsigned)
            } else {
                Ok(Verdict {
                    publisher: None,
                    key: None,
                })
            };
        };
        let key = signature.key().to_string();
        if self.revoked.contains(&key) {
            return Err(Refusal::RevokedKey(key));
        }
        if !signature.verifies(digest) {
            return Err(Refusal::BadSignature);
        }
        let publisher = self
            .keys
            .iter()
            .find(|trusted| trusted.key == *signature.key())
            .map(|trusted| trusted.name.clone());
        if publisher.is_none() && strict {
            return Err(Refusal::UnknownPublisher {
                fingerprint: signature.key().fingerprint(),
                key,
            });
        }
        Ok(Verdict {
            publisher,
            key: Some(key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::SecretKey;

    fn bundle() -> Bundle {
        Bundle::new(
            "name='x'\nversion='1'\nevents=['message']".into(),
            b"\0asm component bytes".to_vec(),
        )
        .unwrap()
    }

    fn trusting(key: &SecretKey) -> TrustStore {
        TrustStore {
            keys: vec![TrustedKey {
                name: "shop".into(),
                key: key.public(),
                fingerprint: key.public().fingerprint(),
            }],
            revoked: BTreeSet::new(),
        }
    }

    #[test]
    fn live_mode_takes_only_trusted_signatures_unless_allowed() {
        let key = SecretKey::generate();
        let mut signed = bundle();
        signed.sign(&key);
        let verdict = trusting(&key).check(&signed, true, false).unwrap();
        assert_eq!(verdict.publisher.as_deref(), Some("shop"));

        assert_eq!(
            trusting(&key).check(&bundle(), true, false),
            Err(Refusal::Unsigned)
        );
        let stranger = SecretKey::generate();
        let mut by_stranger = bundle();
        by_stranger.sign(&stranger);
        assert!(matches!(
            trusting(&key).check(&by_stranger, true, false),
            Err(Refusal::UnknownPublisher { .. })
        ));
        // Allowed for this installation, or a dry run: loaded, unvouched.
        assert_eq!(
            trusting(&key)
                .check(&bundle(), true, true)
                .unwrap()
                .publisher,
            None
        );
        assert_eq!(
            trusting(&key)
                .check(&by_stranger, false, false)
                .unwrap()
                .publisher,
            None
        );
    }

    #[test]
    fn a_changed_bundle_or_a_revocation_refuses_even_when_unsigned_is_allowed() {
        let key = SecretKey::generate();
        let mut signed = bundle();
        signed.sign(&key);
        // The same signature on other bytes.
        let changed = Bundle::new(
            "name='x'\nversion='1'\nevents=['message']".into(),
            b"\0asm other bytes".to_vec(),
        )
        .unwrap()
        .with_signature(signed.signature().cloned());
        assert_eq!(
            trusting(&key).check(&changed, false, true),
            Err(Refusal::BadSignature)
        );

        let mut store = trusting(&key);
        store.revoked.insert(signed.digest().to_string());
        assert!(matches!(
            store.check(&signed, false, true),
            Err(Refusal::RevokedBundle(_))
        ));
        let mut store = trusting(&key);
        store.revoked.insert(key.public().to_string());
        assert!(matches!(
            store.check(&signed, true, true),
            Err(Refusal::RevokedKey(_))
        ));
    }
}
