//! An OpenAI-compatible chat server for the LLM client's tests. It speaks the real wire
//! protocol (JSON, error bodies, `Retry-After`, server-sent events over chunked HTTP) and
//! answers from a script, so the client's parsing, retries and fallbacks are exercised end
//! to end without a model.

// Each test file uses only part of this helper, and pub items a test binary leaves unused
// would otherwise warn.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// One scripted answer to a POST /v1/chat/completions, consumed in order.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A completion whose message content is the text: a chat.completion JSON object, or, when
    /// the request body has "stream": true, server-sent events (chat.completion.chunk objects:
    /// a first chunk with delta.role "assistant", the content split over chunks of ~16 chars
    /// (split on char boundaries), a last chunk with finish_reason "stop", then `data: [DONE]`).
    Content(String),
    /// An HTTP error status with OpenAI's error body {"error": {"message", "type", "code"}}.
    Error { status: u16, message: String },
    /// 429 with a `Retry-After: <secs>` header and an error body.
    RateLimited { retry_after_secs: u64 },
    /// Sleeps before answering with the inner reply (to test client timeouts).
    Slow { delay: Duration, then: Box<Reply> },
    /// 200, content-type application/json, with a body that is not JSON.
    Malformed,
    /// Like Content, but if the request carries "response_format" answers 400 with an error
    /// body saying response_format is not supported (like servers without JSON mode) and does
    /// NOT consume the reply, so the client's retry without response_format gets the content.
    NoJsonMode(String),
    /// Like llama-cpp-python's server: a `json_schema` response_format is refused with a 500
    /// whose body names `json_object` (not consumed); any other request gets the content.
    NoJsonSchema(String),
    /// The content, with finish_reason "length" (an answer cut at max_tokens).
    Length(String),
    /// A stream that stops after the content: no finish_reason, no `[DONE]` (a dropped
    /// upstream, or llama-cpp-python's answer to a prompt longer than its context when the
    /// content is empty).
    Cut(String),
    /// A stream whose events come `pause` apart (a slow model, or a stalled one).
    Trickle { text: String, pause: Duration },
    /// llama-server's 400 for a prompt longer than its context.
    ContextExceeded,
}

/// A running server; stops when dropped.
pub struct MockLlm {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// What the handlers and the test thread both see.
#[derive(Default)]
struct Shared {
    models: Vec<String>,
    /// The context `GET /props` reports, as llama-server does; `None` answers 404.
    context: Option<u32>,
    replies: VecDeque<Reply>,
    requests: Vec<Value>,
    authorizations: Vec<Option<String>>,
}

type SharedState = Arc<Mutex<Shared>>;

impl MockLlm {
    /// Starts on 127.0.0.1 on a free port (bind port 0) with the given model ids and scripted replies.
    /// The server runs on its own thread with its own tokio runtime, so it works from both sync
    /// tests and tests that have their own runtime.
    pub fn start(models: &[&str], replies: Vec<Reply>) -> MockLlm {
        Self::start_with_context(models, replies, None)
    }

