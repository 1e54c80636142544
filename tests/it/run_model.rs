//! `metaexec run` through an OpenAI-compatible server (`llm_server`): analyse → generate →
//! validate → execute, the repair loop after a rejected script and after a failed one, the
//! answer cache, and an unreachable endpoint.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::TestContext;
use crate::llm_server::{MockLlm, Reply};
use crate::run::{DOCUMENTS_DSCR, PORTFOLIO_REQUEST, dscr_by_name, record, run};

/// A plan as a small model writes it: fenced, with prose around it and trailing commas.
pub(crate) const PLAN: &str = "Sure! Here is the plan:\n```json\n{\n  \"goal\": \"Review DSCR for every property\",\n  \
                    \"task_kind\": \"portfolio_review\",\n  \"entities\": [],\n  \"steps\": [\"query\", \"compute DSCR\",],\n}\n```\n\
                    Let me know if you need more.";

/// A correct script, as the model's answer (fenced, with prose).
pub(crate) fn answer(script: &str) -> String {
    format!("Here is the script:\n\n```python\n{script}```\n\nIt prints nothing; results go through metaexec.")
}

pub(crate) const GOOD: &str = r#"from metaexec import db, emit, log, result

try:
    rows = db.query(
        "SELECT p.property_name, f.noi, f.annual_debt_service FROM properties p"
        " JOIN financial_metrics f ON f.property_id = p.property_id WHERE f.fiscal_year = ?",
        [2024],
    )
except db.DbError as e:
    raise RuntimeError(f"query failed: {e}") from e
log(f"{len(rows)} properties")
for r in rows:
    r["dscr"] = r["noi"] / r["annual_debt_service"]
result(rows)
emit("portfolio_dscr", sum(r["noi"] for r in rows) / sum(r["annual_debt_service"] for r in rows))
"#;

fn with_model(server: &MockLlm, args: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    all.extend(["--llm-url".into(), server.base_url(), "--model".into(), "test-model".into(), "--json".into()]);
    // The test server does not say its context: this is a roomy local model's. Tests of
    // small contexts have the server report one, which wins when it is smaller.
    all.extend(["--llm-context".into(), "16384".into()]);
    all
}

pub(crate) fn run_model(ctx: &TestContext, server: &MockLlm, args: &[&str]) -> (Option<i32>, Value) {
    let args = with_model(server, args);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run(ctx, &args);
    (output.status.code(), record(&output))
}

/// The last user message of the `n`th chat request.
fn last_user_message(server: &MockLlm, n: usize) -> String {
    let requests = server.requests();
    let messages = requests[n]["messages"].as_array().unwrap();
    messages.iter().rev().find(|m| m["role"] == "user").unwrap()["content"].as_str().unwrap().to_owned()
}

#[test]
fn a_syntax_error_goes_back_to_the_model_and_the_fix_runs() {
    let broken = GOOD.replace("for r in rows:", "for r in rows");
    let server = MockLlm::start(
        &["test-model"],
        vec![Reply::Content(PLAN.into()), Reply::Content(answer(&broken)), Reply::Content(answer(GOOD))],
    );
    let ctx = TestContext::new();
    let (code, record) = run_model(&ctx, &server, &[PORTFOLIO_REQUEST, "--no-cache"]);
    assert_eq!(code, Some(0), "{record:#}");
    assert_eq!(record["planner"], "model");
    assert_eq!(record["task"]["task_kind"], "portfolio_review", "the plan was repaired and read");
    let got: Vec<(String, f64)> =
        dscr_by_name(&record).into_iter().map(|(n, d)| (n, (d * 100.0).round() / 100.0)).collect();
    assert_eq!(got, DOCUMENTS_DSCR.iter().map(|(n, d)| ((*n).to_owned(), *d)).collect::<Vec<_>>());

    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["validation"]["verdict"], "reject");
    assert_eq!(attempts[0]["validation"]["findings"][0]["code"], "MX000");
    assert_eq!(attempts[1]["validation"]["verdict"], "pass");
    assert!(!attempts[1]["script"].as_str().unwrap().contains("It prints nothing"), "prose stripped");

    // The three calls: plan (with the JSON schema), generate (with the schema and API), repair.
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0]["response_format"]["json_schema"]["name"], "task_spec");
    let generate = last_user_message(&server, 1);
    assert!(generate.contains("financial_metrics(") && generate.contains("## metaexec.portfolio"), "{generate}");
    let repair = last_user_message(&server, 2);
    assert!(repair.contains("MX000") && repair.contains("for r in rows"), "{repair}");
    let stages: Vec<&str> =
        record["model_calls"].as_array().unwrap().iter().map(|c| c["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["plan", "generate", "repair"]);
}

#[test]
fn a_failing_script_sends_its_traceback_back() {
    let failing = GOOD.replace("result(rows)", "result(rowz)");
    let server = MockLlm::start(
        &["test-model"],
        vec![Reply::Content(PLAN.into()), Reply::Content(answer(&failing)), Reply::Content(answer(GOOD))],
    );
    let ctx = TestContext::new();
    let (code, record) = run_model(&ctx, &server, &[PORTFOLIO_REQUEST, "--no-cache"]);
    assert_eq!(code, Some(0), "{record:#}");
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["execution_error"]["kind"], "guest_exception");
    let repair = last_user_message(&server, 2);
    assert!(repair.contains("NameError") && repair.contains("rowz") && repair.contains("Traceback"), "{repair}");
    assert_eq!(dscr_by_name(&record).len(), 10);
}

