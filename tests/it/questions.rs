//! The everyday questions beyond a DSCR table, answered offline through the real binary on
//! the demo portfolio: each answer checked against figures the test reads from the
//! database itself and computes by the closed form; and the requests with a part the
//! offline planner does not read, which must fail with that part quoted instead of being
//! answered as another question.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sqlx::{Connection, Row};

use crate::common::TestContext;
use crate::run::{record, run};

/// The demo portfolio as a SQLite file in `ctx`.
fn demo(ctx: &TestContext) -> PathBuf {
    let path = ctx.path().join("demo.db");
    block_on(metaexec::db::demo::create_sqlite(&path)).unwrap();
    path
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

/// Rows of `sql` on the database at `path`, each as `columns` read as f64 or text.
fn query(path: &Path, sql: &str) -> Vec<sqlx::sqlite::SqliteRow> {
    block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        let rows = sqlx::query(sql).fetch_all(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        rows
    })
}

/// `run REQUEST --db DB --json`, which must succeed.
#[track_caller]
fn ask(ctx: &TestContext, db: &Path, request: &str) -> Value {
    let output = run(ctx, &[request, "--db", &db.display().to_string(), "--json"]);
    assert_eq!(output.status.code(), Some(0), "{request}: {}", String::from_utf8_lossy(&output.stderr));
    record(&output)
}

fn table(record: &Value, name: &str) -> Vec<Value> {
    record["outcome"]["results"][name].as_array().unwrap_or_else(|| panic!("no `{name}` table: {record}")).clone()
}

#[track_caller]
fn close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{what}: {got} vs {want}");
}

/// The loan an annual NOI carries at `target` DSCR: the present value of the monthly
/// payments NOI / target / 12 at the loan's rate over its amortization.
fn max_loan(noi: f64, target: f64, rate: f64, years: f64) -> f64 {
    let (payment, r, n) = (noi / target / 12.0, rate / 12.0, years * 12.0);
    payment * (1.0 - (1.0 + r).powf(-n)) / r
}

/// The annual debt service of a loan paid monthly over `years` (the annuity formula).
fn debt_service(principal: f64, rate: f64, years: f64) -> f64 {
    let r = rate / 12.0;
    12.0 * principal * r / (1.0 - (1.0 + r).powf(-years * 12.0))
}

/// The rate at which the cash flows' present value is zero, by bisection.
fn irr(flows: &[f64]) -> f64 {
    let npv = |r: f64| flows.iter().enumerate().map(|(t, c)| c / (1.0 + r).powi(t as i32)).sum::<f64>();
    let (mut low, mut high) = (-0.5, 1.0);
    for _ in 0..200 {
        let mid = (low + high) / 2.0;
        if npv(mid) > 0.0 { low = mid } else { high = mid }
    }
    (low + high) / 2.0
}

/// One property's fiscal-year NOI and its loan's terms, from the database.
fn property(db: &Path, name: &str) -> (f64, f64, f64, f64) {
    let sql = format!(
        "SELECT f.noi, l.principal, l.interest_rate, l.amortization_years FROM properties p \
         JOIN financial_metrics f ON f.property_id = p.property_id \
         JOIN loans l ON l.property_id = p.property_id WHERE p.property_name = '{name}'"
    );
    let row = &query(db, &sql)[0];
    (row.get(0), row.get(1), row.get(2), row.get::<i64, _>(3) as f64)
}

#[test]
fn the_largest_loan_at_a_target_dscr_is_the_annuity_of_noi_over_the_target() {
    let ctx = TestContext::new();
    let db = demo(&ctx);
    let record = ask(&ctx, &db, "what loan amount can West Oaks Mall support at 1.3x DSCR");
    assert_eq!(record["task"]["task_kind"], "loan_sizing");
    let rows = table(&record, "result");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (noi, principal, rate, years) = property(&db, "West Oaks Mall");
    let want = max_loan(noi, 1.3, rate, years);
    close(rows[0]["max_loan"].as_f64().unwrap(), want, "max loan");
    close(rows[0]["headroom"].as_f64().unwrap(), want - principal, "headroom");
    // At that loan the DSCR is the target.
    close(noi / debt_service(want, rate, years), 1.3, "DSCR at the largest loan");
}

