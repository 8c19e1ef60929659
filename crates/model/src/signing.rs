//! How a webhook's deliveries are signed (Standard Webhooks): its scheme, the keys
//! each scheme takes, and the rules of what an operator may give for them.
//!
//! - `hmac-sha256` (the default): `v1` signatures, HMAC-SHA256 with a shared
//!   `whsec_...` secret, given by the operator or generated and shown once.
//! - `ed25519`: `v1a` signatures with a private key hookrelay generates (stored as
//!   `whsk_<base64 of its 32-byte seed>`, sealed like every secret, never shown); the
//!   receiver verifies with its public key, `whpk_<base64 of 32 bytes>`, readable by
//!   anyone who may read the webhook.
//!
//! A webhook's `signing_secrets` hold keys of either kind, newest first: each signs
//! as its prefix says, so a switch of scheme overlaps like a rotation. The scheme
//! says which kind a rotation makes and what may be given.

use serde::{Deserialize, Serialize};

use crate::error::Invalid;
use crate::secret::Secret;

/// The prefix of a stored ed25519 private key (Standard Webhooks `whsk_`).
pub const PRIVATE_KEY_PREFIX: &str = "whsk_";
/// The prefix of an ed25519 public key as receivers are given it (`whpk_`).
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";

/// How a webhook's deliveries are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SigningScheme {
    /// Standard Webhooks `v1`: HMAC-SHA256 with a shared `whsec_` secret.
    #[default]
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    /// Standard Webhooks `v1a`: ed25519; receivers verify with the public key.
    #[serde(rename = "ed25519")]
    Ed25519,
}

impl SigningScheme {
    /// Every scheme.
    pub const ALL: [SigningScheme; 2] = [Self::HmacSha256, Self::Ed25519];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac-sha256",
            Self::Ed25519 => "ed25519",
        }
    }

    /// The signature's version in `webhook-signature` (`v1,<sig>` or `v1a,<sig>`).
    pub fn version(self) -> &'static str {
        match self {
            Self::HmacSha256 => "v1",
            Self::Ed25519 => "v1a",
        }
    }

    /// What an operator may give as a signing secret for a webhook of this scheme
    /// (on create, as `signing_secret`; on rotation, as the new one): a `whsec_`
    /// secret for `hmac-sha256`; nothing for `ed25519`, whose key pair hookrelay
    /// makes (so the private key never travels). 400 naming `signing_secret`.
    pub fn check_given(self, given: Option<&Secret>) -> Result<(), Invalid> {
        match (self, given) {
            (_, None) => Ok(()),
            (Self::HmacSha256, Some(secret)) => signing_key(secret).map(drop),
            (Self::Ed25519, Some(_)) => Err(Invalid::new(
                "signing_secret",
                "cannot be given with signing_scheme `ed25519`: hookrelay generates the key pair \
                 and shows its public key",
            )),
        }
    }

    /// Whether a webhook of this scheme gets a key when it is created without a
    /// signing secret: an ed25519 one does (its public key is in the answer); an
    /// HMAC one is unsigned until it is given or rotated a secret (shown once then).
    pub fn generates_on_create(self) -> bool {
        self == Self::Ed25519
    }

    /// Whether switching an existing webhook from `from` to `self` makes a new key at
    /// once (the previous newest key keeps signing beside it, as in a rotation with
    /// `keep_previous`): only a switch to ed25519, whose public key is readable. A
    /// switch to HMAC takes effect with the next rotation, which shows the secret.
    pub fn generates_on_switch_from(self, from: SigningScheme) -> bool {
        self != from && self == Self::Ed25519
    }

    /// A new signing key of this scheme, as stored (sealed by the store).
    pub fn generate(self) -> Result<Secret, getrandom::Error> {
        match self {
            Self::HmacSha256 => generate_signing_secret(),
            Self::Ed25519 => {
                use base64::Engine;
                let mut seed = [0u8; ed25519_dalek::SECRET_KEY_LENGTH];
                getrandom::fill(&mut seed)?;
                let key = Secret::new(format!(
                    "{PRIVATE_KEY_PREFIX}{}",
                    base64::engine::general_purpose::STANDARD.encode(seed)
                ));
                seed.fill(0);
                Ok(key)
            }
        }
    }
}

