//! `cargo xtask bench --scenario retention [--rate N] [--day-events N] [--history N]
//! [--window-seconds N]`: what one retention round costs a steady load, and what
//! disk it gives back (issue #32).
//!
//! One stack (router and sender as `hookrelay serve` child processes, fan-out 1,
//! 1 KiB payloads) on a database of whole day partitions: the day before the
//! retention period (30 days, the default) holds `--day-events` events (300,000
//! unless given), the 30 days since `--history` events (1,000,000 unless given),
//! each with its delivery and attempt (the capacity runs' filler). A steady `--rate`
//! (1,500/s unless given: half of this machine's capacity) is offered and read in
//! windows (5 s unless given). After three windows, the round the api role runs
//! (`hookrelay_admin::retention::purge` at now with the default period, on a pool of
//! the api's kind) starts in this process while the load goes on; windows are
//! offered until it has ended, then three more. Printed: each window with its phase
//! (before, during, after the round), the round's duration and what it dropped, the
//! load's rate and p99 during the round against before it, and the disk before and
//! after against what the remaining rows need.
//!
//! What the remaining rows need: after the round, the load and a VACUUM (what
//! autovacuum would do), each table's rows are copied into a fresh table with the
//! same indexes and fillfactor (`deliveries`: 70), in a scratch schema of the run's
//! database, and the copy is measured: the same rows written at once, without dead
//! space; a partitioned table's copy is one table (a day's partition costs a few
//! pages besides). The database's other relations (catalogs) count as they are.
//! The day's partitions go with their files; the key tables (`event_keys`,
//! `delivery_targets`) have the day's rows deleted, whose space a VACUUM makes free
//! for new rows but does not give back.

use std::time::{Duration, Instant};

use hookrelay_admin::retention::{self, Purged};
use hookrelay_store::partitions;
use time::OffsetDateTime;

use crate::bench::Scenario;
use crate::capacity::{
    self, Ceilings, EventSource, Mix, Offer, Rig, Roles, Step, ceiling_line, fill_span, median,
    settle,
};

/// The default retention period (`HOOKRELAY_RETENTION_DAYS`), which the round applies.
const RETENTION_DAYS: i32 = 30;
const PAYLOAD_BYTES: usize = 1024;
const WINDOWS_BEFORE: usize = 3;
const WINDOWS_AFTER: usize = 3;
/// Windows offered while the round runs, at most: the load then stops and the round
/// is waited for.
const WINDOWS_DURING_MAX: usize = 120;
/// The round may cost the load this share of its rate...
const RATE_COST_BOUND: f64 = 0.10;
/// ... and multiply its p99 by this, at most (issue #32).
const P99_FACTOR_BOUND: f64 = 2.0;
/// The disk after the round within this share above what the remaining rows need.
const DISK_BOUND: f64 = 0.10;

#[derive(Debug, Clone)]
pub struct Plan {
    /// Offered events per second.
    pub rate: u32,
    /// Events on the day past the retention period.
    pub day_events: usize,
    /// Events over the 30 days kept.
    pub history: usize,
    pub window: Duration,
}

/// Where a window is against the round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Before,
    /// The window was being offered at some moment of the round.
    During,
    After,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Self::Before => "before",
            Self::During => "during",
            Self::After => "after",
        }
    }
}

pub struct Window {
    pub phase: Phase,
    /// Seconds since the load began, when this window began.
    pub at: f64,
    pub step: Step,
}

pub struct Round {
    /// Seconds since the load began.
    pub at: f64,
    pub seconds: f64,
    pub purged: Result<Purged, String>,
}

/// One table's rows and bytes (every partition's, for a partitioned one).
#[derive(Debug, Clone)]
pub struct TableSize {
    pub table: &'static str,
    pub rows: i64,
    pub bytes: i64,
}

/// The tables' sizes and the database's at one moment.
#[derive(Debug, Clone)]
pub struct Sizes {
    pub tables: Vec<TableSize>,
    pub database: i64,
}

/// The history's tables, and whether each is partitioned by day.
const TABLES: [(&str, bool); 5] = [
    ("events", true),
    ("deliveries", true),
    ("delivery_attempts", true),
    ("event_keys", false),
    ("delivery_targets", false),
];

