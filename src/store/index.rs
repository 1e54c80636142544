//! The list of runs: a SQLite index (`.index.sqlite` in the runs folder) of every run's
//! [`Entry`], so that listing thousands of runs reads one table instead of every folder.
//!
//! The folders are the truth and the index only a copy: [`Index::sync`] brings it up to
//! date by comparing each folder's `entry.json` modification time with the one indexed,
//! so an index that is missing, deleted, corrupt or behind (runs made, removed or
//! finished since) is rebuilt or caught up on the next read.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, UNIX_EPOCH};

use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::entry::{Entry, RunKind, RunStatus, headline};
use super::{StoreError, is_run_id};

/// The index's file name in the runs folder (hidden, so never taken for a run).
pub const INDEX_FILE: &str = ".index.sqlite";
/// The index's layout; another number rebuilds it.
const SCHEMA_VERSION: i64 = 1;

/// An open index over one runs folder.
#[derive(Debug, Clone)]
pub struct Index {
    pool: SqlitePool,
    root: PathBuf,
    path: PathBuf,
}

/// What a sync changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Synced {
    /// Runs added or updated from their folders.
    pub updated: usize,
    /// Runs dropped because their folder is gone.
    pub removed: usize,
}

impl Index {
    /// Opens (or creates) the index of `root` and brings it up to date with the folders.
    /// A corrupt index file, or one of another layout, is deleted and rebuilt.
    pub async fn open(root: &Path) -> Result<Self, StoreError> {
        let path = root.join(INDEX_FILE);
        let index = match Self::connect(root, &path).await {
            Ok(index) => index,
            Err(e) => {
                tracing::warn!("rebuilding the runs index {}: {e}", path.display());
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                Self::connect(root, &path).await?
            }
        };
        index.sync().await?;
        Ok(index)
    }

    async fn connect(root: &Path, path: &Path) -> Result<Self, StoreError> {
        let failed = |e: sqlx::Error| StoreError::Index { path: path.to_owned(), reason: e.to_string() };
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(failed)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(2).connect_with(options).await.map_err(failed)?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&pool).await.map_err(failed)?;
        if version != SCHEMA_VERSION {
            sqlx::query("DROP TABLE IF EXISTS runs").execute(&pool).await.map_err(failed)?;
            sqlx::query(
                "CREATE TABLE runs (id TEXT PRIMARY KEY, created TEXT NOT NULL, stamp INTEGER NOT NULL, \
                 entry TEXT NOT NULL)",
            )
            .execute(&pool)
            .await
            .map_err(failed)?;
            sqlx::query("CREATE INDEX runs_created ON runs (created DESC, id DESC)")
                .execute(&pool)
                .await
                .map_err(failed)?;
            sqlx::query(&format!("PRAGMA user_version = {SCHEMA_VERSION}")).execute(&pool).await.map_err(failed)?;
        }
        // A table that cannot be read is as good as missing.
        sqlx::query("SELECT count(*) FROM runs").fetch_one(&pool).await.map_err(failed)?;
        Ok(Self { pool, root: root.to_owned(), path: path.to_owned() })
    }

    fn failed(&self, e: sqlx::Error) -> StoreError {
        StoreError::Index { path: self.path.clone(), reason: e.to_string() }
    }

    /// Brings the index up to date with the folders: folders new or changed since they
    /// were indexed are read again, folders gone are dropped.
    pub async fn sync(&self) -> Result<Synced, StoreError> {
        let on_disk = scan(&self.root)?;
        let rows = sqlx::query("SELECT id, stamp FROM runs").fetch_all(&self.pool).await.map_err(|e| self.failed(e))?;
        let indexed: std::collections::HashMap<String, i64> =
            rows.iter().map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1))).collect();
        let mut synced = Synced::default();
        let mut tx = self.pool.begin().await.map_err(|e| self.failed(e))?;
        for (id, stamp) in &on_disk {
            if indexed.get(id) == Some(stamp) {
                continue;
            }
            let Some(entry) = read_entry(&self.root.join(id), id) else { continue };
            let json = serde_json::to_string(&entry)
                .map_err(|e| StoreError::Index { path: self.path.clone(), reason: e.to_string() })?;
            sqlx::query("INSERT OR REPLACE INTO runs (id, created, stamp, entry) VALUES (?, ?, ?, ?)")
                .bind(id)
                .bind(&entry.created)
                .bind(stamp)
                .bind(json)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.failed(e))?;
            synced.updated += 1;
        }
        for id in indexed.keys().filter(|id| !on_disk.contains_key(*id)) {
            sqlx::query("DELETE FROM runs WHERE id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.failed(e))?;
            synced.removed += 1;
        }
        tx.commit().await.map_err(|e| self.failed(e))?;
        Ok(synced)
    }

    /// The runs, newest first; at most `limit` of them.
    pub async fn list(&self, limit: Option<usize>) -> Result<Vec<Entry>, StoreError> {
        let limit = limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let rows = sqlx::query("SELECT entry FROM runs ORDER BY created DESC, id DESC LIMIT ?")
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(rows.iter().filter_map(|r| serde_json::from_str(&r.get::<String, _>(0)).ok()).collect())
    }

    /// One run's entry, if it is indexed.
    pub async fn get(&self, id: &str) -> Result<Option<Entry>, StoreError> {
        let row = sqlx::query("SELECT entry FROM runs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(row.and_then(|r| serde_json::from_str(&r.get::<String, _>(0)).ok()))
    }

    /// Closes the index's connections (a test deleting the file waits for this).
    pub async fn close(self) {
        self.pool.close().await;
    }
}

