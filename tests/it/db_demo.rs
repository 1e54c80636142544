//! The demo portfolio in real databases (a SQLite file and the throwaway PostgreSQL
//! cluster of `pg`): its figures agree with the documents and with each other, the schema
//! inspector reads it back, and `metaexec db demo|schema` work from the real binary.

use std::path::Path;
use std::process::Output;

use metaexec::db::connect::Database;
use metaexec::db::demo::{self, DEMO_DSCR};
use metaexec::db::{DbError, DbUrl, Dialect, inspect};
use serde_json::Value;
use sqlx::Connection;

use crate::common::{TestContext, metaexec_command};
use crate::pg;

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

/// Runs `sql` (text first column, numbers after) on a SQLite file or a PostgreSQL URL,
/// straight through sqlx, so the checks do not depend on metaexec's own query path.
async fn rows(url: &str, sql: &str) -> Vec<(String, Vec<f64>)> {
    use sqlx::Row;
    macro_rules! decode {
        ($rows:expr) => {
            $rows.iter().map(|r| (r.get::<String, _>(0), (1..r.len()).map(|i| r.get::<f64, _>(i)).collect())).collect()
        };
    }
    if url.starts_with("postgres://") {
        let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
        decode!(sqlx::query(sql).fetch_all(&mut conn).await.expect(sql))
    } else {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{url}?mode=ro")).await.expect("connect");
        decode!(sqlx::query(sql).fetch_all(&mut conn).await.expect(sql))
    }
}

fn cents(amount: f64) -> i64 {
    (amount * 100.0).round() as i64
}

/// The level monthly payment of a fully amortising loan.
fn monthly_payment(principal: f64, annual_rate: f64, years: f64) -> f64 {
    let (rate, periods) = (annual_rate / 12.0, years * 12.0);
    principal * rate / (1.0 - (1.0 + rate).powf(-periods))
}

/// The checks on the data, the same SQL for both dialects.
async fn check_demo_data(url: &str) {
    let dscr = rows(
        url,
        "SELECT p.property_name, CAST(f.noi AS DOUBLE PRECISION), CAST(f.annual_debt_service AS DOUBLE PRECISION), \
                CAST(f.dscr AS DOUBLE PRECISION) \
         FROM properties p JOIN financial_metrics f ON f.property_id = p.property_id ORDER BY p.property_id",
    )
    .await;
    assert_eq!(dscr.len(), DEMO_DSCR.len());
    for ((name, values), (expected_name, expected)) in dscr.iter().zip(DEMO_DSCR) {
        assert_eq!(name, expected_name);
        assert_eq!((values[0] / values[1] * 100.0).round() / 100.0, expected, "{name}: noi / annual_debt_service");
        assert_eq!(values[2], expected, "{name}: stored dscr");
    }

    let loans = rows(
        url,
        "SELECT p.property_name, CAST(l.principal AS DOUBLE PRECISION), CAST(l.interest_rate AS DOUBLE PRECISION), \
                CAST(l.amortization_years AS DOUBLE PRECISION), CAST(f.annual_debt_service AS DOUBLE PRECISION) \
         FROM loans l JOIN properties p ON p.property_id = l.property_id \
         JOIN financial_metrics f ON f.property_id = l.property_id ORDER BY l.loan_id",
    )
    .await;
    assert_eq!(loans.len(), 10);
    for (name, v) in &loans {
        let expected = 12.0 * monthly_payment(v[0], v[1], v[2]);
        assert!((expected - v[3]).abs() <= 0.01, "{name}: 12 payments {expected:.4} vs debt service {}", v[3]);
    }

    let months = rows(
        url,
        "SELECT p.property_name, CAST(SUM(m.gross_revenue) AS DOUBLE PRECISION), \
                CAST(SUM(m.operating_expenses) AS DOUBLE PRECISION), CAST(SUM(m.noi) AS DOUBLE PRECISION), \
                CAST(MIN(f.gross_revenue) AS DOUBLE PRECISION), CAST(MIN(f.operating_expenses) AS DOUBLE PRECISION), \
                CAST(MIN(f.noi) AS DOUBLE PRECISION), CAST(COUNT(*) AS DOUBLE PRECISION) \
         FROM monthly_performance m JOIN properties p ON p.property_id = m.property_id \
         JOIN financial_metrics f ON f.property_id = m.property_id \
         WHERE m.month LIKE '2024-%' GROUP BY p.property_id, p.property_name ORDER BY p.property_id",
    )
    .await;
    assert_eq!(months.len(), 10);
    for (name, v) in &months {
        assert_eq!(v[6], 12.0, "{name}: months in 2024");
        assert_eq!(cents(v[0]), cents(v[3]), "{name}: gross revenue");
        assert_eq!(cents(v[1]), cents(v[4]), "{name}: operating expenses");
        assert_eq!(cents(v[2]), cents(v[5]), "{name}: noi");
    }

    let history = rows(
        url,
        "SELECT m.month, CAST(COUNT(*) AS DOUBLE PRECISION), \
                CAST(SUM(CASE WHEN ABS(m.gross_revenue - m.operating_expenses - m.noi) < 0.005 THEN 1 ELSE 0 END) \
                     AS DOUBLE PRECISION) \
         FROM monthly_performance m GROUP BY m.month ORDER BY m.month",
    )
    .await;
    assert_eq!(history.len(), 24, "two years of months");
    assert_eq!(history[0].0, "2023-01");
    assert_eq!(history[23].0, "2024-12");
    assert!(history.iter().all(|(_, v)| v[0] == 10.0 && v[1] == 10.0), "every property, every month, noi consistent");
}

