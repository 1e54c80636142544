//! Where the data is: a [`DbUrl`] parsed from `--db`, then `DATABASE_URL`, then the
//! embedded demo database.
//!
//! Invariant: the password never leaves this type in clear except towards the driver
//! ([`DbUrl::connect_string`], crate-private). `Display`, `Debug` and `Serialize` all
//! render the masked form (`postgres://user:***@host/db`), and [`DbUrl::scrub`] removes
//! the password from any text a driver produced, so errors, logs, JSON and run records
//! cannot show it.

use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use super::{DbError, Dialect};

/// The environment variable read when no `--db` is given.
pub const DATABASE_URL_ENV: &str = "DATABASE_URL";

/// What a password is replaced with wherever a URL is shown.
const MASK: &str = "***";

/// Query parameters of a PostgreSQL URL that carry secrets.
const SECRET_PARAMS: [&str; 2] = ["password", "sslpassword"];

/// A database location: a SQLite file or a PostgreSQL server.
#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl {
    target: Target,
    /// True for the embedded demo database (created on first use).
    demo: bool,
}

#[derive(Clone, PartialEq, Eq)]
enum Target {
    Sqlite {
        path: PathBuf,
    },
    Postgres {
        /// The URL as given, password included: only for the driver.
        raw: String,
        /// The URL with the password (and secret query parameters) masked.
        masked: String,
        /// The secrets in clear (and percent-decoded), for [`DbUrl::scrub`].
        secrets: Vec<String>,
    },
}

impl DbUrl {
    /// Parses a `--db` value or `DATABASE_URL`: `sqlite:///abs/path.db`,
    /// `sqlite://relative.db`, `sqlite:path.db`, `postgres://...` /
    /// `postgresql://...`, or a plain path to a SQLite file.
    pub fn parse(text: &str) -> Result<Self, DbError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(DbError::InvalidUrl { url: String::new(), reason: "it is empty".into() });
        }
        if let Some(rest) = text.strip_prefix("sqlite:") {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            if rest.contains('?') {
                return Err(DbError::InvalidUrl {
                    url: text.to_owned(),
                    reason: "SQLite URLs take no options here (metaexec decides how the file is opened)".into(),
                });
            }
            if rest.is_empty() || rest == ":memory:" {
                return Err(DbError::InvalidUrl {
                    url: text.to_owned(),
                    reason: "it names no SQLite file (in-memory databases hold no data to analyse)".into(),
                });
            }
            return Ok(Self::sqlite(rest));
        }
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Self::postgres(text);
        }
        if let Some((scheme, _)) = text.split_once("://") {
            let scheme = scheme.to_ascii_lowercase();
            if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
                return Err(DbError::Unsupported { url: mask_unknown(text), scheme });
            }
        }
        Ok(Self::sqlite(text))
    }

    /// A SQLite file.
    pub fn sqlite(path: impl Into<PathBuf>) -> Self {
        Self { target: Target::Sqlite { path: path.into() }, demo: false }
    }

    /// The embedded demo database inside a cache root (`<cache>/demo/portfolio.db`),
    /// created from the embedded portfolio on first connection.
    pub fn demo(cache_root: &Path) -> Self {
        Self { target: Target::Sqlite { path: super::demo::demo_path(cache_root) }, demo: true }
    }

    /// Picks the database: `flag` (`--db`) wins, then `env` (`DATABASE_URL`), then the
    /// demo database in `cache_root`. Empty values count as absent.
    pub fn resolve(flag: Option<&str>, env: Option<&str>, cache_root: &Path) -> Result<Self, DbError> {
        match flag.filter(|s| !s.trim().is_empty()).or(env.filter(|s| !s.trim().is_empty())) {
            Some(text) => Self::parse(text),
            None => Ok(Self::demo(cache_root)),
        }
    }

    fn postgres(text: &str) -> Result<Self, DbError> {
        let mut parsed = url::Url::parse(text).map_err(|e| DbError::InvalidUrl {
            // The text did not parse, so its password cannot be located: show none of it.
            url: mask_unknown(text),
            reason: e.to_string(),
        })?;
        let mut secrets = Vec::new();
        if let Some(password) = parsed.password().filter(|p| !p.is_empty()) {
            secrets.push(password.to_owned());
            let _ = parsed.set_password(Some(MASK));
        }
        let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        if pairs.iter().any(|(k, _)| SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str())) {
            let mut query = parsed.query_pairs_mut();
            query.clear();
            for (key, value) in &pairs {
                if SECRET_PARAMS.contains(&key.to_ascii_lowercase().as_str()) {
                    secrets.push(value.clone());
                    query.append_pair(key, MASK);
                } else {
                    query.append_pair(key, value);
                }
            }
        }
        // A password may be percent-encoded in the URL: scrub both spellings.
        let decoded: Vec<String> =
            secrets.iter().filter_map(|s| percent_decode(s)).filter(|d| !secrets.contains(d)).collect();
        secrets.extend(decoded);
        secrets.retain(|s| !s.is_empty());
        let masked = parsed.as_str().replace("%2A%2A%2A", MASK);
        Ok(Self { target: Target::Postgres { raw: text.to_owned(), masked, secrets }, demo: false })
    }

    /// The dialect of this database.
    pub fn dialect(&self) -> Dialect {
        match self.target {
            Target::Sqlite { .. } => Dialect::Sqlite,
            Target::Postgres { .. } => Dialect::Postgres,
        }
    }

    /// True for the embedded demo database.
    pub fn is_demo(&self) -> bool {
        self.demo
    }

    /// The SQLite file, for SQLite URLs.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.target {
            Target::Sqlite { path } => Some(path),
            Target::Postgres { .. } => None,
        }
    }

    /// The URL with its password masked; the same as `to_string()`.
    pub fn masked(&self) -> String {
        self.to_string()
    }

    /// Removes this URL's password (in clear or percent-encoded) from `text`, e.g. from a
    /// driver's error message.
    pub fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        if let Target::Postgres { raw, masked, secrets } = &self.target {
            text = text.replace(raw.as_str(), masked);
            let mut secrets = secrets.clone();
            // Longest first, so that a secret containing another is replaced whole.
            secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
            for secret in &secrets {
                text = text.replace(secret.as_str(), MASK);
            }
        }
        text
    }

    /// The whole address, password included, as `parse` reads it back: for handing the
    /// database to a process of metaexec's own (in its environment). Never log or show it.
    pub(crate) fn full_address(&self) -> String {
        self.connect_string().map_or_else(|| self.to_string(), str::to_owned)
    }

    /// The connection string for the driver, password included. Never log or show it.
    pub(crate) fn connect_string(&self) -> Option<&str> {
        match &self.target {
            Target::Postgres { raw, .. } => Some(raw),
            Target::Sqlite { .. } => None,
        }
    }
}

