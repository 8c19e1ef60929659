//! Secrets at rest: with `HOOKRELAY_SECRET_KEY` set, webhook secrets are stored
//! encrypted (AES-256-GCM, a random nonce each) as `enc:v1:<base64 nonce+ciphertext>`.
//! Values written before a key was set stay readable as they are; an encrypted value
//! read without the key is an error that says so, never garbage sent to a receiver.

use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;

const PREFIX: &str = "enc:v1:";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("HOOKRELAY_SECRET_KEY must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)")]
    Malformed,
}

/// A stored secret that cannot be used: a fault of the deployment's key, never of
/// the client's request.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(
        "a stored secret is encrypted: set HOOKRELAY_SECRET_KEY to the key it was written with"
    )]
    KeyMissing,
    #[error(
        "a stored secret does not decrypt: HOOKRELAY_SECRET_KEY differs from the key it was written with"
    )]
    WrongKey,
    #[error("no randomness for a nonce: {0}")]
    Randomness(getrandom::Error),
    #[error("encrypting a secret failed")]
    Encrypt,
}

/// How secrets are sealed and opened: with the deployment's key, or (without one)
/// stored as they are. Cheap to clone; built once at start-up and handed to whoever
/// reads or writes webhook secrets.
#[derive(Clone, Default)]
pub struct Cipher(Option<Arc<Aes256Gcm>>);

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Cipher(key set)"
        } else {
            "Cipher(no key)"
        })
    }
}

impl Cipher {
    /// No key: secrets are stored as they are, and sealed ones cannot be opened.
    pub fn none() -> Self {
        Self(None)
    }

    /// The key from base64 of 32 bytes (`HOOKRELAY_SECRET_KEY`).
    pub fn from_base64_key(base64_key: &str) -> Result<Self, KeyError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(base64_key.trim())
            .map_err(|_| KeyError::Malformed)?;
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| KeyError::Malformed)?;
        Ok(Self(Some(Arc::new(cipher))))
    }

    /// [`Self::from_base64_key`] when a key is given, else [`Self::none`].
    pub fn from_optional_key(base64_key: Option<&str>) -> Result<Self, KeyError> {
        base64_key.map_or(Ok(Self::none()), Self::from_base64_key)
    }

    /// What to store for `plain`: encrypted when a key is set.
    pub fn seal(&self, plain: &str) -> Result<String, SecretsError> {
        let Some(cipher) = &self.0 else {
            return Ok(plain.to_owned());
        };
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(SecretsError::Randomness)?;
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .map_err(|_| SecretsError::Encrypt)?;
        let mut raw = nonce.to_vec();
        raw.extend_from_slice(&sealed);
        Ok(format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ))
    }

    /// The plain value of what was stored.
    pub fn open(&self, stored: &str) -> Result<String, SecretsError> {
        let Some(encoded) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let cipher = self.0.as_ref().ok_or(SecretsError::KeyMissing)?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| SecretsError::WrongKey)?;
        if raw.len() < 12 {
            return Err(SecretsError::WrongKey);
        }
        let (nonce, sealed) = raw.split_at(12);
        let plain = cipher
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| SecretsError::WrongKey)?;
        String::from_utf8(plain).map_err(|_| SecretsError::WrongKey)
    }
}

/// Whether stored text is encrypted.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// 256 random bits as base64url text: session ids, CSRF and portal tokens.
pub fn random_text() -> Result<String, SecretsError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(SecretsError::Randomness)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 of a text: how tokens and session ids are stored (never the text).
pub fn sha256(text: &str) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "q0Rq3kC2sS1KcmKx0fZ2mJ8wTnH4bV7yLpE6aD9uXcI=";

    #[test]
    fn plain_values_pass_and_sealed_ones_need_the_key() {
        let none = Cipher::none();
        assert_eq!(none.open("plain").unwrap(), "plain");
        let err = none.open("enc:v1:AAAA").unwrap_err();
        assert!(matches!(err, SecretsError::KeyMissing));
        assert!(err.to_string().contains("HOOKRELAY_SECRET_KEY"), "{err}");
    }

    #[test]
    fn sealing_round_trips_with_fresh_nonces_and_refuses_tampering() {
        let cipher = Cipher::from_base64_key(KEY).unwrap();
        let a = cipher.seal("s3cret").unwrap();
        let b = cipher.seal("s3cret").unwrap();
        assert!(is_sealed(&a) && a != b, "a new nonce each time");
        assert_eq!(cipher.open(&a).unwrap(), "s3cret");
        let mut tampered = a.clone();
        tampered.replace_range(a.len() - 4.., "AAAA");
        assert!(matches!(
            cipher.open(&tampered),
            Err(SecretsError::WrongKey)
        ));
        assert!(matches!(
            Cipher::from_base64_key("c2hvcnQ="),
            Err(KeyError::Malformed)
        ));
    }

    #[test]
    fn another_key_does_not_open_what_one_sealed() {
        let sealed = Cipher::from_base64_key(KEY)
            .unwrap()
            .seal("s3cret")
            .unwrap();
        let other =
            Cipher::from_base64_key("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
        assert!(matches!(other.open(&sealed), Err(SecretsError::WrongKey)));
    }
}