async fn check_inspector(url: &DbUrl, dialect: Dialect) {
    let database = Database::open(url, false).await.expect("open");
    let schema = inspect::inspect(&database).await.expect("inspect");
    database.close().await;
    assert_eq!(schema.dialect, dialect);
    assert_eq!(schema.table_names(), ["financial_metrics", "loans", "monthly_performance", "properties"]);
    let expected_rows = [("properties", 10), ("financial_metrics", 10), ("loans", 10), ("monthly_performance", 240)];
    for (table, count) in expected_rows {
        assert_eq!(schema.table(table).unwrap().row_count, count, "{table}");
    }
    let properties = schema.table("properties").unwrap();
    assert_eq!(properties.primary_key, ["property_id"]);
    assert!(properties.foreign_keys.is_empty());
    let name = properties.columns.iter().find(|c| c.name == "property_name").unwrap();
    assert!(!name.nullable && !name.primary_key);
    assert_eq!(name.data_type, "text");
    let id = &properties.columns[0];
    assert!(id.primary_key && !id.nullable && id.data_type == "integer", "{id:?}");

    for (table, key) in [("financial_metrics", "metric_id"), ("loans", "loan_id"), ("monthly_performance", "id")] {
        let t = schema.table(table).unwrap();
        assert_eq!(t.primary_key, [key], "{table}");
        assert_eq!(t.foreign_keys.len(), 1, "{table}");
        assert_eq!(t.foreign_keys[0].columns, ["property_id"]);
        assert_eq!(t.foreign_keys[0].references_table, "properties");
        assert_eq!(t.foreign_keys[0].references_columns, ["property_id"]);
    }
    let joins: Vec<String> = schema.joins.iter().map(ToString::to_string).collect();
    assert_eq!(
        joins,
        [
            "financial_metrics.property_id = properties.property_id",
            "loans.property_id = properties.property_id",
            "monthly_performance.property_id = properties.property_id",
        ]
    );
    let loans = schema.table("loans").unwrap();
    let maturity = loans.columns.iter().find(|c| c.name == "maturity_date").unwrap();
    let noi = schema.table("financial_metrics").unwrap().columns.iter().find(|c| c.name == "noi").unwrap();
    match dialect {
        Dialect::Sqlite => assert_eq!((maturity.data_type.as_str(), noi.data_type.as_str()), ("text", "real")),
        Dialect::Postgres => {
            assert_eq!((maturity.data_type.as_str(), noi.data_type.as_str()), ("date", "numeric(14,2)"))
        }
    }

    let text = schema.compact_text();
    assert!(
        text.contains("loans(loan_id integer PK, property_id integer FK→properties, principal "),
        "compact text:\n{text}"
    );
    assert!(text.contains(") 240 rows\n"), "{text}");
    assert!(text.ends_with("joins: financial_metrics.property_id = properties.property_id; loans.property_id = properties.property_id; monthly_performance.property_id = properties.property_id\n"), "{text}");
}