/// A script that refers to `result` but reports nothing when it runs: the validator
/// cannot see that, the run can.
const SILENT: &str = "from metaexec import log, result\nrows = []\nif rows:\n    result(rows)\nlog('done')\n";

#[test]
fn a_script_that_reports_nothing_is_sent_back() {
    let printer = "from metaexec import log\nlog('done')\nprint('DSCR computed')\n";
    let server = MockLlm::start(
        &["test-model"],
        vec![
            Reply::Content(PLAN.into()),
            Reply::Content(answer(printer)),
            Reply::Content(answer(SILENT)),
            Reply::Content(answer(GOOD)),
        ],
    );
    let ctx = TestContext::new();
    let (code, record) = run_model(&ctx, &server, &[PORTFOLIO_REQUEST, "--no-cache"]);
    assert_eq!(code, Some(0), "{record:#}");
    // Caught before running: nothing in the script can report a result.
    assert!(last_user_message(&server, 2).contains("MX015"), "{}", last_user_message(&server, 2));
    // Caught after running: it could have, and did not.
    assert!(last_user_message(&server, 3).contains("reported no results"), "{}", last_user_message(&server, 3));
    let statuses: Vec<_> = record["attempts"].as_array().unwrap().iter().map(|a| a["status"].clone()).collect();
    assert_eq!(statuses, ["rejected", "no_results", "ok"]);
    assert_eq!(dscr_by_name(&record).len(), 10);
}

#[test]
fn a_run_whose_last_script_reports_nothing_is_no_results_not_ok() {
    let server = MockLlm::start(
        &["test-model"],
        vec![Reply::Content(PLAN.into()), Reply::Content(answer(SILENT)), Reply::Content(answer(SILENT))],
    );
    let ctx = TestContext::new();
    let (code, record) = run_model(&ctx, &server, &[PORTFOLIO_REQUEST, "--no-cache", "--max-repairs", "1"]);
    assert_eq!(code, Some(1), "{record:#}");
    assert_eq!(record["outcome"]["status"], "error");
    assert_eq!(record["outcome"]["error"]["kind"], "no_results");
    assert_eq!(record["attempts"][1]["execution_error"]["kind"], "no_results");
}

#[test]
fn a_model_error_mid_run_keeps_the_plan_and_names_the_stage() {
    let server = MockLlm::start(
        &["test-model"],
        vec![Reply::Content(PLAN.into()), Reply::Error { status: 400, message: "bad request".into() }],
    );
    let ctx = TestContext::new();
    let (code, record) = run_model(&ctx, &server, &[PORTFOLIO_REQUEST, "--no-cache"]);
    assert_eq!(code, Some(2), "{record:#}");
    assert_eq!(record["task"]["goal"], "Review DSCR for every property", "the plan is kept: {record:#}");
    assert_eq!(record["failed_stage"], "generate");
    assert!(record["error"]["message"].as_str().unwrap().contains("generate stage"), "{record:#}");
    let task = ctx.path().join(record["run_dir"].as_str().unwrap()).join("task.json");
    assert!(std::fs::read_to_string(task).unwrap().contains("Review DSCR"), "task.json is kept");
}

#[test]
fn a_plan_cut_at_its_limit_twice_is_an_honest_failure() {
    let cut = "{\"goal\": \"Review DSCR for every property, property by property, and then again".to_owned();
    let server = MockLlm::start(&["test-model"], vec![Reply::Length(cut.clone()), Reply::Length(cut)]);
    let ctx = TestContext::new();
    let (code, record) = run_model(&ctx, &server, &[PORTFOLIO_REQUEST, "--no-cache"]);
    assert_eq!(code, Some(1), "{record:#}");
    assert_eq!(record["error"]["kind"], "llm_answer", "{record:#}");
    assert!(last_user_message(&server, 1).contains("cut off at the token limit"), "a tighter instruction");
    assert!(record["task"].is_null(), "no plan was used");
    assert_eq!(record["model_calls"][0]["finish_reason"], "length");
}

