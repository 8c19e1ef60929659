//! Secrets at rest: with `HOOKRELAY_SECRET_KEY` set, webhook secrets are stored
//! encrypted (AES-256-GCM, a random nonce each) as `enc:v1:<base64 nonce+ciphertext>`.
//! Values written before a key was set stay readable as they are; an encrypted value
//! read without the key is an error that says so, never garbage sent to a receiver.

use std::sync::OnceLock;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;

use super::StoreError;

const PREFIX: &str = "enc:v1:";

static KEY: OnceLock<Aes256Gcm> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("HOOKRELAY_SECRET_KEY must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)")]
    Malformed,
    #[error("a different secret key is already in use in this process")]
    AlreadySet,
}

/// Sets the process's key (base64 of 32 bytes); once, at start-up.
pub fn set_key(base64_key: &str) -> Result<(), KeyError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64_key.trim())
        .map_err(|_| KeyError::Malformed)?;
    let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| KeyError::Malformed)?;
    if KEY.get().is_some() {
        return Err(KeyError::AlreadySet);
    }
    KEY.set(cipher).map_err(|_| KeyError::AlreadySet)
}

/// What to store for `plain`: encrypted when a key is set.
pub fn seal(plain: &str) -> Result<String, StoreError> {
    let Some(cipher) = KEY.get() else {
        return Ok(plain.to_owned());
    };
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce)
        .map_err(|e| StoreError::Invalid(format!("no randomness for a nonce: {e}")))?;
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
        .map_err(|_| StoreError::Invalid("encrypting a secret failed".into()))?;
    let mut raw = nonce.to_vec();
    raw.extend_from_slice(&sealed);
    Ok(format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    ))
}

/// The plain value of what was stored.
pub fn open(stored: &str) -> Result<String, StoreError> {
    let Some(encoded) = stored.strip_prefix(PREFIX) else {
        return Ok(stored.to_owned());
    };
    let cipher = KEY.get().ok_or_else(|| {
        StoreError::Invalid(
            "a stored secret is encrypted: set HOOKRELAY_SECRET_KEY to the key it was written with"
                .into(),
        )
    })?;
    let wrong = || {
        StoreError::Invalid(
            "a stored secret does not decrypt: HOOKRELAY_SECRET_KEY differs from the key it was written with".into(),
        )
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| wrong())?;
    if raw.len() < 12 {
        return Err(wrong());
    }
    let (nonce, sealed) = raw.split_at(12);
    let plain = cipher
        .decrypt(Nonce::from_slice(nonce), sealed)
        .map_err(|_| wrong())?;
    String::from_utf8(plain).map_err(|_| wrong())
}

/// Whether stored text is encrypted.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each test runs in its own process under nextest, so the key is per test.

    #[test]
    fn plain_values_pass_and_sealed_ones_need_the_key() {
        assert_eq!(open("plain").unwrap(), "plain");
        let err = open("enc:v1:AAAA").unwrap_err().to_string();
        assert!(err.contains("HOOKRELAY_SECRET_KEY"), "{err}");
    }

    #[test]
    fn sealing_round_trips_with_fresh_nonces_and_refuses_tampering() {
        set_key("q0Rq3kC2sS1KcmKx0fZ2mJ8wTnH4bV7yLpE6aD9uXcI=").unwrap();
        let a = seal("s3cret").unwrap();
        let b = seal("s3cret").unwrap();
        assert!(is_sealed(&a) && a != b, "a new nonce each time");
        assert_eq!(open(&a).unwrap(), "s3cret");
        let mut tampered = a.clone();
        tampered.replace_range(a.len() - 4.., "AAAA");
        assert!(open(&tampered).is_err());
        assert!(matches!(set_key("c2hvcnQ="), Err(KeyError::Malformed)));
    }
}
