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
mod routes;
mod session;
mod state;

pub use routes::routes;
pub use state::{Portal, Settings};
