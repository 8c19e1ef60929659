//! The hand-over: the sender that settles a sequenced delivery sends the next one of
//! its key itself, with no message through the broker in between, so that one hot
//! key moves at the pace of its receiver (docs/delivery-semantics.md, "Ordered
//! webhooks: the hand-over").
//!
//! The released row is kept (`turns::Handing::Keep`): pending, unpublished, its
//! `next_attempt_at` the end of a lease. Its durable copy is the row: should this
//! sender die before it settles the delivery or publishes a message for it (a retry,
//! a deferral; each marks the row published once its message is confirmed), the turn
//! sweep of any sender publishes it once its `next_attempt_at` has passed: the lease,
//! or the due time a retry's record set. A
//! hand-over takes one of the consumer's slots, so kept deliveries count against the
//! sender's concurrency and a shutdown waits for them; with no slot free, or while
//! stopping, the next delivery is published instead.

use std::sync::Arc;
use std::time::Duration;

use hookrelay_model::shutdown::Shutdown;
use hookrelay_store::deliveries::{Resend, SendJob};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// A delivery this sender kept, with the slot it runs in.
pub(crate) struct Kept {
    pub next: Resend,
    /// Its job, when loaded where it was released (`turns::settle_and_keep`).
    pub job: Option<SendJob>,
    pub slot: OwnedSemaphorePermit,
}

pub(crate) struct HandOver {
    /// The consumer's slots (its concurrency).
    slots: Arc<Semaphore>,
    to_runner: mpsc::UnboundedSender<Kept>,
    shutdown: Shutdown,
    lease: Duration,
}

impl HandOver {
    pub(crate) fn new(
        slots: Arc<Semaphore>,
        shutdown: Shutdown,
        lease: Duration,
    ) -> (Self, mpsc::UnboundedReceiver<Kept>) {
        let (to_runner, kept) = mpsc::unbounded_channel();
        let handover = Self {
            slots,
            to_runner,
            shutdown,
            lease,
        };
        (handover, kept)
    }

    /// A slot to send a kept delivery in: none while stopping, or when every slot is
    /// taken (the next delivery is then published and waits its turn in the queue).
    pub(crate) fn slot(&self) -> Option<OwnedSemaphorePermit> {
        if self.shutdown.is_triggered() || self.to_runner.is_closed() {
            return None;
        }
        Arc::clone(&self.slots).try_acquire_owned().ok()
    }

    pub(crate) fn lease(&self) -> Duration {
        self.lease
    }

    /// Runs the kept delivery as its own task. Should the runner be gone (the
    /// session ends), the row's lease runs out and the sweep publishes it.
    pub(crate) fn run(&self, next: Resend, job: Option<SendJob>, slot: OwnedSemaphorePermit) {
        if self.to_runner.send(Kept { next, job, slot }).is_err() {
            tracing::debug!("session ending: the kept delivery is left to its lease");
        }
    }
}

/// How long a kept delivery is its sender's before the sweep may publish it: the
/// longest its handling takes while the sender lives (a slot waited for, the
/// request, its record), with room to spare.
pub(crate) fn lease(http_timeout: Duration, slow_after: Duration) -> Duration {
    http_timeout + slow_after + Duration::from_secs(10)
}
