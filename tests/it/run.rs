//! `metaexec run` with the offline planner, end to end through the real binary: the
//! documents' DSCR table, the NOI stress test and the at-risk list on the demo portfolio,
//! a schema where NOI and debt service must be derived, exports, and the errors.

use std::path::PathBuf;
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
    let dir = run_dir(&ctx, &record);
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
    assert!(stdout.contains("portfolio DSCR"), "{stdout}");
    for stage in ["schema", "plan", "validate", "execute"] {
        assert!(stderr.lines().any(|l| l.starts_with('✓') && l.contains(stage)), "{stage} in\n{stderr}");
    }
    assert!(stderr.contains("run ok") && stderr.contains("runs/"), "{stderr}");
}

/// The base table's exact DSCR per property: NOI over debt service as the script reported
/// them, not the rounded column.
fn exact_base_dscr(record: &Value) -> Vec<(String, f64)> {
    record["outcome"]["results"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let dscr = r["noi"].as_f64().unwrap() / r["annual_debt_service"].as_f64().unwrap();
            (r["property_name"].as_str().unwrap().to_owned(), dscr)
        })
        .collect()
}

/// The run folder, which the record names relative to the working directory.
fn run_dir(ctx: &TestContext, record: &Value) -> PathBuf {
    ctx.path().join(record["run_dir"].as_str().unwrap())
}

