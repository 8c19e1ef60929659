//! The `tenants` table (per-tenant settings) and the retention purge it drives: events
//! go, with their deliveries and attempts, once older than the tenant's retention
//! period. Whole days of history older than the longest period are dropped
//! (`partitions`); a tenant with a shorter period has its older rows deleted here
//! ([`purge_batch`]), and so does every tenant in the converted history
//! (`events_history`, before V23), until the history is dropped whole ([`Horizon`]).

use deadpool_postgres::GenericClient;
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::StoreError;

/// A tenant's settings as stored; `None` means the service-wide default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantSettings {
    pub tenant: String,
    pub retention_days: Option<i32>,
}

pub async fn get(db: &impl GenericClient, tenant: &str) -> Result<TenantSettings, StoreError> {
    let row = db
        .query_opt(
            "SELECT retention_days FROM tenants WHERE id = $1",
            &[&tenant],
        )
        .await?;
    Ok(TenantSettings {
        tenant: tenant.to_owned(),
        retention_days: row
            .map(|r| r.try_get("retention_days"))
            .transpose()?
            .flatten(),
    })
}

/// The longest retention period: a hundred years.
pub const MAX_RETENTION_DAYS: i32 = 36_500;

/// What `retention_days` must be, and the error when it is not.
pub fn retention_out_of_range() -> hookrelay_model::Invalid {
    hookrelay_model::Invalid::new(
        "retention_days",
        format!("must be a whole number of days from 1 to {MAX_RETENTION_DAYS}"),
    )
}

/// A tenant hookrelay knows of: one with webhooks, settings or tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KnownTenant {
    pub tenant: String,
    pub webhooks: i64,
    pub tokens: i64,
    pub retention_days: Option<i32>,
}

/// Every tenant with webhooks, settings or tokens, by name. (Tenants exist
/// implicitly; one that only ever published events is not listed: finding those
/// would read the whole events table.)
/// Whether anything is stored for the tenant: a webhook, settings, a token, an
/// environment or an event. Tenants are not created on their own, so this is what
/// "the tenant exists" means; each is one index probe.
pub async fn exists(db: &impl GenericClient, tenant: &str) -> Result<bool, StoreError> {
    Ok(db
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM webhooks WHERE tenant = $1) \
               OR EXISTS (SELECT 1 FROM tenants WHERE id = $1) \
               OR EXISTS (SELECT 1 FROM api_tokens WHERE tenant = $1) \
               OR EXISTS (SELECT 1 FROM environments WHERE tenant = $1) \
               OR EXISTS (SELECT 1 FROM event_keys WHERE tenant = $1)",
            &[&tenant],
        )
        .await?
        .try_get(0)?)
}

/// An error naming the tenant when nothing is stored for it, so that a mistyped
/// tenant is not taken for an empty one.
pub async fn known(db: &impl GenericClient, tenant: &str) -> Result<(), StoreError> {
    if exists(db, tenant).await? {
        Ok(())
    } else {
        Err(StoreError::not_found(format!(
            "tenant `{tenant}` (nothing is stored for it: no webhooks, events, settings, tokens or environments)"
        )))
    }
}

pub async fn list(db: &impl GenericClient) -> Result<Vec<KnownTenant>, StoreError> {
    let rows = db
        .query(
            "WITH known AS ( \
               SELECT tenant FROM webhooks UNION SELECT id FROM tenants \
               UNION SELECT tenant FROM api_tokens) \
             SELECT k.tenant, \
               (SELECT count(*) FROM webhooks w WHERE w.tenant = k.tenant) AS webhooks, \
               (SELECT count(*) FROM api_tokens a WHERE a.tenant = k.tenant) AS tokens, \
               (SELECT retention_days FROM tenants t WHERE t.id = k.tenant) AS retention_days \
             FROM known k ORDER BY k.tenant",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(KnownTenant {
                tenant: r.try_get("tenant")?,
                webhooks: r.try_get("webhooks")?,
                tokens: r.try_get("tokens")?,
                retention_days: r.try_get("retention_days")?,
            })
        })
        .collect()
}

