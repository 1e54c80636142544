//! The flags that set what a script may do with the database (its [`Capability`]),
//! shared by every command that runs scripts.

use std::time::Duration;

use clap::Args;

use crate::db::Capability;
use crate::db::capability::{DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, DEFAULT_STATEMENT_TIMEOUT};
use crate::outcome::{ErrorKind, OutcomeError};

/// What the script may do through `metaexec.db`. Read-only by default.
#[derive(Debug, Clone, Args)]
pub struct CapabilityArgs {
    /// Allow INSERT, UPDATE, DELETE and table DDL. Off by default: scripts only read.
    #[arg(long)]
    pub db_write: bool,

    /// The only tables the script may use, comma-separated (default: every table).
    #[arg(long, value_name = "TABLE,...", value_delimiter = ',')]
    pub db_tables: Option<Vec<String>>,

    /// Past this many rows a query is refused with `db_denied` (never silently cut).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_ROWS)]
    pub db_max_rows: usize,

    /// Past this many bytes of rows (as JSON) a query is refused with `db_denied`.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BYTES)]
    pub db_max_bytes: usize,

    /// Per-query time limit in seconds; a longer query is cancelled on the database.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_STATEMENT_TIMEOUT.as_secs_f64())]
    pub db_timeout: f64,

    /// Return NUMERIC/DECIMAL values as exact `decimal.Decimal` instead of floats.
    #[arg(long)]
    pub db_exact_decimals: bool,

    /// Allow one more SQL function beyond the built-in list of analytics functions
    /// (aggregates, math, text, dates, JSON, windows); repeat for several. Functions that
    /// read files, change settings or reach other servers stay refused. System tables
    /// and table-valued functions are allowed by naming them in --db-tables instead.
    #[arg(long = "db-allow-function", value_name = "NAME")]
    pub db_allow_function: Vec<String>,
}

impl CapabilityArgs {
    /// The capability, or a usage error naming the bad flag.
    pub fn capability(&self) -> Result<Capability, OutcomeError> {
        if !(self.db_timeout.is_finite() && self.db_timeout > 0.0) {
            return Err(OutcomeError::new(
                ErrorKind::Usage,
                format!("--db-timeout must be a positive number of seconds, got `{}`", self.db_timeout),
            ));
        }
        let tables = match &self.db_tables {
            Some(tables) => {
                let tables: Vec<String> =
                    tables.iter().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect();
                if tables.is_empty() {
                    return Err(OutcomeError::new(ErrorKind::Usage, "--db-tables names no table")
                        .with_hint("for example --db-tables properties,financial_metrics"));
                }
                Some(tables)
            }
            None => None,
        };
        let mut allowed_functions = Vec::new();
        for name in &self.db_allow_function {
            let name = name.trim().to_lowercase();
            let valid = !name.is_empty()
                && name.split('.').all(|part| {
                    !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
                });
            if !valid {
                return Err(OutcomeError::new(
                    ErrorKind::Usage,
                    format!("--db-allow-function takes a function name, got `{name}`"),
                )
                .with_hint("for example --db-allow-function version (or schema.name for a qualified one)"));
            }
            if !allowed_functions.contains(&name) {
                allowed_functions.push(name);
            }
        }
        Ok(Capability {
            write: self.db_write,
            tables,
            max_rows: self.db_max_rows,
            max_bytes: self.db_max_bytes,
            statement_timeout: Duration::from_secs_f64(self.db_timeout),
            exact_decimals: self.db_exact_decimals,
            allowed_functions,
        })
    }
}
