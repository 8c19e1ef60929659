//! The admin API's errors: one type every handler returns with `?`, and one mapping
//! from what failed to the status answered.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hookrelay_model::Invalid;
use hookrelay_model::error::ErrorBody;
use hookrelay_store::{ErrorKind, StoreError};

use crate::AdminError;

/// An error answer: its status and the JSON body every hookrelay API answers with.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody::new(error),
        }
    }

    /// A 400 naming nothing in particular (the query or the body as a whole).
    pub fn bad_request(error: impl Into<String>, field: Option<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            body: ErrorBody {
                error: error.into(),
                field,
            },
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What is our fault: logged with its details, answered without them.
    fn internal(e: &dyn std::error::Error) -> Self {
        tracing::error!(error = %e, "admin call failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; the server log has the details",
        )
    }

    /// A dependency that cannot serve now: logged, answered with what to do.
    fn unavailable(what: &str, e: &dyn std::error::Error) -> Self {
        tracing::warn!(error = %e, "admin call could not reach {what}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{what} is unavailable; retry the request"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            body: ErrorBody::from(&invalid),
        }
    }
}

/// The one mapping of store failures to answers: the kind decides the status. A
/// missing or wrong secret key is `Internal`, never the client's 400.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match (e.kind(), e) {
            (_, StoreError::Invalid(invalid)) => invalid.into(),
            (ErrorKind::Invalid, e) => Self::bad_request(e.to_string(), None),
            (ErrorKind::NotFound, e) => Self::new(StatusCode::NOT_FOUND, e.to_string()),
            (ErrorKind::Conflict, e) => Self::new(StatusCode::CONFLICT, e.to_string()),
            (ErrorKind::Unavailable, e) => Self::unavailable("the database", &e),
            (ErrorKind::Internal, e) => Self::internal(&e),
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Store(e) => e.into(),
            AdminError::Invalid(invalid) => invalid.into(),
            AdminError::NotFound { what } => {
                Self::new(StatusCode::NOT_FOUND, format!("{what} not found"))
            }
            AdminError::Conflict(message) => Self::new(StatusCode::CONFLICT, message),
            AdminError::Broker(e) => Self::unavailable("RabbitMQ", &e),
        }
    }
}
