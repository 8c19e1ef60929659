//! A tenant (organisation) id, checked once where it arrives and trusted after.

use crate::Invalid;
use crate::ids::checked_text;

checked_text!(
    /// Letters, digits, `-` and `_`, 1 to [`crate::envelope::MAX_NAME_CHARS`] bytes: it
    /// goes into routing keys and URL paths. A `Tenant` that exists is a valid one.
    Tenant,
    crate::envelope::check_tenant
);

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
