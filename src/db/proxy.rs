//! The checked path from a script's request to the database and back.
//!
//! Every request is checked by the [`Policy`] first; what runs is the statement the
//! policy re-rendered, with the parameters bound. Around it: a per-query timeout that
//! really stops the query (SQLite's progress handler interrupts it; PostgreSQL's
//! `statement_timeout` cancels it on the server), row and byte caps that refuse rather
//! than truncate, a `READ ONLY` transaction on PostgreSQL, and a snapshot cache so that
//! identical reads within a job or a sweep reach the database once. Every request, allowed
//! or not, produces an [`AuditEntry`].
//!
//! The database is opened on the first request, so a script that never reads data never
//! waits for a connection, and a database that cannot be reached only fails the scripts
//! that need it.

use std::collections::HashMap;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::TryStreamExt;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use sqlx::Executor as _;
use sqlx::Row as _;
use sqlx::postgres::{PgConnection, PgTypeInfo};
use sqlx::sqlite::SqliteConnection;
use tokio::sync::OnceCell;

use super::connect::{Database, Pool};
use super::inspect::{self, Schema};
use super::params::{self, ParamError};
use super::policy::{Access, Checked, Denial, Policy};
use super::rows::Collector;
use super::snapshot::{CacheKey, Snapshots};
use super::value::{self, Decimals, UnmappedType};
use super::{Capability, DbError, DbUrl};
use crate::budget::{HostBudget, Reservation};
use crate::guest_db::{AuditEntry, DbAnswer, DbFailure, DbFailureKind, DbRequest, DbResponse, GuestDb, Rows};

/// How many SQLite virtual-machine steps run between two checks of the deadline.
const SQLITE_PROGRESS_STEPS: i32 = 1000;
/// Extra time past the statement timeout before the host gives up waiting on the driver.
const BACKSTOP_SLACK: Duration = Duration::from_secs(2);
/// Room SQLite's length limit leaves above the byte cap: a value that would not fit the
/// cap as JSON anyway, with room for the records SQLite builds to sort rows.
const SQLITE_LENGTH_SLACK: usize = 64 * 1024;
/// Statements longer than this are checked again on every request rather than keeping
/// their text (twice) in the verdict and type caches.
const CACHED_SQL_MAX: usize = 16 * 1024;
/// The error a PostgreSQL query raises, by design, on a row over the byte cap (see
/// [`pg_capped`]).
const PG_ROW_CAP_MARKER: &str = "metaexec: a row passed the byte cap";

pub use super::error::{ProxyError, ProxyErrorKind};

fn to_failure(error: &ProxyError) -> DbFailure {
    let kind = match error.kind() {
        ProxyErrorKind::Denied => DbFailureKind::Denied,
        ProxyErrorKind::Failed => DbFailureKind::Error,
    };
    DbFailure { kind, message: error.to_string(), hint: error.hint() }
}

impl From<ParamError> for ProxyError {
    fn from(e: ParamError) -> Self {
        Self::Failed { hint: Some(e.hint()), message: e.to_string() }
    }
}

impl From<UnmappedType> for ProxyError {
    fn from(e: UnmappedType) -> Self {
        Self::Failed { hint: Some(e.hint()), message: e.to_string() }
    }
}

impl From<DbError> for ProxyError {
    fn from(e: DbError) -> Self {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        Self::Failed { hint: e.hint(), message }
    }
}

/// The rows of one query.
#[derive(Debug)]
pub struct QueryResult {
    /// The rows by column, kept once, as the guest receives them, since a snapshot hit
    /// may send them to thousands of scenarios; [`Rows::records`] gives them by row.
    pub rows: Rows,
    /// The bytes of the rows as JSON records, what the byte cap counted.
    pub bytes: usize,
    /// Keeps the rows counted in the job's host budget for as long as they live.
    held: Reservation,
}

impl QueryResult {
    /// The finished rows of `collector`.
    pub fn collected(collector: Collector) -> Result<Self, ProxyError> {
        let (rows, bytes, held) = collector.finish()?;
        Ok(Self { rows, bytes, held })
    }

