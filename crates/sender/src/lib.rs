//! The sender: consumes `{prefix}.deliveries`, POSTs each delivery, records every
//! attempt, retries through the delay queues what the webhook's policy allows, and
//! dead-letters the rest with the reason. A message from the router may carry several
//! deliveries (`batch`); each is still sent and settled on its own.
//!
//! Architecture invariant: a delivery message is acked only after its outcome is
//! committed and any follow-up message (retry or dead letter) is confirmed.

mod acks;
mod admission;
mod batch;
mod batcher;
mod breaker;
mod brokers;
mod consume;
mod disable;
pub mod egress;
pub mod guard;
mod handover;
mod inbound;

pub use disable::WEBHOOK_DISABLED;
pub use request::ClientError;
mod limiter;
mod observe;
mod outcome;
mod policy;
mod recorder;
mod request;
mod shared;
mod sweep;
mod verdict;

use hookrelay_model::shutdown::Shutdown;

pub use shared::{
    BreakerConfig, DEFAULT_CONCURRENCY, DEFAULT_PER_WEBHOOK_CONCURRENCY, ROLE, Sender,
    SenderConfig, SenderError, defaults,
};

impl Sender {
    /// Runs until `shutdown` fires, then lets in-flight deliveries finish (within the
    /// grace period) before closing.
    pub async fn run(&self, shutdown: Shutdown) -> Result<(), SenderError> {
        consume::run(self.clone(), shutdown).await
    }
}
