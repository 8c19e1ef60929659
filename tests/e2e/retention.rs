//! Retention with an injected "now": exactly the events past their tenant's period
//! go, with their deliveries and attempts; nothing else is touched.

use hookrelay_admin::retention;
use hookrelay_model::webhook::Target;
use hookrelay_store::deliveries::{self, DeliveryStatus, NewDelivery};
use hookrelay_store::{events, tenants};
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
    client
        .execute(
            "UPDATE events SET received_at = $3 WHERE tenant = $1 AND id = $2",
            &[&tenant, &id, &(now - age)],
        )
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
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn purge_deletes_exactly_what_is_past_each_tenants_period() {
    let db = TestDb::new().await;
    let now = OffsetDateTime::now_utc() + Duration::days(400);
    let day = Duration::days(1);
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

    let deleted = retention::purge(&db.pool, now, 30).await.unwrap();
    assert_eq!(deleted, [("acme".to_owned(), 1), ("globex".to_owned(), 1)]);
    let left: Vec<String> = db
        .client()
        .await
        .query("SELECT id FROM events ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, ["a-edge", "a-new", "g-mid"]);
    assert_eq!(count(&db, "SELECT count(*) FROM deliveries").await, 3);
    assert_eq!(
        count(&db, "SELECT count(*) FROM delivery_attempts").await,
        3
    );
    assert!(
        retention::purge(&db.pool, now, 30)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn purge_works_through_more_than_one_batch() {
    let db = TestDb::new().await;
    let now = OffsetDateTime::now_utc();
    let n = retention::BATCH as usize * 2 + 7;
    let client = db.client().await;
    let batch: Vec<_> = (0..n)
        .map(|i| {
            let mut e = event("acme", "file_uploaded", json!({}));
            e.id = format!("e-{i}").parse().unwrap();
            e
        })
        .collect();
    events::insert_new(&client, &batch).await.unwrap();
    client
        .execute(
            "UPDATE events SET received_at = $1",
            &[&(now - Duration::days(31))],
        )
        .await
        .unwrap();
    let deleted = retention::purge(&db.pool, now, 30).await.unwrap();
    assert_eq!(deleted, [("acme".to_owned(), n as u64)]);
    assert_eq!(count(&db, "SELECT count(*) FROM events").await, 0);
}

#[tokio::test]
async fn purge_waits_out_an_event_that_deliveries_are_being_created_for() {
    let db = TestDb::new().await;
    let now = OffsetDateTime::now_utc() + Duration::days(400);
    stored(&db, "acme", "old", now, Duration::days(31)).await;
    // A backfill creating a delivery for "old" holds it as a foreign key's check did.
    let mut client = db.pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let present = events::lock_present(&tx, "acme", &["old", "never-stored"])
        .await
        .unwrap();
    assert_eq!(present.into_iter().collect::<Vec<_>>(), ["old"]);
    let deleted = retention::purge(&db.pool, now, 30).await.unwrap();
    assert!(
        deleted.iter().all(|(_, n)| *n == 0),
        "the locked event is skipped: {deleted:?}"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM events").await, 1);
    tx.commit().await.unwrap();
    let deleted = retention::purge(&db.pool, now, 30).await.unwrap();
    assert_eq!(deleted, [("acme".to_owned(), 1)]);
    for table in ["events", "deliveries", "delivery_attempts"] {
        assert_eq!(
            count(&db, &format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table}: an event goes with its deliveries and attempts"
        );
    }
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
    assert_eq!(keyed(&db, webhook, "old-1", "gone").await, Some(1));
    assert_eq!(keyed(&db, webhook, "old-2", "gone").await, Some(2));
    assert_eq!(keyed(&db, webhook, "kept-1", "kept").await, Some(1));
    let now = OffsetDateTime::now_utc();
    db.client()
        .await
        .execute(
            "UPDATE events SET received_at = $1 WHERE id LIKE 'old-%'",
            &[&(now - Duration::days(31))],
        )
        .await
        .unwrap();
    let deleted = retention::purge(&db.pool, now, 30).await.unwrap();
    assert_eq!(deleted, [("acme".to_owned(), 2)]);
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