impl std::fmt::Display for SigningScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SigningScheme {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hmac-sha256" => Ok(Self::HmacSha256),
            "ed25519" => Ok(Self::Ed25519),
            other => Err(Invalid::new(
                "signing_scheme",
                format!("`{other}` is not hmac-sha256 or ed25519"),
            )),
        }
    }
}

/// The prefix of Standard Webhooks secrets.
pub const SIGNING_SECRET_PREFIX: &str = "whsec_";

/// Exactly the texts [`signing_key`] takes, as the OpenAPI document states them
/// (`#[schema(pattern)]` takes a literal only: a test checks every copy is this one):
/// `whsec_` and padded base64 of 24 to 64 bytes.
pub const SIGNING_SECRET_PATTERN: &str = r"^whsec_(?:(?:[A-Za-z0-9+/]{4}){8,20}(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)?|(?:[A-Za-z0-9+/]{4}){21}[A-Za-z0-9+/]{2}==)$";

/// The HMAC key of a `whsec_...` secret.
pub fn signing_key(secret: &Secret) -> Result<Vec<u8>, Invalid> {
    use base64::Engine;
    let invalid = || {
        Invalid::new(
            "signing_secret",
            "must be `whsec_` followed by base64 of 24 to 64 bytes",
        )
    };
    let encoded = secret
        .expose()
        .strip_prefix(SIGNING_SECRET_PREFIX)
        .ok_or_else(invalid)?;
    // Unused low bits in the last character are ignored, as most encoders and
    // decoders do: every text of the documented pattern is a key.
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    let key = lenient.decode(encoded).map_err(|_| invalid())?;
    if (24..=64).contains(&key.len()) {
        Ok(key)
    } else {
        Err(invalid())
    }
}

