//! End-to-end tests: one binary, one module per capability.

mod admin;
mod bench;
mod deploy;
mod ingest;
mod observability;
mod producer;
mod router;
mod sender;
mod store;
