//! Every console route and the page that answers it.

use axum::Router;
use axum::routing::{get, post};

use crate::kit;
use crate::state::Console;
use crate::{dead_letters, deliveries, event_types, overview, settings, sign_in, webhooks};

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
        .route(
            "/tenants/{tenant}/webhooks/{key}/keys/{ordering_key}/{action}",
            post(webhooks::act_on_key),
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
        .with_state(console)
        .layer(axum::middleware::from_fn_with_state(
            kit::headers::Policy::console(),
            kit::headers::add,
        ));
    Router::new().nest("/console", pages)
}
