//! The HTTP client for OpenAI-compatible chat servers (LM Studio, Ollama, vLLM, llama.cpp
//! server, hosted APIs): a health and model check on first use, timeouts on every call,
//! retries with backoff on transient failures, JSON mode where the server has it, and
//! streamed answers read as server-sent events.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::OnceCell;

use super::LlmError;
use super::config::LlmConfig;
use super::wire::{self, ChatBody, ChatChunk, ChatResponse, Message, ModelList, Usage};

/// The longest pause a `Retry-After` header can impose; a server asking for more is
/// reported rather than waited on.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The first pause between attempts; doubled each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// One call: the conversation and, for structured answers, the JSON schema they must meet.
#[derive(Debug, Clone, Serialize)]
pub struct ChatRequest {
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// `(name, schema)` for `response_format`; servers without JSON mode get the request
    /// without it, and the answer is repaired on our side.
    pub schema: Option<(String, Value)>,
}

/// A model answer and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// The answer's text.
    pub content: String,
    /// The model that answered.
    pub model: String,
    /// Token counts, where the server reports them.
    pub usage: Usage,
    /// Why the answer ended (`stop`, `length`).
    pub finish_reason: Option<String>,
    /// Time from the first attempt to the last byte, in milliseconds.
    pub elapsed_ms: f64,
    /// Attempts made (1 without retries).
    pub attempts: u32,
}

/// A client for one endpoint and model.
#[derive(Debug)]
pub struct LlmClient {
    http: reqwest::Client,
    config: LlmConfig,
    model: OnceCell<String>,
    /// Cleared when the server refuses `response_format`, so later calls skip it.
    json_mode: AtomicBool,
}

/// How one attempt failed.
enum AttemptError {
    /// Worth another attempt, after the server's `Retry-After` if it gave one.
    Transient(LlmError, Option<Duration>),
    /// The server does not take `response_format`.
    NoJsonMode,
    /// Another attempt would fail the same way.
    Fatal(LlmError),
}

