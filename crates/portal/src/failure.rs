//! What a portal page answers when it cannot be shown: the kit's failure page
//! without the console's way back, never cached.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hookrelay_console::kit::api::Refused;
use hookrelay_console::kit::failure::Failure;
use hookrelay_console::kit::shell::Surface;
use hookrelay_store::StoreError;

/// A portal page that cannot be shown: the kit's failure page, without the console's
/// way back.
#[derive(Debug)]
pub(crate) struct Problem(Failure);

impl Problem {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self(Failure::new(status, message))
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("No such {what} here."))
    }
}

impl From<Failure> for Problem {
    fn from(f: Failure) -> Self {
        Self(f)
    }
}

impl From<Refused> for Problem {
    fn from(r: Refused) -> Self {
        Self(r.into())
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        no_store(self.0.on(Surface::Portal).into_response())
    }
}

/// Portal pages carry the session in their URLs: never cached.
pub(crate) fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}
