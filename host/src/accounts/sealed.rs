//! Access tokens at rest: sealed with XChaCha20-Poly1305 under a key the
//! operator provides (`tokens.key`, best from `IGLOO_TOKENS__KEY`), bound to
//! their account so a sealed token copied to another account's row does not
//! open. The key never touches the disk.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// Bytes of a random nonce, stored before the ciphertext.
const NONCE_BYTES: usize = 24;

/// The key tokens are sealed with.
#[derive(Clone)]
pub struct TokenKey(XChaCha20Poly1305);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(…)")
    }
}

/// A key that is not 32 bytes of base64.
#[derive(Debug, thiserror::Error)]
#[error("tokens.key must be 32 random bytes in base64 (`openssl rand -base64 32`): {0}")]
pub struct BadKey(String);

/// A sealed token that does not open: another key, or tampered with.
#[derive(Debug, thiserror::Error)]
#[error(
    "the stored token of account {0} does not open with tokens.key: is it the key it was stored with?"
)]
pub struct Unopenable(pub String);

impl TokenKey {
    /// The key from its base64 text.
    pub fn from_base64(text: &str) -> Result<Self, BadKey> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|error| BadKey(error.to_string()))?;
        if bytes.len() != 32 {
            return Err(BadKey(format!("it is {} bytes", bytes.len())));
        }
        let cipher =
            XChaCha20Poly1305::new_from_slice(&bytes).map_err(|error| BadKey(error.to_string()))?;
        Ok(Self(cipher))
    }

    /// `token` sealed for `account_id`: a fresh nonce, then the ciphertext.
    pub fn seal(&self, account_id: &str, token: &str) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .0
            .encrypt(
                &nonce,
                Payload {
                    msg: token.as_bytes(),
                    aad: account_id.as_bytes(),
                },
            )
            .expect("sealing into memory cannot fail");
        let mut out = nonce.to_vec();
        out.extend(sealed);
        out
    }

    /// The token `sealed` holds for `account_id`.
    pub fn open(&self, account_id: &str, sealed: &[u8]) -> Result<String, Unopenable> {
        let unopenable = || Unopenable(account_id.to_owned());
        if sealed.len() < NONCE_BYTES {
            return Err(unopenable());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        let plain = self
            .0
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: account_id.as_bytes(),
                },
            )
            .map_err(|_| unopenable())?;
        String::from_utf8(plain).map_err(|_| unopenable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    #[test]
    fn a_sealed_token_opens_for_its_account_only_and_hides_its_text() {
        let key = TokenKey::from_base64(KEY).unwrap();
        let sealed = key.seal("1784", "IGQV-secret-token");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(key.open("1784", &sealed).unwrap(), "IGQV-secret-token");
        assert!(key.open("9999", &sealed).is_err(), "bound to its account");
        let other =
            TokenKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([7u8; 32]))
                .unwrap();
        assert!(
            other.open("1784", &sealed).is_err(),
            "another key does not open it"
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(key.open("1784", &tampered).is_err());
        assert!(key.open("1784", &sealed[..10]).is_err());
        assert_ne!(key.seal("1784", "t"), key.seal("1784", "t"), "fresh nonces");
    }

    #[test]
    fn a_key_must_be_32_bytes_of_base64() {
        assert!(TokenKey::from_base64("c2hvcnQ=").is_err());
        assert!(TokenKey::from_base64("not base64!").is_err());
        assert!(TokenKey::from_base64(KEY).is_ok());
    }
}
