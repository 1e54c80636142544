//! `metaexec run` through an OpenAI-compatible server (`llm_server`): analyse → generate →
//! validate → execute, the repair loop after a rejected script and after a failed one, the
//! answer cache, and an unreachable endpoint.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::TestContext;
use crate::llm_server::{MockLlm, Reply};
use crate::run::{DOCUMENTS_DSCR, PORTFOLIO_REQUEST, dscr_by_name, record, run};

/// A plan as a small model writes it: fenced, with prose around it and trailing commas.
const PLAN: &str = "Sure! Here is the plan:\n```json\n{\n  \"goal\": \"Review DSCR for every property\",\n  \
                    \"task_kind\": \"portfolio_review\",\n  \"entities\": [],\n  \"steps\": [\"query\", \"compute DSCR\",],\n}\n```\n\
                    Let me know if you need more.";

/// A correct script, as the model's answer (fenced, with prose).
fn answer(script: &str) -> String {
    format!("Here is the script:\n\n```python\n{script}```\n\nIt prints nothing; results go through metaexec.")
}

const GOOD: &str = r#"from metaexec import db, emit, log, result

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
    all
}

fn run_model(ctx: &TestContext, server: &MockLlm, args: &[&str]) -> (Option<i32>, Value) {
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

#[test]
fn a_script_that_reports_nothing_is_sent_back() {
    let silent = "from metaexec import log\nlog('done')\nprint('DSCR computed')\n";
    let server = MockLlm::start(
        &["test-model"],
        vec![Reply::Content(PLAN.into()), Reply::Content(answer(silent)), Reply::Content(answer(GOOD))],
    );
    let ctx = TestContext::new();
    let (code, record) = run_model(&ctx, &server, &[PORTFOLIO_REQUEST, "--no-cache"]);
    assert_eq!(code, Some(0), "{record:#}");
    assert!(last_user_message(&server, 2).contains("reported no results"), "{}", last_user_message(&server, 2));
    assert_eq!(dscr_by_name(&record).len(), 10);
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