    /// Like `start`, and `GET /props` reports `context` as llama-server's
    /// `default_generation_settings.n_ctx`.
    pub fn start_with_context(models: &[&str], replies: Vec<Reply>, context: Option<u32>) -> MockLlm {
        // Checked here: a panic in a handler would reach the client only as a dropped connection.
        for reply in &replies {
            if let Reply::Error { status, .. } = innermost(reply) {
                assert!(StatusCode::from_u16(*status).is_ok(), "Reply::Error: {status} is not an HTTP status");
            }
        }
        // Bound here rather than on the server thread so that the port is known, and already
        // queueing connections, when `start` returns: no readiness race for the caller.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("make the listener non-blocking");
        let addr = listener.local_addr().expect("the listener's address");
        let shared = Arc::new(Mutex::new(Shared {
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            context,
            replies: replies.into(),
            ..Shared::default()
        }));
        let app = Router::new()
            .route("/v1/models", get(list_models))
            .route("/props", get(props))
            .route("/v1/chat/completions", post(chat))
            .with_state(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().expect("build a tokio runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("register the listener");
                tokio::select! {
                    _ = axum::serve(listener, app).into_future() => {}
                    _ = stopped => {}
                }
            });
            // Not axum's graceful shutdown: it waits for in-flight requests, so dropping a
            // server with a `Slow` reply asleep would block the test for the whole delay.
            // Dropping the runtime's tasks closes their connections instead.
            runtime.shutdown_background();
        });
        MockLlm { addr, shared, stop: Some(stop), thread: Some(thread) }
    }

    /// The base URL clients are configured with, ending in /v1 (e.g. http://127.0.0.1:43121/v1).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The JSON bodies of every chat completion request received, in order (including ones
    /// answered with errors). A body that is not JSON is recorded as a JSON string of its
    /// text, so that this list stays in step with `authorizations()`.
    pub fn requests(&self) -> Vec<Value> {
        lock(&self.shared).requests.clone()
    }

    /// The Authorization header values received, in order (to check the API key is sent).
    pub fn authorizations(&self) -> Vec<Option<String>> {
        lock(&self.shared).authorizations.clone()
    }

    /// How many scripted replies are left.
    pub fn remaining(&self) -> usize {
        lock(&self.shared).replies.len()
    }
}

impl Drop for MockLlm {
    fn drop(&mut self) {
        // Errors are ignored: a send fails only if the server thread is gone already, and
        // re-raising its panic here could turn a failing test into an abort (panic in drop).
        let _ = self.stop.take().map(|stop| stop.send(()));
        let _ = self.thread.take().map(JoinHandle::join);
    }
}

fn lock(shared: &SharedState) -> MutexGuard<'_, Shared> {
    shared.lock().expect("the mock LLM state is not poisoned")
}

/// The reply under any `Slow` wrappers.
fn innermost(reply: &Reply) -> &Reply {
    match reply {
        Reply::Slow { then, .. } => innermost(then),
        other => other,
    }
}

async fn props(State(shared): State<SharedState>) -> Response {
    match lock(&shared).context {
        Some(n_ctx) => Json(json!({"default_generation_settings": {"n_ctx": n_ctx}, "total_slots": 1})).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn list_models(State(shared): State<SharedState>) -> Json<Value> {
    let data: Vec<Value> = lock(&shared)
        .models
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "metaexec-test"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

// The body is taken as bytes, not `Json<Value>`: axum's extractor would answer a missing
// content type or bad JSON with its own plain-text rejection, not an OpenAI error body.
async fn chat(State(shared): State<SharedState>, headers: HeaderMap, body: Bytes) -> Response {
    let authorization = headers.get(header::AUTHORIZATION).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let parsed = serde_json::from_slice::<Value>(&body);
    let wants_format = parsed.as_ref().is_ok_and(|r| r.get("response_format").is_some_and(|f| !f.is_null()));
    let wants_schema = parsed.as_ref().is_ok_and(|r| r["response_format"]["type"] == "json_schema");
    let (number, request, reply) = {
        let mut state = lock(&shared);
        state.authorizations.push(authorization);
        let request = match parsed {
            Ok(request) => request,
            Err(e) => {
                state.requests.push(Value::String(String::from_utf8_lossy(&body).into_owned()));
                // Worded without "response_format": the client reads that as "no JSON mode".
                return error(StatusCode::BAD_REQUEST, &format!("the request body is not valid JSON: {e}"));
            }
        };
        state.requests.push(request.clone());
        let reply = match state.replies.front() {
            // Left queued for the retry without response_format that the 400 provokes.
            Some(front) if wants_format && matches!(innermost(front), Reply::NoJsonMode(_)) => Some(front.clone()),
            Some(front) if wants_schema && matches!(innermost(front), Reply::NoJsonSchema(_)) => Some(front.clone()),
            _ => state.replies.pop_front(),
        };
        (state.requests.len(), request, reply)
    };
    let Some(mut reply) = reply else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "no scripted reply left");
    };
    loop {
        return match reply {
            Reply::Slow { delay, then } => {
                tokio::time::sleep(delay).await;
                reply = *then;
                continue;
            }
            Reply::NoJsonMode(_) if wants_format => {
                error(StatusCode::BAD_REQUEST, "response_format is not supported by this server")
            }
            Reply::NoJsonSchema(_) if wants_schema => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be \
                 'text' or 'json_object'\", 'input': 'json_schema'}]",
            ),
            Reply::Content(text) | Reply::NoJsonMode(text) | Reply::NoJsonSchema(text) => {
                completion(number, &request, &text, Ending::Stop, Duration::from_millis(2))
            }
            Reply::Length(text) => completion(number, &request, &text, Ending::Length, Duration::from_millis(2)),
            Reply::Cut(text) => completion(number, &request, &text, Ending::Cut, Duration::from_millis(2)),
            Reply::Trickle { text, pause } => completion(number, &request, &text, Ending::Stop, pause),
            Reply::ContextExceeded => (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {"code": 400, "message": "the request exceeds the available context size, \
                    try increasing it", "type": "exceed_context_size_error"}})),
            )
                .into_response(),
            Reply::Error { status, message } => {
                error(StatusCode::from_u16(status).expect("checked by MockLlm::start"), &message)
            }
            Reply::RateLimited { retry_after_secs } => {
                let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Rate limit reached, please try again later");
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                response
            }
            Reply::Malformed => ([(header::CONTENT_TYPE, "application/json")], TRUNCATED).into_response(),
        };
    }
}

