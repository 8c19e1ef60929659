//! What a page answers when it cannot be shown: the status and a sentence.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use hookrelay_store::StoreError;

use crate::api::Refused;
use crate::shell::bare;

/// An error page: what went wrong, in the page's words.
#[derive(Debug)]
pub(crate) struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The database cannot be reached now; try again in a moment.",
        )
    }

    pub fn not_yours() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Your token does not open this tenant.",
        )
    }
}

/// What the store could not do is the page's 503; why goes to the log only.
impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        tracing::warn!(error = %e, "a console page's database call failed");
        Self::unavailable()
    }
}

impl From<Refused> for Failure {
    fn from(r: Refused) -> Self {
        Self::new(r.status, r.error)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = bare(
            "Error",
            html! {
                main.sign-in {
                    h1 { "Something went wrong" }
                    p.error role="alert" { (self.message) }
                    p { a href="/console" { "Back to the console" } }
                }
            },
        );
        (self.status, body).into_response()
    }
}