#[test]
fn a_small_context_gets_the_compact_reference_and_too_small_a_one_fails_before_calling() {
    // 4,096 tokens: the plan fits; the generate prompt fits only with the compact reference.
    let server = MockLlm::start_with_context(
        &["test-model"],
        vec![Reply::Content(PLAN.into()), Reply::Content(answer(GOOD))],
        Some(4096),
    );
    let ctx = TestContext::new();
    let (code, record) = run_model(&ctx, &server, &[PORTFOLIO_REQUEST, "--no-cache"]);
    assert_eq!(code, Some(0), "{record:#}");
    let generate = &server.requests()[1];
    let prompt = generate["messages"][1]["content"].as_str().unwrap();
    assert!(prompt.contains("# metaexec API (compact)"), "{prompt}");
    assert!(record["notes"].to_string().contains("compact one was sent"), "{record:#}");
    for call in record["model_calls"].as_array().unwrap() {
        let fit = &call["fit"];
        let used = call["usage"]["prompt_tokens"].as_u64().unwrap() + fit["max_tokens"].as_u64().unwrap();
        assert!(used <= 4096, "prompt and answer fit the context: {call:#}");
    }

    // 1,024 tokens hold not even the plan prompt: nothing is sent.
    let tiny = MockLlm::start_with_context(&["test-model"], vec![Reply::Content(PLAN.into())], Some(1024));
    let (code, record) = run_model(&ctx, &tiny, &[PORTFOLIO_REQUEST, "--no-cache"]);
    assert_eq!(code, Some(2), "{record:#}");
    assert_eq!(record["error"]["kind"], "llm_context");
    let message = record["error"]["message"].as_str().unwrap();
    assert!(message.contains("holds 1024") && message.contains("nothing was sent"), "{message}");
    assert!(record["error"]["hint"].as_str().unwrap().contains("-c N"), "{record:#}");
    assert!(tiny.requests().is_empty());
}

#[test]
fn repairs_run_out_and_the_last_failure_is_reported() {
    let failing = answer(&GOOD.replace("result(rows)", "result(rowz)"));
    let server = MockLlm::start(
        &["test-model"],
        vec![Reply::Content(PLAN.into()), Reply::Content(failing.clone()), Reply::Content(failing)],
    );
    let ctx = TestContext::new();
    let (code, record) = run_model(&ctx, &server, &[PORTFOLIO_REQUEST, "--no-cache", "--max-repairs", "1"]);
    assert_eq!(code, Some(1), "a failed script exits 1: {record:#}");
    assert_eq!(record["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(record["outcome"]["error"]["kind"], "guest_exception");
    assert_eq!(server.remaining(), 0);
}

#[test]
fn a_second_run_of_the_same_request_costs_no_model_time() {
    let request = format!("{PORTFOLIO_REQUEST} (cache test {})", std::process::id());
    let server = MockLlm::start(&["test-model"], vec![Reply::Content(PLAN.into()), Reply::Content(answer(GOOD))]);
    let ctx = TestContext::new();
    let (code, first) = run_model(&ctx, &server, &[&request]);
    assert_eq!(code, Some(0), "{first:#}");
    assert_eq!(server.requests().len(), 2);
    let (code, second) = run_model(&ctx, &server, &[&request]);
    assert_eq!(code, Some(0), "{second:#}");
    assert_eq!(server.requests().len(), 2, "no new request reached the server");
    assert!(second["model_calls"].as_array().unwrap().iter().all(|c| c["cached"] == true), "{second:#}");
    assert_eq!(first["outcome"]["results"], second["outcome"]["results"]);

    // --no-cache asks again.
    let server_again = MockLlm::start(&["test-model"], vec![Reply::Content(PLAN.into()), Reply::Content(answer(GOOD))]);
    let (code, _) = run_model(&ctx, &server_again, &[&request, "--no-cache"]);
    assert_eq!((code, server_again.requests().len()), (Some(0), 2));
}

#[test]
fn an_unreachable_endpoint_is_llm_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let ctx = TestContext::new();
    let started = Instant::now();
    let url = format!("http://127.0.0.1:{port}/v1");
    let output = run(&ctx, &[PORTFOLIO_REQUEST, "--llm-url", &url, "--model", "m", "--json", "--no-cache"]);
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!(output.status.code(), Some(2));
    let record = record(&output);
    assert_eq!(record["error"]["kind"], "llm_unavailable", "{record:#}");
    assert!(record["error"]["message"].as_str().unwrap().contains(&url), "{record:#}");
    assert!(record["error"]["hint"].as_str().unwrap().contains("offline planner"), "{record:#}");
}

/// A plan for a grid of scenarios whose step is 0: the sweep cannot be made.
const BAD_GRID_PLAN: &str = r#"{"goal": "Stress NOI and rates", "task_kind": "stress_test", "steps": ["query"],
  "sweep": {"grid": ["noi_change=-0.2..0:0", "rate_change=0,0.01"]}}"#;