/// The `Malformed` body: a completion cut short, as by a proxy that dropped the upstream mid-body.
const TRUNCATED: &str = r#"{"id":"chatcmpl-test","object":"chat.completion","choices":[{"mes"#;

/// OpenAI's error body, with the type and code it gives for the status.
fn error(status: StatusCode, message: &str) -> Response {
    let (kind, code) = match status.as_u16() {
        401 => ("invalid_request_error", json!("invalid_api_key")),
        429 => ("requests", json!("rate_limit_exceeded")),
        500.. => ("server_error", Value::Null),
        _ => ("invalid_request_error", Value::Null),
    };
    (status, Json(json!({"error": {"message": message, "type": kind, "code": code}}))).into_response()
}

/// How an answer ends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ending {
    /// finish_reason "stop", then `[DONE]` when streamed.
    Stop,
    /// finish_reason "length", then `[DONE]`.
    Length,
    /// Nothing: the stream just stops.
    Cut,
}

fn completion(number: usize, request: &Value, text: &str, ending: Ending, pause: Duration) -> Response {
    let id = format!("chatcmpl-test-{number}");
    let model = request.get("model").cloned().unwrap_or(Value::Null);
    let messages = request["messages"].as_array().into_iter().flatten();
    let prompt_chars = messages.filter_map(|m| m["content"].as_str()).map(|c| c.chars().count()).sum::<usize>();
    let (prompt, answer) = (prompt_chars / 4, text.chars().count() / 4);
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": answer, "total_tokens": prompt + answer});
    if request["stream"].as_bool() == Some(true) {
        let usage = (request["stream_options"]["include_usage"] == true).then_some(usage);
        return stream(&id, &model, text, ending, usage, pause);
    }
    let finish = match ending {
        Ending::Stop => json!("stop"),
        Ending::Length => json!("length"),
        Ending::Cut => Value::Null,
    };
    Json(json!({
        "id": id,
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": usage,
    }))
    .into_response()
}

