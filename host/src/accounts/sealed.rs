//! Access tokens at rest: sealed with XChaCha20-Poly1305 under a key the
//! operator provides (`tokens.key`, best from `IGLOO_TOKENS__KEY`), bound to
//! their account and their generation (the associated data), so a sealed
//! token copied to another account's row, or an older token of the same
//! account put back in its row, does not open. The key never touches the
//! disk.
//!
//! Tokens sealed before the generation was bound (bound to the account
//! only) open with [`TokenKey::open_unbound`], once, when the store that
//! marked them so is opened; they are sealed again at once.

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

/// A sealed token that does not open: another key, tampered with, or
/// another account's or generation's token put in its row.
#[derive(Debug, thiserror::Error)]
#[error(
    "the stored token of account {0} does not open with tokens.key: is it the key it was stored with, \
     and the token stored last (not one put back from an older copy)?"
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

    /// `token` sealed for generation `generation` of `account_id`'s token:
    /// a fresh nonce, then the ciphertext.
    pub fn seal(&self, account_id: &str, generation: u64, token: &str) -> Vec<u8> {
        self.seal_with(&bound_to(account_id, generation), token)
    }

    /// The token `sealed` holds as generation `generation` of
    /// `account_id`'s.
    pub fn open(
        &self,
        account_id: &str,
        generation: u64,
        sealed: &[u8],
    ) -> Result<String, Unopenable> {
        self.open_with(&bound_to(account_id, generation), sealed)
            .ok_or_else(|| Unopenable(account_id.to_owned()))
    }

    /// The token `sealed` holds for `account_id`, sealed before tokens were
    /// bound to their generation: only for rows the store marked so when
    /// it was upgraded, and sealed again ([`TokenKey::seal`]) at once.
    pub fn open_unbound(&self, account_id: &str, sealed: &[u8]) -> Result<String, Unopenable> {
        self.open_with(account_id.as_bytes(), sealed)
            .ok_or_else(|| Unopenable(account_id.to_owned()))
    }

    fn seal_with(&self, aad: &[u8], token: &str) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .0
            .encrypt(
                &nonce,
                Payload {
                    msg: token.as_bytes(),
                    aad,
                },
            )
            .expect("sealing into memory cannot fail");
        let mut out = nonce.to_vec();
        out.extend(sealed);
        out
    }

    fn open_with(&self, aad: &[u8], sealed: &[u8]) -> Option<String> {
        if sealed.len() < NONCE_BYTES {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        let plain = self
            .0
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

/// The associated data of a token sealed as generation `generation` of
/// `account_id`'s: distinct from an unbound seal's (the bare account id,
/// which never holds a NUL).
fn bound_to(account_id: &str, generation: u64) -> Vec<u8> {
    format!("igloo-token-v2\0{account_id}\0{generation}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    #[test]
    fn a_sealed_token_opens_for_its_account_only_and_hides_its_text() {
        let key = TokenKey::from_base64(KEY).unwrap();
        let sealed = key.seal("1784", 3, "IGQV-secret-token");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(key.open("1784", 3, &sealed).unwrap(), "IGQV-secret-token");
        assert!(
            key.open("9999", 3, &sealed).is_err(),
            "bound to its account"
        );
        let other =
            TokenKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([7u8; 32]))
                .unwrap();
        assert!(
            other.open("1784", 3, &sealed).is_err(),
            "another key does not open it"
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(key.open("1784", 3, &tampered).is_err());
        assert!(key.open("1784", 3, &sealed[..10]).is_err());
        assert_ne!(
            key.seal("1784", 3, "t"),
            key.seal("1784", 3, "t"),
            "fresh nonces"
        );
    }

    #[test]
    fn a_sealed_token_opens_as_its_generation_only() {
        let key = TokenKey::from_base64(KEY).unwrap();
        let older = key.seal("1784", 3, "older-token");
        assert!(
            key.open("1784", 4, &older).is_err(),
            "an older token put back in the row of generation 4"
        );
        assert!(key.open_unbound("1784", &older).is_err());
        let unbound = key.seal_with(b"1784", "sealed-before");
        assert_eq!(key.open_unbound("1784", &unbound).unwrap(), "sealed-before");
        assert!(
            key.open("1784", 0, &unbound).is_err(),
            "an unbound seal is not taken for a bound one"
        );
    }

    #[test]
    fn a_key_must_be_32_bytes_of_base64() {
        assert!(TokenKey::from_base64("c2hvcnQ=").is_err());
        assert!(TokenKey::from_base64("not base64!").is_err());
        assert!(TokenKey::from_base64(KEY).is_ok());
    }
}
