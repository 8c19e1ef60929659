//! Postgres: the only crate with SQL, and the migrations. One module per table.
//!
//! Architecture invariant: no connection is held across a webhook HTTP call; callers
//! take a client from the pool for one statement or one short transaction.

pub mod audit;
pub mod console;
pub mod crypto;
pub mod deliveries;
pub mod environments;
pub mod event_types;
pub mod events;
pub mod lead;
pub mod partitions;
pub mod pending;
pub mod portal;
pub mod rates;
pub mod stats;
pub mod tenants;
pub mod tokens;
pub mod turns;
pub mod webhooks;

use std::time::Duration;

use backon::ExponentialBuilder;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres_rustls::MakeRustlsConnect;

pub use crypto::Cipher;
pub use deadpool_postgres::Pool as DbPool;

/// Longest pause between tries of work the database could not do for now.
pub const TRANSIENT_RETRY_MAX: Duration = Duration::from_secs(5);

/// Pauses between tries of work that failed for a transient reason
/// ([`StoreError::is_transient`]): 100 ms doubling up to 5 s, for as long as it takes.
pub const TRANSIENT_RETRY: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_millis(100))
    .with_max_delay(TRANSIENT_RETRY_MAX)
    .without_max_times();

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The hot path's statements, prepared once per connection: a query then costs one
/// round trip instead of two (parse, then bind and execute).
pub(crate) async fn prepared(
    db: &impl deadpool_postgres::GenericClient,
    sql: &str,
) -> Result<tokio_postgres::Statement, StoreError> {
    Ok(db.prepare_cached(sql).await?)
}

/// Text as Postgres can store it: a NUL character, which `text` refuses, becomes
/// U+FFFD. For text from outside (response bodies, error messages): one receiver
/// answering with a NUL must not make its attempt unrecordable.
pub fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Advisory lock key held while migrating, so replicas starting together take turns.
const MIGRATION_LOCK: i64 = 0x686f_6f6b_7265_6c61; // "hookrela"

/// What kind of failure a [`StoreError`] is, for whoever answers a client: the one
/// place an HTTP status or an exit code is chosen from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// What was asked is wrong: a client error naming its field.
    Invalid,
    NotFound,
    /// It clashes with what exists (a key taken, a name in use).
    Conflict,
    /// The database cannot serve now; worth retrying later.
    Unavailable,
    /// A fault on our side (configuration, a stored value that does not read back, a
    /// database error that is no client's doing): details for the log only.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Bad input, naming the field.
    #[error(transparent)]
    Invalid(#[from] hookrelay_model::Invalid),
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{0}")]
    Conflict(String),
    /// The database could not be reached or could not serve now; worth retrying.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("no database connection available: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database error: {}", describe(.0))]
    Db(tokio_postgres::Error),
    #[error("database URL is invalid: {0}")]
    BadUrl(String),
    #[error("migration failed: {0}")]
    Migration(String),
    /// A stored secret cannot be opened or sealed (missing or wrong secret key).
    #[error(transparent)]
    Secrets(#[from] crypto::SecretsError),
    /// The database refused a statement for good (shared by every request of a
    /// batch that failed together).
    #[error("{0}")]
    Refused(String),
    /// A stored value that does not read back as what was written.
    #[error("stored {what} is unreadable: {problem}")]
    Corrupt { what: String, problem: String },
    /// The OS random generator failed (a nonce or a secret could not be made).
    #[error("no randomness available: {0}")]
    Randomness(#[from] getrandom::Error),
}

/// A text the database cannot hold (NUL, an invalid byte sequence: SQLSTATE 22021,
/// 22P05) is the client's error, not ours: the safety net behind the model's rules
/// (`hookrelay_model::text`), which refuse such values before any SQL.
impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        match e.code() {
            Some(c)
                if *c == SqlState::CHARACTER_NOT_IN_REPERTOIRE
                    || *c == SqlState::UNTRANSLATABLE_CHARACTER =>
            {
                Self::Invalid(hookrelay_model::Invalid::new(
                    "value",
                    "holds a character that cannot be stored (NUL or another control character)",
                ))
            }
            // A row for a day no partition holds yet (V23: there is no default
            // partition). The api role creates the days ahead; until then the work
            // waits and is tried again, as while the database is away.
            Some(c) if *c == SqlState::CHECK_VIOLATION && partitions::is_missing(&e) => {
                Self::Unavailable(format!(
                    "{}; partitions are created {} days ahead by every migrate and every retention round of the api role",
                    describe(&e),
                    partitions::DAYS_AHEAD
                ))
            }
            _ => Self::Db(e),
        }
    }
}

