//! The database as a running script sees it: the requests a guest can make, the answers
//! and refusals it gets, and the audit record of each request.
//!
//! Backends (the WASI sandbox, later Docker) carry these between the guest and an
//! implementation of [`GuestDb`] without knowing how it is done; the `db` module provides
//! the real one (the capability-checked proxy). Keeping the types here lets a backend
//! depend on the shape of the conversation and not on sqlx.
//!
//! A query's rows travel by typed column ([`Rows`], [`Column`]): the guest turns a list of
//! floats into Python floats far faster than it parses the same numbers out of JSON text.
//! Each column sits behind an `Arc`, so the snapshot cache hands the same rows to every
//! scenario of a sweep without copying them.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// One request from a script.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum DbRequest {
    /// `metaexec.db.query(sql, params)`.
    Query {
        /// The statement, with `?` placeholders.
        sql: String,
        /// The values for the placeholders, in order.
        #[serde(default)]
        params: Vec<Value>,
        /// NUMERIC/DECIMAL values as exact decimals instead of floats.
        #[serde(default)]
        exact_decimals: bool,
    },
    /// `metaexec.db.schema()`.
    Schema,
}

/// Why a request was not answered with data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DbFailureKind {
    /// Refused by the job's capability (the query never ran, or was stopped at a cap).
    Denied,
    /// The query was allowed but failed (bad SQL, unknown table, connection lost ...).
    Error,
}

impl DbFailureKind {
    /// The kind as the guest and the outcome name it: `db_denied` or `db_error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Denied => "db_denied",
            Self::Error => "db_error",
        }
    }
}

/// A refused or failed request, raised in the guest as `metaexec.db.DenyError` or
/// `metaexec.db.QueryError`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DbFailure {
    /// Refused or failed.
    pub kind: DbFailureKind,
    /// What was wrong, for the script's author.
    pub message: String,
    /// What to do instead, where there is a suggestion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// What happened to one request: the run's audit trail is a list of these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// `query` or `schema`.
    pub op: String,
    /// The statement as the script sent it (empty for `schema`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sql: String,
    /// The parameters as the script sent them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Value>,
    /// Whether the capability allowed it.
    pub allowed: bool,
    /// `ok`, `db_denied` or `db_error`.
    pub status: String,
    /// Why it was refused or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Rows returned.
    pub rows: u64,
    /// Size of the rows as JSON, in bytes.
    pub bytes: u64,
    /// Time spent, in milliseconds.
    pub duration_ms: f64,
    /// Answered from the job's snapshot without touching the database.
    pub cached: bool,
}

impl AuditEntry {
    /// The record of `request` before anything is known: allowed, `ok`, no rows, no time.
    pub fn for_request(request: &DbRequest) -> Self {
        let (op, sql, params) = match request {
            DbRequest::Query { sql, params, .. } => ("query", sql.clone(), params.clone()),
            DbRequest::Schema => ("schema", String::new(), Vec::new()),
        };
        Self {
            op: op.into(),
            sql,
            params,
            allowed: true,
            status: "ok".into(),
            reason: None,
            rows: 0,
            bytes: 0,
            duration_ms: 0.0,
            cached: false,
        }
    }
}

/// One column of a query's rows: typed where every value has one plain type (SQL NULLs
/// allowed), JSON for the rest.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// Every value a float.
    Floats(Arc<[f64]>),
    /// Every value an integer.
    Integers(Arc<[i64]>),
    /// Every value a string.
    Texts(Arc<[Box<str>]>),
    /// Every value a float or NULL.
    MaybeFloats(Arc<[Option<f64>]>),
    /// Every value an integer or NULL.
    MaybeIntegers(Arc<[Option<i64>]>),
    /// Every value a string or NULL.
    MaybeTexts(Arc<[Option<Box<str>>]>),
    /// Anything else (booleans, exact decimals, JSON, mixed types): a JSON array.
    Values(Arc<str>),
}

