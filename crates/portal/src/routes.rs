//! Every portal route and the page that answers it.

use axum::Router;
use axum::routing::{get, post};
use hookrelay_console::kit::{self, headers};

use crate::state::{Portal, Settings};
use crate::{endpoints, messages, session};

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
