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

pub mod chart;
mod dead_letters;
mod deliveries;
mod event_types;
mod health;
mod jobs;
pub mod kit;
mod overview;
mod page;
mod routes;
mod session;
mod settings;
mod sign_in;
mod state;
mod tenants;
mod webhooks;

pub use routes::routes;
pub use state::{Console, SESSION_TTL};
