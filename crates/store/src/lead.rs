//! Which router consumes the router queue: the one holding a session-level advisory
//! lock named after the queue, on a connection of its own (docs/delivery-semantics.md,
//! "Ordered webhooks: one router at a time"). A router that dies, or whose connection
//! breaks, lets go of it with its session.

use deadpool_postgres::{ClientWrapper, Object, Pool};

use super::StoreError;

/// The first half of the lock's name: hookrelay's routers, whatever their queue.
const ROUTERS: i32 = 0x686f_6f6b; // "hook"

/// The lock, held for as long as this lives (dropping it closes its connection).
pub struct Lead {
    client: ClientWrapper,
}

/// Takes the lock of `queue` if no one holds it: `None` when another router does.
pub async fn try_take(pool: &Pool, queue: &str) -> Result<Option<Lead>, StoreError> {
    // Out of the pool: the lock lives as long as the session, which must end with us.
    let client = Object::take(pool.get().await?);
    let row = client
        .query_one(
            "SELECT pg_try_advisory_lock($1, hashtext($2))",
            &[&ROUTERS, &queue],
        )
        .await?;
    Ok(row.try_get::<_, bool>(0)?.then_some(Lead { client }))
}

impl Lead {
    /// Whether the lock is still held: its session still answers.
    pub async fn held(&self) -> bool {
        self.client.simple_query("SELECT 1").await.is_ok()
    }
}