impl StoreError {
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound { what: what.into() }
    }

    pub fn corrupt(what: impl Into<String>, problem: impl ToString) -> Self {
        Self::Corrupt {
            what: what.into(),
            problem: problem.to_string(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid(_) => ErrorKind::Invalid,
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::Conflict(_) => ErrorKind::Conflict,
            e if e.is_transient() => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }

    /// Errors worth retrying after a pause (the database went away), as opposed to
    /// errors in what was asked.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Pool(_) | Self::Unavailable(_) => true,
            Self::Db(e) => match e.code() {
                None => true,
                // Connection trouble, serialization failures and deadlocks, too many
                // connections, shutdowns: worth another try.
                Some(code) => {
                    let c = code.code();
                    c.starts_with("08")
                        || c.starts_with("40")
                        || c.starts_with("53")
                        || c.starts_with("57P")
                }
            },
            _ => false,
        }
    }
}

/// tokio-postgres's own text is just "db error"; the server's message is what helps.
fn describe(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        let source = std::error::Error::source(e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        return format!("{e}{source}");
    };
    let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
    if let Some(detail) = db.detail() {
        text.push_str(&format!("; {detail}"));
    }
    if let Some(constraint) = db.constraint() {
        text.push_str(&format!("; constraint {constraint}"));
    }
    text
}

/// A database URL as hookrelay understands it: tokio-postgres's settings, plus TLS.
///
/// `sslmode=require`, `verify-ca` or `verify-full` connect over TLS and always verify
/// the server's certificate (system roots, plus `sslrootcert=PATH` if given, as in
/// libpq). Without `sslmode`, or with `prefer`/`disable`, connections are plain.
pub struct DbUrl {
    pub config: tokio_postgres::Config,
    tls: Option<rustls::ClientConfig>,
}

/// Parses a `postgres://` URL; it must name a database.
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    Ok(parse(url)?.config)
}

fn parse(url: &str) -> Result<DbUrl, StoreError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let mut root_cert = None;
    let mut tls = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslrootcert", path)) => root_cert = Some(path.to_owned()),
            Some(("sslmode", "require" | "verify-ca" | "verify-full")) => {
                tls = true;
                kept.push("sslmode=require".to_owned());
            }
            Some(("sslmode", "prefer" | "disable")) => kept.push("sslmode=disable".to_owned()),
            _ => kept.push(pair.to_owned()),
        }
    }
    let plain = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config: tokio_postgres::Config =
        plain.parse().map_err(|e: tokio_postgres::Error| {
            StoreError::BadUrl(format!("{e} in `{}`", redact(url)))
        })?;
    if config.get_dbname().is_none() {
        return Err(StoreError::BadUrl(format!(
            "`{}` names no database (add /hookrelay)",
            redact(url)
        )));
    }
    if !tls {
        config.ssl_mode(tokio_postgres::config::SslMode::Disable);
    }
    let given: Vec<&str> = query
        .split('&')
        .filter_map(|p| p.split_once('=').map(|(k, _)| k))
        .collect();
    network_defaults(&mut config, &given);
    let tls = if tls {
        Some(tls_config(root_cert.as_deref())?)
    } else {
        None
    };
    Ok(DbUrl { config, tls })
}