impl Sizes {
    async fn take(db: &tokio_postgres::Client) -> Self {
        let mut tables = Vec::with_capacity(TABLES.len());
        for (table, partitioned) in TABLES {
            // A partitioned table holds no data of its own: its partitions' sum.
            let bytes = if partitioned {
                format!(
                    "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0)::bigint \
                     FROM pg_inherits WHERE inhparent = '{table}'::regclass"
                )
            } else {
                format!("SELECT pg_total_relation_size('{table}')")
            };
            let row = db
                .query_one(
                    &format!("SELECT (SELECT count(*) FROM {table}), ({bytes})"),
                    &[],
                )
                .await
                .expect("a table's rows and size");
            tables.push(TableSize {
                table,
                rows: row.get(0),
                bytes: row.get(1),
            });
        }
        let database = db
            .query_one("SELECT pg_database_size(current_database())", &[])
            .await
            .expect("the database's size")
            .get(0);
        Self { tables, database }
    }

    fn table_bytes(&self) -> i64 {
        self.tables.iter().map(|t| t.bytes).sum()
    }
}

pub struct Report {
    pub plan: Plan,
    /// The day past the period (`pYYYYMMDD`).
    pub day: String,
    pub fill_seconds: f64,
    pub ceiling: f64,
    pub ceiling_runs: Vec<f64>,
    pub windows: Vec<Window>,
    pub round: Round,
    /// Events the load published (each with one delivery and its attempt).
    pub published: usize,
    pub before: Sizes,
    /// After the round and the load.
    pub after: Sizes,
    /// After a VACUUM of the tables, as autovacuum would run.
    pub vacuumed: Sizes,
    /// Each table's rows copied into a fresh one (see the module's doc).
    pub need: Vec<TableSize>,
}

pub async fn run(plan: &Plan, binary: &std::path::Path) -> Report {
    // As the capacity runs: three ceilings before, two after, the median kept.
    let mut ceilings = Ceilings::default();
    ceilings.measure(3, PAYLOAD_BYTES).await;
    let rig = Rig::new(Mix::One.lanes()).await;
    let (day, fill_seconds) = fill(&rig, plan).await;
    println!(
        "filled {} + {} events with their deliveries and attempts in {fill_seconds:.1} s",
        plan.day_events, plan.history
    );
    let db = rig.stack.db.client().await;
    let before = Sizes::take(&db).await;
    let roles = Roles::start(binary, &rig.stack).await;
    let (windows, round, published) = offer(&rig, &roles, plan).await;
    roles.stop();
    rig.stack.publisher.close().await;
    let after = Sizes::take(&db).await;
    let tables: Vec<&str> = TABLES.iter().map(|(t, _)| *t).collect();
    db.batch_execute(&format!("VACUUM {}", tables.join(", ")))
        .await
        .expect("vacuum");
    let vacuumed = Sizes::take(&db).await;
    eprintln!("copying the remaining rows to measure what they need ...");
    let need = need(&db).await;
    ceilings.measure(2, PAYLOAD_BYTES).await;
    Report {
        plan: plan.clone(),
        day,
        fill_seconds,
        ceiling: median(&ceilings.pipelined),
        ceiling_runs: ceilings.pipelined,
        windows,
        round,
        published,
        before,
        after,
        vacuumed,
        need,
    }
}