/// The sweep's full results, as written to the run folder.
fn sweep_results(ctx: &TestContext, record: &Value) -> Value {
    let path = run_dir(ctx, record).join("sweep/results.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn a_noi_stress_test_runs_each_decline_as_a_scenario() {
    let ctx = TestContext::new();
    let output = run(&ctx, &["calculate DSCR for every property and show a 10/20/30% NOI stress test", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let record = record(&output);
    assert_eq!(record["task"]["task_kind"], "stress_test");
    let script = record["attempts"][0]["script"].as_str().unwrap();
    assert!(
        script.contains("params.get(k, 0.0)") && !script.contains("stress_test("),
        "one scenario per run:\n{script}"
    );
    let base = exact_base_dscr(&record);
    assert_eq!(base.len(), 10);
    let sweep = &record["sweep"];
    let declines = [("base", 0.0), ("NOI -10%", 0.1), ("NOI -20%", 0.2), ("NOI -30%", 0.3)];
    let ids: Vec<&str> = declines.iter().map(|(id, _)| *id).collect();
    assert_eq!(sweep["matrix"]["scenarios"], serde_json::json!(ids));
    let html = std::fs::read_to_string(run_dir(&ctx, &record).join("sweep/report.html")).unwrap();
    assert!(
        html.contains("Plan and assumptions") && html.contains("recompute DSCR under each scenario"),
        "the report states the plan it answers"
    );

    // Every scenario's every row, from the full results: NOI and DSCR scaled by the decline.
    let results = sweep_results(&ctx, &record);
    let scenarios = results["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 4);
    for (scenario, (id, decline)) in scenarios.iter().zip(declines) {
        assert_eq!((scenario["id"].as_str(), scenario["status"].as_str()), (Some(id), Some("ok")));
        assert_eq!(scenario["params"]["noi_change"].as_f64(), Some(-decline));
        let rows = scenario["results"]["result"].as_array().unwrap();
        assert_eq!(rows.len(), 10);
        for (row, (name, dscr)) in rows.iter().zip(&base) {
            assert_eq!(row["property_name"].as_str(), Some(name.as_str()));
            let want = dscr * (1.0 - decline);
            assert!((row["dscr"].as_f64().unwrap() - want).abs() < 1e-9, "{id} {name}: {row} vs {want}");
        }
    }
    // The matrix shows the same numbers side by side.
    for (i, (name, dscr)) in base.iter().enumerate() {
        let row = &sweep["matrix"]["properties"][i];
        assert_eq!(row["property_name"].as_str(), Some(name.as_str()));
        for (column, (_, decline)) in declines.iter().enumerate() {
            assert!((row["dscr"][column].as_f64().unwrap() - dscr * (1.0 - decline)).abs() < 1e-9, "{row}");
        }
    }
    // At -30% only the strongest properties still approve: 1.94 * 0.7 and 1.82 * 0.7.
    let lines = sweep["scenarios"].as_array().unwrap();
    assert_eq!(lines[3]["verdicts"]["approve"], 2, "{}", lines[3]);
    assert_eq!(lines[3]["weakest"]["property_name"], "Riverside Galleria");

    // Break-even NOI changes against the closed form: DSCR × (1 + x) = t  ⇒  x = t / DSCR − 1,
    // reported to 0.1 % wherever it falls inside the swept −30 % .. 0.
    let break_even = sweep["summary"]["break_even"].as_array().unwrap();
    let mut checked = 0;
    for (name, dscr) in &base {
        for threshold in [1.0, 1.25] {
            let x = threshold / dscr - 1.0;
            let found = break_even
                .iter()
                .find(|b| b["property_name"] == name.as_str() && b["threshold"].as_f64() == Some(threshold))
                .unwrap_or_else(|| panic!("{name} {threshold}"));
            if (-0.3..=0.0).contains(&x) {
                let value = found["value"].as_f64().unwrap_or_else(|| panic!("{found}"));
                assert!((value - x).abs() <= 0.0005 + 1e-12, "{name} {threshold}: {value} vs {x}");
                checked += 1;
            } else {
                assert!(found["value"].is_null(), "{name} {threshold}: {found} (closed form {x})");
            }
        }
    }
    assert!(checked >= 8, "{checked} crossings in range");
    for file in ["results.json", "scenarios.csv", "report.html"] {
        let path = run_dir(&ctx, &record).join("sweep").join(file);
        assert!(path.metadata().is_ok_and(|m| m.len() > 100), "{}", path.display());
    }
}

/// Occupancy down is vacancy up, in every spelling, and shocks asked for together are one
/// scenario: each stress lowers every property's DSCR from its base.
#[test]
fn occupancy_declines_and_combined_shocks_stress_the_portfolio() {
    for (request, params) in [
        ("DSCR with occupancy down 5%", serde_json::json!({"vacancy_change": 0.05})),
        ("DSCR after a 5% occupancy decline", serde_json::json!({"vacancy_change": 0.05})),
        (
            "what happens to DSCR if rates rise 200bp and NOI falls 10% at the same time",
            serde_json::json!({"noi_change": -0.1, "rate_change": 0.02}),
        ),
    ] {
        let ctx = TestContext::new();
        let output = run(&ctx, &[request, "--json"]);
        assert_eq!(output.status.code(), Some(0), "{request}: {}", String::from_utf8_lossy(&output.stderr));
        let record = record(&output);
        let results = sweep_results(&ctx, &record);
        let scenarios = results["scenarios"].as_array().unwrap();
        assert_eq!(scenarios.len(), 2, "{request}: the base and one stress");
        let stressed = &scenarios[1];
        for (key, value) in params.as_object().unwrap() {
            assert_eq!(&stressed["params"][key], value, "{request}: {key}");
        }
        let dscr = |scenario: &Value| -> Vec<f64> {
            let rows = scenario["results"]["result"].as_array().unwrap();
            rows.iter().map(|row| row["dscr"].as_f64().unwrap()).collect()
        };
        let (base, stress) = (dscr(&scenarios[0]), dscr(stressed));
        assert_eq!(base.len(), 10);
        for (b, s) in base.iter().zip(&stress) {
            assert!(s < b, "{request}: a stress lowers DSCR ({b} -> {s})");
        }
    }
}

#[test]
fn a_stress_test_prints_the_scenarios_side_by_side() {
    let ctx = TestContext::new();
    let output = run(&ctx, &["show a 10/20/30% NOI stress test"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for expected in ["DSCR by scenario", "NOI -30%", "Portfolio by scenario", "Break-even in NOI", "-17.4%"] {
        assert!(stdout.contains(expected), "{expected} in\n{stdout}");
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.lines().any(|l| l.starts_with('✓') && l.contains("sweep") && l.contains("4 scenarios")), "{stderr}");
    assert!(stderr.contains("sweep/report.html"), "{stderr}");
}

#[test]
fn a_monte_carlo_request_is_drawn_reproducibly_and_counted_exactly() {
    let ctx = TestContext::new();
    let request = "Run 400 Monte Carlo simulations of the portfolio where NOI is normally distributed with a \
                   standard deviation of 8%, seed 11";
    let output = run(&ctx, &[request, "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let record = record(&output);
    assert_eq!(record["task"]["task_kind"], "stress_test");
    assert_eq!(
        record["task"]["sweep"],
        serde_json::json!({"grid": [], "monte_carlo": 400, "seed": 11, "dist": ["noi_change=normal(0,0.08)"]})
    );
    let sweep = &record["sweep"];
    assert_eq!((sweep["summary"]["total"].as_u64(), sweep["summary"]["ok"].as_u64()), (Some(400), Some(400)));
    assert!(sweep["matrix"].is_null(), "400 scenarios are summarised, not listed side by side");
    let draws: Vec<f64> =
        sweep["scenarios"].as_array().unwrap().iter().map(|l| l["params"]["noi_change"].as_f64().unwrap()).collect();
    let mean = draws.iter().sum::<f64>() / draws.len() as f64;
    let sd = (draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (draws.len() - 1) as f64).sqrt();
    assert!(mean.abs() < 0.015 && (sd - 0.08).abs() < 0.012, "mean {mean}, sd {sd}");

    // P(DSCR < 1) per property, counted independently from the draws: DSCR × (1 + x) < 1.
    let base = exact_base_dscr(&record);
    let properties = sweep["summary"]["properties"].as_array().unwrap();
    for (name, dscr) in &base {
        let summary = properties.iter().find(|p| p["property_name"] == name.as_str()).unwrap();
        let below = draws.iter().filter(|x| dscr * (1.0 + **x) < 1.0).count() as f64 / draws.len() as f64;
        assert!((summary["prob_below_1"].as_f64().unwrap() - below).abs() < 1e-12, "{name}: {summary} vs {below}");
        let worst = draws.iter().copied().fold(f64::INFINITY, f64::min);
        assert!((summary["min_dscr"].as_f64().unwrap() - dscr * (1.0 + worst)).abs() < 1e-9, "{name}: {summary}");
    }

    // The same request and seed draw the same scenarios.
    let again = self::record(&run(&ctx, &[request, "--json"]));
    assert_eq!(again["sweep"]["scenarios"], sweep["scenarios"]);
}

#[test]
fn a_sensitivity_range_becomes_a_grid() {
    let ctx = TestContext::new();
    let request = "DSCR sensitivity with NOI from -30% to +10% in steps of 5% and rates between 0 and 1%";
    let output = run(&ctx, &[request, "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let record = record(&output);
    assert_eq!(
        record["task"]["sweep"]["grid"],
        serde_json::json!(["noi_change=-0.3..0.1:0.05", "rate_change=0..0.01:0.0025"])
    );
    assert_eq!(
        record["notes"],
        serde_json::json!(["assumed rate_change in steps of 0.0025 (the request named no step)"])
    );
    let sweep = &record["sweep"];
    let ids: Vec<&str> = sweep["scenarios"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 9 * 5, "{ids:?}");
    assert_eq!((ids[0], ids[44]), ("noi_change=-0.3;rate_change=0.0", "noi_change=0.1;rate_change=0.01"));
    // Portfolio DSCR is total NOI over total debt service, so it scales with NOI too.
    let rows = record["outcome"]["results"]["result"].as_array().unwrap();
    let total = |key: &str| rows.iter().map(|r| r[key].as_f64().unwrap()).sum::<f64>();
    let portfolio = total("noi") / total("annual_debt_service");
    let tornado = &sweep["summary"]["sensitivity"][0];
    assert_eq!(tornado["param"], "noi_change");
    assert!((tornado["swing"].as_f64().unwrap() - portfolio * 0.4).abs() < 1e-9, "{tornado}");
    let portfolio_1 = sweep["summary"]["break_even"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["property_name"] == "portfolio" && b["threshold"] == 1.0)
        .unwrap();
    assert!((portfolio_1["value"].as_f64().unwrap() - (1.0 / portfolio - 1.0)).abs() <= 0.0005, "{portfolio_1}");
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
    let scenarios = &record["sweep"]["matrix"]["scenarios"];
    assert_eq!(scenarios, &serde_json::json!(["base", "revenue +10%", "revenue -10%"]));
    let properties = record["sweep"]["matrix"]["properties"].as_array().unwrap();
    assert_eq!(properties.len(), 1, "{properties:?}");
    // Revenue up 10% raises NOI, and so DSCR; down 10% lowers it.
    let dscr = properties[0]["dscr"].as_array().unwrap();
    assert!(dscr[1].as_f64() > dscr[0].as_f64() && dscr[2].as_f64() < dscr[0].as_f64(), "{dscr:?}");
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
    assert_eq!(sheet.get((0, 2)).unwrap().to_string(), "debt service", "headers in words");
    let plan = workbook.worksheet_range("plan and assumptions").expect("the plan has a sheet of its own");
    let steps: Vec<String> = (1..plan.get_size().0).map(|r| plan.get((r, 1)).unwrap().to_string()).collect();
    assert!(steps.iter().any(|s| s.contains("DSCR = NOI / annual debt service")), "{steps:?}");
}

#[test]
fn an_unrecognised_request_without_a_model_says_what_works() {
    let ctx = TestContext::new();
    let output = run(&ctx, &["write a haiku about spring"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error[not_understood]") && stderr.contains("stress tests"), "{stderr}");
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
