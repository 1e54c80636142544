//! The HTTP client for OpenAI-compatible chat servers (LM Studio, Ollama, vLLM, llama.cpp's
//! llama-server, llama-cpp-python, hosted APIs): a model check and the server's context
//! length on first use, every request fitted to that context before it is sent, a limit
//! on the whole answer and on silence within a stream, retries with backoff on transient
//! failures, the strongest structured-output form the server takes, and streamed answers
//! read as server-sent events that must end properly to count.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::OnceCell;

use super::LlmError;
use super::config::LlmConfig;
use super::fit::{self, AnswerBudget, Fit};
use super::server::{self, ContextWindow, JsonMode, Remembered, ServerMemory};
use super::wire::{self, ChatBody, ChatChunk, ChatResponse, Message, ModelList, Usage, UsageSource};

/// The longest pause a `Retry-After` header can impose; a server asking for more is
/// reported rather than waited on.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The first pause between attempts; doubled each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// One call: the conversation, for structured answers the JSON schema they must meet, and
/// what the answer may take of the context.
#[derive(Debug, Clone, Serialize)]
pub struct ChatRequest {
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// `(name, schema)` for `response_format`; servers without JSON mode get the request
    /// without it, and the answer is repaired on our side.
    pub schema: Option<(String, Value)>,
    /// The answer's budget.
    pub budget: AnswerBudget,
}

impl ChatRequest {
    /// A request for a script-sized answer without a schema.
    pub fn new(messages: Vec<Message>) -> Self {
        Self { messages, schema: None, budget: AnswerBudget::SCRIPT }
    }
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
    /// How the prompt and the answer were fitted into the context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit: Option<Fit>,
    /// The structured-output form the answer was asked in, for a request with a schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_mode: Option<JsonMode>,
    /// Who counted `usage`.
    #[serde(default, skip_serializing_if = "UsageSource::is_reported")]
    pub usage_source: UsageSource,
}

/// What the first contact with the server established.
#[derive(Debug, Clone)]
struct Connection {
    model: String,
    context: ContextWindow,
}

/// What the client learns from the server's answers as it goes.
#[derive(Debug, Clone)]
struct Learnt {
    /// The strongest structured-output form not refused yet.
    json_mode: JsonMode,
    /// Whether `stream_options` may be sent.
    stream_options: bool,
    /// Characters per prompt token, the least of those measured from the server's counts.
    measured: Option<f64>,
}

impl Learnt {
    /// The ratio counts use: measured, else cautious.
    fn chars_per_token(&self) -> f64 {
        self.measured.unwrap_or(fit::CAUTIOUS_CHARS_PER_TOKEN)
    }
}

/// A client for one endpoint and model.
#[derive(Debug)]
pub struct LlmClient {
    http: reqwest::Client,
    config: LlmConfig,
    connection: OnceCell<Connection>,
    /// The server's `GET /models` answer, for what it says beyond the ids.
    models_list: std::sync::OnceLock<Value>,
    learnt: Mutex<Learnt>,
    memory: Option<ServerMemory>,
}

/// How one attempt failed.
enum AttemptError {
    /// Worth another attempt, after the server's `Retry-After` if it gave one.
    Transient(LlmError, Option<Duration>),
    /// The server refused a part of the request it does not have (`response_format` in
    /// this form, `stream_options`): the same request again without it.
    Refused(Refusal),
    /// The answer ended without ending properly (no content, no end of stream): one
    /// more attempt, never cached.
    Incomplete(LlmError),
    /// Another attempt would fail the same way.
    Fatal(LlmError),
}

/// What a server refused.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    JsonMode,
    StreamOptions,
}