/// The rows of one query, by column, as the guest receives them.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    /// The column names, in order (as the database gave them: they may repeat).
    pub names: Arc<[String]>,
    /// One column per name, each `count` values long.
    pub columns: Arc<[Column]>,
    /// How many rows (also when there are no columns to count them by).
    pub count: usize,
    /// The statement only reads: the guest may keep its rows for identical requests.
    pub read: bool,
    /// Some value is an exact decimal object (`{"$decimal": "..."}`).
    pub decimals: bool,
}

impl Column {
    /// The bytes the column holds: its values, and the text of its strings.
    pub fn held_bytes(&self) -> usize {
        match self {
            Self::Floats(values) => size_of_val(&**values),
            Self::Integers(values) => size_of_val(&**values),
            Self::MaybeFloats(values) => size_of_val(&**values),
            Self::MaybeIntegers(values) => size_of_val(&**values),
            Self::Texts(values) => size_of_val(&**values) + values.iter().map(|s| s.len()).sum::<usize>(),
            Self::MaybeTexts(values) => {
                size_of_val(&**values) + values.iter().flatten().map(|s| s.len()).sum::<usize>()
            }
            Self::Values(json) => json.len(),
        }
    }
}

/// A float as a JSON value: NaN and the infinities have no JSON form, so they become null.
pub fn json_float(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

impl Rows {
    /// The `i`-th value of every row of `column`, as the guest sees it (`None` past the
    /// end, or for a JSON column that is not an array).
    pub fn column_values(&self, column: usize) -> Option<Vec<Value>> {
        let float = json_float;
        fn text(s: &str) -> Value {
            Value::String(s.to_owned())
        }
        Some(match self.columns.get(column)? {
            Column::Floats(values) => values.iter().copied().map(float).collect(),
            Column::Integers(values) => values.iter().copied().map(Value::from).collect(),
            Column::Texts(values) => values.iter().map(|s| text(s)).collect(),
            Column::MaybeFloats(values) => values.iter().map(|x| x.map_or(Value::Null, float)).collect(),
            Column::MaybeIntegers(values) => values.iter().map(|x| x.map_or(Value::Null, Value::from)).collect(),
            Column::MaybeTexts(values) => values.iter().map(|s| s.as_deref().map_or(Value::Null, text)).collect(),
            Column::Values(json) => match serde_json::from_str(json) {
                Ok(Value::Array(values)) => values,
                _ => return None,
            },
        })
    }

    /// The rows, each a list of values in column order (for callers on the host).
    pub fn records(&self) -> Vec<Vec<Value>> {
        let mut columns: Vec<std::vec::IntoIter<Value>> =
            (0..self.columns.len()).map(|i| self.column_values(i).unwrap_or_default().into_iter()).collect();
        (0..self.count).map(|_| columns.iter_mut().map(|c| c.next().unwrap_or_default()).collect()).collect()
    }
}

/// What a request is answered with.
#[derive(Debug, Clone)]
pub enum DbAnswer {
    /// A query's rows.
    Rows(Rows),
    /// The schema, as JSON.
    Schema(Box<RawValue>),
}

/// The answer to a request and its audit record.
#[derive(Debug, Clone)]
pub struct DbResponse {
    /// The answer sent back to the guest, or why not.
    pub result: Result<DbAnswer, DbFailure>,
    /// What is recorded.
    pub audit: AuditEntry,
}

/// Something that answers a script's database requests. Implementations never fail as a
/// whole: every problem becomes a [`DbFailure`] the script can catch.
#[async_trait]
pub trait GuestDb: Send + Sync + fmt::Debug {
    /// Answers one request.
    async fn handle(&self, request: DbRequest) -> DbResponse;

    /// How many queries reached the database so far (the rest were answered from a
    /// snapshot or refused).
    fn queries_executed(&self) -> u64;
}

/// A shared handle on a [`GuestDb`], as a job carries it. Jobs compare equal when they
/// share the same database handle.
#[derive(Clone)]
pub struct DbHandle(pub Arc<dyn GuestDb>);

impl DbHandle {
    /// Wraps an implementation.
    pub fn new(db: impl GuestDb + 'static) -> Self {
        Self(Arc::new(db))
    }
}

impl fmt::Debug for DbHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for DbHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
