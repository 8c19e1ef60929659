//! A tenant (organisation) id, checked once where it arrives and trusted after.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Invalid;

/// Letters, digits, `-` and `_`, 1 to [`crate::envelope::MAX_NAME_CHARS`] bytes: it
/// goes into routing keys and URL paths. A `Tenant` that exists is a valid one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tenant(String);

impl Tenant {
    pub fn parse(value: impl Into<String>) -> Result<Self, Invalid> {
        let value = value.into();
        crate::envelope::check_tenant(&value)?;
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Tenant {
    type Error = Invalid;

    fn try_from(value: String) -> Result<Self, Invalid> {
        Self::parse(value)
    }
}

impl std::str::FromStr for Tenant {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Invalid> {
        Self::parse(s)
    }
}

impl From<Tenant> for String {
    fn from(t: Tenant) -> String {
        t.0
    }
}

impl std::ops::Deref for Tenant {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Tenant {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Tenant {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Tenant {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_valid_names_become_tenants() {
        assert_eq!(Tenant::parse("acme-2_b").unwrap().as_str(), "acme-2_b");
        for bad in ["", "a.b", "a b", "a/b", "ünï", &"x".repeat(121)] {
            let err = Tenant::parse(bad).unwrap_err();
            assert_eq!(err.field, "tenant", "{bad:?}");
        }
    }

    #[test]
    fn deserializing_checks_too() {
        let ok: Tenant = serde_json::from_str("\"acme\"").unwrap();
        assert_eq!(ok, "acme");
        let err = serde_json::from_str::<Tenant>("\"a.b\"").unwrap_err();
        assert!(err.to_string().contains("tenant"), "{err}");
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"acme\"");
    }
}
