//! The `hookrelay` binary as a library, so tests can start the same app in-process.
//!
//! - `cli`: the command line, `Cli` and its `Command`s;
//! - `config`: the settings commands share (`Common`, `ServeArgs`), each flag with
//!   its `HOOKRELAY_*` variable (docs/configuration.md);
//! - `telemetry`: log set-up;
//! - `serve`: the flags of `serve` made into the settings of the composition root
//!   (`hookrelay_server`), which builds and runs the roles;
//! - `commands`: the operator subcommands, each with its arguments;
//! - `management`: the RabbitMQ management API client (`hookrelay queues`).
//!
//! Modules depend on each other in one direction: `cli` on `commands` and `config`;
//! `commands`, `serve` and `telemetry` on `config`;
//! `commands` on `management`.

pub mod cli;
pub mod commands;
pub mod config;
pub mod management;
pub mod serve;
pub mod telemetry;
