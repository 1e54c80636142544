//! Sweeps in the real sandbox: warm instances against the demo portfolio, checked
//! against an independent computation on the host, single runs, seeds, failures that must
//! stay contained, and the database read once.

use std::sync::Arc;

use metaexec::db::Capability;
use metaexec::job::Job;
use metaexec::scenario::{Scenario, ScenarioStatus};
use metaexec::sweep::analysis::BreakEven;
use metaexec::sweep::spec::PlanTexts;
use metaexec::sweep::{self, Isolation, SweepOptions, SweepReport};
use serde_json::{Value, json};

use crate::common::{TestContext, dedent, metaexec_command, run_job, sandbox};
use crate::db_proxy::{Target, block_on, example, proxy, sqlite_demo};

fn run_sweep(job: &Job, scenarios: Vec<Scenario>, workers: usize, isolation: Isolation) -> SweepReport {
    let options = SweepOptions::new(workers, isolation);
    runtime().block_on(sweep::run(sandbox(), job, scenarios, options, |_| {})).expect("the sweep runs")
}

fn grid(specs: &[&str]) -> Vec<Scenario> {
    let grid: Vec<String> = specs.iter().map(|g| g.to_string()).collect();
    PlanTexts { grid: &grid, ..Default::default() }.scenarios().unwrap()
}