/// Sets (or, with `None`, clears) a tenant's retention period in days.
pub async fn set_retention(
    db: &impl GenericClient,
    tenant: &str,
    days: Option<i32>,
) -> Result<TenantSettings, StoreError> {
    if days.is_some_and(|d| !(1..=MAX_RETENTION_DAYS).contains(&d)) {
        return Err(retention_out_of_range().into());
    }
    db.execute(
        "INSERT INTO tenants (id, retention_days) VALUES ($1, $2) \
         ON CONFLICT (id) DO UPDATE SET retention_days = EXCLUDED.retention_days",
        &[&tenant, &days],
    )
    .await?;
    get(db, tenant).await
}

/// What retention would delete (or deleted) for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expired {
    pub tenant: String,
    pub retention_days: i32,
    /// Events received before this are expired.
    #[serde(with = "time::serde::rfc3339")]
    pub cutoff: OffsetDateTime,
    pub events: i64,
    pub deliveries: i64,
    pub attempts: i64,
}

/// Every tenant that has events, with its retention period and cutoff at `now`.
pub async fn cutoffs(
    db: &impl GenericClient,
    now: OffsetDateTime,
    default_days: i32,
) -> Result<Vec<(String, i32, OffsetDateTime)>, StoreError> {
    // A skip scan over the events' keys: one probe per tenant, not a full scan (nor
    // one probe per tenant in every day of `events`).
    let rows = db
        .query(
            "WITH RECURSIVE t AS ( \
               (SELECT tenant FROM event_keys ORDER BY tenant LIMIT 1) \
               UNION ALL \
               SELECT (SELECT tenant FROM event_keys WHERE tenant > t.tenant ORDER BY tenant LIMIT 1) \
               FROM t WHERE t.tenant IS NOT NULL) \
             SELECT t.tenant, s.retention_days FROM t LEFT JOIN tenants s ON s.id = t.tenant \
             WHERE t.tenant IS NOT NULL ORDER BY t.tenant",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let tenant: String = r.try_get("tenant")?;
            let days = r
                .try_get::<_, Option<i32>>("retention_days")?
                .unwrap_or(default_days);
            Ok((tenant, days, now - Duration::days(i64::from(days))))
        })
        .collect()
}

/// How far retention reaches at a moment: which days go whole and which tenants'
/// rows are deleted one by one.
#[derive(Debug, Clone)]
pub struct Horizon {
    /// The longest retention period of a tenant with events (the default for
    /// tenants without their own).
    pub longest_days: i32,
    /// Days whose every event was received before this go whole: `now` less the
    /// longest period.
    pub drop_before: OffsetDateTime,
    /// The days that go whole (and any a previous round left half-dropped).
    pub days: Vec<super::partitions::Day>,
    /// The end of the converted history while it is a partition.
    pub history_end: Option<OffsetDateTime>,
    /// Every tenant with events: its period and its cutoff (`now` less its period).
    pub tenants: Vec<(String, i32, OffsetDateTime)>,
}

impl Horizon {
    pub async fn at(
        db: &impl GenericClient,
        now: OffsetDateTime,
        default_days: i32,
    ) -> Result<Self, StoreError> {
        let tenants = cutoffs(db, now, default_days).await?;
        let longest_days = tenants
            .iter()
            .map(|(_, days, _)| *days)
            .max()
            .unwrap_or(default_days);
        let drop_before = now - Duration::days(i64::from(longest_days));
        Ok(Self {
            longest_days,
            drop_before,
            days: super::partitions::expired(db, drop_before).await?,
            history_end: super::partitions::history_end(db).await?,
            tenants,
        })
    }

    /// Before when a tenant's events are deleted row by row ([`purge_batch`]), if at
    /// all: a tenant with a period shorter than the longest, at its cutoff (its rows
    /// older than the longest period go with their days anyway); a tenant at the
    /// longest, only within the converted history. Otherwise its events go with
    /// their day, once the whole day is past its period: an event is kept at most
    /// one day (a partition) longer than its period.
    pub fn rows_before(&self, days: i32, cutoff: OffsetDateTime) -> Option<OffsetDateTime> {
        if days < self.longest_days {
            Some(cutoff)
        } else {
            self.history_end.map(|end| end.min(cutoff))
        }
    }

