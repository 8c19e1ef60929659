//! Where a bench run's database time went: `pg_stat_statements`' top statements of
//! the run's own database, with planning and execution apart, per call and per row.
//! The extension is the server's to load (docs/performance.md says how); without it
//! the run says so instead of printing nothing.

use serde::Serialize;

use crate::db::ADMIN_URL;

/// One statement's totals over the run.
#[derive(Debug, Clone, Serialize)]
pub struct Statement {
    /// The statement's text, whitespace folded, cut to a readable length.
    pub query: String,
    pub calls: i64,
    pub rows: i64,
    pub exec_ms: f64,
    pub plan_ms: f64,
    /// Shared buffers hit or read.
    pub pages: i64,
    pub wal_records: i64,
}

/// Whether the counters were reset for this run (the extension is there).
pub async fn reset() -> bool {
    let Some(client) = admin().await else {
        return false;
    };
    client
        .batch_execute("SELECT pg_stat_statements_reset()")
        .await
        .is_ok()
}

/// The `n` statements of database `db` with the most time spent (planning and
/// execution), most first.
pub async fn top(db: &str, n: i64) -> Result<Vec<Statement>, String> {
    let client = admin()
        .await
        .ok_or_else(|| "cannot connect to Postgres".to_owned())?;
    let rows = client
        .query(
            "SELECT regexp_replace(s.query, '\\s+', ' ', 'g') AS query, s.calls, s.rows, \
               s.total_exec_time AS exec_ms, s.total_plan_time AS plan_ms, \
               (s.shared_blks_hit + s.shared_blks_read) AS pages, s.wal_records \
             FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
             WHERE d.datname = $1 \
             ORDER BY s.total_exec_time + s.total_plan_time DESC LIMIT $2",
            &[&db, &n],
        )
        .await
        .map_err(|e| {
            format!(
                "pg_stat_statements is not loaded ({e}); see docs/performance.md, \
                 'Profiling the database'"
            )
        })?;
    rows.iter()
        .map(|r| {
            let query: String = r.get("query");
            Ok(Statement {
                query: query.chars().take(110).collect(),
                calls: r.get("calls"),
                rows: r.get("rows"),
                exec_ms: r.get("exec_ms"),
                plan_ms: r.get("plan_ms"),
                pages: r.get("pages"),
                wal_records: r.get("wal_records"),
            })
        })
        .collect()
}

/// The statements as a Markdown table, per call and per row, and the database time
/// per delivery they add up to.
pub fn table(statements: &[Statement], deliveries: usize) -> String {
    let mut out = String::from(
        "| statement | calls | exec ms/call | plan ms/call | rows/call | ms/row | pages/row | WAL records/row |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let mut total_ms = 0.0;
    for s in statements {
        let calls = s.calls.max(1) as f64;
        let ms = s.exec_ms + s.plan_ms;
        total_ms += ms;
        // A statement that returned or changed no row has no cost per row.
        let per_row = |v: f64, digits: usize| match s.rows {
            0 => "-".to_owned(),
            rows => format!("{:.digits$}", v / rows as f64),
        };
        out.push_str(&format!(
            "| `{}` | {} | {:.3} | {:.3} | {:.1} | {} | {} | {} |\n",
            s.query.replace('|', "\\|"),
            s.calls,
            s.exec_ms / calls,
            s.plan_ms / calls,
            s.rows as f64 / calls,
            per_row(ms, 4),
            per_row(s.pages as f64, 1),
            per_row(s.wal_records as f64, 1),
        ));
    }
    if deliveries > 0 {
        out.push_str(&format!(
            "\nthese statements: {:.3} ms of database time per delivery ({deliveries} deliveries)\n",
            total_ms / deliveries as f64
        ));
    }
    out
}

async fn admin() -> Option<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(ADMIN_URL, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(client)
}
