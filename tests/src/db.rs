//! A fresh database per test, cloned from a template built once per schema version.

use hookrelay_store as store;
use tokio_postgres::NoTls;

/// This machine's Postgres, where tests make their databases.
pub const SERVER: &str = "postgres://postgres@127.0.0.1:5432";
pub const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database that is dropped (WITH FORCE) when this is dropped.
pub struct TestDb {
    pub name: String,
    /// The server it is on (`postgres://user@host:port`).
    pub server: String,
    pub url: String,
    /// For the API's and the tests' own statements.
    pub pool: store::DbPool,
    /// For the router and the sender, as `hookrelay serve` gives them.
    pub delivery_pool: store::DbPool,
}

async fn admin(server: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&format!("{server}/postgres"), NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("Postgres must run at {server} (see README: cargo xtask test starts it): {e}")
        });
    tokio::spawn(conn);
    client
}

/// The template's name changes whenever a migration changes.
fn template_name() -> String {
    format!("hookrelay_tpl_{:016x}", store::schema_fingerprint())
}

async fn ensure_template(server: &str) -> String {
    let name = template_name();
    let client = admin(server).await;
    // Tests run as parallel processes: one builds, the others wait on the lock.
    client
        .execute("SELECT pg_advisory_lock(7411)", &[])
        .await
        .expect("advisory lock");
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .expect("query pg_database")
        .is_some();
    if !exists {
        let building = format!("{name}_building");
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
            .await
            .expect("drop stale template");
        store::migrate(&format!("{server}/{building}"))
            .await
            .expect("migrate template");
        client
            .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}"))
            .await
            .expect("rename template");
    }
    client
        .execute("SELECT pg_advisory_unlock(7411)", &[])
        .await
        .expect("advisory unlock");
    name
}

impl TestDb {
    pub async fn new() -> Self {
        Self::new_on(SERVER).await
    }

    /// A fresh database on `server` (`postgres://user@host:port`), from a template
    /// built there.
    pub async fn new_on(server: &str) -> Self {
        let template = ensure_template(server).await;
        let name = crate::unique_name("t", '_');
        admin(server)
            .await
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
            .expect("create test database");
        let url = format!("{server}/{name}");
        let pool = store::pool(&url, 8, store::Workload::Queries).expect("pool");
        let delivery_pool = store::pool(&url, 8, store::Workload::Delivery).expect("pool");
        // The template's days ahead were made when it was built, maybe days ago:
        // the days around now, as the service's migrate would make them.
        let now = time::OffsetDateTime::now_utc();
        store::partitions::create(
            &pool.get().await.expect("database connection"),
            now - time::Duration::days(2),
            now + time::Duration::days(store::partitions::DAYS_AHEAD),
        )
        .await
        .expect("partitions around now");
        Self {
            name,
            server: server.to_owned(),
            url,
            pool,
            delivery_pool,
        }
    }

    pub async fn client(&self) -> deadpool_postgres::Object {
        self.pool.get().await.expect("database connection")
    }
}

/// Drops a database of this machine's Postgres from outside any runtime.
pub fn drop_database(name: &str) {
    drop_database_on(SERVER, name);
}

/// Drops a database of `server` from outside any runtime (used from `Drop`).
pub fn drop_database_on(server: &str, name: &str) {
    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    let server = server.to_owned();
    crate::block_on_fresh(async move {
        if let Ok((client, conn)) =
            tokio_postgres::connect(&format!("{server}/postgres"), NoTls).await
        {
            tokio::spawn(conn);
            let _ = client.batch_execute(&sql).await;
        }
    });
}

/// A database of this machine's Postgres that a test or bench makes itself (with
/// migrations of its choosing), named `{prefix}_{uuid}` (with the run's tag:
/// [`crate::unique_name`]) and dropped with this value.
pub struct ScratchDb {
    pub name: String,
}

impl ScratchDb {
    pub fn named(prefix: &str) -> Self {
        Self {
            name: crate::unique_name(prefix, '_'),
        }
    }

    pub fn url(&self) -> String {
        format!("{SERVER}/{}", self.name)
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        drop_database(&self.name);
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.pool.close();
        self.delivery_pool.close();
        drop_database_on(&self.server, &self.name);
    }
}

/// A first attempt answered 200, recorded at `started_at`, that leaves its delivery
/// `status` (retry due at `next_attempt_at`, if any): what tests write beside the
/// roles' own records.
pub fn answered_attempt(
    delivery_id: uuid::Uuid,
    started_at: time::OffsetDateTime,
    status: store::deliveries::DeliveryStatus,
    next_attempt_at: Option<time::OffsetDateTime>,
) -> store::deliveries::AttemptRecord {
    store::deliveries::AttemptRecord {
        delivery_id,
        attempt: 1,
        started_at,
        latency_ms: 1.0,
        status_code: Some(200),
        error: None,
        response_snippet: None,
        status,
        next_attempt_at,
        why_failed: None,
    }
}

impl TestDb {
    /// Stores events `e-{md5(i)}` of tenant `acme` for `i` in `from..=to`, received a
    /// millisecond apart, each with one delivery to a one-off URL: tables grown the
    /// way the router grows them, without its statements.
    pub async fn grow(&self, from: i32, to: i32) {
        let template = serde_json::to_value(crate::stack::event(
            "acme",
            "order.created",
            serde_json::json!({}),
        ))
        .expect("event");
        let c = self.client().await;
        // With their keys (V23), as `events::insert_new` and `deliveries::insert`
        // write them; delivery ids time-ordered like the router's UUIDv7s.
        c.execute(
            "WITH k AS (INSERT INTO event_keys (tenant, id, received_at) \
               SELECT 'acme', 'e-' || md5(i::text), now() + i * interval '1 ms' \
               FROM generate_series($1::int, $2::int) i RETURNING tenant, id, received_at) \
             INSERT INTO events (tenant, id, type, occurred_at, received_at, envelope) \
               SELECT tenant, id, 'order.created', now(), received_at, \
                 ($3::jsonb || jsonb_build_object('id', id))::json FROM k",
            &[&from, &to, &template],
        )
        .await
        .expect("grow events");
        c.execute(
            "WITH d AS (SELECT (lpad(to_hex(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint), \
                   12, '0') || '7000' || '8' || lpad(to_hex(i), 15, '0'))::uuid AS id, \
                 'e-' || md5(i::text) AS event_id \
               FROM generate_series($1::int, $2::int) i), \
             k AS (INSERT INTO delivery_targets (tenant, event_id, target, delivery_id) \
               SELECT 'acme', event_id, '00000000-0000-0000-0000-000000000000', id FROM d) \
             INSERT INTO deliveries (id, tenant, event_id, url) \
               SELECT id, 'acme', event_id, 'http://127.0.0.1:9/' FROM d",
            &[&from, &to],
        )
        .await
        .expect("grow deliveries");
    }

    /// The text of `EXPLAIN …` (or any one-column statement) run on `c`, lines joined.
    pub async fn plan(c: &tokio_postgres::Client, explain: &str) -> String {
        c.simple_query(explain)
            .await
            .expect("explain")
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}
