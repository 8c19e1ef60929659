//! The customer portal: `/portal` on the api role, the webhooks page a product
//! embeds (an iframe or a new tab) for its own customers. Built from the console's
//! page components (`hookrelay_console::kit`): the same shell, parts, failures and the
//! same in-process `/v1` caller, as a tenant caller limited to the session's tenant,
//! read-only flag, webhook keys and event types.
//!
//! A session is opened by a single-use link (`/portal/open/{link}`) and carried in
//! the URL of every page and form (`/portal/s/{session}/...`), not in a cookie: a
//! cross-site iframe gets no third-party cookie in current browsers. Every form
//! carries the session's CSRF token too, pages are `no-store` and sent with
//! `Referrer-Policy: same-origin` (no other site sees them), and `frame-ancestors` lists the origins allowed
//! to frame it (docs/portal.md explains the threat model).
//!
//! - [`session`]: opening a link, the session of a request ([`session::Customer`]).
//! - [`endpoints`]: the endpoints with health, create, edit, secret, verify, send an
//!   example, pause, resume, enable, redeliver failed.
//! - [`messages`]: the message log, one event, one delivery with its attempts.

mod endpoints;
mod failure;
mod messages;
mod page;
mod session;

use axum::Router;
use axum::routing::{get, post};
use deadpool_postgres::Pool;
use hookrelay_console::kit::api::V1;
use hookrelay_console::kit::{self, headers};
use hookrelay_model::portal::Theme;

/// The portal's settings (`HOOKRELAY_PORTAL_*`).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The deployment's theme; a tenant's own values win.
    pub theme: Theme,
    /// Origins that may frame the portal (CSP `frame-ancestors` sources); empty:
    /// none may.
    pub frame_ancestors: Vec<String>,
}

/// What every portal handler needs.
#[derive(Clone)]
pub struct Portal {
    v1: V1,
    pool: Pool,
    theme: Theme,
}

impl Portal {
    /// `v1`: the `/v1` routes below authentication, as the console gets them.
    pub fn new(v1: axum::Router, pool: Pool, settings: &Settings) -> Self {
        Self {
            v1: V1::new(v1),
            pool,
            theme: settings.theme.clone(),
        }
    }
}

/// Every portal route, under `/portal`, with its security headers.
pub fn routes(portal: Portal, settings: &Settings) -> Router {
    let pages = Router::new()
        .route("/assets/kit.css", get(kit::stylesheet))
        .route("/assets/kit.js", get(kit::script))
        .route("/open/{link}", get(session::open))
        .route("/s/{sid}/", get(endpoints::list))
        .route(
            "/s/{sid}/endpoints",
            get(endpoints::new_form).post(endpoints::create),
        )
        .route(
            "/s/{sid}/endpoints/{key}",
            get(endpoints::show).post(endpoints::update),
        )
        .route("/s/{sid}/endpoints/{key}/{action}", post(endpoints::act))
        .route("/s/{sid}/messages", get(messages::search))
        .route("/s/{sid}/events/{id}", get(messages::event))
        .route("/s/{sid}/deliveries/{id}", get(messages::delivery))
        .route(
            "/s/{sid}/deliveries/{id}/redeliver",
            post(messages::redeliver),
        )
        .with_state(portal)
        .layer(axum::middleware::from_fn_with_state(
            headers::Policy::framed_by(&settings.frame_ancestors),
            headers::add,
        ));
    Router::new().nest("/portal", pages)
}
