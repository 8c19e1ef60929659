//! Retention with an injected "now": the events past their tenant's period go, with
//! their deliveries and attempts; whole days older than the longest period are
//! dropped, shorter periods delete rows; nothing else is touched. And the history's
//! partitions (V23): de-duplication across days, the conversion of a database
//! holding history.

use hookrelay_admin::retention;
use hookrelay_model::webhook::Target;
use hookrelay_store::deliveries::{self, DeliveryStatus, NewDelivery};
use hookrelay_store::{Cipher, events, partitions, tenants};
use hookrelay_tests::db::{TestDb, answered_attempt};
use hookrelay_tests::stack::event;
use serde_json::json;
use time::{Duration, OffsetDateTime};

/// Stores an event received `age` before `now`, with one delivery and one attempt.
async fn stored(db: &TestDb, tenant: &str, id: &str, now: OffsetDateTime, age: Duration) {
    let mut e = event(tenant, "file_uploaded", json!({}));
    e.id = id.parse().unwrap();
    let client = db.client().await;
    events::insert_new(&client, std::slice::from_ref(&e))
        .await
        .unwrap();
    let delivery = NewDelivery {
        tenant: tenant.to_owned(),
        event_id: id.to_owned(),
        target: Target::Url("http://127.0.0.1:9/x".into()),
        trace_id: None,
        held: false,
        ordering_key: None,
    };
    deliveries::insert(&client, &[delivery], deliveries::Sending::ByCreator)
        .await
        .unwrap();
    let d = &deliveries::for_event(&client, tenant, id).await.unwrap()[0];
    let attempt = answered_attempt(d.id, now - age, DeliveryStatus::Delivered, None);
    deliveries::record_attempts(&client, &[attempt])
        .await
        .unwrap();
    age_events(
        db,
        &format!("tenant = '{tenant}' AND id = '{id}'"),
        now - age,
    )
    .await;
}

/// Moves the events `filter` selects, with their keys, deliveries and attempts, to
/// `at`, into its day (created if missing), as if they had been routed then: their
/// deliveries' ids take the time `at` (UUIDv7's first 48 bits) and keep the rest.
async fn age_events(db: &TestDb, filter: &str, at: OffsetDateTime) {
    let client = db.client().await;
    partitions::create(&client, at, at).await.unwrap();
    let at = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    client
        .batch_execute(&format!(
            "CREATE TEMP TABLE moved AS SELECT id AS old, \
               (substr(hookrelay_uuid_at('{at}')::text, 1, 13) || substr(id::text, 14))::uuid AS new \
               FROM deliveries WHERE (tenant, event_id) IN (SELECT tenant, id FROM events WHERE {filter}); \
             UPDATE delivery_attempts a SET delivery_id = m.new FROM moved m WHERE a.delivery_id = m.old; \
             UPDATE deliveries d SET id = m.new FROM moved m WHERE d.id = m.old; \
             UPDATE delivery_targets t SET delivery_id = m.new FROM moved m WHERE t.delivery_id = m.old; \
             DROP TABLE moved; \
             UPDATE events SET received_at = '{at}' WHERE {filter}; \
             UPDATE event_keys SET received_at = '{at}' WHERE {filter}"
        ))
        .await
        .unwrap();
}

/// The database as a new install has it some time after V23: no converted history
/// (the template's, empty, is dropped), and the days from `from` to now.
async fn days_since(db: &TestDb, from: OffsetDateTime) {
    let client = db.client().await;
    assert_eq!(
        count(db, "SELECT count(*) FROM events_history").await,
        0,
        "nothing was converted"
    );
    client
        .batch_execute(
            "DROP TABLE delivery_attempts_history; DROP TABLE deliveries_history; \
             DROP TABLE events_history",
        )
        .await
        .unwrap();
    // The template's migration made the days from its own time on, the first of them
    // starting then (its history held what came before): made again, every day from
    // `from` is whole, whatever the hour the template was migrated at.
    let days = client
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent IN ('events'::regclass, 'deliveries'::regclass, \
               'delivery_attempts'::regclass)",
            &[],
        )
        .await
        .unwrap();
    for day in days {
        let table: String = day.get(0);
        client
            .batch_execute(&format!("DROP TABLE {table}"))
            .await
            .unwrap();
    }
    partitions::ensure(&client, OffsetDateTime::now_utc())
        .await
        .unwrap();
    partitions::create(&client, from, OffsetDateTime::now_utc())
        .await
        .unwrap();
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

