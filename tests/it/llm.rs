//! The LLM client against a real HTTP server speaking the OpenAI wire format
//! (`llm_server`): model checks, plain and streamed answers, retries on 5xx and 429 with
//! Retry-After, timeouts, malformed bodies, servers without JSON mode, unreachable
//! endpoints, and the API key.

use std::time::{Duration, Instant};

use metaexec::llm::client::ChatRequest;
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
    ChatRequest { messages: vec![Message::system("be brief"), Message::user("hello")], schema: None }
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
        vec![Reply::Error { status: 400, message: "context length exceeded".into() }, Reply::Content("never".into())],
    );
    let error = chat(config(&server), &hello()).unwrap_err();
    assert_eq!(error, LlmError::Http { status: 400, message: "context length exceeded".into() });
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

#[test]
fn servers_without_json_mode_get_the_request_again_without_it() {
    let server = MockLlm::start(&["test-model"], vec![Reply::NoJsonMode("{\"goal\": \"x\"}".into())]);
    let request = ChatRequest {
        messages: vec![Message::user("plan")],
        schema: Some(("task_spec".into(), json!({"type": "object"}))),
    };
    let completion = chat(config(&server), &request).unwrap();
    assert_eq!(completion.content, "{\"goal\": \"x\"}");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0]["response_format"]["type"], "json_schema");
    assert_eq!(requests[0]["response_format"]["json_schema"]["name"], "task_spec");
    assert!(requests[1].get("response_format").is_none(), "{}", requests[1]);
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