impl std::fmt::Display for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.target {
            Target::Sqlite { path } => write!(f, "sqlite://{}", path.display()),
            Target::Postgres { masked, .. } => f.write_str(masked),
        }
    }
}

impl std::fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DbUrl").field(&self.to_string()).finish()
    }
}

impl Serialize for DbUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A URL we could not parse: keep the scheme and host-ish part, drop any credentials.
fn mask_unknown(text: &str) -> String {
    match text.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://{MASK}@{host}"),
            None => format!("{scheme}://{rest}"),
        },
        None => MASK.to_owned(),
    }
}

/// Decodes `%XX` escapes; `None` when there are none or they are malformed.
fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return None;
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_forms() {
        assert_eq!(DbUrl::parse("sqlite:///abs/path.db").unwrap().sqlite_path(), Some(Path::new("/abs/path.db")));
        assert_eq!(DbUrl::parse("sqlite://rel.db").unwrap().sqlite_path(), Some(Path::new("rel.db")));
        assert_eq!(DbUrl::parse("sqlite:rel.db").unwrap().sqlite_path(), Some(Path::new("rel.db")));
        assert_eq!(DbUrl::parse("data/x.db").unwrap().sqlite_path(), Some(Path::new("data/x.db")));
        assert_eq!(DbUrl::parse("/abs/x.sqlite").unwrap().to_string(), "sqlite:///abs/x.sqlite");
        assert_eq!(DbUrl::parse("sqlite://rel.db").unwrap().dialect(), Dialect::Sqlite);
        assert!(DbUrl::parse("sqlite::memory:").is_err());
        assert!(DbUrl::parse("sqlite://x.db?mode=rwc").is_err());
        assert!(DbUrl::parse("  ").is_err());
    }

    #[test]
    fn postgres_password_is_masked_everywhere() {
        let url = DbUrl::parse("postgres://alice:s3cr%40t-pw@db.example:5432/prod?sslmode=prefer").unwrap();
        assert_eq!(url.dialect(), Dialect::Postgres);
        assert_eq!(url.to_string(), "postgres://alice:***@db.example:5432/prod?sslmode=prefer");
        assert!(!format!("{url:?}").contains("s3cr"));
        assert!(!serde_json::to_string(&url).unwrap().contains("s3cr"));
        assert_eq!(url.scrub("auth failed for s3cr@t-pw and s3cr%40t-pw"), "auth failed for *** and ***");
        assert!(url.connect_string().unwrap().contains("s3cr%40t-pw"));
    }

    #[test]
    fn password_in_query_is_masked() {
        let url = DbUrl::parse("postgresql://bob@host/db?password=hunter2&application_name=x").unwrap();
        let shown = url.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("password=***"), "{shown}");
        assert_eq!(url.scrub("hunter2"), "***");
    }

    #[test]
    fn unparseable_and_unsupported_urls_hide_credentials() {
        let err = DbUrl::parse("postgres://u:pw-secret@[bad/db").unwrap_err().to_string();
        assert!(!err.contains("pw-secret"), "{err}");
        let err = DbUrl::parse("mysql://u:pw-secret@host/db").unwrap_err().to_string();
        assert!(!err.contains("pw-secret"), "{err}");
        assert!(err.contains("mysql"), "{err}");
    }

    #[test]
    fn resolution_order() {
        let cache = Path::new("/cache");
        let flag = DbUrl::resolve(Some("a.db"), Some("b.db"), cache).unwrap();
        assert_eq!(flag.sqlite_path(), Some(Path::new("a.db")));
        let env = DbUrl::resolve(None, Some("b.db"), cache).unwrap();
        assert_eq!(env.sqlite_path(), Some(Path::new("b.db")));
        let demo = DbUrl::resolve(Some(""), None, cache).unwrap();
        assert!(demo.is_demo());
        assert_eq!(demo.sqlite_path(), Some(Path::new("/cache/demo/portfolio.db")));
    }
}