/// The run folders under `root` with the modification time of their record, in
/// nanoseconds: `entry.json`, else (a run recorded before entries existed) `run.json`.
fn scan(root: &Path) -> Result<std::collections::HashMap<String, i64>, StoreError> {
    let io = |source| StoreError::Io { path: root.to_owned(), source };
    let mut found = std::collections::HashMap::new();
    for item in std::fs::read_dir(root).map_err(io)? {
        let item = item.map_err(io)?;
        let Some(id) = item.file_name().to_str().map(str::to_owned) else { continue };
        if !is_run_id(&id) || !item.file_type().map_err(io)?.is_dir() {
            continue;
        }
        let stamp = ["entry.json", "run.json"].iter().find_map(|name| {
            let modified = std::fs::symlink_metadata(item.path().join(name)).ok()?.modified().ok()?;
            let nanos = modified.duration_since(UNIX_EPOCH).ok()?.as_nanos();
            Some(i64::try_from(nanos).unwrap_or(i64::MAX))
        });
        if let Some(stamp) = stamp {
            found.insert(id, stamp);
        }
    }
    Ok(found)
}

/// A folder's entry: `entry.json`, else one made from a `run.json` of a run recorded
/// before entries existed. `None` for a folder that holds neither readable.
pub fn read_entry(dir: &Path, id: &str) -> Option<Entry> {
    if let Ok(bytes) = std::fs::read(dir.join("entry.json")) {
        return serde_json::from_slice::<Entry>(&bytes).ok().map(|e| Entry { id: id.to_owned(), ..e });
    }
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("run.json")).ok()?).ok()?;
    let outcome = record.get("outcome").filter(|o| !o.is_null());
    let error = record.get("error").filter(|e| !e.is_null()).or_else(|| outcome?.get("error").filter(|e| !e.is_null()));
    let status = match (error, outcome) {
        _ if record.get("interrupted").and_then(serde_json::Value::as_bool) == Some(true) => RunStatus::Interrupted,
        (Some(_), _) | (None, None) => RunStatus::Failed,
        (None, Some(_)) => RunStatus::Ok,
    };
    let results = outcome.and_then(|o| o.get("results")?.as_object().cloned()).unwrap_or_default();
    Some(Entry {
        id: id.to_owned(),
        created: created_from_id(id),
        kind: RunKind::Run,
        title: record.get("request").and_then(serde_json::Value::as_str).unwrap_or_default().trim().to_owned(),
        status,
        error_kind: error.and_then(|e| e.get("kind")?.as_str().map(str::to_owned)),
        headline: headline(&results),
        rerun_of: None,
    })
}

/// The creation time written in a run id (`20261202-164001-...`), RFC 3339.
fn created_from_id(id: &str) -> String {
    chrono::NaiveDateTime::parse_from_str(id.get(..15).unwrap_or_default(), "%Y%m%d-%H%M%S")
        .map(|t| t.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}
