//! The database layer: the host owns every connection; guest scripts only ever see rows.
//!
//! A script never holds credentials and never opens a connection. It asks the host through
//! [`DbProxy::query`] and [`DbProxy::schema`], and every request is checked against the
//! job's [`Capability`] before anything reaches the database:
//!
//! - [`url`]: where the data is ([`DbUrl`]: `--db`, then `DATABASE_URL`, then the demo),
//!   with the password masked in every rendering;
//! - [`connect`]: the sqlx pools (SQLite opened read-only unless writes are granted);
//! - [`policy`] and [`functions`]: the sqlparser classification (one statement, reads
//!   only, functions and catalogs by allowlist per dialect, the table allowlist) and the
//!   `?` to `$n` placeholder translation;
//! - [`params`] and [`value`]: JSON parameters in, database values as JSON values out,
//!   mapped by hand so every type is explicit;
//! - [`proxy`]: the checked request path with caps, timeout and an audit record per
//!   request ([`crate::guest_db::AuditEntry`]); [`rows`]: the rows gathered by typed
//!   column for the guest as they arrive, under the caps and the host memory budget;
//!   [`snapshot`]: the snapshot cache, least recently used out, bounded in bytes;
//! - [`inspect`]: the schema as a typed value and as compact prompt text;
//! - [`demo`]: the embedded demo portfolio.
//!
//! sqlx and sqlparser live behind this module only: the sandbox sees [`DbProxy`],
//! [`QueryResult`], [`ProxyError`] and [`Schema`].
//!
//! Without the `engine` feature only the policy half builds ([`capability`], [`policy`],
//! [`error`] and [`Dialect`]): no sqlx, so the SQL policy can be fuzzed on its own.

pub mod capability;
#[cfg(feature = "engine")]
pub mod connect;
#[cfg(feature = "engine")]
pub mod demo;
pub mod error;
pub mod functions;
#[cfg(feature = "engine")]
pub mod inspect;
#[cfg(feature = "engine")]
pub mod params;
pub mod policy;
#[cfg(feature = "engine")]
pub mod proxy;
#[cfg(feature = "engine")]
pub mod replay;
#[cfg(feature = "engine")]
pub mod rows;
#[cfg(feature = "engine")]
pub mod snapshot;
#[cfg(feature = "engine")]
pub mod url;
#[cfg(feature = "engine")]
pub mod value;

#[cfg(feature = "engine")]
use std::path::PathBuf;

pub use capability::Capability;
#[cfg(feature = "engine")]
pub use connect::Database;
pub use error::{ProxyError, ProxyErrorKind};
#[cfg(feature = "engine")]
pub use inspect::{Column, ForeignKey, Join, Schema, Table};
pub use policy::Denial;
#[cfg(feature = "engine")]
pub use proxy::{DbProxy, ProxyStats, QueryResult};
#[cfg(feature = "engine")]
pub use url::DbUrl;

/// The SQL dialect of a connection; it decides how SQL is parsed and how placeholders are
/// written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// SQLite (a file on this machine).
    Sqlite,
    /// PostgreSQL (a server).
    Postgres,
}

impl Dialect {
    /// `SQLite` or `PostgreSQL`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }

    /// The schema a bare table name refers to: `main` in SQLite, `public` in PostgreSQL.
    pub fn default_schema(self) -> &'static str {
        match self {
            Self::Sqlite => "main",
            Self::Postgres => "public",
        }
    }
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(feature = "engine")]
/// Why a database could not be opened, inspected or set up. Every message shows the URL
/// masked ([`DbUrl`]'s `Display`), and causes coming from the driver are scrubbed of the
/// password before they are stored (see [`Cause`]).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The `--db` value or `DATABASE_URL` is not a URL metaexec understands.
    #[error("Failed to parse the database URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL, masked.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A database kind metaexec does not support.
    #[error("Failed to use `{url}`: {scheme} databases are not supported")]
    Unsupported {
        /// The URL, masked.
        url: String,
        /// The URL's scheme.
        scheme: String,
    },
    /// The SQLite file does not exist (and writes were not granted, so it is not created).
    #[error("Failed to open the SQLite database `{}`: no such file", path.display())]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// The driver could not open a connection.
    #[error("Failed to connect to `{url}`")]
    Connect {
        /// The URL, masked.
        url: String,
        /// The driver's error, scrubbed.
        #[source]
        source: Cause,
    },
    /// Reading the catalog failed.
    #[error("Failed to inspect the schema of `{url}`")]
    Inspect {
        /// The URL, masked.
        url: String,
        /// The driver's error, scrubbed.
        #[source]
        source: Cause,
    },
    /// Creating or loading the demo portfolio failed.
    #[error("Failed to load the demo portfolio into `{target}`")]
    Demo {
        /// The file or URL (masked) the demo was going into.
        target: String,
        /// What went wrong.
        #[source]
        source: Cause,
    },
    /// A file could not be read or written.
    #[error("Failed to write `{}`", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

#[cfg(feature = "engine")]
impl DbError {
    /// A suggestion for the user, where there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::InvalidUrl { .. } => Some(
                "use `sqlite:///abs/path.db`, `sqlite://relative.db`, a plain path to a SQLite file, or `postgres://user:password@host:5432/db`".into(),
            ),
            Self::Unsupported { .. } => Some("metaexec reads SQLite files and PostgreSQL servers".into()),
            Self::NotFound { .. } => Some(
                "check the path, or create the demo database there with `metaexec db demo --out PATH`".into(),
            ),
            Self::Connect { .. } => {
                Some("check the URL, that the server is running and accepts connections from here, and the credentials".into())
            }
            Self::Demo { .. } => Some("load the demo into an empty database (its tables must not exist yet)".into()),
            Self::Inspect { .. } | Self::Io { .. } => None,
        }
    }
}

#[cfg(feature = "engine")]
/// A driver error turned into text with any password removed, so that it can travel in
/// errors, logs and JSON without leaking credentials.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Cause(pub String);

#[cfg(feature = "engine")]
impl Cause {
    /// The error's message (with its own causes), with `url`'s password scrubbed.
    pub fn scrubbed(error: &dyn std::error::Error, url: Option<&DbUrl>) -> Self {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            let more = cause.to_string();
            if !text.contains(&more) {
                text.push_str(": ");
                text.push_str(&more);
            }
            source = cause.source();
        }
        Self(match url {
            Some(url) => url.scrub(&text),
            None => text,
        })
    }
}
