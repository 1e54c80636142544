//! The embedded demo portfolio: ten retail properties with their fiscal 2024 figures, loans
//! and 24 months of operating history, so that metaexec has data to analyse before anyone
//! points it at a real database.
//!
//! The properties, annual figures and loans come from the fixture that
//! `runtime/tests/gen_demo_portfolio.py` writes (embedded at build time); the monthly history
//! is generated here, deterministically. Invariants the tests hold it to:
//!
//! - `round(noi / annual_debt_service, 2)` reproduces the documents' DSCR table
//!   ([`DEMO_DSCR`]) for every property;
//! - `annual_debt_service` is twelve level monthly payments of the loan;
//! - the twelve months of 2024 add up, to the cent, to the year's gross revenue, operating
//!   expenses and NOI, and every month's NOI is its revenue less its expenses;
//! - SQLite and PostgreSQL get the same rows: both are written from [`statements`].
//!
//! Amounts are whole cents throughout and are written into the SQL as exact decimal
//! literals, so no binary rounding creeps in between the fixture and the database.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sqlx::{Connection, Executor};

use super::connect::{Database, Pool};
use super::{Cause, DbError, DbUrl, Dialect};

/// The documents' DSCR table (NOI over annual debt service, two places), in property order.
pub const DEMO_DSCR: [(&str, f64); 10] = [
    ("Orlando Fashion Square", 1.94),
    ("1893 Rouse Lake Rd", 1.66),
    ("Orlando Vineland Premium Outlets", 1.21),
    ("Columbia Heights Shopping Mall", 1.50),
    ("West Oaks Mall", 1.82),
    ("Riverside Galleria", 0.89),
    ("Lakeside Plaza", 1.18),
    ("Sunset Commons", 1.21),
    ("Valley View Center", 1.28),
    ("Harbor Town Mall", 1.08),
];

/// The tables of the demo, parents first (the order they are created and filled in).
pub const DEMO_TABLES: [&str; 4] = ["properties", "financial_metrics", "loans", "monthly_performance"];

/// The fiscal year of `financial_metrics`; the monthly history covers it and the year before.
pub const FISCAL_YEAR: i32 = 2024;

const FIXTURE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/runtime/tests/fixtures/demo_portfolio.json"));

/// Rows per `INSERT`, well under SQLite's limits on terms per statement.
const ROWS_PER_INSERT: usize = 100;

/// Where the embedded demo database lives inside a cache root.
pub fn demo_path(cache_root: &Path) -> PathBuf {
    cache_root.join("demo").join("portfolio.db")
}

#[derive(Deserialize)]
struct Fixture {
    properties: Vec<Property>,
    financial_metrics: Vec<Metrics>,
    loans: Vec<Loan>,
}

#[derive(Deserialize)]
struct Property {
    property_id: i64,
    property_name: String,
    property_address: String,
    property_type: String,
    total_gla_sqft: i64,
    city: String,
    state: String,
    year_built: i64,
}

#[derive(Deserialize)]
struct Metrics {
    metric_id: i64,
    property_id: i64,
    noi: f64,
    annual_debt_service: f64,
    dscr: f64,
    gross_revenue: f64,
    operating_expenses: f64,
    occupancy_rate: f64,
    fiscal_year: i32,
}

#[derive(Deserialize)]
struct Loan {
    loan_id: i64,
    property_id: i64,
    principal: f64,
    interest_rate: f64,
    amortization_years: i64,
    maturity_date: String,
    lender: String,
}

fn fixture() -> Fixture {
    serde_json::from_str(FIXTURE).expect("the embedded demo portfolio is valid (checked by the unit tests)")
}

/// A value as written into the SQL.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Int(i64),
    /// An exact decimal: `units / 10^scale`.
    Fixed(i64, u32),
    Text(String),
    /// `YYYY-MM-DD`: a `DATE` in PostgreSQL, text in SQLite (whose date functions read it).
    Date(String),
}

impl Literal {
    fn sql(&self) -> String {
        match self {
            Self::Int(n) => n.to_string(),
            Self::Fixed(units, 0) => units.to_string(),
            Self::Fixed(units, scale) => {
                let factor = 10i64.pow(*scale);
                let sign = if *units < 0 { "-" } else { "" };
                let (whole, frac) = (units.unsigned_abs() / factor as u64, units.unsigned_abs() % factor as u64);
                format!("{sign}{whole}.{frac:0width$}", width = *scale as usize)
            }
            Self::Text(s) | Self::Date(s) => format!("'{}'", s.replace('\'', "''")),
        }
    }
}

fn cents(amount: f64) -> i64 {
    (amount * 100.0).round() as i64
}

