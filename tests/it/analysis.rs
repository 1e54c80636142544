//! A sweep's analysis credits each change to the one parameter that made it: break-even
//! points and the tornado are read along slices where every other parameter really is at
//! its base, with the missing points run; a parameter the script never reads is refused.
//! Expected values come from the demo database, read here independently of the proxy,
//! and the closed forms of DSCR.

use std::path::Path;

use serde_json::Value;

use crate::common::{TestContext, metaexec_command};
use crate::db_proxy::{Target, sqlite_demo};
use crate::sweep::{annual_debt_service, demo_loans};

/// `metaexec sweep examples/dscr_stress.py ARGS --json` on `target`: exit code, the
/// report (when there is one) and stderr.
fn sweep_json(ctx: &TestContext, target: &Target, args: &[&str]) -> (Option<i32>, Value, String) {
    let db = target.url.sqlite_path().unwrap().display().to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/dscr_stress.py");
    let output = metaexec_command(ctx)
        .args(["sweep", &script.display().to_string(), "--db", &db, "--json"])
        .args(args)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (output.status.code(), report, String::from_utf8_lossy(&output.stderr).into_owned())
}

/// The report of a sweep over the named scenarios `yaml`, which must succeed.
fn sweep_named(ctx: &TestContext, target: &Target, yaml: &str) -> Value {
    let path = ctx.path().join("scenarios.yaml");
    std::fs::write(&path, yaml).unwrap();
    let (code, report, stderr) = sweep_json(ctx, target, &["--scenarios", &path.display().to_string()]);
    assert_eq!(code, Some(0), "{stderr}");
    report
}

/// The portfolio's DSCR with NOI moved by `noi_change` and rates by `rate_change`: total
/// NOI over total debt service.
fn portfolio_dscr(target: &Target, noi_change: f64, rate_change: f64) -> f64 {
    let loans = demo_loans(target);
    let noi: f64 = loans.iter().map(|l| l.1 * (1.0 + noi_change)).sum();
    let debt: f64 = loans.iter().map(|l| annual_debt_service(l.2, l.3 + rate_change, l.4)).sum();
    noi / debt
}

fn break_even<'a>(report: &'a Value, param: &str, name: &str, threshold: f64) -> &'a Value {
    report["summary"]["break_even"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["param"] == param && b["property_name"] == name && b["threshold"].as_f64() == Some(threshold))
        .unwrap_or_else(|| panic!("no break-even for {param} {name} {threshold}: {report:#}"))
}

fn sensitivity<'a>(report: &'a Value, param: &str) -> &'a Value {
    let all = report["summary"]["sensitivity"].as_array().unwrap();
    all.iter().find(|t| t["param"] == param).unwrap_or_else(|| panic!("no sensitivity for {param}"))
}

fn close(got: &Value, expected: f64, what: &str) {
    let got = got.as_f64().unwrap_or_else(|| panic!("{what}: not a number: {got}"));
    assert!((got - expected).abs() < 1e-9, "{what}: {got} vs {expected}");
}

/// Named scenarios where one moves NOI alone and one moves NOI and the rate together:
/// the NOI break-even runs along the rate at its base (the script's own 0.0), never
/// through the combined scenario, and matches T / DSCR - 1 for every property.
#[test]
fn named_scenarios_that_move_two_parameters_break_even_along_one() {
    let target = sqlite_demo();
    let ctx = TestContext::new();
    let report =
        sweep_named(&ctx, &target, "mild: {noi_change: -0.1}\nsevere: {noi_change: -0.4, rate_change: 0.02}\n");
    assert_eq!(report["scenarios"].as_array().unwrap().len(), 2, "the extra points are not the user's scenarios");
    assert!(report["metrics"]["bisection_runs"].as_u64().unwrap() > 0);
    let mut crossings = 0;
    for (name, noi, principal, rate, years) in demo_loans(&target) {
        let base = noi / annual_debt_service(principal, rate, years);
        for threshold in [1.0, 1.25] {
            let expected = threshold / base - 1.0;
            let found = break_even(&report, "noi_change", &name, threshold);
            if (-0.4..=-0.1).contains(&expected) {
                let value = found["value"].as_f64().unwrap_or_else(|| panic!("{name} {threshold}: {found}"));
                assert!((value - expected).abs() < 0.0006, "{name} {threshold}: {value} vs {expected}");
                crossings += 1;
            } else {
                assert_ne!(found["status"], "crosses", "{name} {threshold}: {expected} is out of range: {found}");
            }
        }
    }
    assert!(crossings >= 3, "the demo has crossings in this range ({crossings})");
    // The tornado: NOI from -0.4 to -0.1 with the rate at 0; the rate from 0 to 0.02
    // with NOI at its base, -0.1.
    let noi = sensitivity(&report, "noi_change");
    close(&noi["dscr_at_low"], portfolio_dscr(&target, -0.4, 0.0), "NOI low");
    close(&noi["dscr_at_high"], portfolio_dscr(&target, -0.1, 0.0), "NOI high");
    let rate = sensitivity(&report, "rate_change");
    close(&rate["dscr_at_low"], portfolio_dscr(&target, -0.1, 0.0), "rate low");
    close(&rate["dscr_at_high"], portfolio_dscr(&target, -0.1, 0.02), "rate high");
    close(&report["summary"]["base_dscr"], portfolio_dscr(&target, -0.1, 0.0), "base");
}

