//! A sweep's reads, recorded once and answered without a database.
//!
//! A sweep that runs on other machines ships no credentials: the coordinator runs the
//! base scenario through [`Recording`], which keeps every read the script made and its
//! rows (a [`Snapshot`], written as `snapshot.json`), and workers answer from it with
//! [`Replay`]. A query that is not in the snapshot is refused as `db_denied`: the
//! script's reads then depend on the scenario, and only the database could answer them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::guest_db::{AuditEntry, Column, DbAnswer, DbFailure, DbFailureKind, DbRequest, DbResponse, GuestDb, Rows};

/// The format a `snapshot.json` declares.
pub const SNAPSHOT_FORMAT: &str = "metaexec-db-snapshot/1";

/// A snapshot that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The file cannot be read or written.
    #[error("the snapshot `{path}` cannot be {action}: {source}")]
    Io {
        /// The file.
        path: String,
        /// `read` or `written`.
        action: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a snapshot of this format.
    #[error("`{path}` is not a database snapshot of this metaexec: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// A snapshot file as read: the snapshot, and the bytes a part copies and names by their
/// SHA-256 (read once, so the copy and its digest are of what was answered from).
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    /// What the file says.
    pub snapshot: Snapshot,
    /// The file's bytes.
    pub bytes: Vec<u8>,
}

impl SnapshotFile {
    /// The SHA-256 of the file's bytes.
    pub fn sha256(&self) -> String {
        crate::cache::sha256_hex(&self.bytes)
    }
}

/// The reads of a base scenario and their rows: what a worker answers from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// [`SNAPSHOT_FORMAT`].
    pub format: String,
    /// Every distinct read, in the order it was first made.
    pub queries: Vec<Recorded>,
    /// The schema, when the script asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Box<RawValue>>,
}

/// One read and its rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recorded {
    /// The SQL as the script sent it.
    pub sql: String,
    /// Its parameters.
    pub params: Vec<Value>,
    /// Whether exact decimals were asked for.
    pub exact_decimals: bool,
    /// The rows, by column.
    pub rows: StoredRows,
}

/// [`Rows`] in a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredRows {
    /// Column names.
    pub names: Vec<String>,
    /// One column per name.
    pub columns: Vec<StoredColumn>,
    /// How many rows.
    pub count: usize,
    /// Some value is an exact decimal.
    pub decimals: bool,
}

/// [`Column`] in a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "values", rename_all = "snake_case")]
pub enum StoredColumn {
    /// Floats (a non-finite one is kept as `null` and read back as NaN).
    Floats(Vec<Option<f64>>),
    /// Integers.
    Integers(Vec<i64>),
    /// Strings.
    Texts(Vec<String>),
    /// Floats or NULL.
    MaybeFloats(Vec<Option<f64>>),
    /// Integers or NULL.
    MaybeIntegers(Vec<Option<i64>>),
    /// Strings or NULL.
    MaybeTexts(Vec<Option<String>>),
    /// A JSON array.
    Values(String),
}

impl From<&Rows> for StoredRows {
    fn from(rows: &Rows) -> Self {
        let columns = rows
            .columns
            .iter()
            .map(|column| match column {
                Column::Floats(v) => StoredColumn::Floats(v.iter().map(|x| x.is_finite().then_some(*x)).collect()),
                Column::Integers(v) => StoredColumn::Integers(v.to_vec()),
                Column::Texts(v) => StoredColumn::Texts(v.iter().map(|s| s.to_string()).collect()),
                Column::MaybeFloats(v) => StoredColumn::MaybeFloats(v.to_vec()),
                Column::MaybeIntegers(v) => StoredColumn::MaybeIntegers(v.to_vec()),
                Column::MaybeTexts(v) => {
                    StoredColumn::MaybeTexts(v.iter().map(|s| s.as_ref().map(|s| s.to_string())).collect())
                }
                Column::Values(json) => StoredColumn::Values(json.to_string()),
            })
            .collect();
        Self { names: rows.names.to_vec(), columns, count: rows.count, decimals: rows.decimals }
    }
}

