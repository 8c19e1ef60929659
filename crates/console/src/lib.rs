//! The operator console: `/console` on the api role. Server-rendered HTML (maud), a
//! stylesheet and a few lines of script embedded in the binary; every page works
//! without script.
//!
//! The console is a client of the admin API, in process: every read and change goes
//! through the same `/v1` route a JSON client calls ([`api`]), with the signed-in
//! caller, so its validation, scopes and errors are the API's. What it adds is the
//! session ([`session`]): sign-in with a token, an HttpOnly SameSite=Strict cookie,
//! and a CSRF token in every form.
//!
//! - [`overview`]: per tenant the last hour and day, dead letters, queues, tripped
//!   webhooks.
//! - [`webhooks`]: list with health, create, edit, pause, enable, rotate, delete.
//! - [`deliveries`]: search, a delivery's attempts, redeliver.
//! - [`dead_letters`]: grouped, one message, replay and purge after a dry run.
//! - [`event_types`]: the event catalog, read-only.
//! - [`settings`]: retention and environments.
//! - [`chart`]: delivery-health charts (SVG and a table), a pure function of a series.

mod api;
pub mod chart;
mod dead_letters;
mod deliveries;
mod event_types;
mod failure;
mod health;
mod jobs;
mod overview;
mod page;
mod session;
mod settings;
mod shell;
mod sign_in;
mod tenants;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use deadpool_postgres::Pool;
use hookrelay_admin::http::AdminState;

/// How long a console session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// What every console handler needs.
#[derive(Clone)]
pub struct Console {
    /// The admin routes with their state, below authentication: the console checks
    /// who may call what ([`api`]).
    api: Router,
    admin: AdminState,
    pool: Pool,
    /// `HOOKRELAY_API_TOKEN`; none: the API is open on loopback and signing in
    /// takes no token.
    operator_token: Option<Arc<str>>,
    jobs: jobs::Jobs,
}

impl Console {
    pub fn new(api: Router, admin: AdminState, operator_token: Option<Arc<str>>) -> Self {
        Self {
            api,
            pool: admin.pool.clone(),
            admin,
            operator_token,
            jobs: jobs::Jobs::default(),
        }
    }
}

impl Console {
    /// A pooled connection for the console's own store calls.
    pub(crate) async fn db(&self) -> Result<deadpool_postgres::Object, failure::Failure> {
        self.pool
            .get()
            .await
            .map_err(|e| hookrelay_store::StoreError::from(e).into())
    }
}

/// Every console route, under `/console`.
pub fn routes(console: Console) -> Router {
    let pages = Router::new()
        .route("/", get(overview::page))
        .route(
            "/sign-in",
            get(sign_in::sign_in_page).post(sign_in::sign_in),
        )
        .route("/sign-out", post(sign_in::sign_out))
        .route("/assets/console.css", get(stylesheet))
        .route("/assets/console.js", get(script))
        .route("/webhooks", get(webhooks::list))
        .route(
            "/tenants/{tenant}/webhooks",
            get(webhooks::new_form).post(webhooks::create),
        )
        .route(
            "/tenants/{tenant}/webhooks/{key}",
            get(webhooks::show).post(webhooks::update),
        )
        .route(
            "/tenants/{tenant}/webhooks/{key}/{action}",
            post(webhooks::act),
        )
        .route("/deliveries", get(deliveries::search))
        .route("/tenants/{tenant}/deliveries/{id}", get(deliveries::show))
        .route(
            "/tenants/{tenant}/deliveries/{id}/redeliver",
            post(deliveries::redeliver),
        )
        .route("/tenants/{tenant}/events/{id}", get(deliveries::event))
        .route("/dead-letters", get(dead_letters::groups))
        .route("/dead-letters/message/{id}", get(dead_letters::show))
        .route("/dead-letters/jobs/{id}", get(dead_letters::job))
        .route("/dead-letters/{action}", post(dead_letters::act))
        .route("/event-types", get(event_types::list))
        .route("/settings", get(settings::page))
        .route("/tenants/{tenant}/settings", post(settings::retention))
        .route(
            "/tenants/{tenant}/environments",
            post(settings::set_variable),
        )
        .with_state(console);
    Router::new().nest("/console", pages)
}

const CSS: &str = include_str!("../assets/console.css");
const JS: &str = include_str!("../assets/console.js");

async fn stylesheet() -> impl IntoResponse {
    asset("text/css; charset=utf-8", CSS)
}

async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        body,
    )
}