/// A new random signing secret: 32 bytes from the OS generator.
pub fn generate_signing_secret() -> Result<Secret, getrandom::Error> {
    use base64::Engine;
    let mut key = [0u8; 32];
    getrandom::fill(&mut key)?;
    Ok(Secret::new(format!(
        "{SIGNING_SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )))
}

/// What a rotation hands its caller: the new HMAC secret (to be shown this once), or
/// the new ed25519 key's public key (the private key is never handed out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewKey {
    Secret(Secret),
    PublicKey(String),
}

impl NewKey {
    /// What to hand out for a new stored key: its public key when it has one, else
    /// the secret itself.
    pub fn of(stored: Secret) -> Self {
        match public_key(&stored) {
            Some(public) => Self::PublicKey(public),
            None => Self::Secret(stored),
        }
    }
}

/// A stored signing key, by what its prefix says it is.
pub enum Key {
    /// `whsec_`: the HMAC key's bytes.
    Hmac(Vec<u8>),
    /// `whsk_`: an ed25519 signing key.
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

impl Key {
    /// The key a stored secret holds; `None` for text that is neither kind.
    pub fn parse(secret: &Secret) -> Option<Self> {
        if let Some(seed) = secret.expose().strip_prefix(PRIVATE_KEY_PREFIX) {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(seed)
                .ok()?;
            let seed: [u8; ed25519_dalek::SECRET_KEY_LENGTH] = bytes.try_into().ok()?;
            Some(Self::Ed25519(Box::new(
                ed25519_dalek::SigningKey::from_bytes(&seed),
            )))
        } else {
            signing_key(secret).ok().map(Self::Hmac)
        }
    }
}

/// The `whpk_` public key of a stored ed25519 private key; `None` for an HMAC secret.
pub fn public_key(secret: &Secret) -> Option<String> {
    use base64::Engine;
    match Key::parse(secret)? {
        Key::Ed25519(key) => Some(format!(
            "{PUBLIC_KEY_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(key.verifying_key().to_bytes())
        )),
        Key::Hmac(_) => None,
    }
}

/// The public keys of the ed25519 keys among a webhook's signing keys, newest first.
pub fn public_keys(secrets: &[Secret]) -> Vec<String> {
    secrets.iter().filter_map(public_key).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use SigningScheme::{Ed25519, HmacSha256};

    fn whsec() -> Secret {
        Secret::new(format!("whsec_{}", "A".repeat(32)))
    }

    #[test]
    fn what_may_be_given_per_scheme() {
        let sk = Ed25519.generate().unwrap();
        let cases: [(SigningScheme, Option<Secret>, Result<(), &str>); 6] = [
            (HmacSha256, None, Ok(())),
            (HmacSha256, Some(whsec()), Ok(())),
            (
                HmacSha256,
                Some(Secret::new("whsec_short")),
                Err("signing_secret"),
            ),
            (HmacSha256, Some(sk.clone()), Err("signing_secret")),
            (Ed25519, None, Ok(())),
            (Ed25519, Some(whsec()), Err("signing_secret")),
        ];
        for (scheme, given, want) in cases {
            let got = scheme.check_given(given.as_ref()).map_err(|e| e.field);
            let want = want.map_err(str::to_owned);
            assert_eq!(got, want, "{scheme} {given:?}");
        }
    }

    #[test]
    fn which_changes_make_a_key() {
        let table = [
            (HmacSha256, HmacSha256, false),
            (HmacSha256, Ed25519, true),
            (Ed25519, Ed25519, false),
            (Ed25519, HmacSha256, false),
        ];
        for (from, to, makes) in table {
            assert_eq!(to.generates_on_switch_from(from), makes, "{from} -> {to}");
        }
        assert!(Ed25519.generates_on_create());
        assert!(!HmacSha256.generates_on_create());
    }

    #[test]
    fn schemes_read_and_write_as_their_names_and_default_to_hmac() {
        assert_eq!(SigningScheme::default(), HmacSha256);
        for s in [HmacSha256, Ed25519] {
            assert_eq!(s.as_str().parse::<SigningScheme>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(HmacSha256.version(), "v1");
        assert_eq!(Ed25519.version(), "v1a");
        let e = "rsa".parse::<SigningScheme>().unwrap_err();
        assert_eq!(e.field, "signing_scheme");
    }

    #[test]
    fn generated_keys_parse_as_their_kind_and_only_ed25519_has_a_public_key() {
        let sk = Ed25519.generate().unwrap();
        assert!(sk.expose().starts_with("whsk_"));
        assert!(matches!(Key::parse(&sk), Some(Key::Ed25519(_))));
        let pk = public_key(&sk).unwrap();
        assert!(pk.starts_with("whpk_"));
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&pk["whpk_".len()..])
            .unwrap();
        assert_eq!(raw.len(), 32);
        assert_ne!(Ed25519.generate().unwrap(), sk, "fresh each time");

        let hmac = HmacSha256.generate().unwrap();
        assert!(matches!(Key::parse(&hmac), Some(Key::Hmac(_))));
        assert_eq!(public_key(&hmac), None);
        assert_eq!(public_keys(&[sk, hmac]), vec![pk]);
        assert!(Key::parse(&Secret::new("whsk_AAAA")).is_none());
    }

    #[test]
    fn a_rotation_hands_out_a_public_key_never_a_private_one() {
        let sk = Ed25519.generate().unwrap();
        let public = public_key(&sk).unwrap();
        assert_eq!(NewKey::of(sk), NewKey::PublicKey(public));
        let hmac = HmacSha256.generate().unwrap();
        assert_eq!(NewKey::of(hmac.clone()), NewKey::Secret(hmac));
    }
}
