//! The database's work over a window, per delivery: WAL bytes (from the WAL's
//! position, exact), WAL records and syncs (`pg_stat_wal`: the whole server's), and
//! the run database's commits and rows written (`pg_stat_database`), and the rows its
//! tables returned to sequential and to index scans (`pg_stat_user_tables`: a plan
//! that scans a whole table where an index would do shows here). The statistics
//! views lag by up to a second (each backend flushes its counts at most once a
//! second while busy), which a 20 s window hardly sees.

use serde::Serialize;

use crate::TestStack;

/// The counters at one moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DbCounters {
    wal_lsn_bytes: f64,
    wal_records: f64,
    wal_syncs: f64,
    commits: f64,
    rows_written: f64,
    size_bytes: f64,
    seq_rows: f64,
    index_rows: f64,
    maintenance_runs: f64,
    backends: f64,
}

/// What the database did per delivery over a window.
#[derive(Debug, Clone, Serialize)]
pub struct DbPerDelivery {
    pub wal_bytes: f64,
    pub wal_records: f64,
    /// WAL flushes to disk (`fsync` or its kin), the server's in all.
    pub wal_syncs: f64,
    pub commits: f64,
    /// Rows inserted, updated and deleted.
    pub rows_written: f64,
    /// Growth of the run database on disk (tables, indexes, TOAST; not the WAL).
    pub stored_bytes: f64,
    /// Rows read by sequential scans of the run database's tables.
    pub seq_rows_read: f64,
    /// Rows fetched through indexes.
    pub index_rows_read: f64,
    /// Autovacuum and autoanalyze runs on the run database's tables over the
    /// window (a count, not per delivery): small tables that grow fast are
    /// vacuumed and analysed again and again.
    pub maintenance_runs: f64,
    /// Connections to the run database at the window's end (a count, not per
    /// delivery): the roles' pools as they open.
    pub backends: f64,
}

impl DbCounters {
    pub(crate) async fn take(stack: &TestStack) -> Self {
        let db = stack.db.client().await;
        let row = db
            .query_one(
                "SELECT (pg_current_wal_lsn() - '0/0')::float8, w.wal_records::float8, \
                   w.wal_sync::float8, d.xact_commit::float8, \
                   (d.tup_inserted + d.tup_updated + d.tup_deleted)::float8, \
                   pg_database_size(current_database())::float8, \
                   (SELECT COALESCE(sum(seq_tup_read), 0)::float8 FROM pg_stat_user_tables), \
                   (SELECT COALESCE(sum(idx_tup_fetch), 0)::float8 FROM pg_stat_user_tables), \
                   (SELECT COALESCE(sum(autovacuum_count + autoanalyze_count), 0)::float8 \
                      FROM pg_stat_user_tables), \
                   d.numbackends::float8 \
                 FROM pg_stat_wal w, pg_stat_database d WHERE d.datname = current_database()",
                &[],
            )
            .await
            .expect("the database's counters");
        Self {
            wal_lsn_bytes: row.get(0),
            wal_records: row.get(1),
            wal_syncs: row.get(2),
            commits: row.get(3),
            rows_written: row.get(4),
            size_bytes: row.get(5),
            seq_rows: row.get(6),
            index_rows: row.get(7),
            maintenance_runs: row.get(8),
            backends: row.get(9),
        }
    }
}

impl DbPerDelivery {
    pub(crate) fn between(
        before: &DbCounters,
        after: &DbCounters,
        deliveries: usize,
    ) -> Option<Self> {
        if deliveries == 0 {
            return None;
        }
        let per = |b: f64, a: f64| (a - b) / deliveries as f64;
        Some(Self {
            wal_bytes: per(before.wal_lsn_bytes, after.wal_lsn_bytes),
            wal_records: per(before.wal_records, after.wal_records),
            wal_syncs: per(before.wal_syncs, after.wal_syncs),
            commits: per(before.commits, after.commits),
            rows_written: per(before.rows_written, after.rows_written),
            stored_bytes: per(before.size_bytes, after.size_bytes),
            seq_rows_read: per(before.seq_rows, after.seq_rows),
            index_rows_read: per(before.index_rows, after.index_rows),
            maintenance_runs: after.maintenance_runs - before.maintenance_runs,
            backends: after.backends,
        })
    }
}

/// The database's work per delivery, step by step.
pub(crate) fn table<'a>(steps: impl Iterator<Item = (f64, Option<&'a DbPerDelivery>)>) -> String {
    let mut out = String::from(
        "\ndatabase work per delivery (over the same window; WAL syncs are the server's):\n\n\
         | offered/s | WAL bytes | WAL records | WAL syncs | commits | rows written | stored bytes | rows seq-scanned | rows by index | autovacuum + autoanalyze runs (in the window) | connections at its end |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (offered, db) in steps {
        let cells = match db {
            Some(d) => format!(
                "{:.0} | {:.2} | {:.3} | {:.2} | {:.2} | {:.0} | {:.1} | {:.1} | {:.0} | {:.0}",
                d.wal_bytes,
                d.wal_records,
                d.wal_syncs,
                d.commits,
                d.rows_written,
                d.stored_bytes,
                d.seq_rows_read,
                d.index_rows_read,
                d.maintenance_runs,
                d.backends
            ),
            None => "- | - | - | - | - | - | - | - | - | -".to_owned(),
        };
        out.push_str(&format!("| {offered:.0} | {cells} |\n"));
    }
    out
}