/// What each table's rows need: copied at once into a table with the same indexes
/// and fillfactor, in a scratch schema dropped after.
async fn need(db: &tokio_postgres::Client) -> Vec<TableSize> {
    db.batch_execute("CREATE SCHEMA bench_need")
        .await
        .expect("a scratch schema");
    let mut out = Vec::with_capacity(TABLES.len());
    for (table, partitioned) in TABLES {
        // A partitioned table's fillfactor is its partitions' (the newest's).
        let of = if partitioned {
            format!(
                "(SELECT i.inhrelid FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhrelid \
                 WHERE i.inhparent = '{table}'::regclass ORDER BY p.relname DESC LIMIT 1)"
            )
        } else {
            format!("'{table}'::regclass")
        };
        let options: Option<Vec<String>> = db
            .query_one(
                &format!("SELECT reloptions FROM pg_class WHERE oid = {of}"),
                &[],
            )
            .await
            .expect("the table's options")
            .get(0);
        let with = options
            .unwrap_or_default()
            .into_iter()
            .find(|o| o.starts_with("fillfactor="))
            .map(|o| format!(" WITH ({o})"))
            .unwrap_or_default();
        let copy = format!("bench_need.{table}");
        db.batch_execute(&format!(
            "CREATE TABLE {copy} (LIKE {table}){with}; INSERT INTO {copy} SELECT * FROM {table}"
        ))
        .await
        .expect("copy a table");
        let indexes = db
            .query(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1",
                &[&table],
            )
            .await
            .expect("the table's indexes");
        for index in indexes {
            let def: String = index.get(0);
            // `CREATE [UNIQUE] INDEX name ON [ONLY] schema.table USING ...`
            let Some((head, tail)) = def.split_once(" ON ") else {
                continue;
            };
            let Some((_, using)) = tail.split_once(" USING ") else {
                continue;
            };
            db.batch_execute(&format!("{head} ON {copy} USING {using}"))
                .await
                .expect("copy an index");
        }
        let row = db
            .query_one(
                &format!("SELECT count(*), pg_total_relation_size('{copy}') FROM {copy}"),
                &[],
            )
            .await
            .expect("the copy's size");
        out.push(TableSize {
            table,
            rows: row.get(0),
            bytes: row.get(1),
        });
    }
    db.batch_execute("DROP SCHEMA bench_need CASCADE")
        .await
        .expect("drop the scratch schema");
    out
}

/// Fills the expired day and the 30 days since; returns the expired day's suffix and
/// the seconds the fill took.
async fn fill(rig: &Rig, plan: &Plan) -> (String, f64) {
    let started = Instant::now();
    let db = rig.stack.db.client().await;
    let now = OffsetDateTime::now_utc();
    let today = now.replace_time(time::Time::MIDNIGHT);
    // Its every event before now less the period: the first day a round drops whole.
    let expired = today - time::Duration::days(i64::from(RETENTION_DAYS) + 1);
    // The template's partitions are empty, and its converted history ends (and its
    // first day begins) when it was built, maybe today: dropped, so that every day
    // from the expired one on is a whole day, as in a deployment some months old.
    let template = partitions::expired(&db, now + time::Duration::days(365))
        .await
        .expect("the template's partitions");
    partitions::drop_days(&db, &template)
        .await
        .expect("drop the template's partitions");
    partitions::create(
        &db,
        expired,
        now + time::Duration::days(partitions::DAYS_AHEAD),
    )
    .await
    .expect("the days of the history");
    let day_end = expired + time::Duration::days(1);
    let hook = rig.hooks[0];
    fill_span(
        &db,
        hook,
        1,
        plan.day_events,
        expired,
        day_end - time::Duration::seconds(1),
    )
    .await;
    fill_span(
        &db,
        hook,
        plan.day_events as i64 + 1,
        plan.history,
        day_end,
        now,
    )
    .await;
    settle(&db).await;
    let day = format!(
        "p{:04}{:02}{:02}",
        expired.year(),
        u8::from(expired.month()),
        expired.day()
    );
    (day, started.elapsed().as_secs_f64())
}

