//! Strings that arrive from outside and are checked once where they arrive: a value
//! of these types is a valid one, so what follows never checks again. Each carries
//! its rule once, used by `parse`, by deserializing, and (for the webhook key) by
//! the OpenAPI schema.

use crate::Invalid;
use crate::text::{MAX_KEY_CHARS, check_text};

/// A string newtype whose only way in is its rule (`parse`, `FromStr`, serde's
/// `try_from`), read as a `&str` everywhere after.
macro_rules! checked_text {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, Invalid> {
                let value = value.into();
                let check: fn(&str) -> Result<(), Invalid> = $check;
                check(&value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Invalid;

            fn try_from(value: String) -> Result<Self, Invalid> {
                Self::parse(value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = Invalid;

            fn from_str(s: &str) -> Result<Self, Invalid> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

pub(crate) use checked_text;

/// Longest event id, in characters: AMQP `message_id` is a short string.
pub const MAX_ID_CHARS: usize = MAX_KEY_CHARS;

checked_text!(
    /// A webhook's key: unique and changeable within its tenant, usable in place of
    /// its id in paths; 1 to [`MAX_KEY_CHARS`] characters without control characters.
    WebhookKey,
    |v| check_text("key", v, MAX_KEY_CHARS)
);

checked_text!(
    /// An event's id: unique per tenant, the de-duplication key; 1 to
    /// [`MAX_ID_CHARS`] characters without control characters.
    EventId,
    |v| check_text("id", v, MAX_ID_CHARS)
);

checked_text!(
    /// An event's ordering key: events of one tenant with the same key are delivered
    /// one at a time, in the order recorded, to each `ordered` webhook; 1 to
    /// [`MAX_KEY_CHARS`] characters without control characters.
    OrderingKey,
    |v| check_text("ordering_key", v, MAX_KEY_CHARS)
);

impl EventId {
    /// A new id hookrelay gives an event of its own: `{prefix}-{uuid v7}` (a short
    /// prefix of letters keeps it within the rule).
    pub fn fresh(prefix: &'static str) -> Self {
        Self(format!("{prefix}-{}", uuid::Uuid::now_v7()))
    }
}

/// The key's schema, from the same rule.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for WebhookKey {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::text::schema(MAX_KEY_CHARS)
            .description(Some(
                "1 to 255 characters, no control characters; unique within the tenant \
                 (409 otherwise).",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for WebhookKey {}

/// The ordering key's schema, from the same rule.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for OrderingKey {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::text::schema(MAX_KEY_CHARS)
            .description(Some(
                "1 to 255 characters, no control characters. Events of one tenant with \
                 the same key go to each ordered webhook one at a time, in the order \
                 recorded (docs/wire-contract.md).",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for OrderingKey {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_valid_values_get_in_and_the_error_names_the_field() {
        assert_eq!(WebhookKey::parse("orders-1").unwrap(), "orders-1");
        for bad in ["", "a\u{7}b", &"k".repeat(256)] {
            assert_eq!(WebhookKey::parse(bad).unwrap_err().field, "key", "{bad:?}");
            assert_eq!(EventId::parse(bad).unwrap_err().field, "id", "{bad:?}");
            assert_eq!(
                OrderingKey::parse(bad).unwrap_err().field,
                "ordering_key",
                "{bad:?}"
            );
        }
        let err = serde_json::from_str::<WebhookKey>("\"\"").unwrap_err();
        assert!(err.to_string().contains("must not be empty"), "{err}");
        let id: EventId = serde_json::from_str("\"evt_1\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"evt_1\"");
    }
}