    /// Column names, in order.
    pub fn columns(&self) -> &[String] {
        &self.rows.names
    }

    /// Whether some value is an exact decimal object.
    pub fn decimals(&self) -> bool {
        self.rows.decimals
    }

    /// The rows as objects (column → value), for callers on the host.
    pub fn records(&self) -> Vec<serde_json::Map<String, Value>> {
        self.rows.records().into_iter().map(|row| self.rows.names.iter().cloned().zip(row).collect()).collect()
    }

    /// The rows as the JSON text the byte cap counts (`{"columns", "records",
    /// "decimals", "read"}`), `bytes` long.
    pub fn to_json(&self) -> String {
        super::rows::to_json(&self.rows)
    }

    /// Host bytes this answer holds (as reserved in the budget).
    pub fn held_bytes(&self) -> usize {
        self.held.bytes()
    }
}

/// Counts over the proxy's life (a job, or a whole sweep).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProxyStats {
    /// Queries that reached the database.
    pub executed: u64,
    /// Queries answered from the snapshot.
    pub cached: u64,
    /// Requests refused by the capability.
    pub denied: u64,
    /// Requests that failed.
    pub failed: u64,
}

/// The database once opened, with the policy built for it.
#[derive(Debug)]
struct Opened {
    db: Database,
    policy: Policy,
    schema: OnceCell<Schema>,
    /// Placeholder types PostgreSQL inferred, per statement.
    pg_param_types: Mutex<HashMap<String, Option<Vec<PgTypeInfo>>>>,
    /// The policy's verdict per statement text and parameter count: parsing costs more
    /// than running a small query on a warm SQLite connection.
    checked: Mutex<HashMap<(String, usize), Result<Checked, ProxyError>>>,
}

/// How many verdicts `Opened::checked` keeps before starting afresh.
const CHECKED_CAPACITY: usize = 1024;

impl Opened {
    fn check(&self, sql: &str, params: usize) -> Result<Checked, ProxyError> {
        let key = (sql.to_owned(), params);
        if let Some(verdict) = self.checked.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return verdict.clone();
        }
        let verdict = check_off_the_fiber(&self.policy, sql, params);
        if sql.len() > CACHED_SQL_MAX {
            return verdict;
        }
        let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        if checked.len() >= CHECKED_CAPACITY {
            checked.clear();
        }
        checked.insert(key, verdict.clone());
        verdict
    }
}

/// The stack of the thread that checks a statement: room for the deepest syntax tree the
/// policy lets through (`policy::MAX_SQL_TOKENS`), many times over.
const CHECK_STACK_BYTES: usize = 64 << 20;

/// Runs the policy on a thread of its own. Requests are answered from inside the guest's
/// host call, on the fiber that also holds the guest's wasm stack: what is left of it
/// cannot hold the recursion of walking, printing and dropping a deep syntax tree, and
/// overflowing it aborts the whole process.
fn check_off_the_fiber(policy: &Policy, sql: &str, params: usize) -> Result<Checked, ProxyError> {
    std::thread::scope(|scope| {
        let checker = std::thread::Builder::new()
            .name("metaexec-sql-check".into())
            .stack_size(CHECK_STACK_BYTES)
            .spawn_scoped(scope, || policy.check(sql, params));
        match checker {
            Ok(thread) => thread.join().unwrap_or_else(|_| Err(ProxyError::invalid("checking the query failed"))),
            Err(e) => Err(ProxyError::invalid(format!("could not start the query check: {e}"))),
        }
    })
}

/// The capability-scoped database a job (or a sweep) reaches through `metaexec.db`.
#[derive(Debug)]
pub struct DbProxy {
    url: DbUrl,
    capability: Capability,
    opened: OnceCell<Result<Arc<Opened>, ProxyError>>,
    budget: HostBudget,
    cache: Mutex<Snapshots>,
    turn: tokio::sync::Mutex<()>,
    executed: AtomicU64,
    cached: AtomicU64,
    denied: AtomicU64,
    failed: AtomicU64,
}