/// Offers the windows before, during and after the round, and reads them.
async fn offer(rig: &Rig, roles: &Roles, plan: &Plan) -> (Vec<Window>, Round, usize) {
    let mut source = EventSource::new(Mix::One, PAYLOAD_BYTES);
    let mut pace = Scenario::new("retention", 0, 1, PAYLOAD_BYTES);
    pace.rate = plan.rate;
    let per_window = (f64::from(plan.rate) * plan.window.as_secs_f64()) as usize;
    let began = Instant::now();
    let mut offers = Vec::new();
    eprintln!(
        "offering {} events/s in windows of {:?} ...",
        plan.rate, plan.window
    );
    for _ in 0..WINDOWS_BEFORE {
        offers.push(Offer::publish(rig, roles, &mut source, &pace, per_window).await);
    }
    eprintln!("a retention round starts ...");
    let pool = rig.stack.db.pool.clone();
    let round_began = Instant::now();
    let round = tokio::spawn(async move {
        let purged = retention::purge(&pool, OffsetDateTime::now_utc(), RETENTION_DAYS).await;
        (purged, round_began.elapsed())
    });
    let mut during = 0;
    while !round.is_finished() && during < WINDOWS_DURING_MAX {
        offers.push(Offer::publish(rig, roles, &mut source, &pace, per_window).await);
        during += 1;
    }
    let (purged, took) = round.await.expect("the round's task");
    eprintln!("the round took {:.1} s: {purged:?}", took.as_secs_f64());
    let round_ended = round_began + took;
    for _ in 0..WINDOWS_AFTER {
        offers.push(Offer::publish(rig, roles, &mut source, &pace, per_window).await);
    }
    let steps = capacity::read_offers(rig, &offers, Duration::from_secs(30)).await;
    let windows = offers
        .iter()
        .zip(steps)
        .map(|(o, step)| {
            let ends = o.started + o.published_in;
            let phase = if ends <= round_began {
                Phase::Before
            } else if o.started >= round_ended {
                Phase::After
            } else {
                Phase::During
            };
            Window {
                phase,
                at: (o.started - began).as_secs_f64(),
                step,
            }
        })
        .collect();
    let round = Round {
        at: (round_began - began).as_secs_f64(),
        seconds: took.as_secs_f64(),
        purged: purged.map_err(|e| e.to_string()),
    };
    (windows, round, per_window * offers.len())
}

/// A phase's delivered rate (the windows' mean) and p99 (the median window's before
/// the round; the worst window's during and after it).
struct PhaseFigures {
    windows: usize,
    delivered_per_sec: f64,
    lowest_per_sec: f64,
    p99_ms: f64,
}

impl PhaseFigures {
    fn of(windows: &[Window], phase: Phase) -> Option<Self> {
        let steps: Vec<&Step> = windows
            .iter()
            .filter(|w| w.phase == phase)
            .map(|w| &w.step)
            .collect();
        if steps.is_empty() {
            return None;
        }
        let rates: Vec<f64> = steps.iter().map(|s| s.figures.delivered_per_sec).collect();
        let p99s: Vec<f64> = steps.iter().map(|s| s.figures.p99_ms).collect();
        Some(Self {
            windows: steps.len(),
            delivered_per_sec: rates.iter().sum::<f64>() / rates.len() as f64,
            lowest_per_sec: rates.iter().copied().fold(f64::INFINITY, f64::min),
            p99_ms: match phase {
                Phase::Before => median(&p99s),
                Phase::During | Phase::After => p99s.iter().copied().fold(0.0, f64::max),
            },
        })
    }
}