fn stream(id: &str, model: &Value, text: &str, ending: Ending, usage: Option<Value>, pause: Duration) -> Response {
    let delta = |delta: Value, finish: Value| {
        let choices = json!([{"index": 0, "delta": delta, "finish_reason": finish}]);
        json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model, "choices": choices})
    };
    let chars: Vec<char> = text.chars().collect();
    let mut events = vec![delta(json!({"role": "assistant", "content": ""}), Value::Null)];
    events.extend(chars.chunks(16).map(|c| delta(json!({"content": c.iter().collect::<String>()}), Value::Null)));
    match ending {
        Ending::Stop => events.push(delta(json!({}), json!("stop"))),
        Ending::Length => events.push(delta(json!({}), json!("length"))),
        Ending::Cut => {}
    }
    // As OpenAI sends it with `stream_options.include_usage`: a last chunk with no choices.
    if let Some(usage) = usage.filter(|_| ending != Ending::Cut) {
        events.push(json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [], "usage": usage}));
    }
    let done = (ending != Ending::Cut).then(|| "data: [DONE]\n\n".to_owned());
    let mut frames = Vec::new();
    for event in events.iter().map(|e| format!("data: {e}\n\n")).chain(done) {
        // Each event goes out in two writes cut mid-line, so a client that parses per read
        // rather than per line fails here as it would against a real server behind a proxy.
        let (head, tail) = event.split_at(event.floor_char_boundary(event.len() / 2));
        frames.extend([head.to_owned(), tail.to_owned()]);
    }
    // A pause between writes so they reach the client as separate reads.
    let body = futures_util::stream::unfold(frames.into_iter(), move |mut frames| async move {
        let frame = frames.next()?;
        tokio::time::sleep(pause).await;
        Some((Ok::<_, Infallible>(frame), frames))
    });
    ([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], Body::from_stream(body))
        .into_response()
}

/// Status, headers and body text (reqwest is built without its `json` feature, as in the main crate).
fn send(server: &MockLlm, body: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let url = format!("{}/chat/completions", server.base_url());
    let request = reqwest::blocking::Client::new().post(url).header("content-type", "application/json");
    let response = request.bearer_auth("sk-test").body(body.to_owned()).send().expect("send a chat request");
    (response.status().as_u16(), response.headers().clone(), response.text().expect("read the body"))
}

fn chat_body(stream: bool) -> String {
    json!({"model": "m1", "messages": [{"role": "user", "content": "Say hello, please."}], "stream": stream})
        .to_string()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("the body is JSON")
}