fn money(cents: i64) -> Literal {
    Literal::Fixed(cents, 2)
}

/// A fraction kept to `scale` places (rates, ratios, occupancy).
fn fraction(value: f64, scale: u32) -> Literal {
    Literal::Fixed((value * 10f64.powi(scale as i32)).round() as i64, scale)
}

/// A column: its name and its declared type in each dialect.
struct ColumnDef {
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const fn col(name: &'static str, sqlite: &'static str, postgres: &'static str) -> ColumnDef {
    ColumnDef { name, sqlite, postgres }
}

const MONEY: (&str, &str) = ("REAL", "NUMERIC(14,2)");
const RATIO: (&str, &str) = ("REAL", "NUMERIC(6,4)");

struct TableDef {
    name: &'static str,
    columns: Vec<ColumnDef>,
    /// Constraints after the columns, the same in both dialects.
    constraints: &'static [&'static str],
    rows: Vec<Vec<Literal>>,
}

impl TableDef {
    fn create(&self, dialect: Dialect) -> String {
        let mut parts: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let ty = match dialect {
                    Dialect::Sqlite => c.sqlite,
                    Dialect::Postgres => c.postgres,
                };
                format!("    {} {ty}", c.name)
            })
            .collect();
        parts.extend(self.constraints.iter().map(|c| format!("    {c}")));
        format!("CREATE TABLE {} (\n{}\n)", self.name, parts.join(",\n"))
    }

    fn inserts(&self) -> Vec<String> {
        let names: Vec<&str> = self.columns.iter().map(|c| c.name).collect();
        self.rows
            .chunks(ROWS_PER_INSERT)
            .map(|chunk| {
                let values: Vec<String> = chunk
                    .iter()
                    .map(|row| format!("    ({})", row.iter().map(Literal::sql).collect::<Vec<_>>().join(", ")))
                    .collect();
                format!("INSERT INTO {} ({}) VALUES\n{}", self.name, names.join(", "), values.join(",\n"))
            })
            .collect()
    }
}

fn tables() -> Vec<TableDef> {
    let data = fixture();
    let properties = TableDef {
        name: "properties",
        columns: vec![
            col("property_id", "INTEGER PRIMARY KEY", "INTEGER PRIMARY KEY"),
            col("property_name", "TEXT NOT NULL", "TEXT NOT NULL"),
            col("property_address", "TEXT", "TEXT"),
            col("property_type", "TEXT", "TEXT"),
            col("total_gla_sqft", "INTEGER", "INTEGER"),
            col("city", "TEXT", "TEXT"),
            col("state", "TEXT", "TEXT"),
            col("year_built", "INTEGER", "INTEGER"),
        ],
        constraints: &[],
        rows: data
            .properties
            .iter()
            .map(|p| {
                vec![
                    Literal::Int(p.property_id),
                    Literal::Text(p.property_name.clone()),
                    Literal::Text(p.property_address.clone()),
                    Literal::Text(p.property_type.clone()),
                    Literal::Int(p.total_gla_sqft),
                    Literal::Text(p.city.clone()),
                    Literal::Text(p.state.clone()),
                    Literal::Int(p.year_built),
                ]
            })
            .collect(),
    };
    let financial_metrics = TableDef {
        name: "financial_metrics",
        columns: vec![
            col("metric_id", "INTEGER PRIMARY KEY", "INTEGER PRIMARY KEY"),
            col(
                "property_id",
                "INTEGER NOT NULL REFERENCES properties(property_id)",
                "INTEGER NOT NULL REFERENCES properties(property_id)",
            ),
            col("noi", MONEY.0, MONEY.1),
            col("annual_debt_service", MONEY.0, MONEY.1),
            col("dscr", "REAL", "NUMERIC(6,2)"),
            col("gross_revenue", MONEY.0, MONEY.1),
            col("operating_expenses", MONEY.0, MONEY.1),
            col("occupancy_rate", RATIO.0, RATIO.1),
            col("fiscal_year", "INTEGER NOT NULL", "INTEGER NOT NULL"),
        ],
        constraints: &["UNIQUE (property_id, fiscal_year)"],
        rows: data
            .financial_metrics
            .iter()
            .map(|m| {
                vec![
                    Literal::Int(m.metric_id),
                    Literal::Int(m.property_id),
                    money(cents(m.noi)),
                    money(cents(m.annual_debt_service)),
                    fraction(m.dscr, 2),
                    money(cents(m.gross_revenue)),
                    money(cents(m.operating_expenses)),
                    fraction(m.occupancy_rate, 4),
                    Literal::Int(i64::from(m.fiscal_year)),
                ]
            })
            .collect(),
    };
    let loans = TableDef {
        name: "loans",
        columns: vec![
            col("loan_id", "INTEGER PRIMARY KEY", "INTEGER PRIMARY KEY"),
            col(
                "property_id",
                "INTEGER NOT NULL REFERENCES properties(property_id)",
                "INTEGER NOT NULL REFERENCES properties(property_id)",
            ),
            col("principal", MONEY.0, MONEY.1),
            col("interest_rate", RATIO.0, RATIO.1),
            col("amortization_years", "INTEGER", "INTEGER"),
            col("maturity_date", "TEXT", "DATE"),
            col("lender", "TEXT", "TEXT"),
        ],
        constraints: &[],
        rows: data
            .loans
            .iter()
            .map(|l| {
                vec![
                    Literal::Int(l.loan_id),
                    Literal::Int(l.property_id),
                    money(cents(l.principal)),
                    fraction(l.interest_rate, 4),
                    Literal::Int(l.amortization_years),
                    Literal::Date(l.maturity_date.clone()),
                    Literal::Text(l.lender.clone()),
                ]
            })
            .collect(),
    };
    let monthly_performance = TableDef {
        name: "monthly_performance",
        columns: vec![
            col("id", "INTEGER PRIMARY KEY", "INTEGER PRIMARY KEY"),
            col(
                "property_id",
                "INTEGER NOT NULL REFERENCES properties(property_id)",
                "INTEGER NOT NULL REFERENCES properties(property_id)",
            ),
            col("month", "TEXT NOT NULL", "TEXT NOT NULL"),
            col("gross_revenue", MONEY.0, MONEY.1),
            col("operating_expenses", MONEY.0, MONEY.1),
            col("noi", MONEY.0, MONEY.1),
            col("occupancy_rate", RATIO.0, RATIO.1),
        ],
        constraints: &["UNIQUE (property_id, month)"],
        rows: monthly_rows(&data.financial_metrics),
    };
    vec![properties, financial_metrics, loans, monthly_performance]
}