/// The report printed on stdout.
pub fn table(r: &Report) -> String {
    let mib = |b: i64| b as f64 / (1024.0 * 1024.0);
    let mut out = format!(
        "history: {} events on the day past the period ({}) and {} over the 30 days kept, each with its delivery and attempt (filled in {:.0} s)\n{}\n\n",
        r.plan.day_events,
        r.day,
        r.plan.history,
        r.fill_seconds,
        ceiling_line(
            "broker ceiling (pipelined confirms, multiple acks)",
            r.ceiling,
            &r.ceiling_runs
        ),
    );
    out.push_str(&format!(
        "retention round (hookrelay_admin::retention::purge, as the api role runs it; period {RETENTION_DAYS} days): began {:.1} s into the load, took {:.1} s; ",
        r.round.at, r.round.seconds
    ));
    match &r.round.purged {
        Ok(p) => {
            let days: Vec<String> = p
                .days
                .iter()
                .map(|d| {
                    format!(
                        "{} (the statistics' estimate: {} events, {} deliveries, {} attempts)",
                        d.suffix, d.events, d.deliveries, d.attempts
                    )
                })
                .collect();
            out.push_str(&format!(
                "dropped {}; rows deleted one by one: {}\n\n",
                if days.is_empty() {
                    "no day".to_owned()
                } else {
                    days.join(", ")
                },
                if p.rows.is_empty() {
                    "none".to_owned()
                } else {
                    format!("{:?}", p.rows)
                }
            ));
        }
        Err(e) => out.push_str(&format!("FAILED: {e}\n\n")),
    }
    out.push_str(
        "| window at s | phase | offered/s | delivered/s | p50 ms | p99 ms | max ms | missing | dup | CPU % postgres / bench | machine busy % |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for w in &r.windows {
        let f = &w.step.figures;
        out.push_str(&format!(
            "| {:.0} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {} | {:.0} / {:.0} | {:.0} |\n",
            w.at,
            w.phase.name(),
            f.offered_per_sec,
            f.delivered_per_sec,
            f.p50_ms,
            f.p99_ms,
            f.max_ms,
            f.missing,
            f.duplicates,
            w.step.postgres.cpu_percent,
            w.step.bench.cpu_percent,
            w.step.machine_busy_percent,
        ));
    }
    let before = PhaseFigures::of(&r.windows, Phase::Before);
    let during = PhaseFigures::of(&r.windows, Phase::During);
    let after = PhaseFigures::of(&r.windows, Phase::After);
    out.push('\n');
    for (name, p) in [
        ("before the round", &before),
        ("during it", &during),
        ("after it", &after),
    ] {
        if let Some(p) = p {
            out.push_str(&format!(
                "{name}: {} windows, delivered {:.0}/s on average (lowest window {:.0}/s), p99 {:.1} ms ({})\n",
                p.windows,
                p.delivered_per_sec,
                p.lowest_per_sec,
                p.p99_ms,
                if name.starts_with("before") {
                    "the median window's"
                } else {
                    "the worst window's"
                }
            ));
        }
    }
    let mut verdicts = Vec::new();
    if let (Some(b), Some(d)) = (&before, &during) {
        let cost = 1.0 - d.delivered_per_sec / b.delivered_per_sec;
        let factor = d.p99_ms / b.p99_ms;
        verdicts.push(format!(
            "rate cost during the round {:.1} % (target < {:.0} %: {}); p99 × {:.2} (target ≤ {P99_FACTOR_BOUND:.0}: {})",
            100.0 * cost,
            100.0 * RATE_COST_BOUND,
            yes(cost < RATE_COST_BOUND),
            factor,
            yes(factor <= P99_FACTOR_BOUND),
        ));
    }
    out.push_str(&verdicts.join("\n"));
    out.push_str(&format!(
        "\n\ndisk (pg_total_relation_size, a partitioned table's partitions summed; the load published {} events meanwhile):\n\n\
         | table | rows before | rows after | rows removed | MiB before | MiB after | MiB after VACUUM | MiB the rows need (a fresh copy) | after VACUUM / need |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        r.published
    ));
    let mut need_total = 0.0;
    for (((b, a), v), n) in r
        .before
        .tables
        .iter()
        .zip(&r.after.tables)
        .zip(&r.vacuumed.tables)
        .zip(&r.need)
    {
        let need = n.bytes as f64;
        need_total += need;
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} |\n",
            b.table,
            b.rows,
            v.rows,
            b.rows + r.published as i64 - v.rows,
            mib(b.bytes),
            mib(a.bytes),
            mib(v.bytes),
            need / (1024.0 * 1024.0),
            v.bytes as f64 / need.max(1.0),
        ));
    }
    // Catalogs and the rest, counted as they are.
    let rest = (r.vacuumed.database - r.vacuumed.table_bytes()) as f64;
    let need_database = need_total + rest;
    let ratio = r.vacuumed.database as f64 / need_database;
    out.push_str(&format!(
        "| the database (pg_database_size) | | | | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} |\n",
        mib(r.before.database),
        mib(r.after.database),
        mib(r.vacuumed.database),
        need_database / (1024.0 * 1024.0),
        ratio,
    ));
    out.push_str(&format!(
        "\nthe database after the round and a VACUUM is {:.1} % above what its rows need (target within {:.0} %: {})\n",
        100.0 * (ratio - 1.0),
        100.0 * DISK_BOUND,
        yes(ratio - 1.0 <= DISK_BOUND)
    ));
    out
}

fn yes(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}
