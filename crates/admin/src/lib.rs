//! The operator surface, shared by the admin API (the `api` role) and the `hookrelay`
//! subcommands: both call these functions, so they cannot drift apart.
//!
//! - [`dlq`]: read, replay and purge the dead-letter queue without losing or
//!   reordering what stays in it.
//! - [`redeliver`]: a fresh round of attempts for failed deliveries.
//! - [`catalog`]: writes to the event catalog, checked by the model's rule.
//! - [`backfill`]: the deliveries a webhook missed, for stored events.
//! - [`retention`]: deleting expired events in small batches.
//! - [`stats`]: recent deliveries and dead letters per webhook.
//! - [`http`]: the `/v1/tenants/...`, `/v1/dead-letter` and `/v1/stats` routes.

pub mod access;
pub mod backfill;
pub mod catalog;
pub mod dlq;
pub mod http;
pub mod portal;
pub mod queues;
pub mod redeliver;
pub mod retention;
pub mod stats;

use hookrelay_amqp::AmqpError;
use hookrelay_model::Invalid;
use hookrelay_store::StoreError;

/// Why an operator's call failed; the admin API answers each kind with its status
/// (`http::ApiError`), the CLI with its message.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Broker(#[from] AmqpError),
    /// Bad input, naming the field.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("{what} not found")]
    NotFound { what: String },
    /// What was asked does not fit the state of things (e.g. redelivering a delivery
    /// that has not failed).
    #[error("{0}")]
    Conflict(String),
}

impl From<lapin::Error> for AdminError {
    fn from(e: lapin::Error) -> Self {
        Self::Broker(AmqpError::Broker(e))
    }
}
