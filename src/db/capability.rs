//! What a job may do with the database: the [`Capability`] every request is checked
//! against.
//!
//! The defaults are the safe ones: read-only, every table, 100,000 rows, 64 MiB and 10 s
//! per query, NUMERIC as floats. A job gets more only when the user asks for it on the
//! command line.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default cap on the rows one query may return.
pub const DEFAULT_MAX_ROWS: usize = 100_000;
/// Default cap on the size of one query's rows, as JSON: 64 MiB.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Default per-query timeout.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The database rights of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capability {
    /// Writes (INSERT, UPDATE, DELETE, DDL on tables) are allowed. Off by default. Even
    /// with writes, transaction control, `SET`, `COPY`, `ATTACH`, `PRAGMA` and functions
    /// reaching files, programs or other servers stay refused.
    pub write: bool,
    /// The only tables the job may name (case-insensitive, optionally schema-qualified);
    /// `None` allows every table.
    pub tables: Option<Vec<String>>,
    /// Past this many rows a query is refused (`db_denied`), never silently cut.
    pub max_rows: usize,
    /// Past this many bytes of rows (as JSON) a query is refused.
    pub max_bytes: usize,
    /// A query running longer is cancelled on the database and refused.
    #[serde(with = "duration_ms")]
    pub statement_timeout: Duration,
    /// NUMERIC/DECIMAL values come back as `{"$decimal": "123.45"}` (exact) instead of
    /// floats.
    pub exact_decimals: bool,
    /// SQL functions allowed beyond the dialect's built-in list (`--db-allow-function`),
    /// lowercase, bare (`version`) or schema-qualified (`public.my_func`). Functions that
    /// reach files, programs, settings or other servers stay refused whatever this says.
    #[serde(default)]
    pub allowed_functions: Vec<String>,
}

impl Default for Capability {
    fn default() -> Self {
        Self {
            write: false,
            tables: None,
            max_rows: DEFAULT_MAX_ROWS,
            max_bytes: DEFAULT_MAX_BYTES,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            exact_decimals: false,
            allowed_functions: Vec::new(),
        }
    }
}

impl Capability {
    /// The default: read-only, every table, default caps.
    pub fn read_only() -> Self {
        Self::default()
    }

    /// True when `table` (as written in SQL, maybe schema-qualified) is allowed.
    /// A qualified name matches an allowlist entry written either qualified or bare;
    /// a bare name matches only a bare entry or an entry qualified with `default_schema`.
    pub fn allows_table(&self, table: &str, default_schema: Option<&str>) -> bool {
        let Some(allowed) = &self.tables else { return true };
        let table = table.to_lowercase();
        let bare = table.rsplit('.').next().unwrap_or(&table);
        allowed.iter().map(|a| a.trim().to_lowercase()).any(|entry| {
            if entry == table {
                return true;
            }
            match (entry.split_once('.'), table.contains('.')) {
                // `public.loans` in the list, `loans` in the query.
                (Some((schema, name)), false) => name == bare && default_schema.is_some_and(|d| d == schema),
                // `loans` in the list, `public.loans` (or `main.loans`) in the query.
                (None, true) => {
                    entry == bare
                        && table.split_once('.').is_some_and(|(schema, _)| default_schema.is_none_or(|d| d == schema))
                }
                _ => false,
            }
        })
    }
}

impl Capability {
    /// True when `table` is named in the allowlist itself. System catalogs and
    /// table-valued functions need this: having no allowlist does not open them.
    pub fn names_table(&self, table: &str, default_schema: Option<&str>) -> bool {
        self.tables.is_some() && self.allows_table(table, default_schema)
    }

    /// True when the function `name` (lowercase; bare or qualified) was allowed with
    /// `--db-allow-function`. A bare entry allows the bare name only.
    pub fn allows_function(&self, name: &str) -> bool {
        self.allowed_functions.iter().any(|f| f.trim().eq_ignore_ascii_case(name))
    }
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(deserializer)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = Capability::default();
        assert!(!c.write);
        assert_eq!(c.max_rows, 100_000);
        assert_eq!(c.max_bytes, 64 << 20);
        assert_eq!(c.statement_timeout, Duration::from_secs(10));
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["statement_timeout"], 10_000);
        assert_eq!(serde_json::from_value::<Capability>(json).unwrap(), c);
        // A capability saved before `allowed_functions` existed still loads.
        let old = serde_json::json!({"write": false, "tables": null, "max_rows": 10, "max_bytes": 100,
            "statement_timeout": 1000, "exact_decimals": false});
        let old: Capability = serde_json::from_value(old).unwrap();
        assert!(old.allowed_functions.is_empty());
    }

    #[test]
    fn catalogs_need_naming_and_functions_match_case_insensitively() {
        assert!(!Capability::default().names_table("sqlite_master", Some("main")));
        let c = Capability {
            tables: Some(vec!["sqlite_master".into()]),
            allowed_functions: vec!["Version".into()],
            ..Default::default()
        };
        assert!(c.names_table("SQLITE_MASTER", Some("main")));
        assert!(c.allows_function("version"));
        assert!(!c.allows_function("pg_catalog.version"));
    }

    #[test]
    fn table_allowlist() {
        let c = Capability { tables: Some(vec!["Properties".into(), "public.loans".into()]), ..Default::default() };
        assert!(c.allows_table("properties", Some("public")));
        assert!(c.allows_table("PUBLIC.properties", Some("public")));
        assert!(!c.allows_table("other.properties", Some("public")));
        assert!(c.allows_table("loans", Some("public")));
        assert!(c.allows_table("public.loans", Some("public")));
        assert!(!c.allows_table("loans", Some("main")));
        assert!(!c.allows_table("financial_metrics", Some("public")));
        assert!(Capability::default().allows_table("anything", None));
    }
}
