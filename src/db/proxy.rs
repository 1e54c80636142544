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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::TryStreamExt;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use sqlx::Executor as _;
use sqlx::postgres::{PgConnection, PgTypeInfo};
use sqlx::sqlite::SqliteConnection;
use tokio::sync::OnceCell;

use super::connect::{Database, Pool};
use super::inspect::{self, Schema};
use super::params::{self, ParamError};
use super::policy::{Access, Checked, Denial, Policy};
use super::value::{self, Decimals, UnmappedType};
use super::{Capability, DbError, DbUrl};
use crate::guest_db::{AuditEntry, DbFailure, DbFailureKind, DbRequest, DbResponse, GuestDb};

/// How many SQLite virtual-machine steps run between two checks of the deadline.
const SQLITE_PROGRESS_STEPS: i32 = 1000;
/// Extra time past the statement timeout before the host gives up waiting on the driver.
const BACKSTOP_SLACK: Duration = Duration::from_secs(2);

/// Whether a request was refused or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyErrorKind {
    /// Refused by the capability.
    Denied,
    /// Allowed, but could not be answered.
    Failed,
}

/// Why a request got no rows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProxyError {
    /// The capability refused it.
    #[error("{0}")]
    Denied(#[from] Denial),
    /// It could not be checked or run.
    #[error("{message}")]
    Failed {
        /// What went wrong.
        message: String,
        /// What to do about it.
        hint: Option<String>,
    },
}

impl ProxyError {
    /// A request that could not be checked or run.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Failed { message: message.into(), hint: None }
    }

    /// Refused or failed.
    pub fn kind(&self) -> ProxyErrorKind {
        match self {
            Self::Denied(_) => ProxyErrorKind::Denied,
            Self::Failed { .. } => ProxyErrorKind::Failed,
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Denied(denial) => denial.hint().map(str::to_owned),
            Self::Failed { hint, .. } => hint.clone(),
        }
    }

    fn to_failure(&self) -> DbFailure {
        let kind = match self.kind() {
            ProxyErrorKind::Denied => DbFailureKind::Denied,
            ProxyErrorKind::Failed => DbFailureKind::Error,
        };
        DbFailure { kind, message: self.to_string(), hint: self.hint() }
    }
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
#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// The rows, each a list of values in column order.
    pub rows: Vec<Vec<Value>>,
    /// About how many bytes the rows take as JSON.
    #[serde(skip)]
    pub bytes: usize,
    /// Whether some value is an exact decimal object.
    pub decimals: bool,
    /// The result as the guest receives it (`{"columns", "records", "decimals"}`), serialized
    /// once, since a snapshot hit may send it to thousands of scenarios.
    #[serde(skip)]
    pub json: Box<RawValue>,
}

impl QueryResult {
    /// The rows as objects (column → value), for callers on the host.
    pub fn records(&self) -> Vec<serde_json::Map<String, Value>> {
        self.rows.iter().map(|row| self.columns.iter().cloned().zip(row.iter().cloned()).collect()).collect()
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

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    sql: String,
    params: String,
    exact: bool,
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
        let verdict = self.policy.check(sql, params);
        let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        if checked.len() >= CHECKED_CAPACITY {
            checked.clear();
        }
        checked.insert(key, verdict.clone());
        verdict
    }
}

/// The capability-scoped database a job (or a sweep) reaches through `metaexec.db`.
#[derive(Debug)]
pub struct DbProxy {
    url: DbUrl,
    capability: Capability,
    opened: OnceCell<Result<Arc<Opened>, ProxyError>>,
    cache: Mutex<HashMap<CacheKey, Arc<QueryResult>>>,
    turn: tokio::sync::Mutex<()>,
    executed: AtomicU64,
    cached: AtomicU64,
    denied: AtomicU64,
    failed: AtomicU64,
}