    /// Before when a tenant's events go, by rows or with their day.
    fn expired_before(&self, days: i32, cutoff: OffsetDateTime) -> Option<OffsetDateTime> {
        let whole = self.days.iter().filter_map(|d| d.ends).max();
        match (self.rows_before(days, cutoff), whole) {
            (Some(rows), Some(whole)) => Some(rows.max(whole)),
            (rows, whole) => rows.or(whole),
        }
    }
}

/// What a purge at `now` would delete, per tenant with anything expired: the events
/// of the days that go whole and those deleted row by row ([`Horizon`]); `cutoff` is
/// before when its events go.
pub async fn plan(
    db: &impl GenericClient,
    now: OffsetDateTime,
    default_days: i32,
) -> Result<Vec<Expired>, StoreError> {
    let horizon = Horizon::at(db, now, default_days).await?;
    let mut plan = Vec::new();
    for (tenant, retention_days, cutoff) in &horizon.tenants {
        let Some(cutoff) = horizon.expired_before(*retention_days, *cutoff) else {
            continue;
        };
        let row = db
            .query_one(
                "WITH e AS (SELECT tenant, id FROM events WHERE tenant = $1 AND received_at < $2), \
                 d AS (SELECT d.id FROM deliveries d JOIN e ON d.tenant = e.tenant AND d.event_id = e.id) \
                 SELECT (SELECT count(*) FROM e) AS events, (SELECT count(*) FROM d) AS deliveries, \
                   (SELECT count(*) FROM delivery_attempts a JOIN d ON a.delivery_id = d.id) AS attempts",
                &[tenant, &cutoff],
            )
            .await?;
        let events: i64 = row.try_get("events")?;
        if events > 0 {
            plan.push(Expired {
                tenant: tenant.clone(),
                retention_days: *retention_days,
                cutoff,
                events,
                deliveries: row.try_get("deliveries")?,
                attempts: row.try_get("attempts")?,
            });
        }
    }
    Ok(plan)
}

/// Deletes up to `batch` of a tenant's events received before `cutoff`, with their
/// deliveries and attempts and their keys in `event_keys` and `delivery_targets`
/// (in the same statement: no foreign key cascades them), and returns how many
/// events went. Rows another purger holds are skipped, so replicas may purge at
/// once. The events are read from the days before `cutoff` only; their deliveries
/// are found by the event in every day (a backfill creates them after the event).
pub async fn purge_batch(
    db: &impl GenericClient,
    tenant: &str,
    cutoff: OffsetDateTime,
    batch: i64,
) -> Result<u64, StoreError> {
    Ok(db
        .execute(
            "WITH doomed AS ( \
               SELECT tenant, id, received_at FROM events WHERE tenant = $1 AND received_at < $2 \
               ORDER BY received_at LIMIT $3 FOR UPDATE SKIP LOCKED), \
             gone AS ( \
               DELETE FROM deliveries d USING doomed \
               WHERE d.tenant = doomed.tenant AND d.event_id = doomed.id RETURNING d.id), \
             attempts AS ( \
               DELETE FROM delivery_attempts a USING gone WHERE a.delivery_id = gone.id), \
             targets AS ( \
               DELETE FROM delivery_targets t USING doomed \
               WHERE t.tenant = doomed.tenant AND t.event_id = doomed.id), \
             keys AS ( \
               DELETE FROM event_keys k USING doomed \
               WHERE k.tenant = doomed.tenant AND k.id = doomed.id) \
             DELETE FROM events e USING doomed \
             WHERE e.tenant = doomed.tenant AND e.id = doomed.id AND e.received_at = doomed.received_at",
            &[&tenant, &cutoff, &batch],
        )
        .await?)
}
