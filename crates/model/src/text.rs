//! The one rule for a string that arrives from outside and is stored or shown: no
//! control characters (Postgres text cannot hold NUL; ESC, BEL and CR would reach an
//! operator's terminal raw) and a bounded length, in characters (what a person and
//! the OpenAPI document's `maxLength` count; at most four bytes each, well within
//! Postgres' index entry limit). Every validated string goes through
//! it: webhook keys, URLs and filters, token and environment names, variable values,
//! the envelope's ids, and the admin API's path and query values.

use crate::Invalid;

/// Names and ids: webhook keys, token and environment names, event ids, filters.
pub const MAX_KEY_CHARS: usize = 255;
/// Webhook URLs (stored webhooks and an event's `webhook_url`).
pub const MAX_URL_CHARS: usize = 2048;
/// Environment variable values.
pub const MAX_VALUE_CHARS: usize = 8192;
/// A webhook's secret (the Basic auth password it is sent with).
pub const MAX_SECRET_CHARS: usize = 1024;
/// A path or query value of the admin API.
pub const MAX_PARAM_CHARS: usize = 1024;

/// `value` is 1 to `max` characters, none of them a control character.
pub fn check_text(field: &str, value: &str, max: usize) -> Result<(), Invalid> {
    if value.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    check_chars(field, value, max)
}

/// `value` is at most `max` characters (it may be empty), none of them a control
/// character.
pub fn check_chars(field: &str, value: &str, max: usize) -> Result<(), Invalid> {
    // Bytes bound characters from above: count them only when it could matter.
    if value.len() > max && value.chars().count() > max {
        return Err(Invalid::new(
            field,
            format!("is {} characters, longer than {max}", value.chars().count()),
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(Invalid::new(
            field,
            format!(
                "must not contain control characters (found U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    Ok(())
}

/// What [`check_chars`] allows, as a JSON Schema `pattern` (`char::is_control` is
/// Unicode's Cc category: U+0000 to U+001F and U+007F to U+009F).
pub const NO_CONTROL_PATTERN: &str = r"^[^\u0000-\u001f\u007f-\u009f]*$";

/// The JSON Schema of what [`check_text`] allows with `max`.
#[cfg(feature = "openapi")]
pub fn schema(max: usize) -> utoipa::openapi::schema::ObjectBuilder {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(NO_CONTROL_PATTERN))
}

/// Every item of a list with [`check_text`], named `field[i]`.
pub fn check_list(field: &str, values: &[String], max: usize) -> Result<(), Invalid> {
    for (i, value) in values.iter().enumerate() {
        check_text(&format!("{field}[{i}]"), value, max)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_and_other_controls_are_refused_naming_the_field() {
        for bad in ["a\0b", "\u{1b}[31m", "bell\u{7}", "cr\r"] {
            let e = check_text("event_types[0]", bad, MAX_KEY_CHARS).unwrap_err();
            assert_eq!(e.field, "event_types[0]");
            assert!(e.problem.contains("control characters"), "{e}");
        }
        assert!(check_text("key", "orders-é", MAX_KEY_CHARS).is_ok());
    }

    #[test]
    fn lengths_are_bounded_and_empty_is_refused_only_by_check_text() {
        let long = "a".repeat(MAX_KEY_CHARS + 1);
        assert!(
            check_text("key", &long, MAX_KEY_CHARS)
                .unwrap_err()
                .problem
                .contains("longer than 255")
        );
        assert_eq!(
            check_text("key", "", 10).unwrap_err().problem,
            "must not be empty"
        );
        assert!(check_chars("value", "", 10).is_ok());
        let e = check_list("schema_ids", &["ok".into(), "b\0d".into()], 10).unwrap_err();
        assert_eq!(e.field, "schema_ids[1]");
    }
}