impl StoredRows {
    /// The rows as the guest receives them; `None` when a column's length is not the
    /// row count (a file edited by hand).
    fn to_rows(&self) -> Option<Rows> {
        let columns: Vec<Column> = self
            .columns
            .iter()
            .map(|column| match column {
                StoredColumn::Floats(v) => Column::Floats(v.iter().map(|x| x.unwrap_or(f64::NAN)).collect()),
                StoredColumn::Integers(v) => Column::Integers(v.as_slice().into()),
                StoredColumn::Texts(v) => Column::Texts(v.iter().map(|s| s.as_str().into()).collect()),
                StoredColumn::MaybeFloats(v) => Column::MaybeFloats(v.as_slice().into()),
                StoredColumn::MaybeIntegers(v) => Column::MaybeIntegers(v.as_slice().into()),
                StoredColumn::MaybeTexts(v) => {
                    Column::MaybeTexts(v.iter().map(|s| s.as_deref().map(Into::into)).collect())
                }
                StoredColumn::Values(json) => Column::Values(json.as_str().into()),
            })
            .collect();
        let lengths_match = self.columns.iter().all(|c| match c {
            StoredColumn::Floats(v) | StoredColumn::MaybeFloats(v) => v.len() == self.count,
            StoredColumn::Integers(v) => v.len() == self.count,
            StoredColumn::Texts(v) => v.len() == self.count,
            StoredColumn::MaybeIntegers(v) => v.len() == self.count,
            StoredColumn::MaybeTexts(v) => v.len() == self.count,
            StoredColumn::Values(json) => {
                serde_json::from_str::<Vec<&RawValue>>(json).is_ok_and(|values| values.len() == self.count)
            }
        });
        (lengths_match && columns.len() == self.names.len()).then(|| Rows {
            names: self.names.clone().into(),
            columns: columns.into(),
            count: self.count,
            read: true,
            decimals: self.decimals,
        })
    }
}

impl Snapshot {
    /// A snapshot of no reads.
    pub fn empty() -> Self {
        Self { format: SNAPSHOT_FORMAT.to_owned(), ..Self::default() }
    }

    /// Reads `snapshot.json`, once: what it says and the bytes it was read from.
    pub fn read(path: &Path) -> Result<SnapshotFile, SnapshotError> {
        let shown = path.display().to_string();
        let bytes =
            std::fs::read(path).map_err(|source| SnapshotError::Io { path: shown.clone(), action: "read", source })?;
        let format = |reason: String| SnapshotError::Format { path: shown.clone(), reason };
        let snapshot: Snapshot = serde_json::from_slice(&bytes).map_err(|e| format(e.to_string()))?;
        if snapshot.format != SNAPSHOT_FORMAT {
            return Err(format(format!("its format is `{}`, not `{SNAPSHOT_FORMAT}`", snapshot.format)));
        }
        if let Some(bad) = snapshot.queries.iter().find(|q| q.rows.to_rows().is_none()) {
            return Err(format(format!("the rows of `{}` do not match their columns", bad.sql)));
        }
        Ok(SnapshotFile { snapshot, bytes })
    }

    /// Writes it to `path` (a temporary file, then renamed).
    pub fn write(&self, path: &Path) -> Result<(), SnapshotError> {
        let mut text = serde_json::to_string(self).unwrap_or_default();
        text.push('\n');
        crate::cache::write_atomically(path, text.as_bytes()).map_err(|source| SnapshotError::Io {
            path: path.display().to_string(),
            action: "written",
            source,
        })
    }
}

fn key(sql: &str, params: &[Value], exact: bool) -> (String, String, bool) {
    (sql.to_owned(), Value::from(params.to_vec()).to_string(), exact)
}

/// Passes every request to a database and keeps each read's rows.
#[derive(Debug)]
pub struct Recording {
    inner: Arc<dyn GuestDb>,
    kept: Mutex<Snapshot>,
}

impl Recording {
    /// Records what goes through `inner`.
    pub fn new(inner: Arc<dyn GuestDb>) -> Self {
        Self { inner, kept: Mutex::new(Snapshot::empty()) }
    }

