//! The one error of the rules in this crate: a value that is wrong, naming its field;
//! and the JSON body every hookrelay HTTP API answers an error with.

use serde::{Deserialize, Serialize};

/// Invalid input: which field, and what is wrong with it. Every layer above answers
/// it as a client error naming `field`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct Invalid {
    pub field: String,
    pub problem: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// The JSON error body of every hookrelay HTTP API. `field` is present only when the
/// error is about one field: a parameter, a body path (e.g. `retry_on[0]`), or a field
/// of an event (prefixed with the element in a batch, e.g. `[1].tenant`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(
    as = Error,
    examples(
        json!({"error": "limit: must be 1 to 500", "field": "limit"}),
        json!({"error": "webhook `orders` in tenant `acme` not found"}),
    )
))]
pub struct ErrorBody {
    /// What went wrong, for a human.
    pub error: String,
    /// The field (or body path) that was wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorBody {
    /// An error about the request as a whole, or about nothing the client sent.
    pub fn new(error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            field: None,
        }
    }
}

impl From<&Invalid> for ErrorBody {
    fn from(invalid: &Invalid) -> Self {
        Self {
            error: invalid.to_string(),
            field: Some(invalid.field.clone()),
        }
    }
}
