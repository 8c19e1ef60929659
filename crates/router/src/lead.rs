//! One router consumes the router queue at a time, so that events are numbered in
//! the queue's order (docs/delivery-semantics.md, "Ordered webhooks: one router at a
//! time"). A router leads while it holds the routers' lock in Postgres
//! (`hookrelay_store::lead`); the others wait for it. A new leader starts consuming
//! only once the queue has no consumer (`Supervisor::sole`): what the one before left
//! unacked is then back at the head of the queue.

use std::time::Duration;

use hookrelay_model::shutdown::Shutdown;
use hookrelay_store::DbPool;
use hookrelay_store::lead::{self, Lead};

/// How often a waiting router asks for the lock, and a leading one checks it has it.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Waits until this router holds the lock of `queue`; `None` at shutdown.
pub(crate) async fn take(pool: &DbPool, queue: &str, shutdown: &mut Shutdown) -> Option<Lead> {
    let mut told = false;
    loop {
        match lead::try_take(pool, queue).await {
            Ok(Some(lead)) => return Some(lead),
            Ok(None) if !told => {
                tracing::info!(%queue, "another router consumes the queue; standing by");
                told = true;
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "cannot ask Postgres who consumes the router queue; asking again")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(LOOK_EVERY) => {}
            () = shutdown.wait() => return None,
        }
    }
}

/// Returns when the lock is lost (its connection broke: Postgres restarted, or the
/// network between).
pub(crate) async fn lost(lead: &Lead) {
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        if !lead.held().await {
            return;
        }
    }
}