const GRID_PLAN: &str = r#"{"goal": "Stress NOI and rates", "task_kind": "stress_test", "steps": ["query"],
  "sweep": {"grid": ["noi_change=-0.2..0:0.1", "rate_change=0,0.01"]}}"#;

/// A script for one scenario, as the generate prompt asks for one.
const ONE_SCENARIO: &str = r#"from metaexec import db, finance, params, result

noi_change = params.get("noi_change", 0.0)
rate_change = params.get("rate_change", 0.0)
rows = db.query(
    "SELECT p.property_name, f.noi, l.principal, l.interest_rate, l.amortization_years FROM properties p"
    " JOIN financial_metrics f ON f.property_id = p.property_id JOIN loans l ON l.property_id = p.property_id"
    " WHERE f.fiscal_year = ? ORDER BY p.property_id",
    [2024],
)
out = []
for r in rows:
    noi = r["noi"] * (1 + noi_change)
    debt = finance.annual_debt_service(r["principal"], r["interest_rate"] + rate_change, r["amortization_years"])
    out.append({"property_name": r["property_name"], "noi": noi, "annual_debt_service": debt, "dscr": noi / debt})
result(out)
"#;

#[test]
fn a_models_scenarios_run_as_a_sweep_of_its_one_scenario_script() {
    let server = MockLlm::start(
        &["test-model"],
        vec![
            Reply::Content(BAD_GRID_PLAN.into()),
            Reply::Content(GRID_PLAN.into()),
            Reply::Content(answer(ONE_SCENARIO)),
        ],
    );
    let ctx = TestContext::new();
    let (code, record) = run_model(&ctx, &server, &["stress NOI by 0-20% and rates by up to 1 point", "--no-cache"]);
    assert_eq!(code, Some(0), "{record:#}");
    // The plan whose grid could not be made went back with the grid's own error.
    let retry = last_user_message(&server, 1);
    assert!(retry.contains("the request's grid `noi_change=-0.2..0:0`: the step must be positive"), "{retry}");
    assert!(!retry.contains("--grid"), "no flag the user never typed: {retry}");
    let generate = last_user_message(&server, 2);
    assert!(
        generate.contains("a grid: noi_change=-0.2..0:0.1 x rate_change=0,0.01") && generate.contains("ONE scenario"),
        "{generate}"
    );

    let sweep = &record["sweep"];
    let loans = crate::sweep::demo_loans(&crate::db_proxy::sqlite_demo());
    // The base scenario ran first, alone, with every swept param at 0: the unshocked table.
    let base = record["outcome"]["results"]["result"].as_array().unwrap();
    for (row, (name, noi, principal, rate, years)) in base.iter().zip(&loans) {
        let want = noi / crate::sweep::annual_debt_service(*principal, *rate, *years);
        assert!((row["dscr"].as_f64().unwrap() - want).abs() < 1e-9 * want, "{name}: {row} vs {want}");
    }
    assert_eq!(sweep["summary"]["total"], 6, "3 NOI points x 2 rates");
    // Each scenario's DSCR against the annuity formula on the host.
    let matrix = &sweep["matrix"];
    for (column, id) in matrix["scenarios"].as_array().unwrap().iter().enumerate() {
        let line = &sweep["scenarios"][column];
        assert_eq!(&line["id"], id);
        let (noi_change, rate_change) =
            (line["params"]["noi_change"].as_f64().unwrap(), line["params"]["rate_change"].as_f64().unwrap());
        for (row, (name, noi, principal, rate, years)) in matrix["properties"].as_array().unwrap().iter().zip(&loans) {
            assert_eq!(row["property_name"].as_str(), Some(name.as_str()));
            let debt = crate::sweep::annual_debt_service(*principal, rate + rate_change, *years);
            let want = noi * (1.0 + noi_change) / debt;
            let got = row["dscr"][column].as_f64().unwrap();
            assert!((got - want).abs() < 1e-9 * want, "{id} {name}: {got} vs {want}");
        }
    }
}