/// Verifying TLS: the system's roots, plus the PEM certificates of `root_cert`.
fn tls_config(root_cert: Option<&str>) -> Result<rustls::ClientConfig, StoreError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = root_cert {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| StoreError::BadUrl(format!("sslrootcert `{path}`: {e}")))?;
        for cert in certs {
            let cert =
                cert.map_err(|e| StoreError::BadUrl(format!("sslrootcert `{path}`: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| StoreError::BadUrl(format!("sslrootcert `{path}`: {e}")))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::BadUrl(format!("TLS set-up: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Hides the password of a URL for messages.
fn redact(url: &str) -> String {
    hookrelay_model::config::redact_url(url)
}

/// What a pool's sessions run, which decides how Postgres plans for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// The router's and the sender's statements: the same few, thousands of times a
    /// second, each a look-up by key that an index answers.
    Delivery,
    /// The API's, the console's and the CLI's: lists, searches and statistics whose
    /// best plan depends on what is asked.
    Queries,
}

impl Workload {
    /// Settings of every session of a pool for this workload.
    ///
    /// Statements are prepared once per connection ([`prepared`]); after five
    /// executions Postgres settles on one generic plan for each, costed for the
    /// tables as they are then. A role starting on empty tables (a new deployment,
    /// a table autovacuum has not analyzed yet) got sequential scans that grew with
    /// every row: the sender's load read 2,100 pages for 10 rows and took 13.7 ms at
    /// 1,000 deliveries/s.
    ///
    /// `Delivery`: `enable_seqscan=off` and `plan_cache_mode=force_generic_plan`.
    /// Every hot statement looks rows up by a key some index has, so the generic plan
    /// is the index plan whatever the tables' statistics say, and it is planned once
    /// per connection instead of on every execution (left to choose, Postgres kept
    /// planning the statements taking arrays for each execution) (planning was a quarter of the hot path's database time under
    /// `force_custom_plan`: docs/performance.md, 2026-12-04). A statement with no
    /// index to use still scans; the setting only takes the scan's cost off the
    /// table when there is a choice.
    ///
    /// `Queries`: `plan_cache_mode=force_custom_plan`: each execution is planned for
    /// its parameters and the tables as they are; their plans differ (a tenant with
    /// ten events or ten million), and they run far less often.
    ///
    /// Both: `jit=off`. Short queries only: a statement whose estimate crossed
    /// `jit_above_cost` (the per-webhook statistics, once the planner guessed 140
    /// webhooks for a table it had not analyzed) spent 265 ms compiling for a 13 ms
    /// run.
    fn settings(self) -> &'static str {
        match self {
            Self::Delivery => {
                "-c plan_cache_mode=force_generic_plan -c enable_seqscan=off -c jit=off"
            }
            Self::Queries => "-c plan_cache_mode=force_custom_plan -c jit=off",
        }
    }
}

/// The longest a delivery-workload connection keeps a statement's plan.
const REPLAN_EVERY: Duration = Duration::from_secs(600);

/// Has every connection of a [`Workload::Delivery`] pool prepare its statements
/// again, and so plan them again, at 10 s, 20 s, 40 s, … after the start, then every
/// 10 minutes, until `shutdown`.
///
/// A generic plan is made for the tables as they are when the statement is first
/// prepared on a connection, and only an `ANALYZE` (autovacuum's, when it runs)
/// makes Postgres plan it again. Made on nearly empty tables, where every index
/// costs about the same, the sender's load once took `events_by_received (tenant,
/// received_at, id)` for its join on `(tenant, id)`: each look-up then read every
/// event of the tenant (950 ms a call, during a 100,000-event burst), and the sender
/// fell to 559 deliveries/s (docs/performance.md, 2026-12-06). Planned again once the tables
/// hold rows, the primary key is the cheaper index by far; the schedule replans
/// often while a new deployment's tables grow fast, and rarely after.
pub async fn replan_as_tables_grow(pool: Pool, mut shutdown: hookrelay_model::shutdown::Shutdown) {
    let mut wait = Duration::from_secs(10);
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.wait() => return,
        }
        replan(&pool);
        wait = (wait * 2).min(REPLAN_EVERY);
    }
}

/// Forgets every connection's prepared statements: each is prepared, and planned, on
/// its next use. A query under way keeps its statement until it finishes.
/// A connection whose network goes silent is given up in seconds rather than in
/// minutes, unless the URL sets the parameter itself (libpq's names, in seconds):
/// without these, a connection cut mid-query waits for TCP's retransmissions, which
/// back off past 20 s (a sender cut from Postgres for 30 s came back 23 s after the
/// link did: docs/reliability.md, the hosts run), and a connect to a silent host waits
/// for the kernel's SYN retries (about two minutes). `tcp_user_timeout` counts only
/// data sent and not acknowledged, so a long query or a lock wait is not cut.
const NETWORK_DEFAULTS: [(&str, Duration, Setter); 4] = [
    (
        "connect_timeout",
        Duration::from_secs(5),
        Config::connect_timeout,
    ),
    (
        "tcp_user_timeout",
        Duration::from_secs(15),
        Config::tcp_user_timeout,
    ),
    (
        "keepalives_idle",
        Duration::from_secs(30),
        Config::keepalives_idle,
    ),
    (
        "keepalives_interval",
        Duration::from_secs(10),
        Config::keepalives_interval,
    ),
];

type Config = tokio_postgres::Config;
type Setter = fn(&mut Config, Duration) -> &mut Config;

fn network_defaults(config: &mut Config, given: &[&str]) {
    for (name, value, set) in NETWORK_DEFAULTS {
        if !given.contains(&name) {
            set(config, value);
        }
    }
}

pub fn replan(pool: &Pool) {
    pool.manager().statement_caches.clear();
}

/// A connection pool for `workload`. Size it for concurrent database users, not
/// for prefetch.
pub fn pool(url: &str, max_size: usize, workload: Workload) -> Result<Pool, StoreError> {
    let DbUrl { mut config, tls } = parse(url)?;
    session_settings(&mut config, workload.settings());
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match tls {
        Some(tls) => Manager::from_config(config, MakeRustlsConnect::new(tls), manager_config),
        None => Manager::from_config(config, NoTls, manager_config),
    };
    Pool::builder(manager)
        .max_size(max_size)
        .build()
        .map_err(|e| StoreError::BadUrl(e.to_string()))
}

