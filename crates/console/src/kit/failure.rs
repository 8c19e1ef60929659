//! What a page answers when it cannot be shown: the status and a sentence.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use hookrelay_store::StoreError;

use super::api::Refused;
use super::shell::{Look, Surface, bare};

/// An error page: what went wrong, in the page's words.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    message: String,
    surface: Surface,
}

impl Failure {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            surface: Surface::Console,
        }
    }

    /// The same failure, shown as a page of `surface`.
    pub fn on(self, surface: Surface) -> Self {
        Self { surface, ..self }
    }

    pub fn status(&self) -> StatusCode {
        self.status
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
        tracing::warn!(error = %e, "a page's database call failed");
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
        let look = Look {
            surface: self.surface,
            accent: None,
        };
        let body = bare(
            "Error",
            &look,
            html! {
                main.sign-in {
                    h1 { "Something went wrong" }
                    p.error role="alert" { (self.message) }
                    @if let Some((href, label)) = self.surface.home() {
                        p { a href=(href) { (label) } }
                    }
                }
            },
        );
        (self.status, body).into_response()
    }
}