#[test]
fn lists_models() {
    let server = MockLlm::start(&["m1", "m2"], vec![]);
    let body = json(&reqwest::blocking::get(format!("{}/models", server.base_url())).unwrap().text().unwrap());
    let ids: Vec<&str> = body["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!((body["object"].as_str(), ids), (Some("list"), vec!["m1", "m2"]));
    assert_eq!(body["data"][0]["owned_by"], "metaexec-test");
}

#[test]
fn answers_a_completion_and_records_the_request() {
    let server = MockLlm::start(&["m1"], vec![Reply::Content("Hello there, friend!".into())]);
    let (status, _, body) = send(&server, &chat_body(false));
    let body = json(&body);
    assert_eq!((status, &body["id"], &body["model"]), (200, &json!("chatcmpl-test-1"), &json!("m1")));
    let message = json!({"role": "assistant", "content": "Hello there, friend!"});
    assert_eq!(body["choices"], json!([{"index": 0, "message": message, "finish_reason": "stop"}]));
    assert_eq!(body["usage"], json!({"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}));
    assert_eq!(server.requests(), [json(&chat_body(false))]);
    assert_eq!(server.authorizations(), [Some("Bearer sk-test".to_owned())]);
    assert_eq!(server.remaining(), 0);
}

#[test]
fn streams_a_completion() {
    let text = "Grüße aus Zürich — ünïcödé text that spans several chunks ✓";
    let server = MockLlm::start(&["m1"], vec![Reply::Content(text.into())]);
    let (_, headers, body) = send(&server, &chat_body(true));
    assert_eq!(headers["content-type"], "text/event-stream");
    let mut events: Vec<&str> = body.split_terminator("\n\n").map(|e| e.strip_prefix("data: ").unwrap()).collect();
    assert_eq!(events.pop(), Some("[DONE]"));
    let chunks: Vec<Value> = events.into_iter().map(json).collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk" && c["model"] == "m1"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "stop");
    let pieces: Vec<&str> = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(pieces.len(), 1 + text.chars().count().div_ceil(16));
    assert_eq!(pieces.concat(), text);
}

#[test]
fn answers_errors_rate_limits_and_malformed_bodies() {
    let error = Reply::Error { status: 503, message: "overloaded".into() };
    let server = MockLlm::start(&["m1"], vec![error, Reply::RateLimited { retry_after_secs: 7 }, Reply::Malformed]);
    let (status, _, body) = send(&server, "{not json");
    assert!(status == 400 && !body.contains("response_format"), "{status} {body}");
    assert_eq!(server.remaining(), 3, "a request that is not JSON uses up no reply");
    let (status, _, body) = send(&server, &chat_body(false));
    assert_eq!((status, json(&body)["error"]["message"].as_str()), (503, Some("overloaded")));
    let (status, headers, body) = send(&server, &chat_body(false));
    assert_eq!((status, headers["retry-after"].to_str().unwrap()), (429, "7"));
    assert_eq!(json(&body)["error"]["code"], "rate_limit_exceeded");
    let (status, headers, body) = send(&server, &chat_body(false));
    assert_eq!((status, headers["content-type"].to_str().unwrap()), (200, "application/json"));
    assert!(serde_json::from_str::<Value>(&body).is_err());
    let (status, _, body) = send(&server, &chat_body(false));
    assert_eq!((status, json(&body)["error"]["message"].as_str()), (500, Some("no scripted reply left")));
    assert_eq!((server.requests().len(), &server.requests()[0]), (5, &json!("{not json")));
}

#[test]
fn no_json_mode_refuses_response_format_then_answers() {
    let server = MockLlm::start(&["m1"], vec![Reply::NoJsonMode("{\"a\": 1}".into())]);
    let mut with_format = json(&chat_body(false));
    with_format["response_format"] = json!({"type": "json_object"});
    let (status, _, body) = send(&server, &with_format.to_string());
    assert!(status == 400 && json(&body)["error"]["message"].as_str().unwrap().contains("response_format"));
    assert_eq!(server.remaining(), 1);
    let (_, _, body) = send(&server, &chat_body(false));
    assert_eq!(json(&body)["choices"][0]["message"]["content"], "{\"a\": 1}");
    assert_eq!((server.remaining(), server.requests()), (0, vec![with_format, json(&chat_body(false))]));
}

#[test]
fn slow_replies_wait_and_drop_does_not() {
    let slow = |secs, text: &str| Reply::Slow {
        delay: Duration::from_secs(secs),
        then: Box::new(Reply::Content(text.into())),
    };
    let server = MockLlm::start(&["m1"], vec![slow(1, "late"), slow(600, "never")]);
    let started = std::time::Instant::now();
    assert_eq!(json(&send(&server, &chat_body(false)).2)["choices"][0]["message"]["content"], "late");
    assert!(started.elapsed() >= Duration::from_secs(1));
    let url = format!("{}/chat/completions", server.base_url());
    let waiting = std::thread::spawn(move || reqwest::blocking::Client::new().post(url).body(chat_body(false)).send());
    while server.remaining() > 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let dropping = std::time::Instant::now();
    drop(server);
    assert!(dropping.elapsed() < Duration::from_secs(5));
    assert!(waiting.join().unwrap().is_err(), "the request in flight is cut off");
}

#[tokio::test]
async fn works_inside_a_runtime() {
    let server = MockLlm::start(&["m1"], vec![Reply::Content("hi".into())]);
    let request = reqwest::Client::new().post(format!("{}/chat/completions", server.base_url())).body(chat_body(false));
    let body = json(&request.send().await.unwrap().text().await.unwrap());
    assert_eq!(body["choices"][0]["message"]["content"], "hi");
}