/// Adds `settings` to the options the URL gave, which are kept.
fn session_settings(config: &mut tokio_postgres::Config, settings: &str) {
    let options = match config.get_options() {
        Some(given) if !given.is_empty() => format!("{given} {settings}"),
        _ => settings.to_owned(),
    };
    config.options(&options);
}

/// Whether the database answers a query on a connection from `pool`: what a
/// readiness probe asks.
pub async fn answers(pool: &Pool) -> bool {
    match pool.get().await {
        Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
        Err(_) => false,
    }
}

/// Creates the database if it is missing, then applies pending migrations under an
/// advisory lock, then creates the history's partitions for the days ahead
/// ([`partitions::ensure`]). Safe to run from several replicas at once.
pub async fn migrate(url: &str) -> Result<(), StoreError> {
    migrate_through(url, None).await
}

/// [`migrate`], stopping after migration `last` if given: what a test of a later
/// migration builds the database it converts with (the schema of a release before
/// it). Partitions are made ahead only once the history is partitioned.
pub async fn migrate_through(url: &str, last: Option<i32>) -> Result<(), StoreError> {
    let db = parse(url)?;
    create_database_if_missing(&db).await?;
    let mut client = connect(&db.config, db.tls.as_ref()).await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    // A database migrated by a newer release must not stop an older one (rollbacks,
    // old pods restarting mid-rollout): migrations are additive.
    let mut runner = embedded::migrations::runner();
    if let Some(last) = last {
        runner = runner.set_target(refinery::Target::Version(last));
    }
    let result = runner
        .set_abort_missing(false)
        .run_async(&mut client)
        .await
        .map_err(|e| StoreError::Migration(e.to_string()));
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    result?;
    // Every role migrates on start: each also makes sure the days ahead exist.
    if last.is_none_or(|last| last >= partitions::MIGRATION) {
        partitions::ensure(&client, time::OffsetDateTime::now_utc()).await?;
    }
    Ok(())
}

/// A fingerprint of all migrations: test harnesses name template databases by it.
pub fn schema_fingerprint() -> u64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |acc, m| {
            acc.rotate_left(5) ^ m.checksum()
        })
}

async fn connect(
    config: &tokio_postgres::Config,
    tls: Option<&rustls::ClientConfig>,
) -> Result<tokio_postgres::Client, StoreError> {
    Ok(match tls {
        Some(tls) => {
            let (client, connection) = config.connect(MakeRustlsConnect::new(tls.clone())).await?;
            tokio::spawn(drive(connection));
            client
        }
        None => {
            let (client, connection) = config.connect(NoTls).await?;
            tokio::spawn(drive(connection));
            client
        }
    })
}

/// Runs a connection until its client is dropped.
async fn drive<C>(connection: C)
where
    C: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "migration connection closed");
    }
}

async fn create_database_if_missing(db: &DbUrl) -> Result<(), StoreError> {
    let Some(name) = db.config.get_dbname().map(str::to_owned) else {
        return Err(StoreError::BadUrl("no database named".into()));
    };
    let mut admin = db.config.clone();
    admin.dbname("postgres");
    let client = connect(&admin, db.tls.as_ref()).await?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if exists {
        return Ok(());
    }
    let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
    match client.batch_execute(&sql).await {
        Ok(()) => {
            tracing::info!(database = %name, "created database");
            Ok(())
        }
        // Another replica created it between our check and our CREATE.
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod network_tests {
    use super::*;

    #[test]
    fn a_silent_network_is_given_up_in_seconds_unless_the_url_says_otherwise() {
        let plain = parse("postgres://u@h/db").unwrap().config;
        assert_eq!(plain.get_connect_timeout(), Some(&Duration::from_secs(5)));
        assert_eq!(plain.get_tcp_user_timeout(), Some(&Duration::from_secs(15)));
        assert_eq!(plain.get_keepalives_idle(), Duration::from_secs(30));
        assert_eq!(
            plain.get_keepalives_interval(),
            Some(Duration::from_secs(10))
        );

        let given = parse("postgres://u@h/db?tcp_user_timeout=3&connect_timeout=2")
            .unwrap()
            .config;
        assert_eq!(given.get_tcp_user_timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(given.get_connect_timeout(), Some(&Duration::from_secs(2)));
        assert_eq!(given.get_keepalives_idle(), Duration::from_secs(30));
    }
}