    /// What was read so far.
    pub fn snapshot(&self) -> Snapshot {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[async_trait]
impl GuestDb for Recording {
    fn queries_executed(&self) -> u64 {
        self.inner.queries_executed()
    }

    async fn handle(&self, request: DbRequest) -> DbResponse {
        let response = self.inner.handle(request.clone()).await;
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        match (&request, &response.result) {
            (DbRequest::Query { sql, params, exact_decimals }, Ok(DbAnswer::Rows(rows))) if rows.read => {
                let wanted = key(sql, params, *exact_decimals);
                if !kept.queries.iter().any(|q| key(&q.sql, &q.params, q.exact_decimals) == wanted) {
                    kept.queries.push(Recorded {
                        sql: sql.clone(),
                        params: params.clone(),
                        exact_decimals: *exact_decimals,
                        rows: rows.into(),
                    });
                }
            }
            (DbRequest::Schema, Ok(DbAnswer::Schema(schema))) => kept.schema = Some(schema.clone()),
            _ => {}
        }
        response
    }
}

/// Answers reads from a snapshot; refuses everything else.
#[derive(Debug)]
pub struct Replay {
    answers: HashMap<(String, String, bool), Rows>,
    schema: Option<Box<RawValue>>,
    /// The snapshot's file, as errors name it.
    source: String,
}

impl Replay {
    /// Answers from `snapshot`, read from `source`.
    pub fn new(snapshot: &Snapshot, source: &str) -> Self {
        let answers = snapshot
            .queries
            .iter()
            .filter_map(|q| Some((key(&q.sql, &q.params, q.exact_decimals), q.rows.to_rows()?)))
            .collect();
        Self { answers, schema: snapshot.schema.clone(), source: source.to_owned() }
    }

    fn refuse(&self, what: &str) -> DbFailure {
        DbFailure {
            kind: DbFailureKind::Denied,
            message: format!(
                "{what} is not in the sweep's database snapshot ({}): a worker answers only the reads the base \
                 scenario made, so the script's queries must not depend on the scenario",
                self.source
            ),
            hint: Some(
                "read the same rows with the same SQL and parameters in every scenario and apply the scenario's \
                 parameters in Python; or give the workers a database with --db URL instead of --snapshot"
                    .into(),
            ),
        }
    }
}

#[async_trait]
impl GuestDb for Replay {
    fn queries_executed(&self) -> u64 {
        0
    }

    async fn handle(&self, request: DbRequest) -> DbResponse {
        let mut audit = AuditEntry::for_request(&request);
        let result = match &request {
            DbRequest::Query { sql, params, exact_decimals } => {
                match self.answers.get(&key(sql, params, *exact_decimals)) {
                    Some(rows) => {
                        audit.rows = rows.count as u64;
                        Ok(DbAnswer::Rows(rows.clone()))
                    }
                    None => Err(self.refuse("this query")),
                }
            }
            DbRequest::Schema => match &self.schema {
                Some(schema) => Ok(DbAnswer::Schema(schema.clone())),
                None => Err(self.refuse("the schema")),
            },
        };
        match &result {
            Ok(_) => audit.cached = true,
            Err(failure) => {
                audit.allowed = false;
                audit.status = failure.kind.as_str().into();
                audit.reason = Some(failure.message.clone());
            }
        }
        DbResponse { result, audit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Capability, DbProxy, DbUrl};

    fn query(sql: &str, params: Vec<Value>) -> DbRequest {
        DbRequest::Query { sql: sql.into(), params, exact_decimals: false }
    }

    #[tokio::test]
    async fn a_recorded_read_is_answered_the_same_without_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("demo.db");
        crate::db::demo::create_sqlite(&file).await.unwrap();
        let url = DbUrl::parse(&file.display().to_string()).unwrap();
        let proxy: Arc<dyn GuestDb> = Arc::new(DbProxy::new(url, Capability::default()));
        let recording = Recording::new(proxy);
        let read = query("SELECT * FROM properties WHERE property_id >= ? ORDER BY property_id", vec![Value::from(1)]);
        let direct = recording.handle(read.clone()).await;
        recording.handle(read.clone()).await;
        recording.handle(DbRequest::Schema).await;
        let snapshot = recording.snapshot();
        assert_eq!(snapshot.queries.len(), 1, "the repeat is kept once");
        let path = dir.path().join("snapshot.json");
        snapshot.write(&path).unwrap();
        let replay = Replay::new(&Snapshot::read(&path).unwrap().snapshot, "snapshot.json");
        let replayed = replay.handle(read).await;
        let (Ok(DbAnswer::Rows(a)), Ok(DbAnswer::Rows(b))) = (&direct.result, &replayed.result) else {
            panic!("{direct:?} {replayed:?}")
        };
        assert_eq!(a.records(), b.records());
        assert_eq!(a.names, b.names);
        assert!(replayed.audit.cached && replayed.audit.rows == 10);
        assert!(matches!(replay.handle(DbRequest::Schema).await.result, Ok(DbAnswer::Schema(_))));
        // The same SQL with another parameter depends on the scenario: refused, saying why.
        let other = replay
            .handle(query("SELECT * FROM properties WHERE property_id >= ? ORDER BY property_id", vec![Value::from(2)]))
            .await;
        let failure = other.result.unwrap_err();
        assert_eq!(failure.kind, DbFailureKind::Denied);
        assert!(failure.message.contains("must not depend on the scenario"), "{}", failure.message);
        assert!(failure.hint.unwrap().contains("--db URL"));
        assert_eq!(other.audit.status, "db_denied");
        assert!(!other.audit.allowed);
    }

    #[test]
    fn a_snapshot_of_another_format_or_with_torn_columns_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        std::fs::write(&path, r#"{"format": "other/9", "queries": []}"#).unwrap();
        assert!(Snapshot::read(&path).unwrap_err().to_string().contains("not `metaexec-db-snapshot/1`"));
        let torn = r#"{"format": "metaexec-db-snapshot/1", "queries": [{"sql": "SELECT 1", "params": [],
            "exact_decimals": false, "rows": {"names": ["a"], "columns": [{"type": "integers", "values": [1, 2]}],
            "count": 1, "decimals": false}}]}"#;
        std::fs::write(&path, torn).unwrap();
        assert!(Snapshot::read(&path).unwrap_err().to_string().contains("do not match their columns"));
        assert!(Snapshot::read(&dir.path().join("missing.json")).unwrap_err().to_string().contains("cannot be read"));
    }
}