/// The scenarios, which once gave NOI break-evens through the rate shock:
/// Orlando Fashion Square needs NOI down 35.6 % to reach 1.25x, outside the -30..-20 %
/// the scenarios span, so no point inside it is reported.
#[test]
fn a_break_even_outside_the_named_range_is_reported_as_outside() {
    let target = sqlite_demo();
    let ctx = TestContext::new();
    let report =
        sweep_named(&ctx, &target, "stress: {noi_change: -0.2}\nsevere: {noi_change: -0.3, rate_change: 0.02}\n");
    let (name, noi, principal, rate, years) = demo_loans(&target).remove(0);
    assert_eq!(name, "Orlando Fashion Square");
    let expected = 1.25 / (noi / annual_debt_service(principal, rate, years)) - 1.0;
    assert!(expected < -0.3, "{expected}");
    let found = break_even(&report, "noi_change", &name, 1.25);
    assert_eq!(found["value"], Value::Null, "{found}");
    assert_eq!(found["status"], "always_above", "{found}");
}

/// Each end of a tornado bar carries its own DSCR and the parameter value that gives it,
/// and the base line the DSCR at the base (rates rising: the low DSCR is at the high rate).
#[test]
fn the_tornado_labels_each_end_with_its_own_values() {
    let target = sqlite_demo();
    let ctx = TestContext::new();
    let (code, report, stderr) = sweep_json(&ctx, &target, &["--grid", "rate_change=0..0.02:0.01"]);
    assert_eq!(code, Some(0), "{stderr}");
    let rate = sensitivity(&report, "rate_change");
    let (at_base, at_high) = (portfolio_dscr(&target, 0.0, 0.0), portfolio_dscr(&target, 0.0, 0.02));
    close(&rate["dscr_at_low"], at_base, "rate 0");
    close(&rate["dscr_at_high"], at_high, "rate 0.02");
    assert!(at_high < at_base);
    let html = std::fs::read_to_string(ctx.path().join("results/report.html")).unwrap();
    for label in [format!("{at_high:.2} at 0.02"), format!("{at_base:.2} at 0<"), format!("base {at_base:.2}")] {
        assert!(html.contains(&label), "`{label}` not in the tornado");
    }
}

/// A misspelt sweep parameter would give identical scenarios: the sweep is refused, with
/// the names the script does read and the closest one.
#[test]
fn a_sweep_over_a_parameter_the_script_never_reads_is_refused() {
    let target = sqlite_demo();
    let ctx = TestContext::new();
    let (code, outcome, stderr) = sweep_json(&ctx, &target, &["--grid", "noi_chnage=-0.3..0.1:0.1"]);
    assert_eq!(code, Some(2), "{stderr}");
    let error = &outcome["error"];
    assert_eq!(error["kind"], "usage", "{outcome}");
    let text = format!("{} {}", error["message"], error["hint"]);
    for part in ["never reads the parameter `noi_chnage`", "`noi_change`, `rate_change`", "did you mean `noi_change`?"]
    {
        assert!(text.contains(part), "`{part}` not in {text}");
    }
    assert!(!ctx.path().join("results/results.json").exists(), "no answer to a different question is written");
}

/// `exec` reports what the script read, with its fallbacks, and warns about a parameter
/// it was given and never read.
#[test]
fn exec_reports_the_parameters_read_and_warns_about_the_rest() {
    let target = sqlite_demo();
    let ctx = TestContext::new();
    let db = target.url.sqlite_path().unwrap().display().to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/dscr_stress.py");
    let output = metaexec_command(&ctx)
        .args(["exec", &script.display().to_string(), "--db", &db, "--json", "-p", "noi_chnage=-0.2"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let outcome: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(outcome["params_read"]["names"], serde_json::json!({"noi_change": 0.0, "rate_change": 0.0}));
    assert_eq!(outcome["params_read"]["listed"], false);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("never read the parameter(s) `noi_chnage`"), "{stderr}");
}