impl DbProxy {
    /// A proxy on `url` for a job with `capability`. Nothing is opened yet.
    pub fn new(url: DbUrl, capability: Capability) -> Self {
        Self {
            url,
            capability,
            opened: OnceCell::new(),
            cache: Mutex::new(HashMap::new()),
            turn: tokio::sync::Mutex::new(()),
            executed: AtomicU64::new(0),
            cached: AtomicU64::new(0),
            denied: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
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
        let result = Arc::new(self.execute(&opened, &checked, params, exact).await?);
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
        let run = async {
            match opened.db.pool() {
                Pool::Sqlite(pool) => {
                    let mut conn = pool.acquire().await.map_err(|e| self.driver_error(&e))?;
                    self.run_sqlite(&mut conn, checked, params, timeout).await
                }
                Pool::Postgres(pool) => {
                    let mut conn = pool.acquire().await.map_err(|e| self.driver_error(&e))?;
                    let result = self.run_postgres(opened, &mut conn, checked, params, exact, timeout).await;
                    if matches!(result, Err(ProxyError::Denied(Denial::RowCap { .. } | Denial::ByteCap { .. }))) {
                        // Rows may still be on their way: closing the connection stops the
                        // server sending them, instead of draining millions of rows.
                        let _ = sqlx::Connection::close(conn.detach()).await;
                    }
                    result
                }
            }
        };
        match tokio::time::timeout(timeout + BACKSTOP_SLACK, run).await {
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
    ) -> Result<QueryResult, ProxyError> {
        let deadline = Instant::now() + timeout;
        conn.lock_handle()
            .await
            .map_err(|e| self.driver_error(&e))?
            .set_progress_handler(SQLITE_PROGRESS_STEPS, move || Instant::now() < deadline);
        let query = params::bind_sqlite(sqlx::query(&checked.sql), params)?;
        let mut collector = Collector::new(&self.capability, checked.access);
        let outcome = async {
            let mut rows = query.fetch(&mut *conn);
            while let Some(row) = rows.try_next().await.map_err(|e| self.query_error(&e, Some(deadline), timeout))? {
                if collector.columns.is_none() {
                    collector.columns = Some(value::column_names(&row));
                }
                collector.push(value::sqlite_row(&row)?)?;
            }
            Ok::<_, ProxyError>(())
        }
        .await;
        if let Ok(mut handle) = conn.lock_handle().await {
            handle.remove_progress_handler();
        }
        outcome?;
        self.executed.fetch_add(1, Ordering::Relaxed);
        Ok(collector.finish())
    }

    async fn run_postgres(
        &self,
        opened: &Opened,
        conn: &mut PgConnection,
        checked: &Checked,
        params: &[Value],
        exact: bool,
        timeout: Duration,
    ) -> Result<QueryResult, ProxyError> {
        let inferred =
            if params.is_empty() { Some(Vec::new()) } else { self.pg_param_types(opened, conn, &checked.sql).await? };
        // Where the server cannot type a placeholder, the values decide; such a statement
        // is not kept prepared, since another call may bring other types.
        let persistent = inferred.is_some();
        let types = inferred.unwrap_or_else(|| params::natural_pg_types(params));
        let encoded = params::encode_postgres(params, &types)?;
        let begin = if self.capability.write { "BEGIN" } else { "BEGIN READ ONLY" };
        conn.execute(begin).await.map_err(|e| self.driver_error(&e))?;
        let outcome = async {
            let millis = timeout.as_millis().max(1);
            conn.execute(format!("SET LOCAL statement_timeout = {millis}").as_str())
                .await
                .map_err(|e| self.driver_error(&e))?;
            let mut query = sqlx::query(&checked.sql).persistent(persistent);
            for param in encoded {
                query = query.bind(param);
            }
            let decimals = if exact { Decimals::Exact } else { Decimals::Float };
            let mut collector = Collector::new(&self.capability, checked.access);
            let mut rows = query.fetch(&mut *conn);
            while let Some(row) = rows.try_next().await.map_err(|e| self.query_error(&e, None, timeout))? {
                if collector.columns.is_none() {
                    collector.columns = Some(value::column_names(&row));
                }
                collector.push(value::postgres_row(&row, decimals)?)?;
            }
            Ok::<_, ProxyError>(collector.finish())
        }
        .await;
        match &outcome {
            Ok(_) if checked.access == Access::Write => {
                conn.execute("COMMIT").await.map_err(|e| self.query_error(&e, None, timeout))?;
            }
            Err(ProxyError::Denied(Denial::RowCap { .. } | Denial::ByteCap { .. })) => {}
            _ => {
                conn.execute("ROLLBACK").await.map_err(|e| self.driver_error(&e))?;
            }
        }
        if outcome.is_ok() {
            self.executed.fetch_add(1, Ordering::Relaxed);
        }
        outcome
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
        opened.pg_param_types.lock().unwrap_or_else(|e| e.into_inner()).insert(sql.to_owned(), types.clone());
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
            if code == "25006" || code == "8" || code.parse::<u32>().is_ok_and(|c| c & 0xff == 8) {
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
            DbRequest::Query { sql, params, exact_decimals } => self
                .query(sql, params, *exact_decimals)
                .await
                .map(|(result, cached)| (result.json.clone(), result.rows.len() as u64, result.bytes as u64, cached)),
            DbRequest::Schema => self.schema().await.map(|schema| {
                let text = schema.compact_text();
                let mut value = serde_json::to_value(&schema).unwrap_or(Value::Null);
                if let Value::Object(map) = &mut value {
                    map.insert("text".into(), Value::String(text));
                }
                (serde_json::value::to_raw_value(&value).expect("schemas are plain JSON"), 0, 0, false)
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
                let failure = error.to_failure();
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

/// Gathers rows under the row and byte caps.
struct Collector {
    columns: Option<Vec<String>>,
    rows: Vec<Vec<Value>>,
    bytes: usize,
    decimals: bool,
    max_rows: usize,
    max_bytes: usize,
    /// The statement only reads: the guest may keep its answer for identical requests.
    read: bool,
}

impl Collector {
    fn new(capability: &Capability, access: Access) -> Self {
        Self {
            read: access == Access::Read,
            columns: None,
            rows: Vec::new(),
            bytes: 2,
            decimals: false,
            max_rows: capability.max_rows,
            max_bytes: capability.max_bytes,
        }
    }

    fn push(&mut self, row: Vec<Value>) -> Result<(), ProxyError> {
        if self.rows.len() >= self.max_rows {
            return Err(Denial::RowCap { max: self.max_rows }.into());
        }
        self.bytes += 3 + row.iter().map(|v| json_size(v, &mut self.decimals)).sum::<usize>();
        if self.bytes > self.max_bytes {
            return Err(Denial::ByteCap { max: self.max_bytes }.into());
        }
        self.rows.push(row);
        Ok(())
    }

    fn finish(self) -> QueryResult {
        let columns = self.columns.unwrap_or_default();
        // Rows go to the guest as objects: the C scanner builds the dicts faster than
        // Python code could zip them from lists.
        let records: Vec<serde_json::Map<String, Value>> =
            self.rows.iter().map(|row| columns.iter().cloned().zip(row.iter().cloned()).collect()).collect();
        let json = json!({ "columns": &columns, "records": records, "decimals": self.decimals, "read": self.read });
        let json = serde_json::value::to_raw_value(&json).expect("rows are plain JSON");
        QueryResult { columns, rows: self.rows, bytes: self.bytes, decimals: self.decimals, json }
    }
}

/// About how many bytes `value` takes as JSON (exact for the flat values rows hold, short
/// of string escapes); notes exact decimals on the way.
fn json_size(value: &Value, decimals: &mut bool) -> usize {
    1 + match value {
        Value::Null => 4,
        Value::Bool(b) => 4 + usize::from(!b),
        Value::Number(n) => n.to_string().len(),
        Value::String(s) => s.len() + 2,
        Value::Array(items) => 2 + items.iter().map(|v| json_size(v, decimals)).sum::<usize>(),
        Value::Object(map) => {
            *decimals |= map.contains_key("$decimal");
            2 + map.iter().map(|(k, v)| k.len() + 3 + json_size(v, decimals)).sum::<usize>()
        }
    }
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