impl LlmClient {
    /// A client for `config`; nothing is sent until the first call.
    pub fn new(config: LlmConfig) -> Result<Self, LlmError> {
        // No whole-request timeout on the client: each request sets its own, and a stream
        // is also bounded by its silences.
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| LlmError::Config(format!("failed to set up the HTTP client: {e}")))?;
        let learnt = Learnt { json_mode: JsonMode::JsonSchema, stream_options: true, measured: None };
        Ok(Self {
            http,
            config,
            connection: OnceCell::new(),
            models_list: std::sync::OnceLock::new(),
            learnt: Mutex::new(learnt),
            memory: None,
        })
    }

    /// Remembers, in `memory`, which structured-output form each model on this endpoint
    /// took, and starts from what it remembers.
    pub fn with_memory(mut self, memory: ServerMemory) -> Self {
        self.memory = Some(memory);
        self
    }

    /// The configuration in use.
    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    fn learnt(&self) -> std::sync::MutexGuard<'_, Learnt> {
        self.learnt.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks the server once: lists its models, confirms the configured one is there or
    /// takes the first when none is configured, and finds the context it runs with. Returns
    /// the model id.
    pub async fn connect(&self) -> Result<&str, LlmError> {
        self.connection().await.map(|c| c.model.as_str())
    }

    /// The context requests are fitted to, once the server was asked.
    pub async fn context(&self) -> Result<ContextWindow, LlmError> {
        self.connection().await.map(|c| c.context.clone())
    }

    async fn connection(&self) -> Result<&Connection, LlmError> {
        self.connection.get_or_try_init(|| self.check()).await
    }

    /// How `request` would be fitted into the model's context now, or why it cannot be.
    pub async fn fit(&self, request: &ChatRequest) -> Result<Fit, LlmError> {
        let context = self.context().await?;
        let ratio = self.learnt().chars_per_token();
        let budget = AnswerBudget {
            want: request.budget.want.min(self.config.max_tokens).max(1),
            least: request.budget.least.min(self.config.max_tokens).max(1),
        };
        fit::fit(&request.messages, ratio, budget, context.tokens).map_err(|too_long| LlmError::Context {
            needed: too_long.needed,
            available: too_long.available,
            origin: context.source.clone(),
        })
    }

    async fn check(&self) -> Result<Connection, LlmError> {
        let model = self.check_model().await?;
        if let Some(memory) = &self.memory {
            let remembered = memory.get(&self.config.base_url, &model);
            let mut learnt = self.learnt();
            if let Some(mode) = remembered.json_mode {
                learnt.json_mode = mode;
            }
            learnt.stream_options = !remembered.no_stream_options;
        }
        let context = self.find_context(&model).await;
        tracing::debug!(tokens = context.tokens, source = %context.source, "model context");
        Ok(Connection { model, context })
    }

    /// What the server says about its context, else the configured one, else the default.
    async fn find_context(&self, model: &str) -> ContextWindow {
        let listed = self.models_list.get().and_then(|list| server::context_in_model_list(list, model));
        let said = match listed {
            Some(tokens) => Some(ContextWindow { tokens, source: format!("{}/models", self.config.base_url) }),
            None => {
                let timeout = self.probe_timeout();
                server::probe_context(&self.http, &self.config.base_url, model, &|b| self.authorised(b), timeout).await
            }
        };
        match (said, self.config.context) {
            (Some(said), Some(configured)) if configured < said.tokens => {
                ContextWindow { tokens: configured, source: "--llm-context (below the server's)".into() }
            }
            (Some(said), _) => said,
            (None, Some(tokens)) => ContextWindow { tokens, source: "--llm-context".into() },
            (None, None) => ContextWindow {
                tokens: server::DEFAULT_CONTEXT,
                source: "the default (the server does not say; pass --llm-context N)".into(),
            },
        }
    }

    /// A health check answers at once or not at all: no waiting for a slow generation.
    fn probe_timeout(&self) -> Duration {
        self.config.request_timeout.min(self.config.connect_timeout + Duration::from_secs(10))
    }

    async fn check_model(&self) -> Result<String, LlmError> {
        let url = format!("{}/models", self.config.base_url);
        let timeout = self.probe_timeout();
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
        if let Ok(value) = serde_json::from_str::<Value>(&body) {
            let _ = self.models_list.set(value);
        }
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

    /// Sends one chat request fitted to the model's context, with retries on connection
    /// errors, 5xx and 429, and one more attempt after an answer that ended early.
    /// `on_progress` is told the answer's length in characters as streamed text arrives.
    pub async fn chat(
        &self,
        request: &ChatRequest,
        on_progress: &(dyn Fn(usize) + Send + Sync),
    ) -> Result<Completion, LlmError> {
        let model = self.connect().await?.to_owned();
        let fitted = self.fit(request).await?;
        let started = Instant::now();
        let mut attempts = 0;
        let mut incomplete = 0;
        loop {
            attempts += 1;
            match self.attempt(&model, request, fitted, on_progress).await {
                Ok(mut completion) => {
                    completion.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
                    completion.attempts = attempts;
                    completion.fit = Some(fitted);
                    self.account(&mut completion, request, fitted).await;
                    return Ok(completion);
                }
                Err(AttemptError::Refused(refusal)) => {
                    self.refused(&model, refusal);
                    attempts -= 1;
                }
                Err(AttemptError::Incomplete(error)) => {
                    incomplete += 1;
                    if incomplete > 1 {
                        return Err(error);
                    }
                    tracing::debug!("the answer ended early ({error}); asking once more");
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

    /// Steps down from what the server refused, and remembers it for the next run.
    fn refused(&self, model: &str, refusal: Refusal) {
        let remembered = {
            let mut learnt = self.learnt();
            match refusal {
                Refusal::JsonMode => {
                    learnt.json_mode = learnt.json_mode.weaker().unwrap_or(JsonMode::Text);
                    tracing::debug!("the server refused that response_format; asking in {}", learnt.json_mode.as_str());
                }
                Refusal::StreamOptions => learnt.stream_options = false,
            }
            Remembered { json_mode: Some(learnt.json_mode), no_stream_options: !learnt.stream_options }
        };
        if let Some(memory) = &self.memory {
            memory.put(&self.config.base_url, model, &remembered);
        }
    }

    /// Learns the tokenizer's ratio from the server's count. For a server that reported
    /// none (llama-cpp-python's streams), its tokenizer counts, else metaexec does, so
    /// that every call has its tokens on record.
    async fn account(&self, completion: &mut Completion, request: &ChatRequest, fitted: Fit) {
        if completion.usage.prompt_tokens == 0 {
            let timeout = self.probe_timeout();
            let authorise = |b| self.authorised(b);
            let (http, url) = (&self.http, self.config.base_url.as_str());
            let prompt: String = request.messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n");
            let prompt = server::count_tokens(http, url, prompt, &authorise, timeout).await;
            let answer = match prompt {
                Some(_) => server::count_tokens(http, url, completion.content.clone(), &authorise, timeout).await,
                None => None,
            };
            if let (Some(prompt), Some(answer)) = (prompt, answer) {
                let template = u64::from(fit::PER_MESSAGE_TOKENS) * request.messages.len() as u64;
                completion.usage = Usage { prompt_tokens: prompt + template, completion_tokens: answer };
                completion.usage_source = UsageSource::Tokenized;
            }
        }
        let mut learnt = self.learnt();
        match fit::learnt_ratio(fit::chars(&request.messages), completion.usage.prompt_tokens) {
            Some(ratio) => learnt.measured = Some(learnt.measured.map_or(ratio, |m| m.min(ratio))),
            None => {
                let answer = completion.content.chars().count() as f64 / learnt.chars_per_token();
                completion.usage =
                    Usage { prompt_tokens: u64::from(fitted.prompt_tokens), completion_tokens: answer.ceil() as u64 };
                completion.usage_source = UsageSource::Estimated;
            }
        }
    }

    async fn attempt(
        &self,
        model: &str,
        request: &ChatRequest,
        fitted: Fit,
        on_progress: &(dyn Fn(usize) + Send + Sync),
    ) -> Result<Completion, AttemptError> {
        let (json_mode, stream_options) = {
            let learnt = self.learnt();
            (request.schema.as_ref().map(|_| learnt.json_mode), learnt.stream_options)
        };
        let response_format = request
            .schema
            .as_ref()
            .zip(json_mode)
            .and_then(|((name, schema), mode)| mode.response_format(name, schema));
        let sent_format = response_format.is_some();
        let sent_stream_options = self.config.stream && stream_options;
        let body = ChatBody {
            model,
            messages: &request.messages,
            temperature: self.config.temperature,
            max_tokens: fitted.max_tokens,
            stream: self.config.stream,
            stream_options: sent_stream_options.then(|| serde_json::json!({"include_usage": true})),
            response_format,
        };
        let url = format!("{}/chat/completions", self.config.base_url);
        let response = self
            .authorised(self.http.post(&url))
            .timeout(self.config.request_timeout)
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
            // A server that does not take a part of the request says so with whatever status
            // it likes (llama-cpp-python: 500 for `json_schema`): the whole body is read.
            return Err(if sent_format && mentions_response_format(&text) {
                AttemptError::Refused(Refusal::JsonMode)
            } else if sent_stream_options && text.contains("stream_options") {
                AttemptError::Refused(Refusal::StreamOptions)
            } else if mentions_context(&text) {
                AttemptError::Fatal(LlmError::ServerContext { message, context: fitted.context })
            } else if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                AttemptError::Transient(LlmError::Http { status: status.as_u16(), message }, retry_after)
            } else {
                AttemptError::Fatal(LlmError::Http { status: status.as_u16(), message })
            });
        }
        let streamed = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let mut completion = if streamed {
            self.read_stream(model, response, on_progress).await?
        } else {
            let text = response.text().await.map_err(|e| self.classify_transport(&e))?;
            parse_response(model, &text).map_err(AttemptError::Fatal)?
        };
        if completion.content.trim().is_empty() {
            return Err(AttemptError::Incomplete(LlmError::Incomplete {
                reason: format!(
                    "the answer is empty (finish_reason {})",
                    completion.finish_reason.as_deref().unwrap_or("none")
                ),
            }));
        }
        completion.json_mode = json_mode;
        Ok(completion)
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
            fit: None,
            json_mode: None,
            usage_source: UsageSource::Reported,
        };
        let idle = self.config.idle_timeout;
        let mut done = false;
        let mut started = false;
        while !done {
            // Silence is bounded between events once the answer has begun; before its first
            // piece the server reads the prompt, which on a CPU can take minutes, so only
            // the request's whole-answer timeout applies.
            let chunk = if started {
                tokio::time::timeout(idle, response.chunk()).await.map_err(|_| {
                    AttemptError::Fatal(LlmError::Stalled {
                        url: self.config.base_url.clone(),
                        secs: idle.as_secs_f64(),
                    })
                })?
            } else {
                response.chunk().await
            };
            let Some(bytes) = chunk.map_err(|e| self.classify_transport(&e))? else { break };
            started = true;
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
        if !done && completion.finish_reason.is_none() {
            return Err(AttemptError::Incomplete(LlmError::Incomplete {
                reason: format!(
                    "the stream stopped after {} characters with no finish_reason and no [DONE]",
                    completion.content.chars().count()
                ),
            }));
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
        fit: None,
        json_mode: None,
        usage_source: UsageSource::Reported,
    })
}

fn mentions_response_format(body: &str) -> bool {
    let lower = body.to_ascii_lowercase();
    ["response_format", "json_schema", "json_object", "json mode", "structured output"]
        .iter()
        .any(|k| lower.contains(k))
}

/// Whether an error body says the prompt is longer than the context (llama-server: "the
/// request exceeds the available context size"; vLLM and OpenAI: "maximum context length").
fn mentions_context(body: &str) -> bool {
    let lower = body.to_ascii_lowercase();
    lower.contains("context") && ["exceed", "maximum", "too long", "longer than"].iter().any(|k| lower.contains(k))
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
            fit: None,
            json_mode: None,
            usage_source: UsageSource::Reported,
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