impl LlmClient {
    /// A client for `config`; nothing is sent until the first call.
    pub fn new(config: LlmConfig) -> Result<Self, LlmError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| LlmError::Config(format!("failed to set up the HTTP client: {e}")))?;
        Ok(Self { http, config, model: OnceCell::new(), json_mode: AtomicBool::new(true) })
    }

    /// The configuration in use.
    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// Checks the server once: lists its models, confirms the configured one is there or
    /// takes the first when none is configured. Returns the model id.
    pub async fn connect(&self) -> Result<&str, LlmError> {
        self.model.get_or_try_init(|| self.check()).await.map(String::as_str)
    }

    async fn check(&self) -> Result<String, LlmError> {
        let url = format!("{}/models", self.config.base_url);
        // A health check answers at once or not at all: no waiting for a slow generation.
        let timeout = self.config.request_timeout.min(self.config.connect_timeout + Duration::from_secs(10));
        let response = self.authorised(self.http.get(&url)).timeout(timeout).send().await;
        let response = response.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            // Some servers have no model list; the configured model is then taken on trust.
            return self.config.model.clone().ok_or_else(|| LlmError::NoModel { url: self.config.base_url.clone() });
        }
        let body = response.text().await.map_err(|e| self.transport_error(&e))?;
        if !status.is_success() {
            return Err(LlmError::Http { status: status.as_u16(), message: wire::error_message(&body) });
        }
        let list: ModelList = serde_json::from_str(&body)
            .map_err(|e| LlmError::Protocol(format!("GET {url} did not return a model list: {e}")))?;
        let available: Vec<String> = list.data.into_iter().map(|m| m.id).collect();
        match &self.config.model {
            Some(model) if available.is_empty() || available.contains(model) => Ok(model.clone()),
            Some(model) => Err(LlmError::ModelNotFound {
                model: model.clone(),
                url: self.config.base_url.clone(),
                available: available.join(", "),
            }),
            None => available.into_iter().next().ok_or_else(|| LlmError::NoModel { url: self.config.base_url.clone() }),
        }
    }

    /// Sends one chat request, with retries on connection errors, 5xx and 429.
    /// `on_progress` is told the answer's length in characters as streamed text arrives.
    pub async fn chat(
        &self,
        request: &ChatRequest,
        on_progress: &(dyn Fn(usize) + Send + Sync),
    ) -> Result<Completion, LlmError> {
        let model = self.connect().await?.to_owned();
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.attempt(&model, request, on_progress).await {
                Ok(mut completion) => {
                    completion.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
                    completion.attempts = attempts;
                    return Ok(completion);
                }
                Err(AttemptError::NoJsonMode) => {
                    tracing::debug!("the server refused response_format; asking without it");
                    self.json_mode.store(false, Ordering::Relaxed);
                    attempts -= 1;
                    continue;
                }
                Err(AttemptError::Fatal(error)) => return Err(error),
                Err(AttemptError::Transient(error, retry_after)) => {
                    if attempts > self.config.retries {
                        return Err(error);
                    }
                    let backoff = FIRST_BACKOFF * 2u32.saturating_pow(attempts - 1);
                    let pause = retry_after.unwrap_or(backoff);
                    if pause > MAX_RETRY_AFTER {
                        return Err(error);
                    }
                    tracing::debug!("model call failed ({error}); attempt {} in {pause:?}", attempts + 1);
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    async fn attempt(
        &self,
        model: &str,
        request: &ChatRequest,
        on_progress: &(dyn Fn(usize) + Send + Sync),
    ) -> Result<Completion, AttemptError> {
        let json_mode = self.json_mode.load(Ordering::Relaxed);
        let response_format = request.schema.as_ref().filter(|_| json_mode).map(|(name, schema)| {
            serde_json::json!({"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": false}})
        });
        let sent_format = response_format.is_some();
        let body = ChatBody {
            model,
            messages: &request.messages,
            temperature: self.config.temperature,
            max_tokens: self.config.max_tokens,
            stream: self.config.stream,
            response_format,
        };
        let url = format!("{}/chat/completions", self.config.base_url);
        let response = self
            .authorised(self.http.post(&url))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).expect("chat bodies serialise"))
            .send()
            .await
            .map_err(|e| self.classify_transport(&e))?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64);
            let text = response.text().await.unwrap_or_default();
            let message = wire::error_message(&text);
            let error = LlmError::Http { status: status.as_u16(), message: message.clone() };
            return Err(if sent_format && status.is_client_error() && mentions_response_format(&message) {
                AttemptError::NoJsonMode
            } else if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                AttemptError::Transient(error, retry_after)
            } else {
                AttemptError::Fatal(error)
            });
        }
        let streamed = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if streamed {
            self.read_stream(model, response, on_progress).await
        } else {
            let text = response.text().await.map_err(|e| self.classify_transport(&e))?;
            parse_response(model, &text).map_err(AttemptError::Fatal)
        }
    }

    async fn read_stream(
        &self,
        model: &str,
        mut response: reqwest::Response,
        on_progress: &(dyn Fn(usize) + Send + Sync),
    ) -> Result<Completion, AttemptError> {
        let mut pending: Vec<u8> = Vec::new();
        let mut completion = Completion {
            content: String::new(),
            model: model.to_owned(),
            usage: Usage::default(),
            finish_reason: None,
            elapsed_ms: 0.0,
            attempts: 0,
        };
        let mut done = false;
        while !done {
            let Some(bytes) = response.chunk().await.map_err(|e| self.classify_transport(&e))? else { break };
            pending.extend_from_slice(&bytes);
            // Events are lines; a chunk may end inside one, so only whole lines are read.
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                let Some(data) = line.trim().strip_prefix("data:") else { continue };
                let data = data.trim();
                if data == "[DONE]" {
                    done = true;
                    break;
                }
                let chunk: ChatChunk = serde_json::from_str(data).map_err(|e| {
                    AttemptError::Fatal(LlmError::Protocol(format!("a streamed event is not a completion chunk: {e}")))
                })?;
                apply_chunk(&mut completion, chunk);
                on_progress(completion.content.chars().count());
            }
        }
        Ok(completion)
    }

    fn authorised(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.config.api_key {
            Some(key) => builder.bearer_auth(key.expose()),
            None => builder,
        }
    }

    fn transport_error(&self, error: &reqwest::Error) -> LlmError {
        if error.is_timeout() {
            LlmError::Timeout { url: self.config.base_url.clone(), secs: self.config.request_timeout.as_secs_f64() }
        } else {
            LlmError::Unreachable { url: self.config.base_url.clone(), reason: root_cause(error) }
        }
    }

    /// Connection failures are worth retrying; a timeout is not: a model that took the
    /// whole budget once will take it again, and the user is waiting.
    fn classify_transport(&self, error: &reqwest::Error) -> AttemptError {
        let llm_error = self.transport_error(error);
        if error.is_timeout() { AttemptError::Fatal(llm_error) } else { AttemptError::Transient(llm_error, None) }
    }
}

