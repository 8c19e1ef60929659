//! The producer: how events enter hookrelay.
//!
//! - [`Publisher`]: a library for Rust upstreams; returns only once the broker has
//!   confirmed the persistent message.
//! - [`ingest`]: `POST /v1/events` for upstreams that speak HTTP, built on the same
//!   publisher (feature `ingest`).

#[cfg(feature = "ingest")]
pub mod ingest;
mod publisher;

pub use publisher::{PublishError, Publisher};