/// The ids of the events stored, in order.
async fn event_ids(db: &TestDb) -> Vec<String> {
    db.client()
        .await
        .query("SELECT id FROM events ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Every history table (and both key tables) holds `n` rows; `why` says which.
async fn each_table_holds(db: &TestDb, n: i64, why: &str) {
    for table in [
        "events",
        "deliveries",
        "delivery_attempts",
        "event_keys",
        "delivery_targets",
    ] {
        let rows = count(db, &format!("SELECT count(*) FROM {table}")).await;
        assert_eq!(rows, n, "{table}: {why}");
    }
}

/// A second round finds nothing left to purge: nothing left half-done.
async fn purges_nothing_more(db: &TestDb, now: OffsetDateTime) {
    assert_eq!(
        retention::purge(&db.pool, now, 30).await.unwrap(),
        retention::Purged::default()
    );
}

#[tokio::test]
async fn purge_deletes_exactly_what_is_past_each_tenants_period() {
    let db = TestDb::new().await;
    let now = OffsetDateTime::now_utc();
    let day = Duration::days(1);
    days_since(&db, now - day * 40).await;
    // acme keeps 7 days; globex the default 30.
    tenants::set_retention(&db.client().await, "acme", Some(7))
        .await
        .unwrap();
    stored(&db, "acme", "a-old", now, day * 8).await;
    stored(&db, "acme", "a-edge", now, day * 7 - Duration::minutes(1)).await;
    stored(&db, "acme", "a-new", now, day).await;
    stored(&db, "globex", "g-old", now, day * 31).await;
    stored(&db, "globex", "g-mid", now, day * 8).await;

    let plan = retention::plan(&db.pool, now, 30).await.unwrap();
    let summary: Vec<_> = plan
        .iter()
        .map(|p| {
            (
                p.tenant.as_str(),
                p.retention_days,
                p.events,
                p.deliveries,
                p.attempts,
            )
        })
        .collect();
    assert_eq!(summary, [("acme", 7, 1, 1, 1), ("globex", 30, 1, 1, 1)]);
    assert_eq!(
        count(&db, "SELECT count(*) FROM events").await,
        5,
        "a plan deletes nothing"
    );

    // acme's old event is deleted as a row; globex's, 31 days old with a period of
    // 30 (the longest), goes with its whole day.
    let purged = retention::purge(&db.pool, now, 30).await.unwrap();
    assert_eq!(purged.rows, [("acme".to_owned(), 1)]);
    let g_old_day = day_of(now - day * 31);
    assert!(
        purged.days.iter().any(|d| d.suffix == g_old_day),
        "{g_old_day} dropped: {:?}",
        purged.days
    );
    let left = event_ids(&db).await;
    assert_eq!(left, ["a-edge", "a-new", "g-mid"]);
    assert_eq!(count(&db, "SELECT count(*) FROM deliveries").await, 3);
    assert_eq!(
        count(&db, "SELECT count(*) FROM delivery_attempts").await,
        3
    );
    purges_nothing_more(&db, now).await;
}

#[tokio::test]
async fn purge_works_through_more_than_one_batch() {
    let db = TestDb::new().await;
    let now = OffsetDateTime::now_utc();
    let n = retention::BATCH as usize * 2 + 7;
    let client = db.client().await;
    // Shorter than the default a tenant with events has: deleted as rows.
    tenants::set_retention(&client, "acme", Some(29))
        .await
        .unwrap();
    stored(&db, "globex", "recent", now, Duration::ZERO).await;
    let batch: Vec<_> = (0..n)
        .map(|i| {
            let mut e = event("acme", "file_uploaded", json!({}));
            e.id = format!("e-{i}").parse().unwrap();
            e
        })
        .collect();
    events::insert_new(&client, &batch).await.unwrap();
    age_events(
        &db,
        "tenant = 'acme'",
        now - Duration::days(29) - Duration::hours(1),
    )
    .await;
    let purged = retention::purge(&db.pool, now, 30).await.unwrap();
    assert_eq!(purged.rows, [("acme".to_owned(), n as u64)]);
    assert_eq!(count(&db, "SELECT count(*) FROM events").await, 1);
    assert_eq!(
        count(&db, "SELECT count(*) FROM event_keys WHERE tenant = 'acme'").await,
        0
    );
}

#[tokio::test]
async fn purge_waits_out_an_event_that_deliveries_are_being_created_for() {
    let db = TestDb::new().await;
    let now = OffsetDateTime::now_utc();
    days_since(&db, now - Duration::days(10)).await;
    // acme's period is shorter than the longest (globex's, the default): its old
    // events are deleted as rows. (A day dropped whole waits for such a transaction
    // in its concurrent detach.)
    tenants::set_retention(&db.client().await, "acme", Some(7))
        .await
        .unwrap();
    stored(&db, "globex", "recent", now, Duration::ZERO).await;
    stored(&db, "acme", "old", now, Duration::days(8)).await;
    // A backfill creating a delivery for "old" holds it as a foreign key's check did.
    let mut client = db.pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let present = events::lock_present(&tx, "acme", &["old", "never-stored"])
        .await
        .unwrap();
    assert_eq!(present.into_iter().collect::<Vec<_>>(), ["old"]);
    let purged = retention::purge(&db.pool, now, 30).await.unwrap();
    assert!(
        purged.rows.is_empty(),
        "the locked event is skipped: {purged:?}"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM events").await, 2);
    tx.commit().await.unwrap();
    let purged = retention::purge(&db.pool, now, 30).await.unwrap();
    assert_eq!(purged.rows, [("acme".to_owned(), 1)]);
    each_table_holds(
        &db,
        1,
        "an event goes with its deliveries, attempts and keys; globex's stays",
    )
    .await;
}

/// Stores an event of ordering key `key` with a delivery sequenced under it to the
/// (ordered) webhook `webhook`; returns the delivery's number in the key.
async fn keyed(db: &TestDb, webhook: uuid::Uuid, id: &str, key: &str) -> Option<i64> {
    let mut e = event("acme", "order.changed", json!({"ordering_key": key}));
    e.id = id.parse().unwrap();
    let client = db.client().await;
    events::insert_new(&client, std::slice::from_ref(&e))
        .await
        .unwrap();
    let delivery = NewDelivery {
        tenant: "acme".to_owned(),
        event_id: id.to_owned(),
        target: Target::Webhook(webhook),
        trace_id: None,
        held: false,
        ordering_key: Some(key.to_owned()),
    };
    deliveries::insert(&client, &[delivery], deliveries::Sending::ByCreator)
        .await
        .unwrap();
    deliveries::for_event(&client, "acme", id).await.unwrap()[0].seq
}

/// A key whose every delivery retention deleted loses its counter too; used again, it
/// starts from 1. A key with deliveries left keeps its counter.
#[tokio::test]
async fn purge_deletes_the_counters_of_keys_it_emptied() {
    let db = TestDb::new().await;
    let webhook = uuid::Uuid::new_v4();
    let now = OffsetDateTime::now_utc();
    tenants::set_retention(&db.client().await, "acme", Some(29))
        .await
        .unwrap();
    stored(&db, "globex", "recent", now, Duration::ZERO).await;
    assert_eq!(keyed(&db, webhook, "old-1", "gone").await, Some(1));
    assert_eq!(keyed(&db, webhook, "old-2", "gone").await, Some(2));
    assert_eq!(keyed(&db, webhook, "kept-1", "kept").await, Some(1));
    age_events(
        &db,
        "id LIKE 'old-%'",
        now - Duration::days(29) - Duration::hours(1),
    )
    .await;
    let purged = retention::purge(&db.pool, now, 30).await.unwrap();
    assert_eq!(purged.rows, [("acme".to_owned(), 2)]);
    let counters = db
        .client()
        .await
        .query("SELECT ordering_key FROM ordering_keys", &[])
        .await
        .unwrap();
    let names: Vec<String> = counters.iter().map(|r| r.get(0)).collect();
    assert_eq!(names, ["kept"]);
    assert_eq!(keyed(&db, webhook, "new-1", "gone").await, Some(1));
    assert_eq!(keyed(&db, webhook, "kept-2", "kept").await, Some(2));
}

/// The name of the day partition of `at`'s day, without its table: `pYYYYMMDD`.
fn day_of(at: OffsetDateTime) -> String {
    format!("p{}", at.date()).replace('-', "")
}

async fn table_exists(db: &TestDb, table: &str) -> bool {
    db.client()
        .await
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .unwrap()
        .get(0)
}

/// A day older than the longest period goes whole: its three partitions are
/// detached and dropped, and its events' and deliveries' keys deleted; the next day
/// is untouched.
#[tokio::test]
async fn retention_drops_a_day_past_the_longest_period_whole_with_its_keys() {
    let db = TestDb::new().await;
    let now = OffsetDateTime::now_utc();
    days_since(&db, now - Duration::days(40)).await;
    let old = now - Duration::days(35);
    stored(&db, "globex", "old-1", now, Duration::days(35)).await;
    stored(&db, "globex", "old-2", now, Duration::days(35)).await;
    stored(&db, "globex", "kept", now, Duration::days(10)).await;
    let day = day_of(old);
    for table in ["events", "deliveries", "delivery_attempts"] {
        assert!(table_exists(&db, &format!("{table}_{day}")).await);
    }
    assert_eq!(
        count(&db, &format!("SELECT count(*) FROM events_{day}")).await,
        2
    );

    let purged = retention::purge(&db.pool, now, 30).await.unwrap();
    assert!(purged.rows.is_empty(), "no row deleted: {purged:?}");
    assert!(purged.days.iter().any(|d| d.suffix == day), "{purged:?}");
    for table in ["events", "deliveries", "delivery_attempts"] {
        assert!(
            !table_exists(&db, &format!("{table}_{day}")).await,
            "{table}_{day} is dropped"
        );
    }
    each_table_holds(&db, 1, "only the kept event's rows are left").await;
    assert!(table_exists(&db, &format!("events_{}", day_of(now - Duration::days(10)))).await);
    purges_nothing_more(&db, now).await;
}

/// A tenant whose period is shorter than the longest loses its rows older than its
/// period, deleted one by one in their days; the days stay, with the other tenants'
/// rows and its own newer ones.
#[tokio::test]
async fn retention_of_a_shorter_period_deletes_only_that_tenants_old_rows() {
    let db = TestDb::new().await;
    let now = OffsetDateTime::now_utc();
    days_since(&db, now - Duration::days(12)).await;
    tenants::set_retention(&db.client().await, "acme", Some(5))
        .await
        .unwrap();
    stored(&db, "acme", "a-old", now, Duration::days(9)).await;
    stored(&db, "acme", "a-new", now, Duration::days(4)).await;
    stored(&db, "globex", "g-old", now, Duration::days(9)).await;

    let purged = retention::purge(&db.pool, now, 30).await.unwrap();
    assert_eq!(purged.rows, [("acme".to_owned(), 1)]);
    assert!(purged.days.is_empty(), "{purged:?}");
    let day = day_of(now - Duration::days(9));
    assert!(table_exists(&db, &format!("events_{day}")).await);
    let left = event_ids(&db).await;
    assert_eq!(left, ["a-new", "g-old"]);
    for table in [
        "deliveries",
        "delivery_attempts",
        "event_keys",
        "delivery_targets",
    ] {
        assert_eq!(
            count(&db, &format!("SELECT count(*) FROM {table}")).await,
            2,
            "{table}"
        );
    }
}

/// De-duplication holds across days: an event id whose first copy was received days
/// ago (in another partition) is refused, and so is a second delivery of an event to
/// a target whose first delivery is in an older day; a repeat inside one batch
/// counts once.
#[tokio::test]
async fn dedup_refuses_an_event_whose_first_copy_is_in_an_older_day() {
    let db = TestDb::new().await;
    let now = OffsetDateTime::now_utc();
    days_since(&db, now - Duration::days(6)).await;
    let webhook = uuid::Uuid::now_v7();
    let mut first = event("acme", "file_uploaded", json!({}));
    first.id = "evt-dup".parse().unwrap();
    let client = db.client().await;
    assert_eq!(
        events::insert_new(&client, std::slice::from_ref(&first))
            .await
            .unwrap()
            .len(),
        1
    );
    let to_webhook = NewDelivery {
        tenant: "acme".into(),
        event_id: "evt-dup".into(),
        target: Target::Webhook(webhook),
        trace_id: None,
        held: false,
        ordering_key: None,
    };
    deliveries::insert(
        &client,
        std::slice::from_ref(&to_webhook),
        deliveries::Sending::ByCreator,
    )
    .await
    .unwrap();
    age_events(&db, "id = 'evt-dup'", now - Duration::days(5)).await;
    let old_day = day_of(now - Duration::days(5));
    assert_eq!(
        count(&db, &format!("SELECT count(*) FROM events_{old_day}")).await,
        1
    );
    assert_eq!(
        count(&db, &format!("SELECT count(*) FROM deliveries_{old_day}")).await,
        1
    );

    let mut again = first.clone();
    again.payload = json!({"event": "file_uploaded", "data": {"n": 2}});
    let batch = [again.clone(), again];
    assert!(
        events::insert_new(&client, &batch)
            .await
            .unwrap()
            .is_empty(),
        "the id is taken by the copy five days ago"
    );
    assert!(
        deliveries::insert(
            &client,
            &[to_webhook.clone(), to_webhook],
            deliveries::Sending::ByCreator
        )
        .await
        .unwrap()
        .is_empty(),
        "the (event, target) has its delivery five days ago"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM events WHERE id = 'evt-dup'").await,
        1
    );
    assert_eq!(count(&db, "SELECT count(*) FROM deliveries").await, 1);

    // A new id repeated in one batch is stored once, from its first copy.
    let mut one = event("acme", "file_uploaded", json!({}));
    one.id = "evt-twice".parse().unwrap();
    let mut two = one.clone();
    two.payload = json!({"event": "file_uploaded", "data": {"n": 2}});
    let new = events::insert_new(&client, &[one.clone(), two])
        .await
        .unwrap();
    assert_eq!(new.len(), 1);
    let stored = events::find(&client, "acme", "evt-twice").await.unwrap();
    assert_eq!(stored.envelope["payload"]["data"]["n"], 1);
}

/// The conversion (V23) of a database holding history, made with the migrations
/// before it: days of events, each with a delivery to a webhook or a one-off URL and
/// an attempt. Every row is kept, every key filled, de-duplication holds for the
/// converted events, and the sender loads a converted delivery with its event. It
/// prints how long the conversion took per million events
/// (`HOOKRELAY_CONVERSION_EVENTS`, 20,000 by default, and
/// `HOOKRELAY_CONVERSION_BLOB` bytes of payload data each, none by default; the
/// docs' figures are from runs of 1,000,000).
#[tokio::test]
async fn retention_after_the_conversion_of_a_database_with_history_keeps_every_row() {
    let n: i64 = std::env::var("HOOKRELAY_CONVERSION_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    // Bytes of payload data per event (the capacity bench's history has 900).
    let blob: i32 = std::env::var("HOOKRELAY_CONVERSION_BLOB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // A database to convert, made and dropped here.
    let scratch = hookrelay_tests::db::ScratchDb::named("t_conv");
    let url = scratch.url();
    hookrelay_store::migrate_through(&url, Some(partitions::MIGRATION - 1))
        .await
        .unwrap();
    let pool = hookrelay_store::pool(&url, 2, hookrelay_store::Workload::Queries).unwrap();
    let webhook = uuid::Uuid::now_v7();
    let started = std::time::Instant::now();
    pool.get()
        .await
        .unwrap()
        .execute(
            "WITH g AS (SELECT i, now() - interval '6 days' * (1 - i::float8 / $1) AS t \
               FROM generate_series(1::bigint, $1) i), \
             ev AS (INSERT INTO events (tenant, id, type, occurred_at, received_at, envelope) \
               SELECT 'acme', 'old-' || i, 'file_uploaded', t, t, \
                 json_build_object('id', 'old-' || i, 'tenant', 'acme', 'type', 'file_uploaded', \
                   'occurred_at', to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
                   'payload', json_build_object('event', 'file_uploaded', \
                     'data', json_build_object('blob', repeat('x', $3)))) FROM g), \
             d AS (INSERT INTO deliveries (id, tenant, event_id, webhook_id, url, status, published, \
                 attempts, created_at, updated_at) \
               SELECT (lpad(to_hex(floor(extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7000' \
                   || '8' || lpad(to_hex(i), 15, '0'))::uuid, 'acme', 'old-' || i, \
                 CASE WHEN i % 2 = 0 THEN $2::uuid END, \
                 CASE WHEN i % 2 = 1 THEN 'http://127.0.0.1:9/' END, \
                 'delivered', true, 1, t, t FROM g RETURNING id, created_at) \
             INSERT INTO delivery_attempts (delivery_id, attempt, started_at, latency_ms, status_code, outcome) \
               SELECT id, 1, created_at, 12.5, 200, 'delivered' FROM d",
            &[&n, &webhook, &blob],
        )
        .await
        .unwrap();
    let filled = started.elapsed();

    let started = std::time::Instant::now();
    hookrelay_store::migrate(&url).await.unwrap();
    let took = started.elapsed();
    println!(
        "conversion of {n} events ({blob} bytes of payload data each, with {n} deliveries and {n} attempts, over 6 days): {:.2} s \
         ({:.1} s per million events; filling them took {:.2} s)",
        took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / n as f64,
        filled.as_secs_f64()
    );

    let c = pool.get().await.unwrap();
    let one = |sql: &'static str| {
        let c = &c;
        async move { c.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    for (table, sql) in [
        ("events", "SELECT count(*) FROM events"),
        ("deliveries", "SELECT count(*) FROM deliveries"),
        ("attempts", "SELECT count(*) FROM delivery_attempts"),
        ("event keys", "SELECT count(*) FROM event_keys"),
        ("delivery targets", "SELECT count(*) FROM delivery_targets"),
        (
            "converted history",
            "SELECT count(*) FROM ONLY events_history",
        ),
    ] {
        assert_eq!(one(sql).await, n, "{table}");
    }
    assert_eq!(
        one("SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass").await,
        1 + 1 + partitions::DAYS_AHEAD,
        "the history, today from the conversion on, and the days ahead"
    );

    // De-duplication of converted events and deliveries.
    let mut dup = event("acme", "file_uploaded", json!({}));
    dup.id = "old-2".parse().unwrap();
    assert!(events::insert_new(&c, &[dup]).await.unwrap().is_empty());
    let again = NewDelivery {
        tenant: "acme".into(),
        event_id: "old-2".into(),
        target: Target::Webhook(webhook),
        trace_id: None,
        held: false,
        ordering_key: None,
    };
    assert!(
        deliveries::insert(&c, &[again], deliveries::Sending::ByCreator)
            .await
            .unwrap()
            .is_empty()
    );
    // The sender's load finds a converted delivery with its event.
    let converted: uuid::Uuid = c
        .query_one("SELECT id FROM deliveries WHERE event_id = 'old-3'", &[])
        .await
        .unwrap()
        .get(0);
    let jobs = deliveries::send_jobs(&c, &Cipher::none(), &[converted])
        .await
        .unwrap();
    assert_eq!(jobs[&converted].event.id.to_string(), "old-3");
    // New events go to today's partition.
    let mut new = event("acme", "file_uploaded", json!({}));
    new.id = "new-1".parse().unwrap();
    assert_eq!(events::insert_new(&c, &[new]).await.unwrap().len(), 1);
    assert_eq!(one("SELECT count(*) FROM ONLY events_history").await, n);
    drop(c);
    pool.close();
}

/// Without a partition for the day (no default partition), an event is refused as
/// the database being unavailable: transient, so a router holds its batch and tries
/// again rather than dead-lettering it; once the day is created (every migrate and
/// retention round), the same insert stores it.
#[tokio::test]
async fn retention_days_ahead_missing_hold_inserts_as_unavailable_until_created() {
    let db = TestDb::new().await;
    let now = OffsetDateTime::now_utc();
    let today = day_of(now);
    let client = db.client().await;
    client
        .batch_execute(&format!(
            "ALTER TABLE events DETACH PARTITION events_{today}; DROP TABLE events_{today}"
        ))
        .await
        .unwrap();
    let mut e = event("acme", "file_uploaded", json!({}));
    e.id = "evt-early".parse().unwrap();
    let refused = events::insert_new(&client, std::slice::from_ref(&e))
        .await
        .unwrap_err();
    assert!(refused.is_transient(), "{refused}");
    assert!(refused.to_string().contains("no partition"), "{refused}");
    assert_eq!(
        count(&db, "SELECT count(*) FROM event_keys").await,
        0,
        "nothing half-stored"
    );

    assert_eq!(partitions::ensure(&client, now).await.unwrap(), 1);
    assert_eq!(
        events::insert_new(&client, std::slice::from_ref(&e))
            .await
            .unwrap()
            .len(),
        1
    );
}