#[test]
fn the_loans_maturing_before_a_year_are_exactly_those_in_the_database() {
    let ctx = TestContext::new();
    let db = demo(&ctx);
    let record = ask(&ctx, &db, "which loans mature before 2029");
    assert_eq!(record["task"]["task_kind"], "maturities");
    let want: Vec<(String, String)> = query(
        &db,
        "SELECT p.property_name, l.maturity_date FROM loans l JOIN properties p ON p.property_id = l.property_id \
         WHERE l.maturity_date < '2029-01-01' ORDER BY l.maturity_date",
    )
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    let got: Vec<(String, String)> = table(&record, "result")
        .iter()
        .map(|r| (r["property_name"].as_str().unwrap().to_owned(), r["maturity_date"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(got, want);
    assert!(!want.is_empty() && want.len() < 10, "the demo has loans on both sides of the date: {want:?}");
    assert_eq!(record["outcome"]["results"]["summary"]["loans_in_window"], want.len());

    let record = ask(&ctx, &db, "loans maturing in 2028");
    let years: Vec<String> =
        table(&record, "result").iter().map(|r| r["maturity_date"].as_str().unwrap()[..4].to_owned()).collect();
    assert!(!years.is_empty() && years.iter().all(|y| y == "2028"), "{years:?}");
}

#[test]
fn a_monthly_trend_lists_every_month_of_the_history_in_order() {
    let ctx = TestContext::new();
    let db = demo(&ctx);
    let record = ask(&ctx, &db, "show NOI trend by month for Lakeside Plaza");
    assert_eq!((record["task"]["task_kind"].as_str(), record["task"]["trend"].as_str()), (Some("trend"), Some("noi")));
    let want: Vec<(String, f64)> = query(
        &db,
        "SELECT m.month, m.noi FROM monthly_performance m JOIN properties p ON p.property_id = m.property_id \
         WHERE p.property_name = 'Lakeside Plaza' ORDER BY m.month",
    )
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    assert_eq!(want.len(), 24);
    let got: Vec<(String, f64)> = table(&record, "result")
        .iter()
        .map(|r| (r["month"].as_str().unwrap().to_owned(), r["noi"].as_f64().unwrap()))
        .collect();
    assert_eq!(got, want);
    let summary = &table(&record, "trend")[0];
    let (prior, last): (f64, f64) = (want[..12].iter().map(|m| m.1).sum(), want[12..].iter().map(|m| m.1).sum());
    close(summary["yoy_change_pct"].as_f64().unwrap(), (last - prior) / prior, "year over year");
    assert_eq!(summary["months"], 24);
}

#[test]
fn a_holding_period_irr_matches_the_cash_flows_it_states() {
    let ctx = TestContext::new();
    let db = demo(&ctx);
    let record = ask(&ctx, &db, "IRR of Harbor Town Mall over 5 years");
    assert_eq!(record["task"]["task_kind"], "hold_irr");
    let assumptions = record["task"]["assumptions"].to_string();
    for stated in ["2% a year", "7% going-in cap rate", "7.5% exit cap rate"] {
        assert!(assumptions.contains(stated), "the plan states {stated}: {assumptions}");
    }
    let (noi, ..) = property(&db, "Harbor Town Mall");
    let price = noi / 0.07;
    let mut flows: Vec<f64> = vec![-price];
    flows.extend((0..5).map(|t| noi * 1.02f64.powi(t)));
    flows[5] += noi * 1.02f64.powi(5) / 0.075;
    let row = &table(&record, "result")[0];
    assert_eq!(row["property_name"], "Harbor Town Mall");
    assert!((row["irr"].as_f64().unwrap() - irr(&flows)).abs() < 1e-7, "{row} vs {}", irr(&flows));
}

#[test]
fn a_ranking_orders_by_the_figure_asked() {
    let ctx = TestContext::new();
    let db = demo(&ctx);
    let record = ask(&ctx, &db, "rank properties by debt yield");
    let mut want: Vec<(String, f64)> = query(
        &db,
        "SELECT p.property_name, f.noi, l.principal FROM properties p \
         JOIN financial_metrics f ON f.property_id = p.property_id JOIN loans l ON l.property_id = p.property_id",
    )
    .iter()
    .map(|r| (r.get(0), r.get::<f64, _>(1) / r.get::<f64, _>(2)))
    .collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1));
    let got: Vec<String> =
        table(&record, "result").iter().map(|r| r["property_name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(got, want.iter().map(|w| w.0.clone()).collect::<Vec<_>>());
    assert_eq!(table(&record, "result")[0]["rank"], 1);
}

#[test]
fn a_covenant_is_counted_against_in_every_scenario() {
    let ctx = TestContext::new();
    let db = demo(&ctx);
    let output =
        run(&ctx, &["which properties fail a 1.25x covenant if rates rise 200bp", "--db", &db.display().to_string()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    // Each loan's debt service at its rate + 2 points, by the annuity formula.
    let rows = query(
        &db,
        "SELECT f.noi, l.principal, l.interest_rate, l.amortization_years FROM financial_metrics f \
         JOIN loans l ON l.property_id = f.property_id",
    );
    let under = rows
        .iter()
        .filter(|r| {
            let noi: f64 = r.get(0);
            noi / debt_service(r.get(1), r.get::<f64, _>(2) + 0.02, r.get::<i64, _>(3) as f64) < 1.25
        })
        .count();
    let header = stdout
        .lines()
        .find(|l| l.contains("scenario") && l.contains("under 1.25x"))
        .unwrap_or_else(|| panic!("the portfolio lines count the properties under the covenant:\n{stdout}"));
    let column = header.split('┆').position(|c| c.contains("under 1.25x")).unwrap();
    let line = stdout.lines().find(|l| l.contains("rate +200 bp ┆")).unwrap();
    let cell: usize = line.split('┆').nth(column).unwrap().trim_matches(|c: char| !c.is_ascii_digit()).parse().unwrap();
    assert_eq!(cell, under, "{line}");
    assert!(stdout.contains("approve (≥ 1.25)"), "the verdicts' cut-offs are stated:\n{stdout}");
}

/// Each request has a part the offline planner does not read: it fails with exit 1,
/// `not_understood`, the part quoted, and (for a name) the closest property.
#[test]
fn a_part_not_understood_is_an_error_that_quotes_it() {
    let ctx = TestContext::new();
    let db = demo(&ctx);
    let table: [(&str, &str, Option<&str>); 7] = [
        ("DSCR for the Empire State Building", "\"Empire\"", None),
        ("DSCR with NOI at 15% of revenue", "\"15%\"", None),
        ("DSCR for Lakeside Plz", "\"Plz\"", Some("Lakeside Plaza")),
        ("DSCR of the properties in Florida", "\"Florida\"", None),
        ("Compare Orlando Fashion Square performance against 5 similar properties", "\"similar\"", None),
        ("calculate DSCR and the payback period of every property", "\"payback\"", None),
        ("write a haiku about spring", "understands", None),
    ];
    for (request, quoted, closest) in table {
        let output = run(&ctx, &[request, "--db", &db.display().to_string()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{request}: {stderr}");
        assert!(stderr.contains("error[not_understood]") && stderr.contains(quoted), "{request}: {stderr}");
        if let Some(name) = closest {
            assert!(stderr.contains(&format!("closest: {name}")), "{request}: {stderr}");
        }
        assert!(output.stdout.is_empty(), "{request}: no answer is printed");
    }
}
