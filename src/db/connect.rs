//! Opening a database: one sqlx pool per [`DbUrl`], opened the way the job's capability
//! allows.
//!
//! SQLite files are opened read-only (the driver refuses every write, whatever the SQL)
//! unless writes were granted, and are never created implicitly, except the embedded demo
//! database, which is built on first use. PostgreSQL pools connect with the URL as given;
//! read-only-ness there comes from the `READ ONLY` transaction every query runs in
//! (`proxy.rs`).

use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use super::{Cause, DbError, DbUrl, Dialect};

/// How long to wait for a connection before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections per pool: a job asks one query at a time, a sweep a few at once.
const MAX_CONNECTIONS: u32 = 4;

/// An open database.
#[derive(Debug, Clone)]
pub struct Database {
    url: DbUrl,
    pool: Pool,
    writable: bool,
}

/// The driver's pool, per dialect.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Database {
    /// Opens `url`; `writable` only when the job was granted writes. The demo database is
    /// created first if it does not exist yet.
    pub async fn open(url: &DbUrl, writable: bool) -> Result<Self, DbError> {
        let pool = match (url.sqlite_path(), url.connect_string()) {
            (Some(path), _) => {
                if url.is_demo()
                    && !path.exists()
                    && let Err(error) = super::demo::create_sqlite(path).await
                    // Another process may have created it meanwhile (the demo never
                    // replaces a file): use theirs.
                    && !path.exists()
                {
                    return Err(error);
                }
                if !path.exists() {
                    return Err(DbError::NotFound { path: path.to_owned() });
                }
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .read_only(!writable)
                    .create_if_missing(false)
                    .busy_timeout(Duration::from_secs(5));
                let pool = SqlitePoolOptions::new()
                    .max_connections(MAX_CONNECTIONS)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(|e| connect_error(url, &e))?;
                Pool::Sqlite(pool)
            }
            (None, Some(raw)) => {
                let options = PgConnectOptions::from_str(raw)
                    .map_err(|e| DbError::InvalidUrl { url: url.masked(), reason: Cause::scrubbed(&e, Some(url)).0 })?;
                let options = options.application_name("metaexec");
                // The pool retries a failing connection until its timeout and then reports
                // only that it timed out: one direct attempt first surfaces the real cause
                // (refused, unknown host, wrong password) at once.
                let first = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
                    .await
                    .unwrap_or_else(|_| {
                        Err(sqlx::Error::Io(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
                        )))
                    })
                    .map_err(|e| connect_error(url, &e))?;
                let _ = first.close().await;
                let pool = PgPoolOptions::new()
                    .max_connections(MAX_CONNECTIONS)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(|e| connect_error(url, &e))?;
                Pool::Postgres(pool)
            }
            (None, None) => unreachable!("a DbUrl is either a SQLite file or a PostgreSQL URL"),
        };
        Ok(Self { url: url.clone(), pool, writable })
    }

    /// Where the data is (masked when displayed).
    pub fn url(&self) -> &DbUrl {
        &self.url
    }

    /// The SQL dialect.
    pub fn dialect(&self) -> Dialect {
        self.url.dialect()
    }

    /// Whether the database was opened for writing.
    pub fn writable(&self) -> bool {
        self.writable
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

fn connect_error(url: &DbUrl, error: &sqlx::Error) -> DbError {
    DbError::Connect { url: url.masked(), source: Cause::scrubbed(error, Some(url)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read-only is the driver's guarantee, not only the policy's: a write sent straight
    /// to the pool of a read-only SQLite database fails.
    #[tokio::test]
    async fn read_only_sqlite_refuses_writes_at_the_driver() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.db");
        super::super::demo::create_sqlite(&path).await.unwrap();
        let insert = "INSERT INTO properties (property_id, property_name) VALUES (99, 'Written')";
        for writable in [false, true] {
            let database = Database::open(&DbUrl::sqlite(&path), writable).await.unwrap();
            let Pool::Sqlite(pool) = database.pool() else { unreachable!() };
            let result = sqlx::query(insert).execute(pool).await;
            if writable {
                assert_eq!(result.unwrap().rows_affected(), 1);
            } else {
                let error = result.unwrap_err().to_string();
                assert!(error.contains("readonly"), "{error}");
            }
            database.close().await;
        }
    }

    #[tokio::test]
    async fn missing_sqlite_files_are_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.db");
        let error = Database::open(&DbUrl::sqlite(&path), true).await.unwrap_err();
        assert!(matches!(error, DbError::NotFound { .. }), "{error:?}");
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn the_demo_is_created_on_first_use() {
        let dir = tempfile::tempdir().unwrap();
        let url = DbUrl::demo(dir.path());
        let database = Database::open(&url, false).await.unwrap();
        assert!(url.sqlite_path().unwrap().is_file());
        database.close().await;
    }
}
