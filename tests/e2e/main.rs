//! End-to-end tests: one binary, one module per capability.

mod admin;
mod architecture;
mod bench;
mod browser;
mod catalog;
mod chaos;
mod console;
mod consumer;
mod control;
mod demo;
mod deploy;
mod dlq;
mod egress;
mod health;
mod hostile;
mod ingest;
mod observability;
mod ordering;
mod policy;
mod portal;
mod producer;
mod retention;
mod router;
mod security;
mod sender;
mod store;
