//! The `hookrelay` binary as a library, so tests can start the same app in-process.
//!
//! - `config`: every flag and `HOOKRELAY_*` variable (docs/configuration.md);
//! - `telemetry`: log set-up;
//! - `api`: the HTTP app of the api role;
//! - `serve`: wiring of the roles;
//! - `commands`: the operator subcommands.

pub mod api;
pub mod commands;
pub mod config;
pub mod serve;
pub mod telemetry;
