use std::collections::BTreeMap;

use hookrelay_model::retry::RetryPolicy;
use hookrelay_model::webhook::{Secret, WebhookUpdate};
use hookrelay_store::Cipher;
use hookrelay_store::webhooks::{self};
use hookrelay_store::{self as store, StoreError, environments};
use hookrelay_tests::db::{TestDb, answered_attempt, drop_database};
use hookrelay_tests::stack::webhook;
use hookrelay_tests::wait_until;
use time::OffsetDateTime;

const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[tokio::test]
async fn migrations_create_the_database_and_run_twice_cleanly() {
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    store::migrate(&url)
        .await
        .expect("first run creates and migrates");
    store::migrate(&url).await.expect("second run is a no-op");
    let pool = store::pool(&url, 1, store::Workload::Queries).unwrap();
    let client = pool.get().await.unwrap();
    let tables: Vec<String> = client
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for t in [
        "deliveries",
        "delivery_attempts",
        "environments",
        "events",
        "tenants",
        "webhooks",
    ] {
        assert!(tables.contains(&t.to_owned()), "{t} in {tables:?}");
    }
    drop(client);
    pool.close();
    drop_database(&name);
}

#[tokio::test]
async fn webhooks_round_trip_and_keys_are_unique_per_tenant() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let mut new = webhook("acme", "event_webhook", "https://{{HOST}}/hooks");
    new.event_types = vec!["embed_initialized".into()];
    new.secret = Some(Secret::new("pw"));
    new.retry_on = RetryPolicy::parse(&["timeout", "5xx"]).unwrap();
    let created = webhooks::create(&c, &Cipher::none(), &new).await.unwrap();
    let got = webhooks::get(&c, &Cipher::none(), "acme", "event_webhook")
        .await
        .unwrap();
    assert_eq!(got, created);
    assert_eq!(got.secret.as_ref().unwrap().expose(), "pw");
    assert_eq!(got.retry_on.to_strings(), vec!["timeout", "5xx"]);
    assert_eq!(
        webhooks::get(&c, &Cipher::none(), "acme", &created.id.to_string())
            .await
            .unwrap()
            .key,
        "event_webhook"
    );

    let dup = webhooks::create(
        &c,
        &Cipher::none(),
        &webhook("acme", "event_webhook", "https://x.test/"),
    )
    .await;
    assert!(
        matches!(dup, Err(StoreError::Conflict(ref m)) if m.contains("event_webhook")),
        "{dup:?}"
    );
    webhooks::create(
        &c,
        &Cipher::none(),
        &webhook("globex", "event_webhook", "https://x.test/"),
    )
    .await
    .expect("other tenant may reuse a key");
    assert!(
        matches!(
            webhooks::get(&c, &Cipher::none(), "globex", &created.id.to_string()).await,
            Err(StoreError::NotFound { .. })
        ),
        "never across tenants"
    );

    let renamed = webhooks::update(
        &c,
        &Cipher::none(),
        "acme",
        "event_webhook",
        &WebhookUpdate {
            key: Some("renamed".parse().unwrap()),
            enabled: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(renamed.key, "renamed");
    assert!(!renamed.enabled);
    assert_eq!(
        renamed.disabled_reason.as_deref(),
        Some("disabled by an operator")
    );
    webhooks::delete(&c, "acme", "renamed").await.unwrap();
    assert!(matches!(
        webhooks::get(&c, &Cipher::none(), "acme", "renamed").await,
        Err(StoreError::NotFound { .. })
    ));

    let bad = webhooks::create(&c, &Cipher::none(), &webhook("acme", "k", "ftp://x")).await;
    assert!(
        matches!(bad, Err(StoreError::Invalid(ref m)) if m.field == "url"),
        "{bad:?}"
    );
    let json = serde_json::to_string(&got).unwrap();
    assert!(
        !json.contains("\"pw\""),
        "secrets are never serialized: {json}"
    );
}

#[tokio::test]
async fn environment_variables_merge_and_are_masked_when_shown() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let vars = BTreeMap::from([("HOST".to_owned(), "api.acme.test".to_owned())]);
    environments::set(&c, "acme", "Production", &vars)
        .await
        .unwrap();
    let more = BTreeMap::from([("TOKEN".to_owned(), "tok-123456".to_owned())]);
    let shown = environments::set(&c, "acme", "Production", &more)
        .await
        .unwrap();
    assert_eq!(shown.variables["TOKEN"], "********");
    assert_eq!(shown.variables["HOST"], "********");
    let real = environments::variables(&c, "acme", "Production")
        .await
        .unwrap();
    assert_eq!(real["TOKEN"], "tok-123456");
    assert!(
        environments::variables(&c, "globex", "Production")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn tls_to_postgres_verifies_the_server_and_encrypts() {
    // This machine's Postgres serves TLS with Debian's self-signed certificate for
    // `localhost`; elsewhere there may be none, and then there is nothing to test.
    let ca = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    let admin = TestDb::new().await;
    let ssl: String = admin
        .client()
        .await
        .query_one("SHOW ssl", &[])
        .await
        .unwrap()
        .get(0);
    if ssl != "on" || !std::path::Path::new(ca).exists() {
        eprintln!("skipped: the local Postgres does not serve TLS with {ca}");
        return;
    }
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let verified =
        format!("postgres://postgres@localhost:5432/{name}?sslmode=verify-full&sslrootcert={ca}");
    store::migrate(&verified)
        .await
        .expect("migrate over verified TLS");
    let pool = store::pool(&verified, 1, store::Workload::Queries).unwrap();
    let encrypted: bool = pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(encrypted, "the connection is encrypted");
    pool.close();

    // The certificate names `localhost`: reached as 127.0.0.1 it is refused, so the
    // server's identity is checked, not just the encryption.
    let wrong_name =
        format!("postgres://postgres@127.0.0.1:5432/{name}?sslmode=verify-full&sslrootcert={ca}");
    let err = store::pool(&wrong_name, 1, store::Workload::Queries)
        .unwrap()
        .get()
        .await
        .expect_err("refused");
    let text = format!("{err:?}");
    assert!(
        text.contains("NotValidForName") || text.to_lowercase().contains("certificate"),
        "{text}"
    );

    // No sslmode: plain, as before.
    let plain = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let plain_ssl: bool = store::pool(&plain, 1, store::Workload::Queries)
        .unwrap()
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!plain_ssl);
    drop_database(&name);
}

/// An operator's change that lands while the sender disables the webhook keeps the
/// disable: the update waits on the disable's row lock, then changes only its own
/// fields. (Reading the row first and writing every field back re-enabled it.)
#[tokio::test]
async fn an_update_racing_the_auto_disable_keeps_the_disable() {
    let db = TestDb::new().await;
    let none = Cipher::none();
    let c = db.client().await;
    let created = webhooks::create(&c, &none, &webhook("acme", "racy", "https://x.test/"))
        .await
        .unwrap();

    // The sender's disable, committed only once the update is waiting behind it.
    let mut sender = db.client().await;
    let tx = sender.transaction().await.unwrap();
    webhooks::disable(&tx, created.id, "failing for 5 days")
        .await
        .unwrap()
        .expect("it was enabled");
    let pool = db.pool.clone();
    let update = tokio::spawn(async move {
        let c = pool.get().await.unwrap();
        let change = WebhookUpdate {
            url: Some("https://y.test/".into()),
            ..Default::default()
        };
        webhooks::update(&c, &Cipher::none(), "acme", "racy", &change).await
    });
    wait_until("the update waits on the disable's lock", WAIT, || async {
        let waiting: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        waiting > 0
    })
    .await;
    tx.commit().await.unwrap();

    let updated = update.await.unwrap().unwrap();
    assert_eq!(
        updated.url, "https://y.test/",
        "the operator's change applied"
    );
    assert!(!updated.enabled, "the disable survives: {updated:?}");
    assert_eq!(
        updated.disabled_reason.as_deref(),
        Some("failing for 5 days")
    );
    let announce: bool = c
        .query_one(
            "SELECT announce_disabled FROM webhooks WHERE id = $1",
            &[&created.id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(announce, "the disabling is still to be announced");
}

/// The hot statements are prepared once per connection, and Postgres settles on one
/// generic plan for each after five executions, made for the tables as they are then.
/// Made on empty tables (a new deployment), such a plan scanned every row: the
/// sender's load grew from 0.2 ms to 13.7 ms per call within a minute of a steady
/// 1,000 deliveries/s. On the delivery workload's sessions the generic plans are the
/// index plans whatever the statistics say, so they are planned once (planning each
/// execution instead was a quarter of the hot path's database time).
#[tokio::test]
async fn hot_statements_prepared_on_empty_tables_keep_index_plans_as_the_tables_grow() {
    use hookrelay_store::deliveries::{self, DeliveryStatus};
    let db = TestDb::new().await;
    let c = db.delivery_pool.get().await.unwrap();
    // Batches of ten, as the sender loads and records them under load; nothing is
    // stored yet.
    let missing: Vec<uuid::Uuid> = (0..10).map(|_| uuid::Uuid::now_v7()).collect();
    let records: Vec<_> = missing
        .iter()
        .map(|id| {
            answered_attempt(
                *id,
                OffsetDateTime::now_utc(),
                DeliveryStatus::Delivered,
                None,
            )
        })
        .collect();
    for _ in 0..10 {
        deliveries::send_jobs(&c, &Cipher::none(), &missing)
            .await
            .unwrap();
        deliveries::record_attempts(&c, &records).await.unwrap();
    }
    // The tables grow as a role's first minute would grow them, unanalyzed.
    db.grow(1, 20_000).await;
    let ten: Vec<uuid::Uuid> = c
        .query(
            "SELECT id FROM deliveries ORDER BY event_id DESC LIMIT 10",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        deliveries::send_jobs(&c, &Cipher::none(), &ten)
            .await
            .unwrap()
            .len(),
        10
    );

    let cached = |like: &'static str| {
        let c = &c;
        async move {
            c.query_one(
                "SELECT name, generic_plans FROM pg_prepared_statements \
                 WHERE statement LIKE $1 AND statement NOT LIKE '%pg_prepared_statements%'",
                &[&like],
            )
            .await
            .unwrap()
        }
    };
    let load = cached("%JOIN event_keys k ON%").await;
    let record = cached("WITH input AS (%UPDATE deliveries d%").await;
    for (what, row) in [("the load", &load), ("the record", &record)] {
        let generic: i64 = row.get("generic_plans");
        assert!(generic > 0, "{what} is planned on every execution");
    }
    let ids = ten
        .iter()
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let load_name: String = load.get("name");
    let record_name: String = record.get("name");
    let load_plan = TestDb::plan(
        &c,
        &format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE {load_name}('{{{ids}}}')"),
    )
    .await;
    // Not run: the generic plan is the same whatever the arguments.
    let nulls = ["NULL"; 11].join(", ");
    let record_plan = TestDb::plan(
        &c,
        &format!("EXPLAIN (COSTS OFF) EXECUTE {record_name}({nulls})"),
    )
    .await;
    for (what, plan) in [("load", &load_plan), ("record", &record_plan)] {
        for scan in ["Seq Scan", "Hash Join", "Merge Join"] {
            assert!(
                !plan.contains(scan),
                "the {what} reads whole tables:\n{plan}"
            );
        }
    }
    // Ten rows, each with its event: a few pages each, not the tables' hundreds.
    // Since V23 each row also reads its event's key (`event_keys`: index and heap,
    // about four pages), which leads to the event's one day: ten pages a row here.
    // The first Buffers line is the top node's: the statement's.
    let pages: u64 = load_plan
        .split("shared hit=")
        .nth(1)
        .and_then(|rest| rest.split(|ch: char| !ch.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(
        pages <= 110,
        "the load of ten read {pages} pages:\n{load_plan}"
    );
}

/// A generic plan made while the tables are small could take an index that serves
/// the sender's load only by reading every event of the tenant
/// (`events_by_received`, whose leading column is the tenant too), and nothing
/// planned it again while the table was not analyzed: seen in a 100,000-event
/// burst, 950 ms a load. Since the history is partitioned (V23) the load reaches
/// the event through its key (`event_keys`) with all three columns of `events`' key
/// (tenant, id, received_at), which each of its indexes holds: whichever index a
/// plan takes, it is a look-up of one event in one day. The delivery pool's
/// statements are still prepared again as the tables grow
/// (`store::replan_as_tables_grow`), and the new plan is the same kind.
#[tokio::test]
async fn a_plan_made_on_small_tables_is_replaced_once_they_have_grown() {
    use hookrelay_store::deliveries;
    let db = TestDb::new().await;
    db.grow(1, 300).await;
    let c = db.delivery_pool.get().await.unwrap();
    async fn ten(c: &tokio_postgres::Client) -> Vec<uuid::Uuid> {
        let rows = c
            .query("SELECT id FROM deliveries ORDER BY id LIMIT 10", &[])
            .await
            .unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    }
    async fn load_plan(c: &tokio_postgres::Client) -> (String, String) {
        let name: String = c
            .query_one(
                "SELECT name FROM pg_prepared_statements \
                 WHERE statement LIKE '%JOIN event_keys k ON%' \
                   AND statement NOT LIKE '%pg_prepared_statements%' \
                 ORDER BY prepare_time DESC LIMIT 1",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let plan = TestDb::plan(c, &format!("EXPLAIN EXECUTE {name}(NULL)")).await;
        (name, plan)
    }
    /// Every probe of a day of `events` is by the whole key: each scan's condition
    /// names `received_at` beside the tenant and the id.
    fn point_lookups(plan: &str) {
        let lines: Vec<&str> = plan.lines().collect();
        let mut probes = 0;
        for (i, line) in lines.iter().enumerate() {
            if line.contains(" on events_") {
                probes += 1;
                let cond = lines.get(i + 1).copied().unwrap_or_default();
                for column in ["tenant", "id", "received_at"] {
                    assert!(
                        cond.contains("Index Cond") && cond.contains(&format!("{column} = ")),
                        "{line} is not a look-up by the whole key:\n{plan}"
                    );
                }
            }
        }
        assert!(probes > 0, "no probe of events:\n{plan}");
    }
    let ids = ten(&c).await;
    deliveries::send_jobs(&c, &Cipher::none(), &ids)
        .await
        .unwrap();
    let (first, frozen) = load_plan(&c).await;
    point_lookups(&frozen);

    db.grow(301, 30_000).await;
    store::replan(&db.delivery_pool);
    let ids = ten(&c).await;
    assert_eq!(
        deliveries::send_jobs(&c, &Cipher::none(), &ids)
            .await
            .unwrap()
            .len(),
        10
    );
    let (again, replanned) = load_plan(&c).await;
    assert_ne!(first, again, "prepared, and planned, again");
    point_lookups(&replanned);
    assert!(
        replanned.contains("event_keys_pkey"),
        "the key is found by its primary key:\n{replanned}"
    );
}

/// The router creates its pending deliveries already `published` (it sends them right
/// after its commit, holding no row while they are out) and held ones not (a resume
/// sends those). What a router that takes an event again must send is what was never
/// attempted: pending rows without an attempt, in creation order; not a delivered
/// one, not one whose retry is scheduled, not a held one.
#[tokio::test]
async fn a_router_sends_again_only_deliveries_never_attempted() {
    use hookrelay_model::webhook::Target;
    use hookrelay_store::deliveries::{self, DeliveryStatus, NewDelivery, Sending};
    use hookrelay_store::events;
    let db = TestDb::new().await;
    let event = hookrelay_tests::stack::event("acme", "order.created", serde_json::json!({}));
    let new: Vec<NewDelivery> = (0..5)
        .map(|i| NewDelivery {
            tenant: "acme".into(),
            event_id: event.id.to_string(),
            target: Target::Webhook(uuid::Uuid::now_v7()),
            trace_id: None,
            held: i == 4,
            ordering_key: None,
        })
        .collect();
    let c = db.delivery_pool.get().await.unwrap();
    events::insert_new(&c, std::slice::from_ref(&event))
        .await
        .unwrap();
    let created = deliveries::insert(&c, &new, Sending::ByCreator)
        .await
        .unwrap();
    assert_eq!(created.len(), 5);
    assert!(
        created
            .windows(2)
            .all(|w| w[0].delivery.id < w[1].delivery.id),
        "in creation order"
    );
    assert_eq!(created.iter().filter(|c| c.held).count(), 1);
    assert!(
        deliveries::insert(&c, &new, Sending::ByCreator)
            .await
            .unwrap()
            .is_empty(),
        "each (event, target) once"
    );
    let rows = deliveries::for_event(&c, "acme", &event.id).await.unwrap();
    for row in &rows {
        assert_eq!(
            row.published,
            row.status == DeliveryStatus::Pending,
            "{row:?}"
        );
    }

    // One delivered, one waiting for its retry, two never attempted.
    let attempt = |id, status, next_attempt_at| {
        answered_attempt(id, OffsetDateTime::now_utc(), status, next_attempt_at)
    };
    let ids: Vec<uuid::Uuid> = created.iter().map(|c| c.delivery.id).collect();
    deliveries::record_attempts(
        &c,
        &[
            attempt(ids[0], DeliveryStatus::Delivered, None),
            attempt(
                ids[1],
                DeliveryStatus::Pending,
                Some(OffsetDateTime::now_utc()),
            ),
        ],
    )
    .await
    .unwrap();
    let unsent = deliveries::unsent_of_events(&c, &[("acme", event.id.as_str())])
        .await
        .unwrap();
    assert_eq!(
        unsent.iter().map(|d| d.id).collect::<Vec<_>>(),
        ids[2..4].to_vec()
    );
    assert!(
        deliveries::unsent_of_events(&c, &[("globex", event.id.as_str())])
            .await
            .unwrap()
            .is_empty(),
        "another tenant's event of the same id has none"
    );

    // A backfill's rows are created unpublished, for its reopen-and-publish.
    let other = hookrelay_tests::stack::event("acme", "order.created", serde_json::json!({}));
    events::insert_new(&c, std::slice::from_ref(&other))
        .await
        .unwrap();
    let backfilled = NewDelivery {
        event_id: other.id.to_string(),
        held: false,
        ..new[0].clone()
    };
    deliveries::insert(&c, &[backfilled], Sending::Reopened)
        .await
        .unwrap();
    let rows = deliveries::for_event(&c, "acme", &other.id).await.unwrap();
    assert!(!rows[0].published && rows[0].status == DeliveryStatus::Pending);
}

#[tokio::test]
async fn pooled_sessions_are_planned_for_their_workload_and_never_jit_compile() {
    let db = TestDb::new().await;
    let show = |pool: store::DbPool, setting: &'static str| async move {
        let client = pool.get().await.unwrap();
        let row = client
            .query_one(&format!("SHOW {setting}"), &[])
            .await
            .unwrap();
        row.get::<_, String>(0)
    };
    for pool in [&db.pool, &db.delivery_pool] {
        assert_eq!(show(pool.clone(), "jit").await, "off");
    }
    assert_eq!(
        show(db.pool.clone(), "plan_cache_mode").await,
        "force_custom_plan"
    );
    assert_eq!(show(db.pool.clone(), "enable_seqscan").await, "on");
    assert_eq!(
        show(db.delivery_pool.clone(), "plan_cache_mode").await,
        "force_generic_plan"
    );
    assert_eq!(
        show(db.delivery_pool.clone(), "enable_seqscan").await,
        "off"
    );
    // A URL's own options are kept beside ours.
    let url = format!("{}?options=-c%20statement_timeout%3D4321", db.url);
    let pool = store::pool(&url, 1, store::Workload::Queries).unwrap();
    assert_eq!(show(pool.clone(), "statement_timeout").await, "4321ms");
    assert_eq!(show(pool, "jit").await, "off");
}
