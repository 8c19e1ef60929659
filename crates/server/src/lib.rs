//! The composition root: [`startup::Application`] builds the roles a process runs
//! (api, router, sender) from [`startup::Settings`] and runs them until stopped, with
//! every task supervised ([`supervise`]); [`api`] is the api role's HTTP app (probes,
//! metrics, ingest, the admin routes, the console, and the OpenAPI document served
//! from the same routers). The `hookrelay` binary turns flags into settings and
//! calls it; tests start the same application in process.

pub mod api;
pub mod startup;
mod supervise;

pub use startup::{Application, Roles, RunError, Settings, StartupError};
