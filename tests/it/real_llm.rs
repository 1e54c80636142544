//! `metaexec run` against real model servers: llama.cpp's `llama-server` and
//! llama-cpp-python's OpenAI-compatible server, each running SmolLM2-135M-Instruct with a
//! 4,096-token context on a loopback port (see `llama`). A model this small rarely writes a
//! correct script; what is checked is metaexec's side: the plan comes back as a valid
//! `TaskSpec` in the JSON mode the server takes, every request fits the context by the
//! server's own count, every call's tokens are on record, a run never reports success
//! without results nor a working server as unavailable, and a request too long for the
//! context fails before anything is sent.

use serde_json::Value;

use crate::common::TestContext;
use crate::llama::{self, RealServer, Server};
use crate::run::{PORTFOLIO_REQUEST, record, run};

/// The context both servers run with: what many users' local setups have.
const CONTEXT: u32 = 4096;

fn run_real(ctx: &TestContext, server: &RealServer, args: &[&str]) -> (Option<i32>, Value) {
    let mut all: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    all.extend(["--llm-url".into(), server.base_url(), "--model".into(), server.model().to_owned(), "--json".into()]);
    // llama-cpp-python does not report its context; llama-server does, and its own figure
    // wins when smaller.
    all.extend(["--llm-context".into(), CONTEXT.to_string(), "--no-cache".into(), "--yes".into()]);
    let args: Vec<&str> = all.iter().map(String::as_str).collect();
    let output = run(ctx, &args);
    (output.status.code(), record(&output))
}

/// Everything the issue asks of one server.
fn check(kind: Server, json_mode: &str) {
    let Some(server) = llama::start(kind, CONTEXT) else { return };
    let ctx = TestContext::new();
    // One repair round and answers of at most 1,024 tokens: a 135M model on two busy cores
    // writes a few tokens a second. Greedy sampling, so a run is the same every time.
    let args = [PORTFOLIO_REQUEST, "--max-repairs", "1", "--max-tokens", "1024", "--temperature", "0"];
    let (code, record) = run_real(&ctx, &server, &args);
    let log = || server.log();

    // The plan: a valid TaskSpec, asked for in the form this server takes.
    let calls = record["model_calls"].as_array().expect("model calls are recorded");
    assert!(!calls.is_empty(), "{record:#}\n{}", log());
    assert_eq!(calls[0]["stage"], "plan");
    assert_eq!(calls[0]["json_mode"], json_mode, "{:#}", calls[0]);
    assert!(record["task"]["goal"].is_string(), "the plan was read as a TaskSpec: {record:#}");

    // Honest outcome: results, or an error kind that says what went wrong; the server is
    // up, so never `llm_unavailable`.
    let failure = record["error"]["kind"].as_str().or_else(|| record["outcome"]["error"]["kind"].as_str());
    assert_ne!(failure, Some("llm_unavailable"), "{record:#}\n{}", log());
    if code == Some(0) {
        let results = record["outcome"]["results"].as_object().expect("an ok run has results");
        assert!(!results.is_empty(), "ok with nothing: {record:#}");
    } else {
        assert!(failure.is_some(), "a failed run names its error kind: {record:#}");
    }

    // Every call fits the context by the server's own count, and its tokens are on record.
    for call in calls {
        let prompt = call["usage"]["prompt_tokens"].as_u64().unwrap();
        let answer = call["usage"]["completion_tokens"].as_u64().unwrap();
        let max_tokens = call["fit"]["max_tokens"].as_u64().unwrap();
        assert!(prompt > 0 && answer > 0, "tokens recorded: {call:#}");
        // llama-cpp-python's streams carry no usage: its tokenizer counts instead.
        assert_ne!(call["usage_source"], "estimated", "the server's own count: {call:#}");
        assert!(prompt + max_tokens <= u64::from(CONTEXT), "prompt {prompt} + answer {max_tokens} over the context");
    }

    // A request that cannot fit fails before calling.
    let huge = format!("{PORTFOLIO_REQUEST} {}", "Also consider this note. ".repeat(1200));
    let (code, record) = run_real(&ctx, &server, &[&huge]);
    assert_eq!(code, Some(2), "{record:#}");
    assert_eq!(record["error"]["kind"], "llm_context", "{record:#}");
    assert!(record["model_calls"].as_array().unwrap().is_empty(), "nothing was sent: {record:#}");
}

#[test]
fn llama_server_plans_fits_and_reports_honestly() {
    check(Server::LlamaServer, "json_schema");
}

#[test]
fn llama_cpp_python_plans_fits_and_reports_honestly() {
    // It refuses `json_schema` (with a 500) and takes `json_object` with the schema.
    check(Server::LlamaCppPython, "json_object");
}