fn apply_chunk(completion: &mut Completion, chunk: ChatChunk) {
    if let Some(model) = chunk.model.filter(|m| !m.is_empty()) {
        completion.model = model;
    }
    if let Some(usage) = chunk.usage {
        completion.usage = usage;
    }
    for choice in chunk.choices {
        if let Some(text) = choice.delta.content {
            completion.content.push_str(&text);
        }
        if choice.finish_reason.is_some() {
            completion.finish_reason = choice.finish_reason;
        }
    }
}

fn parse_response(model: &str, text: &str) -> Result<Completion, LlmError> {
    let response: ChatResponse = serde_json::from_str(text).map_err(|e| {
        let start: String = text.chars().take(120).collect();
        LlmError::Protocol(format!("the answer is not a chat completion ({e}); it starts `{start}`"))
    })?;
    let choice =
        response.choices.into_iter().next().ok_or_else(|| LlmError::Protocol("the answer has no choices".into()))?;
    Ok(Completion {
        content: choice.message.content.unwrap_or_default(),
        model: response.model.filter(|m| !m.is_empty()).unwrap_or_else(|| model.to_owned()),
        usage: response.usage.unwrap_or_default(),
        finish_reason: choice.finish_reason,
        elapsed_ms: 0.0,
        attempts: 0,
    })
}

fn mentions_response_format(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    ["response_format", "json_schema", "json mode", "structured output"].iter().any(|k| lower.contains(k))
}

/// The innermost error's text: reqwest's own message is only "error sending request".
fn root_cause(error: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_accumulate_content_and_finish_reason() {
        let mut c = Completion {
            content: String::new(),
            model: "m".into(),
            usage: Usage::default(),
            finish_reason: None,
            elapsed_ms: 0.0,
            attempts: 0,
        };
        for data in [
            r#"{"model":"served","choices":[{"delta":{"role":"assistant"}}]}"#,
            r#"{"choices":[{"delta":{"content":"print("}}]}"#,
            r#"{"choices":[{"delta":{"content":"1)"},"finish_reason":"stop"}]}"#,
        ] {
            apply_chunk(&mut c, serde_json::from_str(data).unwrap());
        }
        assert_eq!(
            (c.content.as_str(), c.model.as_str(), c.finish_reason.as_deref()),
            ("print(1)", "served", Some("stop"))
        );
    }

    #[test]
    fn a_non_completion_body_is_a_protocol_error() {
        let error = parse_response("m", "<html>bad gateway</html>").unwrap_err();
        assert!(matches!(error, LlmError::Protocol(ref m) if m.contains("<html>")), "{error}");
        assert!(matches!(parse_response("m", r#"{"choices": []}"#), Err(LlmError::Protocol(_))));
    }
}
