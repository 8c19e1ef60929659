//! What the exact de-duplication of V23 costs the router (`cargo xtask bench
//! --scenario dedup [--rounds N]`): the same batches (100 events, each with one
//! delivery to a webhook, as `HOOKRELAY_ROUTER_BATCH_SIZE`'s default) inserted by the
//! statements before V23 (unique keys on `events` and `deliveries`, unpartitioned)
//! and by today's (`event_keys` and `delivery_targets` beside the day partitions),
//! each in its own transaction, on two fresh databases; rounds alternate so both see
//! the same machine. The time per event (its insert and its delivery's) and the WAL
//! per event (the server's: other work on it counts too).

use hookrelay_model::Event;
use hookrelay_model::webhook::Target;
use hookrelay_store::deliveries::{self, NewDelivery};
use hookrelay_store::{events, partitions};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

use crate::db::ScratchDb;
use crate::stack::event;

/// One schema's cost.
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    pub schema: String,
    pub events: usize,
    pub us_per_event: f64,
    pub wal_bytes_per_event: f64,
}

/// The statements before V23: unique keys on the tables themselves.
const OLD_EVENTS: &str = "INSERT INTO events (tenant, id, type, session_id, occurred_at, envelope, received_at) \
     SELECT t, id, ty, s, o, e, now() + make_interval(secs => (i - 1) / 1e6) \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], \
                 $5::timestamptz[], $6::json[]) WITH ORDINALITY AS u(t, id, ty, s, o, e, i) \
     ORDER BY i \
     ON CONFLICT (tenant, id) DO NOTHING RETURNING tenant, id";
const OLD_DELIVERIES: &str = "INSERT INTO deliveries (id, tenant, event_id, webhook_id, url, trace_id, status, published, \
       ordering_key, seq) \
     SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[], \
       $6::text[], $7::text[], $8::bool[], $9::text[], $10::int8[]) \
     ON CONFLICT DO NOTHING RETURNING id, tenant, event_id, webhook_id, status";

const BATCHES_PER_ROUND: usize = 10;
const BATCH: usize = 100;

/// `rounds` rounds of ten batches on each schema, after one round that warms the
/// caches and prepared statements.
pub async fn run(rounds: usize) -> Vec<Cost> {
    let mut scratch = Vec::new();
    let mut pools = Vec::new();
    for last in [Some(partitions::MIGRATION - 1), None] {
        let db = ScratchDb::named("t_dedup");
        let url = db.url();
        hookrelay_store::migrate_through(&url, last)
            .await
            .expect("a scratch database");
        scratch.push(db);
        pools.push(
            hookrelay_store::pool(&url, 1, hookrelay_store::Workload::Delivery)
                .expect("a pool on the scratch database"),
        );
    }
    let webhook = uuid::Uuid::now_v7();
    let mut spent = [std::time::Duration::ZERO; 2];
    let mut wal = [0.0f64; 2];
    let mut n = 0usize;
    for round in 0..=rounds {
        for (which, pool) in pools.iter().enumerate() {
            let mut c = pool.get().await.expect("a connection");
            for b in 0..BATCHES_PER_ROUND {
                let batch: Vec<Event> = (0..BATCH)
                    .map(|i| {
                        let mut e = event("acme", "file_uploaded", json!({}));
                        e.id = format!("e-{round}-{b}-{i}").parse().expect("an event id");
                        e
                    })
                    .collect();
                let before = wal_position(&c).await;
                let started = std::time::Instant::now();
                let tx = c.transaction().await.expect("a transaction");
                if which == 0 {
                    insert_before_v23(&tx, &batch, webhook).await;
                } else {
                    insert_now(&tx, &batch, webhook).await;
                }
                tx.commit().await.expect("the batch committed");
                let took = started.elapsed();
                let after = wal_position(&c).await;
                // The first round warms the caches and the prepared statements.
                if round > 0 {
                    spent[which] += took;
                    wal[which] += after - before;
                    n += if which == 0 { batch.len() } else { 0 };
                }
            }
        }
    }
    drop(pools);
    drop(scratch);
    ["before V23 (unique keys)", "V23 (key tables)"]
        .iter()
        .enumerate()
        .map(|(which, label)| Cost {
            schema: (*label).to_owned(),
            events: n,
            us_per_event: spent[which].as_secs_f64() * 1e6 / n as f64,
            wal_bytes_per_event: wal[which] / n as f64,
        })
        .collect()
}

async fn wal_position(c: &deadpool_postgres::Client) -> f64 {
    c.query_one(
        "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::float8",
        &[],
    )
    .await
    .expect("the WAL's position")
    .get(0)
}

/// Each event with one delivery to `webhook`, as the router creates them.
fn deliveries_of(batch: &[Event], webhook: uuid::Uuid) -> Vec<NewDelivery> {
    batch
        .iter()
        .map(|e| NewDelivery {
            tenant: e.tenant.clone(),
            event_id: e.id.to_string(),
            target: Target::Webhook(webhook),
            trace_id: None,
            held: false,
            ordering_key: None,
        })
        .collect()
}

/// Today's statements, as the router runs them.
async fn insert_now(tx: &deadpool_postgres::Transaction<'_>, batch: &[Event], webhook: uuid::Uuid) {
    events::insert_new(tx, batch).await.expect("events stored");
    deliveries::insert(
        tx,
        &deliveries_of(batch, webhook),
        deliveries::Sending::ByCreator,
    )
    .await
    .expect("deliveries stored");
}

/// The statements before V23, with the same values.
async fn insert_before_v23(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &[Event],
    webhook: uuid::Uuid,
) {
    let tenants: Vec<&str> = batch.iter().map(|e| e.tenant.as_str()).collect();
    let ids: Vec<String> = batch.iter().map(|e| e.id.to_string()).collect();
    let types: Vec<&str> = batch.iter().map(|e| e.event_type.as_str()).collect();
    let sessions: Vec<Option<&str>> = batch.iter().map(|_| None).collect();
    let occurred: Vec<OffsetDateTime> = batch.iter().map(|e| e.occurred_at).collect();
    let envelopes: Vec<serde_json::Value> = batch
        .iter()
        .map(|e| serde_json::to_value(e).expect("an envelope"))
        .collect();
    let st = tx.prepare_cached(OLD_EVENTS).await.expect("prepared");
    tx.query(
        &st,
        &[&tenants, &ids, &types, &sessions, &occurred, &envelopes],
    )
    .await
    .expect("events stored");
    let n = batch.len();
    let dids: Vec<uuid::Uuid> = (0..n).map(|_| uuid::Uuid::now_v7()).collect();
    let whs: Vec<Option<uuid::Uuid>> = vec![Some(webhook); n];
    let none: Vec<Option<&str>> = vec![None; n];
    let status: Vec<&str> = vec!["pending"; n];
    let published: Vec<bool> = vec![true; n];
    let seqs: Vec<Option<i64>> = vec![None; n];
    let st = tx.prepare_cached(OLD_DELIVERIES).await.expect("prepared");
    tx.query(
        &st,
        &[
            &dids, &tenants, &ids, &whs, &none, &none, &status, &published, &none, &seqs,
        ],
    )
    .await
    .expect("deliveries stored");
}

/// The costs, as printed.
pub fn table(costs: &[Cost]) -> String {
    let mut out = String::from(
        "| schema | events | µs per event with its delivery | WAL bytes per event |\n|---|---|---|---|\n",
    );
    for c in costs {
        out.push_str(&format!(
            "| {} | {} | {:.1} | {:.0} |\n",
            c.schema, c.events, c.us_per_event, c.wal_bytes_per_event
        ));
    }
    out
}
