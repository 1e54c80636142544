//! `metaexec run` with the offline planner, end to end through the real binary: the
//! documents' DSCR table, the NOI stress test and the at-risk list on the demo portfolio,
//! a schema where NOI and debt service must be derived, exports, and the errors.

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use sqlx::Connection;

use crate::common::{TestContext, metaexec_command};

/// The documents' portfolio request (../shared/seeds, technical documentation, example 1).
pub const PORTFOLIO_REQUEST: &str = "I need to review the debt service coverage for our entire property portfolio. \
    Pull all properties from the database, calculate their DSCR, show name, NOI, debt service and the ratio for \
    each, plus a portfolio summary.";

/// The DSCR table of the original documents.
pub const DOCUMENTS_DSCR: [(&str, f64); 10] = [
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

/// `metaexec run` in `ctx`, with no model configured anywhere (an empty config file, no
/// model variables), so the offline planner serves.
pub fn run(ctx: &TestContext, args: &[&str]) -> Output {
    let config = ctx.path().join("empty-config.toml");
    std::fs::write(&config, "").unwrap();
    let mut command = metaexec_command(ctx);
    for var in ["METAEXEC_LLM_URL", "OPENAI_BASE_URL", "METAEXEC_MODEL", "OPENAI_API_KEY"] {
        command.env_remove(var);
    }
    command.env("METAEXEC_CONFIG", &config).arg("run").args(args);
    command.output().expect("metaexec runs")
}

/// The run record `--json` printed.
#[track_caller]
pub fn record(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("stdout is not one JSON object ({e}):\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&output.stderr))
    })
}