/// Revenue by calendar month relative to an average month: retail is slow after the
/// holidays and peaks in November and December.
const REVENUE_SEASON: [f64; 12] = [0.92, 0.90, 0.97, 0.98, 1.00, 0.99, 1.00, 1.02, 0.97, 0.99, 1.06, 1.20];
/// Expenses are flatter, with the summer's cooling on top.
const EXPENSE_SEASON: [f64; 12] = [1.01, 0.97, 0.99, 0.98, 1.00, 1.03, 1.05, 1.05, 1.01, 0.98, 0.96, 0.97];
/// Occupancy drift over the year in basis points; it sums to zero so the months average
/// to the year's occupancy.
const OCCUPANCY_DRIFT_BP: [i64; 12] = [-40, -50, -20, -10, 0, 10, 10, 20, 10, 20, 20, 30];

/// A deterministic number in [0, 1) from a seed (splitmix64): per-property variation
/// without a random number generator, so every build writes the same rows.
fn unit_noise(seed: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Splits `total` cents over twelve months in proportion to `weights`, exactly: each month
/// gets the difference of the rounded running totals, so the months add up to `total`.
fn split(total: i64, weights: &[f64; 12]) -> [i64; 12] {
    let sum: f64 = weights.iter().sum();
    let mut out = [0; 12];
    let (mut running, mut previous) = (0.0, 0i64);
    for (month, weight) in weights.iter().enumerate() {
        running += weight;
        let upto = if month == 11 { total } else { (total as f64 * running / sum).round() as i64 };
        out[month] = upto - previous;
        previous = upto;
    }
    out
}

/// A property's seasonal weights, each month nudged by up to ±2 %.
fn weights(base: &[f64; 12], property_id: i64, salt: u64) -> [f64; 12] {
    let mut out = *base;
    for (month, weight) in out.iter_mut().enumerate() {
        let seed = ((property_id as u64) << 16) ^ (salt << 8) ^ month as u64;
        *weight *= 1.0 + 0.04 * (unit_noise(seed) - 0.5);
    }
    out
}

fn monthly_rows(metrics: &[Metrics]) -> Vec<Vec<Literal>> {
    let mut rows = Vec::new();
    let mut id = 0;
    for m in metrics {
        let pid = m.property_id;
        let revenue = split(cents(m.gross_revenue), &weights(&REVENUE_SEASON, pid, 1));
        let expenses = split(cents(m.operating_expenses), &weights(&EXPENSE_SEASON, pid, 2));
        let occupancy_bp = (m.occupancy_rate * 10_000.0).round() as i64;
        // The year before was a few per cent weaker: revenue grew 2 to 4.5 %, expenses a
        // little less, occupancy by up to two points.
        let revenue_growth = 0.02 + 0.005 * (unit_noise(pid as u64 ^ 0xA5) * 6.0).floor();
        let expense_growth = revenue_growth - 0.005;
        let occupancy_gain_bp = 50 + 50 * (unit_noise(pid as u64 ^ 0x5A) * 3.0).floor() as i64;
        for (year, months_back) in [(m.fiscal_year - 1, true), (m.fiscal_year, false)] {
            for month in 0..12 {
                let (gross, opex, occupancy) = if months_back {
                    (
                        (revenue[month] as f64 / (1.0 + revenue_growth)).round() as i64,
                        (expenses[month] as f64 / (1.0 + expense_growth)).round() as i64,
                        occupancy_bp - occupancy_gain_bp + OCCUPANCY_DRIFT_BP[month],
                    )
                } else {
                    (revenue[month], expenses[month], occupancy_bp + OCCUPANCY_DRIFT_BP[month])
                };
                id += 1;
                rows.push(vec![
                    Literal::Int(id),
                    Literal::Int(pid),
                    Literal::Text(format!("{year}-{:02}", month + 1)),
                    money(gross),
                    money(opex),
                    money(gross - opex),
                    Literal::Fixed(occupancy.clamp(0, 10_000), 4),
                ]);
            }
        }
    }
    rows
}

/// The demo's SQL for `dialect`: every `CREATE TABLE`, then every `INSERT`, parents first,
/// without trailing semicolons. SQLite and PostgreSQL get the same rows.
pub fn statements(dialect: Dialect) -> Vec<String> {
    let tables = tables();
    let mut out: Vec<String> = tables.iter().map(|t| t.create(dialect)).collect();
    out.extend(tables.iter().flat_map(TableDef::inserts));
    out
}

/// The demo as one PostgreSQL script in a single transaction, for `psql -f` or any client.
pub fn postgres_script() -> String {
    let mut script = String::from(
        "-- The metaexec demo portfolio: ten retail properties, their fiscal 2024 figures, loans\n\
         -- and monthly history for 2023 and 2024. Load it into an empty database:\n\
         --   psql \"$DATABASE_URL\" -f demo.sql\n\nBEGIN;\n\n",
    );
    for statement in statements(Dialect::Postgres) {
        script.push_str(&statement);
        script.push_str(";\n\n");
    }
    script.push_str("COMMIT;\n");
    script
}

/// Writes the demo into a new SQLite file at `path`, creating its folder. The file appears
/// whole or not at all: it is built under a temporary name beside `path` and then linked
/// into place. An existing file is never overwritten.
pub async fn create_sqlite(path: &Path) -> Result<(), DbError> {
    let demo_error = |reason: String| DbError::Demo { target: path.display().to_string(), source: Cause(reason) };
    if path.exists() {
        return Err(demo_error(format!("`{}` already exists and is left as it is", path.display())));
    }
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&folder).map_err(|source| DbError::Io { path: folder.clone(), source })?;
    let name = path.file_name().map_or_else(|| "demo.db".into(), |n| n.to_string_lossy().into_owned());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let temp = folder.join(format!(".{name}.{}-{nanos}.tmp", std::process::id()));
    let result = async {
        write_sqlite(&temp).await.map_err(|e| demo_error(Cause::scrubbed(&e, None).0))?;
        publish(&temp, path).map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => demo_error(format!(
                "`{}` appeared while the demo was being written and is left as it is",
                path.display()
            )),
            _ => DbError::Io { path: path.to_owned(), source },
        })
    }
    .await;
    let _ = std::fs::remove_file(&temp);
    let _ = std::fs::remove_file(temp.with_extension("tmp-journal"));
    result
}

