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
//! - [`settings`]: retention and environments.
//! - [`chart`]: delivery-health charts (SVG and a table), a pure function of a series.

pub mod chart;
mod dead_letters;
mod deliveries;
mod health;
mod jobs;
pub mod kit;
mod overview;
mod page;
mod session;
mod settings;
mod sign_in;
mod tenants;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::Method;
use axum::routing::{get, post};
use deadpool_postgres::Pool;
use hookrelay_admin::http::AdminState;
use hookrelay_model::access::{Caller, Via};
use serde_json::Value;

use kit::api::{Refused, V1};

/// How long a console session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// What every console handler needs.
#[derive(Clone)]
pub struct Console {
    /// The admin routes with their state, below authentication: the console checks
    /// who may call what ([`kit::api`]).
    v1: V1,
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
            v1: V1::new(api),
            pool: admin.pool.clone(),
            admin,
            operator_token,
            jobs: jobs::Jobs::default(),
        }
    }
}

impl Console {
    pub(crate) async fn get(&self, caller: &Caller, path: &str) -> Result<Value, Refused> {
        self.v1.get(caller, &Via::Console, path).await
    }

    /// A request to `/v1...` as `caller`, marked as the console's (audit log).
    pub(crate) async fn call(
        &self,
        caller: &Caller,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Refused> {
        self.v1
            .call(caller, &Via::Console, method, path, body)
            .await
    }

    /// A pooled connection for the console's own store calls.
    pub(crate) async fn db(&self) -> Result<deadpool_postgres::Object, kit::failure::Failure> {
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
        .route("/assets/kit.css", get(kit::stylesheet))
        .route("/assets/kit.js", get(kit::script))
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
        .route("/settings", get(settings::page))
        .route("/tenants/{tenant}/settings", post(settings::retention))
        .route(
            "/tenants/{tenant}/environments",
            post(settings::set_variable),
        )
        .with_state(console)
        .layer(axum::middleware::from_fn_with_state(
            kit::headers::Policy::console(),
            kit::headers::add,
        ));
    Router::new().nest("/console", pages)
}