/// `name` → DSCR of the main result table.
pub fn dscr_by_name(record: &Value) -> Vec<(String, f64)> {
    record["outcome"]["results"]["result"]
        .as_array()
        .expect("a result table")
        .iter()
        .map(|r| (r["property_name"].as_str().unwrap().to_owned(), r["dscr"].as_f64().unwrap()))
        .collect()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[test]
fn the_documents_portfolio_request_prints_their_dscr_table() {
    let ctx = TestContext::new();
    let output = run(&ctx, &[PORTFOLIO_REQUEST, "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let record = record(&output);
    assert_eq!(record["planner"], "offline");
    assert_eq!(record["task"]["task_kind"], "portfolio_review");
    let got: Vec<(String, f64)> = dscr_by_name(&record).into_iter().map(|(n, d)| (n, round2(d))).collect();
    let want: Vec<(String, f64)> = DOCUMENTS_DSCR.iter().map(|(n, d)| ((*n).to_owned(), *d)).collect();
    assert_eq!(got, want);

    // Each row is NOI / debt service, and the summary is the portfolio's, recomputed here.
    let rows = record["outcome"]["results"]["result"].as_array().unwrap();
    let (mut noi, mut ds) = (0.0, 0.0);
    for row in rows {
        let (n, d) = (row["noi"].as_f64().unwrap(), row["annual_debt_service"].as_f64().unwrap());
        assert!((row["dscr"].as_f64().unwrap() - n / d).abs() < 1e-12, "{row}");
        let verdict = if n / d >= 1.25 {
            "approve"
        } else if n / d >= 1.15 {
            "review"
        } else {
            "reject"
        };
        assert_eq!(row["verdict"], verdict, "{row}");
        noi += n;
        ds += d;
    }
    let summary = &record["outcome"]["results"]["summary"];
    assert_eq!(summary["properties"], 10);
    assert!((summary["portfolio_dscr"].as_f64().unwrap() - noi / ds).abs() < 1e-12, "{summary}");
    assert_eq!(
        (summary["approve"].as_u64(), summary["review"].as_u64(), summary["reject"].as_u64()),
        (Some(5), Some(3), Some(2))
    );

    // The run folder holds every stage's output.
    let dir = Path::new(record["run_dir"].as_str().unwrap());
    let dir = if dir.is_absolute() { dir.to_path_buf() } else { ctx.path().join(dir) };
    for file in ["request.txt", "task.json", "script.py", "validation.json", "outcome.json", "run.json"] {
        assert!(dir.join(file).is_file(), "{file} in {}", dir.display());
    }
    assert_eq!(record["attempts"][0]["validation"]["verdict"], "pass", "the planner's script passes the validator");
}

#[test]
fn people_get_the_table_on_stdout_and_the_stages_on_stderr() {
    let ctx = TestContext::new();
    let output = run(&ctx, &[PORTFOLIO_REQUEST]);
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    for (name, dscr) in DOCUMENTS_DSCR {
        let line = stdout.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("{name} in\n{stdout}"));
        assert!(line.contains(&format!(" {dscr} ")) || line.contains(&format!(" {dscr:.2} ")), "{line}");
    }
    assert!(stdout.contains("portfolio_dscr"), "{stdout}");
    for stage in ["schema", "plan", "validate", "execute"] {
        assert!(stderr.lines().any(|l| l.starts_with('✓') && l.contains(stage)), "{stage} in\n{stderr}");
    }
    assert!(stderr.contains("run ok") && stderr.contains("runs/"), "{stderr}");
}

#[test]
fn a_noi_stress_test_applies_each_decline() {
    let ctx = TestContext::new();
    let output = run(&ctx, &["calculate DSCR for every property and show a 10/20/30% NOI stress test", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let record = record(&output);
    assert_eq!(record["task"]["task_kind"], "stress_test");
    let base: Vec<(String, f64)> = dscr_by_name(&record);
    let by_scenario = record["outcome"]["results"]["scenario_dscr"].as_array().unwrap();
    assert_eq!(by_scenario.len(), 40, "4 scenarios x 10 properties");
    for (scenario, decline) in [("base", 0.0), ("NOI -10%", 0.1), ("NOI -20%", 0.2), ("NOI -30%", 0.3)] {
        for (name, dscr) in &base {
            let row = by_scenario
                .iter()
                .find(|r| r["scenario"] == scenario && r["property_name"] == name.as_str())
                .unwrap_or_else(|| panic!("{scenario} / {name}"));
            let want = dscr * (1.0 - decline);
            assert!((row["dscr"].as_f64().unwrap() - want).abs() < 1e-9, "{scenario} {name}: {row} vs {want}");
        }
    }
    let summary = record["outcome"]["results"]["scenarios"].as_array().unwrap();
    let names: Vec<&str> = summary.iter().map(|s| s["scenario"].as_str().unwrap()).collect();
    assert_eq!(names, ["base", "NOI -10%", "NOI -20%", "NOI -30%"]);
    // At -30% only the strongest properties still approve: 1.94 * 0.7 and 1.82 * 0.7.
    assert_eq!(summary[3]["approve"], 2, "{}", summary[3]);
}

#[test]
fn the_at_risk_list_holds_exactly_the_properties_under_the_threshold() {
    let ctx = TestContext::new();
    let output = run(&ctx, &["Which assets are at risk, with DSCR below 1.2?", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let record = record(&output);
    assert_eq!(
        (record["task"]["task_kind"].as_str(), record["task"]["threshold"].as_f64()),
        (Some("at_risk"), Some(1.2))
    );
    let mut want: Vec<(String, f64)> = dscr_by_name(&record).into_iter().filter(|(_, d)| *d < 1.2).collect();
    want.sort_by(|a, b| a.1.total_cmp(&b.1));
    let listed: Vec<(String, f64)> = record["outcome"]["results"]["at_risk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["property_name"].as_str().unwrap().to_owned(), r["dscr"].as_f64().unwrap()))
        .collect();
    assert_eq!(listed, want);
    let names: Vec<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["Riverside Galleria", "Harbor Town Mall", "Lakeside Plaza"]);
}

#[test]
fn one_named_property_under_the_documents_three_scenarios() {
    let ctx = TestContext::new();
    let request = "Calculate DSCR for Orlando Fashion Square under 3 scenarios: base case, 10% revenue increase, \
                   and 10% revenue decrease.";
    let record = record(&run(&ctx, &[request, "--json"]));
    assert_eq!(record["task"]["entities"], serde_json::json!(["Orlando Fashion Square"]));
    assert_eq!(dscr_by_name(&record).len(), 1);
    let scenarios: Vec<&str> = record["outcome"]["results"]["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(scenarios, ["base", "revenue +10%", "revenue -10%"]);
}

/// A schema that names nothing like the demo: NOI must come from revenue less expenses of
/// the latest year, and debt service from the loan terms.
#[test]
fn derived_noi_and_debt_service_on_another_schema() {
    let ctx = TestContext::new();
    let db = ctx.path().join("assets.db");
    let assets = [
        ("Alpha Tower", 1_500_000.0, 600_000.0, 10_000_000.0, 0.06, 30.0),
        ("Beta Plaza", 820_000.0, 410_000.0, 4_000_000.0, 0.055, 25.0),
        ("Gamma Court", 400_000.0, 250_000.0, 2_500_000.0, 0.07, 20.0),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", db.display())).await.unwrap();
        let ddl = "CREATE TABLE assets (id INTEGER PRIMARY KEY, name TEXT NOT NULL, asset_type TEXT);
                   CREATE TABLE operations (op_id INTEGER PRIMARY KEY, asset_id INTEGER REFERENCES assets(id),
                       year INTEGER, gross_revenue REAL, operating_expenses REAL);
                   CREATE TABLE debt (debt_id INTEGER PRIMARY KEY, asset_id INTEGER REFERENCES assets(id),
                       loan_amount REAL, interest_rate REAL, amortization_years INTEGER);";
        sqlx::raw_sql(ddl).execute(&mut conn).await.unwrap();
        for (i, (name, revenue, expenses, loan, rate, years)) in assets.iter().enumerate() {
            let id = i as i64 + 1;
            sqlx::query("INSERT INTO assets VALUES (?, ?, 'office')")
                .bind(id)
                .bind(name)
                .execute(&mut conn)
                .await
                .unwrap();
            // Last year's figures are different, so using them would show.
            for (year, scale) in [(2023, 0.5), (2024, 1.0)] {
                sqlx::query(
                    "INSERT INTO operations (asset_id, year, gross_revenue, operating_expenses) VALUES (?, ?, ?, ?)",
                )
                .bind(id)
                .bind(year)
                .bind(revenue * scale)
                .bind(expenses)
                .execute(&mut conn)
                .await
                .unwrap();
            }
            sqlx::query(
                "INSERT INTO debt (asset_id, loan_amount, interest_rate, amortization_years) VALUES (?, ?, ?, ?)",
            )
            .bind(id)
            .bind(loan)
            .bind(rate)
            .bind(*years as i64)
            .execute(&mut conn)
            .await
            .unwrap();
        }
        conn.close().await.unwrap();
    });
    let output = run(&ctx, &["calculate DSCR for every property", "--db", &db.display().to_string(), "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let record = record(&output);
    let got = dscr_by_name(&record);
    assert_eq!(got.len(), 3, "{got:?}");
    for ((name, revenue, expenses, loan, rate, years), (got_name, dscr)) in assets.iter().zip(&got) {
        // The annuity formula, monthly payments.
        let r: f64 = rate / 12.0;
        let n = years * 12.0;
        let annual_debt_service = 12.0 * loan * r / (1.0 - (1.0 + r).powf(-n));
        let want = (revenue - expenses) / annual_debt_service;
        assert_eq!(got_name, name);
        assert!((dscr - want).abs() < 1e-9, "{name}: {dscr} vs {want}");
    }
}

#[test]
fn exports_write_csv_and_a_workbook_that_reads_back() {
    use calamine::{Reader, Xlsx, open_workbook};
    let ctx = TestContext::new();
    let output = run(&ctx, &["Export the DSCR of every property to CSV and Excel", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let record = record(&output);
    let exports: Vec<String> =
        record["exports"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_owned()).collect();
    let path = |suffix: &str| {
        let p = exports.iter().find(|p| p.ends_with(suffix)).unwrap_or_else(|| panic!("{suffix} in {exports:?}"));
        ctx.path().join(p)
    };
    let csv = std::fs::read_to_string(path("result.csv")).unwrap();
    assert!(csv.starts_with("property_name,noi,annual_debt_service,dscr,verdict\n"), "{csv}");
    assert_eq!(csv.lines().count(), 11);
    let mut workbook: Xlsx<_> = open_workbook(path("results.xlsx")).unwrap();
    let sheet = workbook.worksheet_range("result").unwrap();
    assert_eq!(sheet.get_size(), (11, 5));
    let first = sheet.get((1, 3)).unwrap().to_string();
    assert!(first.starts_with("1.94"), "{first}");
}

#[test]
fn an_unrecognised_request_without_a_model_says_what_works() {
    let ctx = TestContext::new();
    let output = run(&ctx, &["write a haiku about spring"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("error[usage]") && stderr.contains("stress tests"), "{stderr}");
    assert!(stderr.contains("--llm-url"), "the hint says how to configure a model: {stderr}");
}

#[test]
fn the_portfolio_request_on_postgres() {
    let Some(url) = crate::pg::fresh_database() else { return };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(metaexec::db::demo::load_postgres(&metaexec::db::DbUrl::parse(&url).unwrap())).unwrap();
    let ctx = TestContext::new();
    let output = run(&ctx, &[PORTFOLIO_REQUEST, "--db", &url, "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let record = record(&output);
    assert!(record["database"].as_str().unwrap().starts_with("postgres"), "{}", record["database"]);
    let got: Vec<(String, f64)> = dscr_by_name(&record).into_iter().map(|(n, d)| (n, round2(d))).collect();
    assert_eq!(got, DOCUMENTS_DSCR.iter().map(|(n, d)| ((*n).to_owned(), *d)).collect::<Vec<_>>());
}
