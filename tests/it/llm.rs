//! The LLM client against a real HTTP server speaking the OpenAI wire format
//! (`llm_server`): model checks, plain and streamed answers, retries on 5xx and 429 with
//! Retry-After, timeouts, malformed bodies, servers without JSON mode, unreachable
//! endpoints, and the API key.

use std::time::{Duration, Instant};

use metaexec::llm::client::ChatRequest;
use metaexec::llm::server::{JsonMode, ServerMemory};
use metaexec::llm::{LlmClient, LlmConfig, LlmError, Message};
use serde_json::json;

use crate::llm_server::{MockLlm, Reply};

fn config(server: &MockLlm) -> LlmConfig {
    let mut config = LlmConfig::new(server.base_url());
    config.model = Some("test-model".into());
    config.stream = false;
    config.request_timeout = Duration::from_secs(10);
    config
}

fn chat(config: LlmConfig, request: &ChatRequest) -> Result<metaexec::llm::Completion, LlmError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async { LlmClient::new(config)?.chat(request, &|_| {}).await })
}

fn hello() -> ChatRequest {
    ChatRequest::new(vec![Message::system("be brief"), Message::user("hello")])
}

#[test]
fn plain_and_streamed_answers_read_the_same() {
    let text = "```python\nprint('héllo, wörld')  # long enough to span several chunks\n```";
    let server = MockLlm::start(&["test-model"], vec![Reply::Content(text.into()), Reply::Content(text.into())]);
    let plain = chat(config(&server), &hello()).unwrap();
    let mut streaming = config(&server);
    streaming.stream = true;
    let streamed = chat(streaming, &hello()).unwrap();
    assert_eq!(plain.content, text);
    assert_eq!(streamed.content, text);
    assert_eq!((plain.finish_reason.as_deref(), streamed.finish_reason.as_deref()), (Some("stop"), Some("stop")));
    assert!(plain.usage.completion_tokens > 0, "{plain:?}");
    let requests = server.requests();
    assert_eq!((requests[0]["stream"].as_bool(), requests[1]["stream"].as_bool()), (Some(false), Some(true)));
    assert_eq!(requests[0]["model"], "test-model");
    assert_eq!(requests[0]["messages"][1], json!({"role": "user", "content": "hello"}));
}

#[test]
fn the_model_check_names_what_the_server_has() {
    let server = MockLlm::start(&["qwen2.5-7b", "llama-3.1-8b"], vec![]);
    let mut wrong = config(&server);
    wrong.model = Some("gpt-9".into());
    let error = chat(wrong, &hello()).unwrap_err();
    assert!(matches!(error, LlmError::ModelNotFound { .. }), "{error:?}");
    assert!(error.to_string().contains("qwen2.5-7b, llama-3.1-8b"), "{error}");
    assert!(error.hint().unwrap().contains("load the model"), "{error:?}");
    assert!(server.requests().is_empty(), "no chat request after a failed check");

    // Without a configured model the server's first is used.
    let server = MockLlm::start(&["qwen2.5-7b"], vec![Reply::Content("ok".into())]);
    let mut any = config(&server);
    any.model = None;
    assert_eq!(chat(any, &hello()).unwrap().model, "qwen2.5-7b");
}