impl DbProxy {
    /// A proxy on `url` for a job with `capability`. Nothing is opened yet.
    pub fn new(url: DbUrl, capability: Capability) -> Self {
        let budget = HostBudget::default();
        Self {
            url,
            capability,
            opened: OnceCell::new(),
            cache: Mutex::new(Snapshots::new(budget.clone())),
            budget,
            turn: tokio::sync::Mutex::new(()),
            executed: AtomicU64::new(0),
            cached: AtomicU64::new(0),
            denied: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// The same proxy holding its rows and snapshots against `budget` (the job's or the
    /// sweep's host memory budget) instead of a budget of its own.
    pub fn with_budget(mut self, budget: HostBudget) -> Self {
        self.cache = Mutex::new(Snapshots::new(budget.clone()));
        self.budget = budget;
        self
    }

    /// The host memory budget rows and snapshots are counted against.
    pub fn budget(&self) -> &HostBudget {
        &self.budget
    }

    /// Where the data is.
    pub fn url(&self) -> &DbUrl {
        &self.url
    }

    /// What the job may do.
    pub fn capability(&self) -> &Capability {
        &self.capability
    }

    /// Counts so far.
    pub fn stats(&self) -> ProxyStats {
        ProxyStats {
            executed: self.executed.load(Ordering::Relaxed),
            cached: self.cached.load(Ordering::Relaxed),
            denied: self.denied.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    async fn opened(&self) -> Result<Arc<Opened>, ProxyError> {
        self.opened
            .get_or_init(|| async {
                let db = Database::open(&self.url, self.capability.write).await?;
                let schema = OnceCell::new();
                // The allowlist needs the names of the tables it hides (to refuse CTEs
                // that would shadow them); without one, inspection waits for `schema()`.
                let existing = if self.capability.tables.is_some() {
                    let inspected = inspect::inspect(&db).await?;
                    let names = inspected.table_names();
                    let _ = schema.set(inspected);
                    names
                } else {
                    Vec::new()
                };
                let policy = Policy::new(db.dialect(), self.capability.clone(), &existing);
                Ok(Arc::new(Opened {
                    db,
                    policy,
                    schema,
                    pg_param_types: Mutex::new(HashMap::new()),
                    checked: Mutex::new(HashMap::new()),
                }))
            })
            .await
            .clone()
    }

    /// Runs one checked query; `exact` asks for NUMERIC as exact decimals.
    pub async fn query(
        &self,
        sql: &str,
        params: &[Value],
        exact: bool,
    ) -> Result<(Arc<QueryResult>, bool), ProxyError> {
        let opened = self.opened().await?;
        let exact = exact || self.capability.exact_decimals;
        // Keyed by the text as sent: a hit skips parsing too, and only checked reads are
        // ever stored.
        let key = CacheKey { sql: sql.to_owned(), params: Value::from(params.to_vec()).to_string(), exact };
        if let Some(hit) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok((hit.clone(), true));
        }
        let checked = opened.check(sql, params.len())?;
        // One query at a time through this proxy: instances of a sweep asking the same
        // thing at once then wait for the first answer instead of all reaching the
        // database.
        let _turn = self.turn.lock().await;
        if checked.access == Access::Read
            && let Some(hit) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key)
        {
            return Ok((hit.clone(), true));
        }
        let mut outcome = self.execute(&opened, &checked, params, exact).await;
        if matches!(outcome, Err(ProxyError::Denied(Denial::HostMemory(_)))) {
            // The snapshots are what the proxy itself holds: give them up before refusing.
            let had_snapshots = {
                let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                let had = !cache.is_empty();
                cache.clear();
                had
            };
            if had_snapshots {
                outcome = self.execute(&opened, &checked, params, exact).await;
            }
        }
        let result = Arc::new(outcome?);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        match checked.access {
            Access::Read => {
                cache.insert(key, result.clone());
            }
            // A write may change what any cached read would return.
            Access::Write => cache.clear(),
        }
        Ok((result, false))
    }

    /// The schema, limited to the tables the job may use.
    pub async fn schema(&self) -> Result<Schema, ProxyError> {
        let opened = self.opened().await?;
        let schema = opened.schema.get_or_try_init(|| inspect::inspect(&opened.db)).await?;
        let mut schema = schema.clone();
        if self.capability.tables.is_some() {
            let default_schema = opened.db.dialect().default_schema();
            let allowed = |name: &str| self.capability.allows_table(name, Some(default_schema));
            schema.tables.retain(|t| allowed(&t.name));
            schema.joins.retain(|j| allowed(&j.left_table) && allowed(&j.right_table));
        }
        Ok(schema)
    }

    async fn execute(
        &self,
        opened: &Opened,
        checked: &Checked,
        params: &[Value],
        exact: bool,
    ) -> Result<QueryResult, ProxyError> {
        let timeout = self.capability.statement_timeout;
        let collector = Collector::new(
            self.capability.max_rows,
            self.capability.max_bytes,
            checked.access == Access::Read,
            &self.budget,
        );
        let run = async {
            match opened.db.pool() {
                Pool::Sqlite(pool) => {
                    let mut conn = pool.acquire().await.map_err(|e| self.driver_error(&e))?;
                    self.run_sqlite(&mut conn, checked, params, timeout, collector).await
                }
                Pool::Postgres(pool) => {
                    let mut conn = pool.acquire().await.map_err(|e| self.driver_error(&e))?;
                    let result = self.run_postgres(opened, &mut conn, checked, params, exact, timeout, collector).await;
                    if matches!(&result, Err(ProxyError::Denied(denial)) if stops_rows(denial)) {
                        // Rows may still be on their way: closing the connection stops the
                        // server sending them, instead of draining millions of rows.
                        let _ = sqlx::Connection::close(conn.detach()).await;
                    }
                    result
                }
            }
        };
        match tokio::time::timeout(timeout.saturating_add(BACKSTOP_SLACK), run).await {
            Ok(result) => result,
            Err(_) => Err(Denial::Timeout { timeout }.into()),
        }
    }

    async fn run_sqlite(
        &self,
        conn: &mut SqliteConnection,
        checked: &Checked,
        params: &[Value],
        timeout: Duration,
        mut collector: Collector,
    ) -> Result<QueryResult, ProxyError> {
        let deadline = Instant::now().checked_add(timeout);
        {
            let mut handle = conn.lock_handle().await.map_err(|e| self.driver_error(&e))?;
            limit_sqlite(&mut handle, self.capability.max_bytes, self.budget.limit());
            handle.set_progress_handler(SQLITE_PROGRESS_STEPS, move || deadline.is_none_or(|d| Instant::now() < d));
        }
        let query = params::bind_sqlite(sqlx::query(&checked.sql), params)?;
        let outcome = async {
            let mut rows = query.fetch(&mut *conn);
            while let Some(row) = rows.try_next().await.map_err(|e| self.query_error(&e, deadline, timeout))? {
                if !collector.has_columns() {
                    collector.set_columns(value::column_names(&row))?;
                }
                collector.start_row()?;
                for i in 0..row.len() {
                    collector.push_value(&value::sqlite_cell(&row, i)?)?;
                }
                collector.end_row()?;
            }
            Ok::<_, ProxyError>(())
        }
        .await;
        if let Ok(mut handle) = conn.lock_handle().await {
            handle.remove_progress_handler();
        }
        outcome?;
        self.executed.fetch_add(1, Ordering::Relaxed);
        QueryResult::collected(collector)
    }

    #[expect(clippy::too_many_arguments, reason = "one call site, the parts of one request")]
    async fn run_postgres(
        &self,
        opened: &Opened,
        conn: &mut PgConnection,
        checked: &Checked,
        params: &[Value],
        exact: bool,
        timeout: Duration,
        mut collector: Collector,
    ) -> Result<QueryResult, ProxyError> {
        // Reads run wrapped so that the server refuses a row over the byte cap before
        // sending it (see `pg_capped`).
        let sql =
            if checked.wrappable { pg_capped(&checked.sql, self.capability.max_bytes) } else { checked.sql.clone() };
        let inferred =
            if params.is_empty() { Some(Vec::new()) } else { self.pg_param_types(opened, conn, &sql).await? };
        // Where the server cannot type a placeholder, the values decide; such a statement
        // is not kept prepared, since another call may bring other types.
        let persistent = inferred.is_some();
        let types = inferred.unwrap_or_else(|| params::natural_pg_types(params));
        let encoded = params::encode_postgres(params, &types)?;
        let begin = if self.capability.write { "BEGIN" } else { "BEGIN READ ONLY" };
        conn.execute(begin).await.map_err(|e| self.driver_error(&e))?;
        let outcome = async {
            // PostgreSQL takes the timeout as an int4 of milliseconds.
            let millis = timeout.as_millis().clamp(1, i32::MAX as u128);
            conn.execute(format!("SET LOCAL statement_timeout = {millis}").as_str())
                .await
                .map_err(|e| self.driver_error(&e))?;
            let mut query = sqlx::query(&sql).persistent(persistent);
            for param in encoded {
                query = query.bind(param);
            }
            let decimals = if exact { Decimals::Exact } else { Decimals::Float };
            let mut rows = query.fetch(&mut *conn);
            while let Some(row) = rows.try_next().await.map_err(|e| self.query_error(&e, None, timeout))? {
                if !collector.has_columns() {
                    collector.set_columns(value::column_names(&row))?;
                }
                collector.start_row()?;
                for i in 0..row.len() {
                    collector.push_value(&value::postgres_cell(&row, i, decimals)?)?;
                }
                collector.end_row()?;
            }
            Ok::<_, ProxyError>(())
        }
        .await;
        match &outcome {
            Ok(()) if checked.access == Access::Write => {
                conn.execute("COMMIT").await.map_err(|e| self.query_error(&e, None, timeout))?;
            }
            Err(ProxyError::Denied(denial)) if stops_rows(denial) => {}
            _ => {
                conn.execute("ROLLBACK").await.map_err(|e| self.driver_error(&e))?;
            }
        }
        outcome?;
        self.executed.fetch_add(1, Ordering::Relaxed);
        QueryResult::collected(collector)
    }

    /// The placeholder types PostgreSQL infers for `sql`, asked once per statement;
    /// `None` when it cannot infer them all.
    async fn pg_param_types(
        &self,
        opened: &Opened,
        conn: &mut PgConnection,
        sql: &str,
    ) -> Result<Option<Vec<PgTypeInfo>>, ProxyError> {
        if let Some(types) = opened.pg_param_types.lock().unwrap_or_else(|e| e.into_inner()).get(sql) {
            return Ok(types.clone());
        }
        let types = match conn.describe(sql).await {
            Ok(described) => match described.parameters() {
                Some(either::Either::Left(types)) => Some(types.to_vec()),
                _ => None,
            },
            // 42P18 indeterminate_datatype: `? IS NULL` and the like.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P18") => None,
            Err(e) => return Err(self.query_error(&e, None, Duration::ZERO)),
        };
        if sql.len() <= CACHED_SQL_MAX {
            let mut cache = opened.pg_param_types.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= CHECKED_CAPACITY {
                cache.clear();
            }
            cache.insert(sql.to_owned(), types.clone());
        }
        Ok(types)
    }

    /// A driver error outside the query itself (connecting, transaction control).
    fn driver_error(&self, error: &sqlx::Error) -> ProxyError {
        ProxyError::Failed {
            message: format!(
                "the database at `{}` failed: {}",
                self.url,
                super::Cause::scrubbed(error, Some(&self.url))
            ),
            hint: None,
        }
    }

    /// An error from running the query: a timeout or a read-only refusal is a denial,
    /// anything else a failure with the database's own message.
    fn query_error(&self, error: &sqlx::Error, deadline: Option<Instant>, timeout: Duration) -> ProxyError {
        if let sqlx::Error::Database(db) = error {
            let code = db.code().unwrap_or_default();
            // PostgreSQL: 57014 query_canceled (statement_timeout), 25006 read-only
            // transaction. SQLite: 9 SQLITE_INTERRUPT, 8 SQLITE_READONLY (+ extended codes).
            let interrupted = code == "57014" || (code == "9" && deadline.is_some_and(|d| Instant::now() >= d));
            if interrupted {
                return Denial::Timeout { timeout }.into();
            }
            let sqlite_primary = code.parse::<u32>().ok().map(|c| c & 0xff);
            // SQLite: 18 SQLITE_TOOBIG, past the length limit set from the byte cap.
            // PostgreSQL: the marker error of `pg_capped` (22P02 by design).
            if deadline.is_some() && sqlite_primary == Some(18)
                || code == "22P02" && db.message().contains(PG_ROW_CAP_MARKER)
            {
                return Denial::ValueCap { max: self.capability.max_bytes }.into();
            }
            // SQLite: 7 SQLITE_NOMEM, past the heap limit set from the host memory budget.
            if deadline.is_some() && sqlite_primary == Some(7) {
                return Denial::DatabaseMemory { limit: self.budget.limit() }.into();
            }
            if code == "25006" || sqlite_primary == Some(8) {
                return Denial::ReadOnly { message: db.message().to_owned() }.into();
            }
            return ProxyError::Failed {
                message: format!("the database refused the query: {}", self.url.scrub(db.message())),
                hint: Some("check table and column names with metaexec.db.schema()".into()),
            };
        }
        self.driver_error(error)
    }
}

#[async_trait]
impl GuestDb for DbProxy {
    fn queries_executed(&self) -> u64 {
        self.stats().executed
    }

    async fn handle(&self, request: DbRequest) -> DbResponse {
        let started = Instant::now();
        let outcome = match &request {
            DbRequest::Query { sql, params, exact_decimals } => {
                self.query(sql, params, *exact_decimals).await.map(|(result, cached)| {
                    (DbAnswer::Rows(result.rows.clone()), result.rows.count as u64, result.bytes as u64, cached)
                })
            }
            DbRequest::Schema => self.schema().await.map(|schema| {
                let text = schema.compact_text();
                let mut value = serde_json::to_value(&schema).unwrap_or(Value::Null);
                if let Value::Object(map) = &mut value {
                    map.insert("text".into(), Value::String(text));
                }
                let raw = serde_json::value::to_raw_value(&value)
                    .unwrap_or_else(|_| RawValue::from_string("null".into()).unwrap_or_default());
                (DbAnswer::Schema(raw), 0, 0, false)
            }),
        };
        let mut audit = AuditEntry::for_request(&request);
        audit.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        match outcome {
            Ok((value, rows, bytes, cached)) => {
                if cached {
                    self.cached.fetch_add(1, Ordering::Relaxed);
                }
                audit.rows = rows;
                audit.bytes = bytes;
                audit.cached = cached;
                DbResponse { result: Ok(value), audit }
            }
            Err(error) => {
                let failure = to_failure(&error);
                match failure.kind {
                    DbFailureKind::Denied => self.denied.fetch_add(1, Ordering::Relaxed),
                    DbFailureKind::Error => self.failed.fetch_add(1, Ordering::Relaxed),
                };
                audit.allowed = failure.kind != DbFailureKind::Denied;
                audit.status = failure.kind.as_str().into();
                audit.reason = Some(failure.message.clone());
                DbResponse { result: Err(failure), audit }
            }
        }
    }
}

/// Denials after which PostgreSQL may still be sending rows: the connection is closed
/// rather than drained.
fn stops_rows(denial: &Denial) -> bool {
    matches!(denial, Denial::RowCap { .. } | Denial::ByteCap { .. } | Denial::HostMemory(_))
}

/// Sets SQLite's own limits on a connection: no string or blob longer than the byte cap
/// (plus slack) is ever built, so `zeroblob(900000000)` or `printf('%.*c', 900000000,
/// 'x')` fail inside SQLite with SQLITE_TOOBIG instead of materialising gigabytes; and
/// (once per process, only ever raised) a heap limit of twice the host memory budget for
/// all of SQLite, so that a row of many large values fails with SQLITE_NOMEM.
fn limit_sqlite(handle: &mut sqlx::sqlite::LockedSqliteHandle<'_>, max_bytes: usize, budget: usize) {
    let length = i32::try_from(max_bytes.saturating_add(SQLITE_LENGTH_SLACK)).unwrap_or(i32::MAX);
    let raw = handle.as_raw_handle().as_ptr();
    // SAFETY: `raw` is the open connection the locked handle guards for this call;
    // sqlite3_limit only reads and sets an integer of it (values past SQLite's compiled
    // maximum are lowered to it).
    unsafe {
        libsqlite3_sys::sqlite3_limit(raw, libsqlite3_sys::SQLITE_LIMIT_LENGTH, length);
    }
    static HEAP: Mutex<i64> = Mutex::new(0);
    static WARN: Once = Once::new();
    let wanted = i64::try_from(budget.saturating_mul(2)).unwrap_or(i64::MAX);
    let mut set = HEAP.lock().unwrap_or_else(|e| e.into_inner());
    if wanted > *set {
        // SAFETY: sqlite3_hard_heap_limit64 is thread-safe and only sets a process-wide
        // integer; raising it never fails an allocation that succeeded before.
        let previous = unsafe { libsqlite3_sys::sqlite3_hard_heap_limit64(wanted) };
        if previous != 0 && previous > wanted {
            // Someone else set a larger one: keep theirs.
            // SAFETY: as above.
            unsafe { libsqlite3_sys::sqlite3_hard_heap_limit64(previous) };
            WARN.call_once(|| tracing::debug!("SQLite's heap limit was already {previous} bytes"));
        }
        *set = wanted.max(previous);
    }
}

/// A read wrapped so that PostgreSQL refuses, on the server, any row whose text form or
/// in-memory size passes `max_bytes`: the host then never receives such a row. The row
/// still exists on the server (bounded by PostgreSQL's 1 GB value limit and the
/// statement timeout), but it is never sent. The refusal is a cast error carrying
/// [`PG_ROW_CAP_MARKER`], which [`DbProxy::query_error`] turns into a denial; the `CASE`
/// only evaluates the cast for such a row, and the cast's text depends on the row, so the
/// planner cannot fold it into an error up front.
fn pg_capped(sql: &str, max_bytes: usize) -> String {
    const Q: &str = "__metaexec_q";
    format!(
        "SELECT {Q}.* FROM ({sql}) AS {Q} WHERE CASE WHEN octet_length(ROW({Q}.*)::text) > {max_bytes} \
         OR pg_column_size(ROW({Q}.*)) > {max_bytes} \
         THEN CAST('{PG_ROW_CAP_MARKER}: ' || pg_column_size(ROW({Q}.*)) AS integer) = 0 ELSE true END"
    )
}

/// Opens a proxy eagerly, for commands that want connection errors up front.
pub async fn open(url: DbUrl, capability: Capability) -> Result<DbProxy, DbError> {
    let proxy = DbProxy::new(url, capability);
    match proxy.opened().await {
        Ok(_) => Ok(proxy),
        Err(ProxyError::Failed { message, .. }) => {
            Err(DbError::Connect { url: proxy.url.masked(), source: super::Cause(message) })
        }
        Err(ProxyError::Denied(d)) => {
            Err(DbError::Connect { url: proxy.url.masked(), source: super::Cause(d.to_string()) })
        }
    }
}
