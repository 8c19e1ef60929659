//! The admin API's errors: one type every handler returns with `?`, one mapping from
//! what failed to the status answered, and the OpenAPI description of each answer.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hookrelay_model::Invalid;
use hookrelay_model::error::ErrorBody;
use hookrelay_store::{ErrorKind, StoreError};
use serde_json::{Value, json};
use utoipa::openapi::{self, ContentBuilder, Ref, RefOr, ResponseBuilder};

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

/// Every error answer the OpenAPI document describes, once, under
/// `#/components/responses`. Operations refer to them by the sets below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    BadRequest,
    Unauthorized,
    ForbiddenOtherTenant,
    ForbiddenTenantToken,
    NotFound,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    InternalError,
    ServiceUnavailable,
}

impl Answer {
    pub const ALL: [Answer; 10] = [
        Self::BadRequest,
        Self::Unauthorized,
        Self::ForbiddenOtherTenant,
        Self::ForbiddenTenantToken,
        Self::NotFound,
        Self::Conflict,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::InternalError,
        Self::ServiceUnavailable,
    ];

    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::ForbiddenOtherTenant | Self::ForbiddenTenantToken => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::BadRequest => "BadRequest",
            Self::Unauthorized => "Unauthorized",
            Self::ForbiddenOtherTenant => "ForbiddenOtherTenant",
            Self::ForbiddenTenantToken => "ForbiddenTenantToken",
            Self::NotFound => "NotFound",
            Self::Conflict => "Conflict",
            Self::PayloadTooLarge => "PayloadTooLarge",
            Self::UnsupportedMediaType => "UnsupportedMediaType",
            Self::InternalError => "InternalError",
            Self::ServiceUnavailable => "ServiceUnavailable",
        }
    }

    /// What the answer means, and an example body.
    fn text(self) -> (&'static str, Value) {
        match self {
            Self::BadRequest => (
                "The request is invalid: a path or query parameter, or the body. `field` \
                 names what was wrong when it is one field.",
                json!({"error": "limit: must be 1 to 500", "field": "limit"}),
            ),
            Self::Unauthorized => (
                "`HOOKRELAY_API_TOKEN` is set and the request has no `Authorization: Bearer \
                 <token>`, or a token that is neither the operator's nor a live tenant token.",
                json!({"error": "missing or wrong bearer token"}),
            ),
            Self::ForbiddenOtherTenant => (
                "A tenant token of another tenant was used; or a state-changing request \
                 came from another site's page (`Origin` or `Sec-Fetch-Site`); or, without \
                 `HOOKRELAY_API_TOKEN`, `Host` is not a loopback name.",
                json!({"error": "this token opens the routes of tenant `globex` only"}),
            ),
            Self::ForbiddenTenantToken => (
                "A tenant token was used: this route is for the operator's token only; or a \
                 state-changing request came from another site's page (`Origin` or \
                 `Sec-Fetch-Site`); or, without `HOOKRELAY_API_TOKEN`, `Host` is not a \
                 loopback name.",
                json!({"error": "this token opens the routes of tenant `acme` only"}),
            ),
            Self::NotFound => (
                "Nothing with this id in the tenant.",
                json!({"error": "webhook `orders` in tenant `acme` not found"}),
            ),
            Self::Conflict => (
                "The request conflicts with what is stored.",
                json!({"error": "a webhook with key `orders` already exists in tenant `acme`"}),
            ),
            Self::PayloadTooLarge => (
                "The request body is over the limit.",
                json!({"error": "request body is over the limit of 1048576 bytes"}),
            ),
            Self::UnsupportedMediaType => (
                "A body was sent without `Content-Type: application/json` (so that no web \
                 page can send one from another site).",
                json!({"error": "the request body must be sent with `Content-Type: application/json`"}),
            ),
            Self::InternalError => (
                "A fault on the server's side (a database error, a stored value that does \
                 not read back, a missing or wrong `HOOKRELAY_SECRET_KEY`); the details are \
                 in the server log only.",
                json!({"error": "internal error; the server log has the details"}),
            ),
            Self::ServiceUnavailable => (
                "A dependency cannot serve now (the database, or RabbitMQ for broker-backed \
                 routes), or a tenant token cannot be checked; retrying later is safe.",
                json!({"error": "the database is unavailable; retry the request"}),
            ),
        }
    }

    /// `(status, reference)`: how an operation lists this answer.
    pub fn reference(self) -> (String, RefOr<openapi::Response>) {
        (
            self.status().as_u16().to_string(),
            Ref::from_response_name(self.name()).into(),
        )
    }

    /// `(name, response)`: the component the references point at.
    pub fn component(self) -> (String, RefOr<openapi::Response>) {
        let (description, example) = self.text();
        let content = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Error")))
            .example(Some(example))
            .build();
        let mut response = ResponseBuilder::new()
            .description(description)
            .content("application/json", content);
        if self == Self::Unauthorized {
            let header = openapi::HeaderBuilder::new()
                .schema(Some(
                    openapi::ObjectBuilder::new()
                        .schema_type(openapi::Type::String)
                        .enum_values(Some(["Bearer"])),
                ))
                .description(Some("Always `Bearer`."))
                .build();
            response = response.header("WWW-Authenticate", header);
        }
        (self.name().to_owned(), response.build().into())
    }
}

/// Sets of answers an operation can give, for `responses(...)` in `#[utoipa::path]`;
/// each names the mechanism that gives them.
macro_rules! answer_sets {
    ($($(#[$doc:meta])* $set:ident = [$($answer:ident),+];)*) => {$(
        $(#[$doc])*
        pub struct $set;

        impl utoipa::IntoResponses for $set {
            fn responses() -> BTreeMap<String, RefOr<openapi::Response>> {
                [$(Answer::$answer),+].into_iter().map(Answer::reference).collect()
            }
        }
    )*};
}

answer_sets! {
    /// A route that reads or writes the database.
    Database = [InternalError, ServiceUnavailable];
    /// A route that reaches RabbitMQ.
    Broker = [ServiceUnavailable];
    /// A route that takes a JSON body: it may not parse, or be too large.
    Body = [BadRequest, PayloadTooLarge];
    /// A path or query parameter the handler checks.
    BadParameter = [BadRequest];
    NotFound = [NotFound];
    Conflict = [Conflict];
}