#[test]
fn db_demo_sqlite_is_consistent_and_inspectable() {
    let ctx = TestContext::new();
    let path = ctx.path().join("demo.db");
    block_on(async {
        demo::create_sqlite(&path).await.expect("create the demo");
        check_demo_data(&path.display().to_string()).await;
        check_inspector(&DbUrl::sqlite(&path), Dialect::Sqlite).await;
        let again = demo::create_sqlite(&path).await.unwrap_err();
        assert!(matches!(again, DbError::Demo { .. }) && again.source_text().contains("already exists"), "{again:?}");
    });
}

#[test]
fn db_demo_postgres_is_consistent_and_inspectable() {
    let Some(url) = pg::fresh_database() else { return };
    block_on(async {
        let db_url = DbUrl::parse(&url).unwrap();
        demo::load_postgres(&db_url).await.expect("load the demo");
        check_demo_data(&url).await;
        check_inspector(&db_url, Dialect::Postgres).await;
        // A second load would mix two portfolios: refused, and nothing is changed.
        let again = demo::load_postgres(&db_url).await.unwrap_err();
        assert!(matches!(again, DbError::Demo { .. }), "{again:?}");
        assert!(again.source_text().contains("`properties`"), "{again:?}");
        assert!(again.hint().is_some());
        check_demo_data(&url).await;
    });
}

#[test]
fn db_demo_sqlite_and_postgres_hold_the_same_rows() {
    let Some(url) = pg::fresh_database() else { return };
    let ctx = TestContext::new();
    let path = ctx.path().join("demo.db");
    block_on(async {
        demo::create_sqlite(&path).await.unwrap();
        demo::load_postgres(&DbUrl::parse(&url).unwrap()).await.unwrap();
        let sql = "SELECT month, CAST(property_id AS DOUBLE PRECISION), CAST(gross_revenue AS DOUBLE PRECISION), \
                   CAST(operating_expenses AS DOUBLE PRECISION), CAST(noi AS DOUBLE PRECISION), \
                   CAST(occupancy_rate AS DOUBLE PRECISION) FROM monthly_performance ORDER BY id";
        // Decimal text is parsed by each database on its own: compare to four places.
        let fixed = |rows: Vec<(String, Vec<f64>)>| {
            rows.into_iter()
                .map(|(month, v)| (month, v.iter().map(|x| (x * 10_000.0).round() as i64).collect::<Vec<_>>()))
                .collect::<Vec<_>>()
        };
        let sqlite = fixed(rows(&path.display().to_string(), sql).await);
        assert_eq!(sqlite.len(), 240);
        assert_eq!(sqlite, fixed(rows(&url, sql).await));
        let sql = "SELECT lender || ' ' || CAST(maturity_date AS TEXT) FROM loans ORDER BY loan_id";
        let lenders = |rows: Vec<(String, Vec<f64>)>| rows.into_iter().map(|(l, _)| l).collect::<Vec<_>>();
        assert_eq!(lenders(rows(&path.display().to_string(), sql).await), lenders(rows(&url, sql).await));
    });
}

trait SourceText {
    fn source_text(&self) -> String;
}

impl SourceText for DbError {
    /// The error with its causes, as the CLI prints them.
    fn source_text(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        text
    }
}

fn metaexec(ctx: &TestContext, args: &[&str]) -> Output {
    metaexec_command(ctx)
        .args(["--cache-dir", &ctx.path().join("cache").display().to_string()])
        .args(args)
        .output()
        .expect("running metaexec")
}

fn stdout_json(output: &Output) -> Value {
    assert_eq!(output.status.code(), Some(0), "stderr:\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("stdout is not JSON ({e}):\n{}", String::from_utf8_lossy(&output.stdout));
    })
}