#[test]
fn server_errors_and_rate_limits_are_retried_with_backoff() {
    let server = MockLlm::start(
        &["test-model"],
        vec![
            Reply::Error { status: 503, message: "loading model".into() },
            Reply::RateLimited { retry_after_secs: 1 },
            Reply::Content("finally".into()),
        ],
    );
    let started = Instant::now();
    let completion = chat(config(&server), &hello()).unwrap();
    assert_eq!((completion.content.as_str(), completion.attempts), ("finally", 3));
    // 0.5 s backoff after the 503, then the 1 s the server asked for.
    assert!(started.elapsed() >= Duration::from_millis(1400), "{:?}", started.elapsed());
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn client_errors_are_not_retried_and_retries_run_out() {
    let server = MockLlm::start(
        &["test-model"],
        vec![Reply::Error { status: 400, message: "unknown parameter: top_k".into() }, Reply::Content("never".into())],
    );
    let error = chat(config(&server), &hello()).unwrap_err();
    assert_eq!(error, LlmError::Http { status: 400, message: "unknown parameter: top_k".into() });
    assert_eq!(server.remaining(), 1);

    let server =
        MockLlm::start(&["test-model"], (0..3).map(|_| Reply::Error { status: 500, message: "boom".into() }).collect());
    let mut config = config(&server);
    config.retries = 2;
    let error = chat(config, &hello()).unwrap_err();
    assert!(matches!(error, LlmError::Http { status: 500, .. }), "{error:?}");
    assert_eq!(server.requests().len(), 3, "one attempt and two retries");
}

#[test]
fn a_slow_answer_stops_at_the_timeout() {
    let server = MockLlm::start(
        &["test-model"],
        vec![Reply::Slow { delay: Duration::from_secs(30), then: Box::new(Reply::Content("late".into())) }],
    );
    let mut config = config(&server);
    config.request_timeout = Duration::from_millis(700);
    let started = Instant::now();
    let error = chat(config, &hello()).unwrap_err();
    assert!(matches!(error, LlmError::Timeout { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "not retried: {:?}", started.elapsed());
    assert!(error.hint().unwrap().contains("--llm-timeout"), "{error:?}");
}

#[test]
fn a_malformed_body_is_a_protocol_error() {
    let server = MockLlm::start(&["test-model"], vec![Reply::Malformed]);
    let error = chat(config(&server), &hello()).unwrap_err();
    assert!(matches!(error, LlmError::Protocol(ref m) if m.contains("not a chat completion")), "{error:?}");
}

fn plan_request() -> ChatRequest {
    ChatRequest {
        messages: vec![Message::user("plan")],
        schema: Some(("task_spec".into(), json!({"type": "object"}))),
        budget: metaexec::llm::fit::AnswerBudget::PLAN,
    }
}

#[test]
fn servers_without_json_mode_get_the_request_again_without_it() {
    let server = MockLlm::start(&["test-model"], vec![Reply::NoJsonMode("{\"goal\": \"x\"}".into())]);
    let completion = chat(config(&server), &plan_request()).unwrap();
    assert_eq!(completion.content, "{\"goal\": \"x\"}");
    assert_eq!(completion.json_mode, Some(JsonMode::Text));
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "json_schema, then json_object, then plain text");
    assert_eq!(requests[0]["response_format"]["type"], "json_schema");
    assert_eq!(requests[0]["response_format"]["json_schema"]["name"], "task_spec");
    assert_eq!(requests[1]["response_format"]["type"], "json_object");
    assert!(requests[2].get("response_format").is_none(), "{}", requests[2]);
}

#[test]
fn a_500_refusing_json_schema_steps_down_to_json_object_and_is_remembered() {
    // llama-cpp-python's server answers a json_schema response_format with a 500.
    let cache = tempfile::tempdir().unwrap();
    let server = MockLlm::start(
        &["test-model"],
        vec![Reply::NoJsonSchema("{\"goal\": \"a\"}".into()), Reply::NoJsonSchema("{\"goal\": \"b\"}".into())],
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ask = || {
        let client = LlmClient::new(config(&server)).unwrap().with_memory(ServerMemory::new(cache.path()));
        runtime.block_on(client.chat(&plan_request(), &|_| {}))
    };
    let first = ask().unwrap();
    assert_eq!((first.content.as_str(), first.json_mode), ("{\"goal\": \"a\"}", Some(JsonMode::JsonObject)));
    assert_eq!(first.attempts, 1, "a refusal is not a failed attempt");
    // A new client (the next run) asks in the form the server took, at once.
    let second = ask().unwrap();
    assert_eq!(second.json_mode, Some(JsonMode::JsonObject));
    let requests = server.requests();
    let forms: Vec<_> = requests.iter().map(|r| r["response_format"]["type"].as_str().unwrap_or("none")).collect();
    assert_eq!(forms, ["json_schema", "json_object", "json_object"]);
    assert_eq!(requests[1]["response_format"]["schema"], json!({"type": "object"}));
}

#[test]
fn a_stream_that_ends_early_is_asked_once_more_then_fails() {
    let streaming = |server: &MockLlm| {
        let mut config = config(server);
        config.stream = true;
        config
    };
    let server = MockLlm::start(&["test-model"], vec![Reply::Cut("print(".into()), Reply::Content("print(1)".into())]);
    let completion = chat(streaming(&server), &hello()).unwrap();
    assert_eq!((completion.content.as_str(), completion.attempts), ("print(1)", 2));

    // An empty stream is what llama-cpp-python sends for a prompt longer than its context.
    let server = MockLlm::start(&["test-model"], vec![Reply::Cut(String::new()), Reply::Cut("x = ".into())]);
    let error = chat(streaming(&server), &hello()).unwrap_err();
    assert!(matches!(error, LlmError::Incomplete { .. }), "{error:?}");
    assert!(error.to_string().contains("no finish_reason and no [DONE]"), "{error}");
    assert!(error.hint().unwrap().contains("--llm-context"), "{error:?}");
    assert_eq!(server.requests().len(), 2, "retried once, not more");

    // A complete but empty answer is not an answer either.
    let server = MockLlm::start(&["test-model"], vec![Reply::Content(String::new()), Reply::Content(String::new())]);
    let error = chat(config(&server), &hello()).unwrap_err();
    assert!(error.to_string().contains("the answer is empty"), "{error}");
}

#[test]
fn streamed_answers_ask_for_and_record_usage() {
    let server = MockLlm::start(&["test-model"], vec![Reply::Content("print('a fairly long answer')".into())]);
    let mut streaming = config(&server);
    streaming.stream = true;
    let completion = chat(streaming, &hello()).unwrap();
    assert_eq!(server.requests()[0]["stream_options"], json!({"include_usage": true}));
    assert!(completion.usage.prompt_tokens > 0 && completion.usage.completion_tokens > 0, "{completion:?}");
    assert_eq!(completion.usage_source, metaexec::llm::wire::UsageSource::Reported);
}

#[test]
fn a_steady_trickle_is_waited_for_and_a_stall_is_not() {
    let text = "x".repeat(16 * 8);
    let server = MockLlm::start(
        &["test-model"],
        vec![
            Reply::Trickle { text: text.clone(), pause: Duration::from_millis(150) },
            Reply::Trickle { text, pause: Duration::from_millis(1500) },
        ],
    );
    let mut streaming = config(&server);
    streaming.stream = true;
    streaming.idle_timeout = Duration::from_millis(700);
    // ~3 s in all, over the idle timeout many times, but never silent for that long.
    let steady = chat(streaming.clone(), &hello()).unwrap();
    assert_eq!(steady.content.len(), 128);
    let started = Instant::now();
    let error = chat(streaming, &hello()).unwrap_err();
    assert!(matches!(error, LlmError::Stalled { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "gave up at the first long silence");
    assert!(error.hint().unwrap().contains("--llm-idle-timeout"), "{error:?}");
}

#[test]
fn requests_are_fitted_to_the_context_the_server_reports() {
    let server = MockLlm::start_with_context(&["test-model"], vec![Reply::Content("ok".into())], Some(2048));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = LlmClient::new(config(&server)).unwrap();
    let context = runtime.block_on(client.context()).unwrap();
    assert_eq!(context.tokens, 2048);
    assert!(context.source.ends_with("/props"), "{context:?}");
    // 3,000 characters count as 1,000 tokens before the server has reported any count.
    let medium = ChatRequest::new(vec![Message::user("x".repeat(3000))]);
    let fit = runtime.block_on(client.fit(&medium)).unwrap();
    assert_eq!(fit.max_tokens, 2048 - fit.prompt_tokens - metaexec::llm::fit::MARGIN_TOKENS);
    let completion = runtime.block_on(client.chat(&medium, &|_| {})).unwrap();
    assert_eq!(server.requests()[0]["max_tokens"], json!(fit.max_tokens));
    assert!(completion.fit.is_some());

    let huge = ChatRequest::new(vec![Message::user("x".repeat(20_000))]);
    let error = runtime.block_on(client.chat(&huge, &|_| {})).unwrap_err();
    assert!(matches!(error, LlmError::Context { available: 2048, .. }), "{error:?}");
    assert!(error.to_string().contains("nothing was sent"), "{error}");
    assert_eq!(server.requests().len(), 1, "the oversized request was never sent");

    // Without a context from the server, the configured one counts, else the default.
    let quiet = MockLlm::start(&["test-model"], vec![]);
    let mut configured = config(&quiet);
    configured.context = Some(1000);
    let context = runtime.block_on(LlmClient::new(configured).unwrap().context()).unwrap();
    assert_eq!((context.tokens, context.source.as_str()), (1000, "--llm-context"));
    let context = runtime.block_on(LlmClient::new(config(&quiet)).unwrap().context()).unwrap();
    assert_eq!(context.tokens, metaexec::llm::server::DEFAULT_CONTEXT);
}

#[test]
fn the_servers_own_context_refusal_is_told_apart() {
    let server = MockLlm::start(&["test-model"], vec![Reply::ContextExceeded]);
    let error = chat(config(&server), &hello()).unwrap_err();
    assert!(matches!(error, LlmError::ServerContext { .. }), "{error:?}");
    assert!(error.hint().unwrap().contains("--llm-context"), "{error:?}");
    assert_eq!(server.requests().len(), 1, "not retried");
}

#[test]
fn an_unreachable_endpoint_fails_fast_with_a_hint() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut config = LlmConfig::new(format!("http://127.0.0.1:{port}/v1"));
    config.model = Some("m".into());
    let started = Instant::now();
    let error = chat(config, &hello()).unwrap_err();
    assert!(matches!(error, LlmError::Unreachable { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(error.hint().unwrap().contains("LM Studio"), "{error:?}");
}

#[test]
fn the_api_key_is_sent_and_never_printed() {
    let server = MockLlm::start(&["test-model"], vec![Reply::Content("ok".into())]);
    let env = metaexec::llm::config::Environment { api_key: Some("sk-test-123".into()), ..Default::default() };
    let flags = metaexec::llm::config::Overrides {
        url: Some(server.base_url()),
        model: Some("test-model".into()),
        ..Default::default()
    };
    let mut config = metaexec::llm::config::resolve(&flags, &env).unwrap().unwrap();
    config.stream = false;
    assert!(!format!("{config:?}").contains("sk-test-123"));
    chat(config, &hello()).unwrap();
    assert!(
        server.authorizations().iter().all(|a| a.as_deref() == Some("Bearer sk-test-123")),
        "{:?}",
        server.authorizations()
    );
}