/// Per property of the demo, in order: name, 2024 NOI, principal, rate, amortization
/// years; read straight from the file, independently of the proxy.
pub(crate) fn demo_loans(target: &Target) -> Vec<(String, f64, f64, f64, f64)> {
    block_on(async {
        use sqlx::Connection;
        let path = target.url.sqlite_path().unwrap().display().to_string();
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}?mode=ro")).await.unwrap();
        sqlx::query_as(
            "SELECT p.property_name, f.noi, l.principal, l.interest_rate, CAST(l.amortization_years AS REAL) FROM properties p \
             JOIN financial_metrics f ON f.property_id = p.property_id JOIN loans l ON l.property_id = p.property_id \
             WHERE f.fiscal_year = 2024 ORDER BY p.property_id",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Annual debt service of a monthly-pay loan, from the annuity formula.
pub(crate) fn annual_debt_service(principal: f64, rate: f64, years: f64) -> f64 {
    let r = rate / 12.0;
    let n = years * 12.0;
    12.0 * principal * r / (1.0 - (1.0 + r).powf(-n))
}

#[test]
fn a_thousand_scenario_grid_matches_an_independent_computation_and_single_runs() {
    let target = sqlite_demo();
    let ctx = TestContext::new();
    let mut job = Job::new("dscr_stress.py", example("dscr_stress.py"), ctx.results());
    job.db = Some(proxy(&target, Capability::default()));
    // 200 NOI changes × 5 rate changes = 1,000 scenarios.
    let scenarios = grid(&["noi_change=-0.3..0.099:0.002", "rate_change=0,0.005,0.01,0.015,0.02"]);
    assert_eq!(scenarios.len(), 1000);
    let report = run_sweep(&job, scenarios, 2, Isolation::Namespace);
    assert_eq!((report.summary.total, report.summary.ok), (1000, 1000), "{:#?}", report.summary);
    assert_eq!(report.metrics.db_queries, 1, "the database is read once per sweep");

    // The loans and NOI, read independently of the proxy.
    let loans = demo_loans(&target);
    for scenario in &report.scenarios {
        let noi_change = scenario.params["noi_change"].as_f64().unwrap();
        let rate_change = scenario.params["rate_change"].as_f64().unwrap();
        let rows = scenario.results["result"].as_array().unwrap();
        for ((name, noi, principal, rate, years), row) in loans.iter().zip(rows) {
            assert_eq!(row["property_name"], json!(name));
            let expected = noi * (1.0 + noi_change) / annual_debt_service(*principal, rate + rate_change, *years);
            let got = row["dscr"].as_f64().unwrap();
            assert!((got - expected).abs() < 1e-3, "{}: {name}: {got} vs {expected}", scenario.id);
        }
    }
    // Break-even NOI changes (rate at base) against the closed form T / DSCR - 1.
    for (name, noi, principal, rate, years) in &loans {
        let base = noi / annual_debt_service(*principal, *rate, *years);
        for threshold in [1.0, 1.25] {
            let expected = threshold / base - 1.0;
            let found = report
                .summary
                .analysis
                .break_even
                .iter()
                .find(|b| b.param == "noi_change" && &b.property_name == name && b.threshold == threshold)
                .unwrap();
            match found.value {
                Some(value) => assert!((value - expected).abs() < 0.0006, "{name} {threshold}: {value} vs {expected}"),
                None => assert!(!(-0.3..=0.098).contains(&expected), "{name} {threshold}: {expected} is in range"),
            }
        }
    }
    let tornado = &report.summary.analysis.sensitivity;
    assert_eq!(tornado[0].param, "noi_change", "NOI moves the portfolio most over these ranges");

    // A handful of scenarios, each run alone, give identical results.
    for scenario in report.scenarios.iter().step_by(199) {
        let mut single = job.clone();
        single.params = scenario.params.clone();
        let outcome = run_job(&single);
        assert_eq!(outcome.results, scenario.results.clone().into_map(), "{}", scenario.id);
    }
}

/// A grid of two rate values brackets each crossing too loosely to interpolate (DSCR is
/// curved in the rate); bisection over further runs of the script finds the rate at which
/// each property crosses each threshold to 0.1 %, checked against a root of the annuity
/// formula found here on the host.
#[test]
fn break_even_rates_are_found_by_bisection_to_a_tenth_of_a_percent() {
    let target = sqlite_demo();
    let ctx = TestContext::new();
    let mut job = Job::new("dscr_stress.py", example("dscr_stress.py"), ctx.results());
    job.db = Some(proxy(&target, Capability::default()));
    let options = SweepOptions::new(2, Isolation::Namespace);
    let (interpolated, refined) = runtime().block_on(async {
        let report = sweep::run(sandbox(), &job, grid(&["rate_change=0,0.03"]), options.clone(), |_| {}).await.unwrap();
        let mut refined = report.clone();
        sweep::bisect::refine(sandbox(), &job, &mut refined, &options).await;
        (report, refined)
    });
    assert!(refined.metrics.bisection_runs > 0);
    let loans = demo_loans(&target);
    let mut checked = 0;
    let mut interpolation_was_off = false;
    for (name, noi, principal, rate, years) in &loans {
        let dscr = |shift: f64| noi / annual_debt_service(*principal, rate + shift, *years);
        for threshold in [1.0, 1.25] {
            fn find<'a>(report: &'a SweepReport, name: &str, threshold: f64) -> &'a BreakEven {
                let mut all = report.summary.analysis.break_even.iter();
                all.find(|b| b.param == "rate_change" && b.property_name == name && b.threshold == threshold).unwrap()
            }
            let found = find(&refined, name, threshold);
            if !(dscr(0.0) >= threshold && dscr(0.03) < threshold) {
                assert_ne!(found.status, "crosses", "{name} {threshold}");
                continue;
            }
            // DSCR falls as the rate rises: bisect the annuity formula itself.
            let (mut low, mut high) = (0.0, 0.03);
            for _ in 0..60 {
                let mid = (low + high) / 2.0;
                if dscr(mid) >= threshold { low = mid } else { high = mid }
            }
            let value = found.value.unwrap();
            assert!((value - low).abs() <= 0.0006, "{name} {threshold}: {value} vs {low}");
            let guess = find(&interpolated, name, threshold).value.unwrap();
            interpolation_was_off |= (guess - low).abs() > 0.0006;
            checked += 1;
        }
    }
    assert!(checked >= 4, "the demo has crossings in this range ({checked})");
    assert!(interpolation_was_off, "the test must tell bisection from interpolation");
}

#[test]
fn each_scenario_gets_a_fresh_namespace_and_its_own_params() {
    let ctx = TestContext::new();
    let job = Job::new(
        "ns.py",
        dedent(
            r#"
            from metaexec import params, result
            try:
                seen += 1
            except NameError:
                seen = 1
            result({"x": params["x"], "seen": seen, "base": params.get("base")})
            "#,
        ),
        ctx.results(),
    );
    for isolation in [Isolation::Namespace, Isolation::Instance] {
        let report = run_sweep(&job, grid(&["x=1..6:1"]), 2, isolation);
        let xs: Vec<Value> = report.scenarios.iter().map(|s| s.results["result"]["x"].clone()).collect();
        assert_eq!(xs, (1..=6).map(|x| json!(x as f64)).collect::<Vec<_>>(), "{isolation:?}");
        assert!(report.scenarios.iter().all(|s| s.results["result"]["seen"] == 1), "{isolation:?}");
    }
}

#[test]
fn failing_and_runaway_scenarios_are_contained() {
    let ctx = TestContext::new();
    let mut job = Job::new(
        "bad.py",
        dedent(
            r#"
            import time
            from metaexec import params, result
            x = params["x"]
            if x == "raise":
                raise ValueError("bad scenario")
            if x == "loop":
                while True:
                    pass
            if x == "sleep":
                time.sleep(60)
            if x == "print":
                print("y" * 5000)
            result({"x": x})
            "#,
        ),
        ctx.results(),
    );
    job.limits.timeout = std::time::Duration::from_millis(500);
    job.limits.stdout_bytes = 1000;
    let scenarios = PlanTexts { zip: &["x=a,raise,b,loop,c,sleep,d,print,e".to_string()], ..Default::default() }
        .scenarios()
        .unwrap();
    let report = run_sweep(&job, scenarios, 2, Isolation::Namespace);
    let by_id = |id: &str| report.scenarios.iter().find(|s| s.id == format!("x={id}")).unwrap();
    for ok in ["a", "b", "c", "d", "e"] {
        assert_eq!(by_id(ok).status, ScenarioStatus::Ok, "{ok}: {:#?}", by_id(ok));
        assert_eq!(by_id(ok).results["result"]["x"], ok);
    }
    let kind = |id: &str| by_id(id).error.as_ref().map(|e| e.kind.to_string());
    assert_eq!(kind("raise").as_deref(), Some("guest_exception"));
    assert!(by_id("raise").error.as_ref().unwrap().message.contains("bad scenario"));
    assert_eq!(by_id("raise").error.as_ref().unwrap().line, Some(5));
    assert_eq!(kind("loop").as_deref(), Some("timeout"));
    assert_eq!(kind("sleep").as_deref(), Some("timeout"));
    assert_eq!(kind("print").as_deref(), Some("output_limit"));
    assert_eq!((report.summary.ok, report.summary.failed), (5, 4));
    assert_eq!(report.summary.failures["timeout"], 2);
}

/// One instance takes scenarios in batches; three of them stop it mid-batch in three ways.
/// The rest of each batch is run again by the next instance, and every scenario ends up
/// with its own results and its own printed output.
#[test]
fn an_instance_stopped_mid_batch_loses_no_scenario() {
    let ctx = TestContext::new();
    let mut job = Job::new(
        "stops.py",
        dedent(
            r#"
            import posix
            from metaexec import params, result
            x = int(params["x"])
            print(x)
            if x == 10:
                while True:
                    pass
            if x == 50:
                posix._exit(0)
            if x == 90:
                print("y" * 5000)
            result({"x": x})
            "#,
        ),
        ctx.results(),
    );
    job.limits.timeout = std::time::Duration::from_millis(300);
    job.limits.stdout_bytes = 1000;
    let report = run_sweep(&job, grid(&["x=0..199:1"]), 1, Isolation::Namespace);
    assert_eq!(report.scenarios.len(), 200);
    for (i, scenario) in report.scenarios.iter().enumerate() {
        assert_eq!(scenario.params["x"], json!(i as f64), "in spec order");
        match i {
            10 | 50 | 90 => assert_eq!(scenario.status, ScenarioStatus::Error, "{i}"),
            _ => {
                assert_eq!(scenario.status, ScenarioStatus::Ok, "{i}: {scenario:#?}");
                assert_eq!(scenario.results["result"]["x"], i, "{i}");
                assert_eq!(scenario.stdout, format!("{i}\n"), "{i}: what it printed, and only that");
            }
        }
    }
    let kind = |i: usize| report.scenarios[i].error.as_ref().unwrap().kind.to_string();
    assert_eq!((kind(10), kind(50), kind(90)), ("timeout".into(), "guest_exception".into(), "output_limit".into()));
    assert!(report.scenarios[50].error.as_ref().unwrap().message.contains("ended the interpreter"));
    assert_eq!((report.summary.ok, report.summary.failed), (197, 3));
}

/// An instance that trapped is never used again: the scenarios after the trap run in a
/// fresh one (the script counts its runs in the interpreter's builtins, which outlive a
/// scenario's namespace but not its instance). And each scenario draws from its own seed,
/// derived from the sweep's seed and the scenario's id: the same numbers whichever
/// instance, or isolation, runs it.
#[test]
fn a_trapped_instance_is_never_reused_and_scenario_seeds_are_reproducible() {
    let ctx = TestContext::new();
    let mut job = Job::new(
        "trap.py",
        dedent(
            r#"
            import builtins, random
            from metaexec import params, result
            builtins.runs_in_instance = getattr(builtins, "runs_in_instance", 0) + 1
            x = int(params["x"])
            if x == 3 and params.get("trap"):
                print("y" * 5000)
            result({"x": x, "run": builtins.runs_in_instance, "r": random.random()})
            "#,
        ),
        ctx.results(),
    );
    job.limits.stdout_bytes = 1000;
    job.seed = Some(5);
    let with_trap = |trap: bool| {
        let mut scenarios = grid(&["x=0..7:1"]);
        for scenario in &mut scenarios {
            scenario.params.insert("trap".into(), json!(trap));
        }
        scenarios
    };
    let report = run_sweep(&job, with_trap(true), 1, Isolation::Namespace);
    let runs: Vec<Value> =
        report.scenarios.iter().map(|s| s.results.get("result").map_or(Value::Null, |r| r["run"].clone())).collect();
    assert_eq!(runs, [json!(1), json!(2), json!(3), Value::Null, json!(1), json!(2), json!(3), json!(4)]);
    assert_eq!(report.scenarios[3].error.as_ref().unwrap().kind.to_string(), "output_limit");

    let draws = |report: &SweepReport| -> Vec<Value> {
        report
            .scenarios
            .iter()
            .filter(|s| s.params["x"] != json!(3.0))
            .map(|s| s.results["result"]["r"].clone())
            .collect()
    };
    let first = draws(&report);
    assert_eq!(draws(&run_sweep(&job, with_trap(false), 2, Isolation::Namespace)), first, "same seed, same draws");
    assert_eq!(draws(&run_sweep(&job, with_trap(false), 1, Isolation::Instance)), first, "whatever runs them");
    let distinct: std::collections::BTreeSet<String> = first.iter().map(Value::to_string).collect();
    assert_eq!(distinct.len(), first.len(), "each scenario has its own seed");
    job.seed = Some(6);
    let other = draws(&run_sweep(&job, with_trap(false), 1, Isolation::Namespace));
    assert!(other.iter().zip(&first).all(|(a, b)| a != b), "another sweep seed, other draws");
}

/// A warm instance hands each scenario `random` as a fresh one would: seeded from the
/// scenario's own seed, with no `gauss()` value or replaced function left over from the
/// scenario before, and not seeded at all for a scenario that never uses it.
#[test]
fn each_scenario_gets_random_as_a_fresh_instance_would() {
    let ctx = TestContext::new();
    let job = Job::new(
        "draws.py",
        dedent(
            r#"
            import random
            from metaexec import params, result
            listed = "gauss" in dir(random)
            if int(params["x"]) % 3 == 0:
                result({"x": params["x"], "listed": listed})
            else:
                draws = [random.gauss(0, 1), random.random()]
                random.random = lambda: 0.5
                result({"x": params["x"], "listed": listed, "draws": draws})
            "#,
        ),
        ctx.results(),
    );
    let results = |report: &SweepReport| -> Vec<Value> {
        assert_eq!(report.summary.ok, 9, "{:#?}", report.scenarios);
        report.scenarios.iter().map(|s| s.results["result"].clone()).collect()
    };
    let warm = results(&run_sweep(&job, grid(&["x=1..9:1"]), 1, Isolation::Namespace));
    assert_eq!(warm, results(&run_sweep(&job, grid(&["x=1..9:1"]), 1, Isolation::Instance)));
    assert!(warm.iter().all(|r| r["listed"] == true), "{warm:?}");
    assert!(warm.iter().filter_map(|r| r.get("draws")).all(|d| d[1] != 0.5), "{warm:?}");
}

#[test]
fn a_script_that_does_not_compile_fails_the_sweep_once() {
    let ctx = TestContext::new();
    let job = Job::new("broken.py", "def f(:\n", ctx.results());
    let options = SweepOptions::new(2, Isolation::Namespace);
    let outcome = runtime().block_on(sweep::run(sandbox(), &job, grid(&["x=1..3:1"]), options, |_| {})).unwrap_err();
    assert_eq!(outcome.error.unwrap().kind.to_string(), "syntax");
}

#[test]
fn monte_carlo_is_reproducible_from_the_command_line() {
    let target = sqlite_demo();
    let ctx = TestContext::new();
    let db = target.url.sqlite_path().unwrap().display().to_string();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/dscr_stress.py");
    let run = |seed: &str| -> Value {
        let output = metaexec_command(&ctx)
            .args(["sweep", &script.display().to_string(), "--db", &db, "--json", "--monte-carlo", "300"])
            .args(["--seed", seed, "--dist", "noi_change=normal(0,0.08)", "--dist", "rate_change=uniform(0,0.02)"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    // Everything but the timings.
    let content = |report: &Value| -> Vec<Value> {
        report["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| json!([s["id"], s["params"], s["status"], s["results"]]))
            .collect()
    };
    let (a, b, c) = (run("7"), run("7"), run("8"));
    assert_eq!(content(&a), content(&b));
    assert_ne!(content(&a), content(&c));
    assert_eq!(a["summary"]["total"], 300);
    assert_eq!(a["metrics"]["db_queries"], 1);
    let riverside = a["summary"]["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["property_name"] == "Riverside Galleria")
        .unwrap();
    let below = a["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["results"]["result"][5]["dscr"].as_f64().unwrap() < 1.0)
        .count();
    assert_eq!(riverside["prob_below_1"].as_f64().unwrap(), below as f64 / 300.0);
    assert!(below > 270, "DSCR 0.89 rarely reaches 1.0 with NOI ~ N(0, 8%): {below}");
    // The files beside it.
    let results: Value =
        serde_json::from_slice(&std::fs::read(ctx.path().join("results/results.json")).unwrap()).unwrap();
    assert_eq!(content(&results), content(&c));
    let csv = std::fs::read_to_string(ctx.path().join("results/scenarios.csv")).unwrap();
    assert!(
        csv.starts_with(
            "scenario,status,error,noi_change,rate_change,property_name,noi,annual_debt_service,dscr,verdict\n"
        ),
        "{csv:.200}"
    );
    assert_eq!(csv.lines().count(), 1 + 300 * 10);
}

#[test]
fn bad_specs_are_usage_errors_that_point_at_the_part() {
    let ctx = TestContext::new();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/dscr_stress.py");
    for (args, expected) in [
        (vec!["--grid", "noi_change=0..1:-0.1"], "--grid `noi_change=0..1:-0.1`: the step must be positive"),
        (vec!["--grid", "noi_change=-0.3..0.1;0.1"], "`-0.3..0.1;0.1` is not a range"),
        (vec!["--zip", "noi_change=-0.1,-O.2"], "`-O.2` is not a number"),
        (vec!["--monte-carlo", "10", "--dist", "x=beta(1,2)"], "--dist `x=beta(1,2)`"),
        (vec!["--dist", "x=normal(0,1)"], "--dist `x=normal(0,1)`: needs --monte-carlo"),
        (vec![], "no scenarios"),
    ] {
        let output =
            metaexec_command(&ctx).args(["sweep", &script.display().to_string()]).args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn one_proxy_serves_the_whole_sweep() {
    let target = sqlite_demo();
    let ctx = TestContext::new();
    let handle = proxy(&target, Capability::default());
    let mut job = Job::new(
        "q.py",
        "from metaexec import db, params, result\nresult([params['x'], len(db.query('SELECT * FROM loans'))])\n",
        ctx.results(),
    );
    job.db = Some(handle.clone());
    let report = run_sweep(&job, grid(&["x=1..200:1"]), 2, Isolation::Namespace);
    assert_eq!(report.summary.ok, 200);
    assert_eq!(report.metrics.db_queries, 1);
    assert!(Arc::strong_count(&handle.0) >= 1);
}

/// `metaexec sweep examples/dscr_stress.py ARGS` on a fresh demo database, which must
/// succeed; its stdout.
fn sweep_demo(ctx: &TestContext, args: &[&str]) -> String {
    let target = sqlite_demo();
    let db = target.url.sqlite_path().unwrap().display().to_string();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/dscr_stress.py");
    let output =
        metaexec_command(ctx).args(["sweep", &script.display().to_string(), "--db", &db]).args(args).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_html_report_is_well_formed_and_holds_the_charts() {
    let ctx = TestContext::new();
    let stdout = sweep_demo(&ctx, &["--grid", "noi_change=-0.3..0.1:0.05", "--grid", "rate_change=0,0.01,0.02"]);
    let _ = &stdout;
    assert!(stdout.contains("Break-even") && stdout.contains("Riverside Galleria"), "{stdout}");
    let html = std::fs::read_to_string(ctx.path().join("results/report.html")).unwrap();
    let body = html.strip_prefix("<!DOCTYPE html>\n").expect("a doctype");
    let doc = roxmltree::Document::parse(body).expect("well-formed markup");
    let svgs = doc.descendants().filter(|n| n.tag_name().name() == "svg").count();
    assert_eq!(svgs, 3, "scenario bars, distribution, tornado");
    assert!(!html.contains("<script"), "no scripts");
    let external = doc.descendants().filter(|n| n.attribute("src").is_some() || n.attribute("href").is_some()).count();
    assert_eq!(external, 0, "self-contained: nothing loaded from elsewhere");
    let tables = doc.descendants().filter(|n| n.tag_name().name() == "table").count();
    assert_eq!(tables, 2, "per-property DSCR and break-even");
}

#[test]
fn the_workbook_reads_back() {
    use calamine::{Data, Reader, Xlsx, open_workbook};
    let ctx = TestContext::new();
    let stdout = sweep_demo(&ctx, &["--grid", "noi_change=-0.3..0.1:0.1", "--xlsx", "--json"]);
    let report: Value = serde_json::from_slice(stdout.as_bytes()).unwrap();
    let mut workbook: Xlsx<_> = open_workbook(ctx.path().join("results/sweep.xlsx")).expect("a valid workbook");
    assert_eq!(workbook.sheet_names(), ["Properties", "Scenarios", "Break-even", "Sensitivity"]);
    let properties = workbook.worksheet_range("Properties").unwrap();
    assert_eq!(properties.height(), 11);
    for (row, expected) in properties.rows().skip(1).zip(report["summary"]["properties"].as_array().unwrap()) {
        assert_eq!(row[0], Data::String(expected["property_name"].as_str().unwrap().to_owned()));
        assert_eq!(row[2], Data::Float(expected["min_dscr"].as_f64().unwrap()));
    }
    let scenarios = workbook.worksheet_range("Scenarios").unwrap();
    assert_eq!(scenarios.height(), 1 + 5 * 10);
    assert_eq!(scenarios.get((0, 3)), Some(&Data::String("noi_change".into())));
    let break_even = workbook.worksheet_range("Break-even").unwrap();
    assert_eq!(break_even.height(), 1 + report["summary"]["break_even"].as_array().unwrap().len());
}

#[test]
fn the_fuel_budget_holds_per_scenario() {
    let ctx = TestContext::new();
    let mut job = Job::new(
        "fuel.py",
        dedent(
            r#"
            from metaexec import params, result
            total = 0
            for i in range(int(params["n"])):
                total += i
            result({"total": total})
            "#,
        ),
        ctx.results(),
    );
    // Far less than an interpreter start-up (~180M), far more than a short scenario.
    job.limits.fuel = Some(50_000_000);
    let scenarios =
        PlanTexts { zip: &["n=10,100,100000000,1000".to_string()], ..Default::default() }.scenarios().unwrap();
    let report = run_sweep(&job, scenarios, 1, Isolation::Namespace);
    let status: Vec<_> = report.scenarios.iter().map(|s| s.error.as_ref().map(|e| e.kind.to_string())).collect();
    assert_eq!(status, [None, None, Some("fuel_exhausted".to_owned()), None], "{:#?}", report.scenarios);
    assert_eq!(report.scenarios[3].results["result"]["total"], 499_500);
}

/// The files in a results folder, sorted.
fn file_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn keep_summary_writes_no_per_scenario_file() {
    let ctx = TestContext::new();
    std::fs::write(ctx.path().join("echo.py"), "import metaexec\nmetaexec.result([{'x': metaexec.params.get('x')}])\n")
        .unwrap();
    let output = metaexec_command(&ctx)
        .args(["sweep", "echo.py", "--grid", "x=1..5:1", "--results", "out", "--keep", "summary"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(file_names(&ctx.path().join("out")), ["report.html", "summary.json"]);
    let summary: Value = serde_json::from_slice(&std::fs::read(ctx.path().join("out/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["total"], 5);
    assert_eq!(summary["scenario_files"], json!([]));
    assert!(summary.get("interrupted").is_none(), "{summary}");
}

/// Scenarios whose results would make a `results.json` past the threshold get one compact
/// line each in `scenarios.csv.gz` instead, and the terminal says so; `--keep all` writes
/// the full files anyway.
#[test]
fn a_large_sweep_writes_a_compact_file_unless_told_to_keep_all() {
    let ctx = TestContext::new();
    // 120 scenarios × 600 kB of results: about 72 MB of JSON, past the 64 MiB threshold.
    let script = "import metaexec\nx = metaexec.params.get('x')\nmetaexec.emit('blob', 'b' * 600_000)\n\
                  metaexec.result([{'property_name': 'A', 'dscr': 1.0 + x / 100, 'verdict': 'approve'}])\n";
    std::fs::write(ctx.path().join("big.py"), script).unwrap();
    let sweep = |results: &str, keep: &str| {
        metaexec_command(&ctx)
            .args(["sweep", "big.py", "--grid", "x=1..120:1", "--results", results, "--keep", keep])
            .output()
            .unwrap()
    };
    let output = sweep("auto", "auto");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(file_names(&ctx.path().join("auto")), ["report.html", "scenarios.csv.gz", "summary.json"]);
    assert!(stderr.contains("scenarios.csv.gz") && stderr.contains("--keep all"), "{stderr}");
    let mut csv = String::new();
    let gz = std::fs::File::open(ctx.path().join("auto/scenarios.csv.gz")).unwrap();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(gz), &mut csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 120, "one line per scenario");
    assert_eq!(lines[0], "scenario,status,error,x,portfolio_dscr,weakest_property,weakest_dscr,approve");
    assert!(lines[1].starts_with("x=1.0,ok,,1.0,") && lines[1].ends_with(",A,1.01,1"), "{}", lines[1]);
    let summary: Value = serde_json::from_slice(&std::fs::read(ctx.path().join("auto/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["total"], 120);
    assert_eq!(summary["scenario_files"], json!(["scenarios.csv.gz"]));

    let output = sweep("all", "all");
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(file_names(&ctx.path().join("all")), ["report.html", "results.json", "scenarios.csv", "summary.json"]);
}

/// A pool slot handed from one isolated scenario to the next is back at the snapshot,
/// whichever way the engine resets it (pages found written and copied back, for one-off
/// runs; the whole snapshot copied back, for many instances): more scenarios than the
/// pool has slots, each leaving a mark in a module and megabytes of heap behind, and each
/// finding none of it.
#[test]
fn an_isolated_scenario_finds_nothing_an_earlier_one_left_in_its_slot() {
    use metaexec::sandbox::{SandboxOptions, WasiSandbox};
    let ctx = TestContext::new();
    let job = Job::new(
        "leave.py",
        dedent(
            r#"
            import json, sys
            from metaexec import params, result
            seen = [getattr(json, "_left_behind", None), "_left_heap" in sys.modules]
            json._left_behind = params["x"]
            sys.modules["_left_heap"] = [bytearray(b"x" * 1_000_000) for _ in range(3)]
            result({"x": params["x"], "seen": seen})
            "#,
        ),
        ctx.results(),
    );
    let mut options = SandboxOptions::new(metaexec::cache::cache_dir());
    options.many_instances = true;
    let many = WasiSandbox::new(options);
    let scenarios = grid(&["x=1..40:1"]);
    for sandbox in [sandbox(), &many] {
        let options = SweepOptions::new(2, Isolation::Instance);
        let report = runtime().block_on(sweep::run(sandbox, &job, scenarios.clone(), options, |_| {})).unwrap();
        assert_eq!(report.summary.ok, 40, "{:#?}", report.scenarios);
        for scenario in &report.scenarios {
            assert_eq!(scenario.results["result"]["seen"], json!([null, false]), "{}", scenario.id);
        }
    }
}

/// The benchmark's native comparison runs the shipped example with the guest library as a
/// plain module: it must keep up with what the example imports, or the comparison
/// silently stops being made.
#[test]
fn the_native_sweep_comparison_runs_the_shipped_example() {
    let target = sqlite_demo();
    let db = target.url.sqlite_path().unwrap().display().to_string();
    let output = std::process::Command::new("python3")
        .args(["benches/native/sweep.py", &db, "3"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("python3 runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// A sweep keeps each scenario's main result by column when it is a table; whatever the
/// script does with `result` and `emit`, every scenario's results serialize, read and
/// count exactly as the same script's single run gives them.
#[test]
fn a_sweep_keeps_the_results_a_single_run_gives_whatever_the_script_emits() {
    let ctx = TestContext::new();
    let job = Job::new(
        "emits.py",
        dedent(
            r#"
            from metaexec import emit, params, result
            mode = params["mode"]
            rows = [{"property_name": "A", "dscr": 1.5, "n": 1, "note": None},
                    {"property_name": "B", "dscr": float("nan"), "n": 2, "note": "x"}]
            if mode == "table":
                result(rows)
            elif mode == "replaced":
                result(rows)
                result({"total": 3})
            elif mode == "json_then_table":
                emit("before", 1)
                result({"x": 1})
                emit("other", rows)
                result([dict(r, extra=True) for r in rows])
            elif mode == "other_names":
                emit("result", [{"a": i, "property_name": "Z"} for i in range(3)])
            elif mode == "empty":
                result([])
            "#,
        ),
        ctx.results(),
    );
    let modes = "mode=table,replaced,json_then_table,other_names,empty,none,table";
    let scenarios = PlanTexts { zip: &[modes.to_string()], ..Default::default() }.scenarios().unwrap();
    for isolation in [Isolation::Namespace, Isolation::Instance] {
        let report = run_sweep(&job, scenarios.clone(), 2, isolation);
        assert_eq!(report.summary.ok, 7, "{isolation:?}: {:#?}", report.summary);
        for scenario in &report.scenarios {
            let mut single = job.clone();
            single.params = scenario.params.clone();
            let outcome = run_job(&single);
            assert!(outcome.is_ok(), "{}: {outcome:#?}", scenario.id);
            let expected = Value::Object(outcome.results.clone());
            assert_eq!(serde_json::to_value(&scenario.results).unwrap(), expected, "{} {isolation:?}", scenario.id);
            if let Some(main) = outcome.results.get("result") {
                assert_eq!(&scenario.results["result"], main, "{}", scenario.id);
            }
            let rows: Vec<Value> = sweep::summary::rows(scenario)
                .map(|row| row.keys().map(|k| (k.to_owned(), row.get(k).cloned().unwrap())).collect())
                .map(Value::Object)
                .collect();
            let objects = outcome.results.get("result").and_then(Value::as_array).cloned().unwrap_or_default();
            let objects: Vec<Value> = objects.into_iter().filter(Value::is_object).collect();
            assert_eq!(rows, objects, "{}", scenario.id);
        }
        let verdict_rows = report.summary.properties.iter().map(|p| p.scenarios).sum::<usize>();
        // Two tables of two rows with a DSCR each (the NaN is null: no DSCR), one with extras.
        assert_eq!(verdict_rows, 3, "{isolation:?}: {:#?}", report.summary.properties);
        let written = report.scenarios.iter().map(|s| serde_json::to_string(s).unwrap()).collect::<Vec<_>>();
        let read: Vec<metaexec::scenario::ScenarioOutcome> =
            written.iter().map(|text| serde_json::from_str(text).unwrap()).collect();
        assert_eq!(
            read.iter().map(|s| serde_json::to_string(s).unwrap()).collect::<Vec<_>>(),
            written,
            "read back, the outcomes write the same"
        );
    }
}