fn assert_demo_schema_json(json: &Value, dialect: &str) {
    assert_eq!(json["dialect"], dialect);
    let names: Vec<&str> = json["tables"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["financial_metrics", "loans", "monthly_performance", "properties"]);
    assert_eq!(json["tables"][2]["row_count"], 240);
    assert_eq!(json["joins"].as_array().unwrap().len(), 3);
    assert_eq!(json["joins"][1]["left_table"], "loans");
}

#[test]
fn db_cli_demo_out_then_schema_json() {
    let ctx = TestContext::new();
    let out = ctx.path().join("data").join("portfolio.db");
    let output = metaexec(&ctx, &["db", "demo", "--out", &out.display().to_string()]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), out.display().to_string());
    assert!(out.is_file());

    // Never overwritten without --force.
    let output = metaexec(&ctx, &["db", "demo", "--out", &out.display().to_string()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error: Failed to load the demo portfolio"), "{stderr}");
    assert!(stderr.contains("already exists") && stderr.contains("\nhint: "), "{stderr}");
    let output = metaexec(&ctx, &["db", "demo", "--out", &out.display().to_string(), "--force"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));

    let json = stdout_json(&metaexec(&ctx, &["db", "schema", "--db", &out.display().to_string(), "--json"]));
    assert_eq!(json["url"], format!("sqlite://{}", out.display()));
    assert_demo_schema_json(&json, "sqlite");

    let output = metaexec(&ctx, &["db", "schema", "--db", &out.display().to_string()]);
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("properties(property_id integer PK, property_name text") && text.contains("joins: "),
        "{text}"
    );

    let output = metaexec(&ctx, &["db", "schema", "--db", &out.display().to_string(), "--tables"]);
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("monthly_performance (240 rows)") && text.contains("FK → properties.property_id"), "{text}");
}

#[test]
fn db_cli_schema_defaults_to_the_cached_demo() {
    let ctx = TestContext::new();
    let json = stdout_json(&metaexec(&ctx, &["db", "schema", "--json"]));
    let demo_path = demo::demo_path(&ctx.path().join("cache"));
    assert_eq!(json["url"], format!("sqlite://{}", demo_path.display()));
    assert_demo_schema_json(&json, "sqlite");
    assert!(demo_path.is_file(), "created on first use");

    let output = metaexec(&ctx, &["db", "demo"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), demo_path.display().to_string());
    assert!(String::from_utf8_lossy(&output.stderr).contains("already"), "reported, not rebuilt");
}

#[test]
fn db_cli_errors_name_the_problem_and_a_hint() {
    let ctx = TestContext::new();
    let output = metaexec(&ctx, &["db", "schema", "--db", "missing.db"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("error: Failed to open the SQLite database `missing.db`"), "{stderr}");
    assert!(stderr.contains("hint: "), "{stderr}");
    assert!(!Path::new(&ctx.path().join("missing.db")).exists(), "never created by reading");

    let output = metaexec(&ctx, &["db", "schema", "--db", "postgres://u:pw-secret@127.0.0.1:1/none"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("error: Failed to connect to `postgres://u:***@127.0.0.1:1/none`"), "{stderr}");
    assert!(stderr.contains("caused by: ") && stderr.contains("refused"), "the real cause, at once: {stderr}");
    assert!(!stderr.contains("pw-secret"), "{stderr}");

    let output = metaexec(&ctx, &["db", "demo", "--sql"]);
    assert_eq!(output.status.code(), Some(0));
    let script = String::from_utf8_lossy(&output.stdout);
    assert!(script.contains("BEGIN;") && script.contains("CREATE TABLE monthly_performance"), "{script}");
}

#[test]
fn db_cli_demo_into_postgres_and_schema() {
    let Some(url) = pg::fresh_database() else { return };
    let ctx = TestContext::new();
    let output = metaexec(&ctx, &["db", "demo", "--postgres", &url]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let output = metaexec_command(&ctx)
        .args(["--cache-dir", &ctx.path().join("cache").display().to_string(), "db", "schema", "--json"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    let json = stdout_json(&output);
    assert_eq!(json["url"], url);
    assert_demo_schema_json(&json, "postgres");
    assert_eq!(json["tables"][1]["columns"][5]["data_type"], "date");
}
