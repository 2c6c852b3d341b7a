//! Cryptography at rest: minting and hashing API key secrets, and sealing secret values with the
//! installation's secrets key (XChaCha20-Poly1305, random 192-bit nonces, the row's identity as
//! associated data so a ciphertext cannot be moved to another secret).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use runtools_protocol::ApiKeyKind;
use sha2::{Digest, Sha256};

/// Random bytes in a key secret's body (192 bits; the API promises at least 128).
const KEY_SECRET_RANDOM_BYTES: usize = 24;

/// Mints a new key secret of the given kind: prefix + base58 of 192 random bits.
pub(crate) fn generate_key_secret(kind: ApiKeyKind) -> String {
    let mut random = [0u8; KEY_SECRET_RANDOM_BYTES];
    rand::rng().fill_bytes(&mut random);
    format!("{}{}", kind.prefix(), bs58::encode(random).into_string())
}

/// The at-rest form of a key secret. Keys carry ≥128 random bits, so a fast hash is enough: there
/// is nothing to brute-force.
pub(crate) fn hash_key_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The 32-byte key that seals secret values. Every server node sharing a database must use the
/// same one. Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct SecretsKey([u8; 32]);

/// A secrets key given in configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum SecretsKeyError {
    #[error("the secrets key is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("the secrets key must be 32 bytes, this one is {0}")]
    Length(usize),
}

impl SecretsKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self(key)
    }

    /// Parses the base64 form used in config files and `RUNTOOLS_SECRETS_KEY`.
    pub fn from_base64(text: &str) -> Result<Self, SecretsKeyError> {
        let bytes = STANDARD.decode(text.trim())?;
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| SecretsKeyError::Length(bytes.len()))?;
        Ok(Self(key))
    }

    /// The base64 form.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// A public fingerprint of the key, recorded in the database so a node with the wrong key is
    /// refused at start instead of failing on the first secret it reads.
    pub(crate) fn fingerprint(&self) -> String {
        let digest = Sha256::digest([b"runtools-secrets-key-v1:".as_slice(), &self.0].concat());
        digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    /// Seals a value; `None` only for values beyond the cipher's limit (256 GiB).
    pub(crate) fn seal(&self, associated: &str, plaintext: &[u8]) -> Option<Sealed> {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload { msg: plaintext, aad: associated.as_bytes() };
        let ciphertext = cipher.encrypt(XNonce::from_slice(&nonce), payload).ok()?;
        Some(Sealed { nonce: nonce.to_vec(), ciphertext })
    }

    pub(crate) fn open(&self, associated: &str, sealed: &Sealed) -> Option<Vec<u8>> {
        if sealed.nonce.len() != 24 {
            return None;
        }
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let payload = Payload { msg: &sealed.ciphertext, aad: associated.as_bytes() };
        cipher.decrypt(XNonce::from_slice(&sealed.nonce), payload).ok()
    }
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretsKey(<redacted>, fingerprint {})", self.fingerprint())
    }
}

/// A sealed value and its nonce, as stored.
pub(crate) struct Sealed {
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_secrets_have_the_kind_prefix_and_enough_entropy() {
        for kind in [ApiKeyKind::Admin, ApiKeyKind::Development, ApiKeyKind::Production] {
            let secret = generate_key_secret(kind);
            assert_eq!(ApiKeyKind::of_secret(&secret), Ok(kind));
            // base58 carries log2(58) ≈ 5.86 bits per character: 22+ characters ≥ 128 bits.
            assert!(secret.len() - kind.prefix().len() >= 22, "{secret}");
        }
        assert_ne!(generate_key_secret(ApiKeyKind::Admin), generate_key_secret(ApiKeyKind::Admin));
    }

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_row() {
        let key = SecretsKey::generate();
        let sealed = key.seal("env_a/NAME", b"hunter2").unwrap();
        assert_eq!(key.open("env_a/NAME", &sealed).as_deref(), Some(b"hunter2".as_slice()));
        assert_eq!(key.open("env_b/NAME", &sealed), None);
        assert_eq!(SecretsKey::generate().open("env_a/NAME", &sealed), None);
    }

    #[test]
    fn base64_round_trip_and_errors() {
        let key = SecretsKey::generate();
        let parsed = SecretsKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(parsed.fingerprint(), key.fingerprint());
        assert!(matches!(SecretsKey::from_base64("not base64!"), Err(SecretsKeyError::Base64(_))));
        assert!(matches!(SecretsKey::from_base64("AAAA"), Err(SecretsKeyError::Length(3))));
        assert!(!format!("{key:?}").contains(&key.to_base64()));
    }
}