async fn write_sqlite(path: &Path) -> Result<(), sqlx::Error> {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        // A rollback journal, not WAL: the file is later opened read-only, possibly from a
        // folder where the `-shm` file WAL needs cannot be created.
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Delete)
        .foreign_keys(true);
    let mut connection = sqlx::sqlite::SqliteConnection::connect_with(&options).await?;
    let mut transaction = connection.begin().await?;
    for statement in statements(Dialect::Sqlite) {
        transaction.execute(sqlx::raw_sql(&statement)).await?;
    }
    transaction.commit().await?;
    connection.close().await
}

/// Moves `temp` to `path` without replacing anything there: a hard link fails when `path`
/// exists, where a rename would silently replace it. Filesystems without hard links get a
/// checked rename.
fn publish(temp: &Path, path: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(temp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
        Err(_) if path.exists() => Err(std::io::ErrorKind::AlreadyExists.into()),
        Err(_) => std::fs::rename(temp, path),
    }
}

/// Loads the demo into the PostgreSQL database at `url`, in one transaction. Refuses when
/// any of the demo's tables already exists there, so nothing is ever replaced.
pub async fn load_postgres(url: &DbUrl) -> Result<(), DbError> {
    let demo_error = |reason: String| DbError::Demo { target: url.masked(), source: Cause(reason) };
    if url.dialect() != Dialect::Postgres {
        return Err(demo_error("this is not a PostgreSQL URL (use `metaexec db demo --out FILE` for SQLite)".into()));
    }
    let database = Database::open(url, true).await?;
    let result = async {
        let Pool::Postgres(pool) = database.pool() else { unreachable!("a PostgreSQL URL opens a PostgreSQL pool") };
        let scrub = |e: sqlx::Error| demo_error(Cause::scrubbed(&e, Some(url)).0);
        let existing: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = ANY($1) ORDER BY table_name",
        )
        .bind(DEMO_TABLES.as_slice())
        .fetch_all(pool)
        .await
        .map_err(scrub)?;
        if !existing.is_empty() {
            let names = existing.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ");
            return Err(demo_error(format!("the database already has the table(s) {names}")));
        }
        let mut connection = pool.acquire().await.map_err(scrub)?;
        connection.execute(sqlx::raw_sql(&postgres_script())).await.map_err(scrub)?;
        Ok(())
    }
    .await;
    database.close().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_matches_the_documented_dscr() {
        let data = fixture();
        assert_eq!(data.properties.len(), DEMO_DSCR.len());
        for ((p, m), (name, dscr)) in data.properties.iter().zip(&data.financial_metrics).zip(DEMO_DSCR) {
            assert_eq!(p.property_name, name);
            assert_eq!(m.dscr, dscr, "{name}");
            assert_eq!(((m.noi / m.annual_debt_service) * 100.0).round() / 100.0, dscr, "{name}");
            assert_eq!(cents(m.gross_revenue) - cents(m.operating_expenses), cents(m.noi), "{name}");
        }
    }

    #[test]
    fn months_add_up_to_the_year() {
        let data = fixture();
        let rows = monthly_rows(&data.financial_metrics);
        assert_eq!(rows.len(), 10 * 24);
        let amount = |l: &Literal| match l {
            Literal::Fixed(units, 2) => *units,
            other => panic!("not money: {other:?}"),
        };
        for m in &data.financial_metrics {
            let year: Vec<&Vec<Literal>> = rows
                .iter()
                .filter(|r| r[1] == Literal::Int(m.property_id))
                .filter(|r| matches!(&r[2], Literal::Text(month) if month.starts_with("2024-")))
                .collect();
            assert_eq!(year.len(), 12);
            let sum = |i: usize| year.iter().map(|r| amount(&r[i])).sum::<i64>();
            assert_eq!(sum(3), cents(m.gross_revenue));
            assert_eq!(sum(4), cents(m.operating_expenses));
            assert_eq!(sum(5), cents(m.noi));
            let before: i64 = rows
                .iter()
                .filter(|r| r[1] == Literal::Int(m.property_id))
                .filter(|r| matches!(&r[2], Literal::Text(month) if month.starts_with("2023-")))
                .map(|r| amount(&r[3]))
                .sum();
            let growth = sum(3) as f64 / before as f64 - 1.0;
            assert!((0.015..0.05).contains(&growth), "growth {growth}");
        }
    }

    #[test]
    fn literals_are_exact() {
        assert_eq!(money(392_602_720).sql(), "3926027.20");
        assert_eq!(money(-5).sql(), "-0.05");
        assert_eq!(fraction(0.0485, 4).sql(), "0.0485");
        assert_eq!(Literal::Text("O'Hare".into()).sql(), "'O''Hare'");
    }

    #[test]
    fn postgres_script_is_one_transaction() {
        let script = postgres_script();
        assert!(script.contains("BEGIN;") && script.trim_end().ends_with("COMMIT;"));
        assert!(script.contains("maturity_date DATE"));
        assert_eq!(script.matches("CREATE TABLE").count(), 4);
    }

    #[tokio::test]
    async fn sqlite_file_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("demo.db");
        create_sqlite(&path).await.unwrap();
        assert!(path.is_file());
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "only the database remains: {leftovers:?}");
        let err = create_sqlite(&path).await.unwrap_err();
        assert!(matches!(err, DbError::Demo { .. }), "{err:?}");
    }
}
