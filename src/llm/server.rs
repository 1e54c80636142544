//! What a model server says about itself beyond the chat-completions API: how long a
//! context it runs with, and which form of structured output it takes. The context is
//! asked for on each first contact (a server may be restarted with another `-c`); the
//! structured-output form is remembered on disk per endpoint and model, so that a server
//! that refuses one form is not asked in it again by the next run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How a structured answer (the plan) is asked for, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonMode {
    /// `response_format: {"type": "json_schema", "json_schema": {"name", "schema"}}`: OpenAI,
    /// llama.cpp's llama-server, LM Studio, vLLM, Ollama (0.5 and later).
    JsonSchema,
    /// `response_format: {"type": "json_object", "schema": …}`: llama-cpp-python's server,
    /// which refuses `json_schema` (with a 500), and llama-server.
    JsonObject,
    /// No `response_format`: the answer's JSON is found and repaired on our side.
    Text,
}

impl JsonMode {
    /// The next weaker form, once a server refused this one.
    pub fn weaker(self) -> Option<Self> {
        match self {
            Self::JsonSchema => Some(Self::JsonObject),
            Self::JsonObject => Some(Self::Text),
            Self::Text => None,
        }
    }

    /// The `response_format` of a request for an answer meeting `schema`.
    pub fn response_format(self, name: &str, schema: &Value) -> Option<Value> {
        match self {
            Self::JsonSchema => {
                Some(json!({"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": false}}))
            }
            Self::JsonObject => Some(json!({"type": "json_object", "schema": schema})),
            Self::Text => None,
        }
    }

    /// The name used in records (`json_schema`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::JsonSchema => "json_schema",
            Self::JsonObject => "json_object",
            Self::Text => "text",
        }
    }
}

/// The context length a request must fit, and who said so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextWindow {
    /// Tokens of prompt and answer together.
    pub tokens: u32,
    /// Where the number came from: the server endpoint that said it, `--llm-context` /
    /// the config file, or the default.
    pub source: String,
}

/// The context assumed when neither the server nor the configuration gives one: the
/// common default of local servers (llama.cpp, LM Studio, Ollama's recent releases), so
/// that a request planned for it fits the small setups most users run.
pub const DEFAULT_CONTEXT: u32 = 4096;

/// The server's root: the base URL without its `/v1`, where the servers' own endpoints are.
fn root(base_url: &str) -> &str {
    base_url.strip_suffix("/v1").unwrap_or(base_url)
}

/// A positive token count at `pointer` in `value`.
fn tokens_at(value: &Value, pointer: &str) -> Option<u32> {
    value.pointer(pointer).and_then(Value::as_u64).filter(|&n| n > 0).and_then(|n| u32::try_from(n).ok())
}

/// The context length in a `GET /models` list: vLLM gives `max_model_len` per model,
/// llama-server `meta.n_ctx`.
pub fn context_in_model_list(list: &Value, model: &str) -> Option<u32> {
    let entry = list.get("data")?.as_array()?.iter().find(|m| m.get("id").and_then(Value::as_str) == Some(model))?;
    tokens_at(entry, "/max_model_len").or_else(|| tokens_at(entry, "/meta/n_ctx"))
}

/// Asks the server's own endpoints for the context it runs `model` with: llama-server's
/// `GET /props`, LM Studio's `GET /api/v0/models`, Ollama's `POST /api/show`. Each is
/// tried in turn and a server without it answers 404 at once; `None` when none says.
pub async fn probe_context(
    http: &reqwest::Client,
    base_url: &str,
    model: &str,
    authorise: &dyn Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    timeout: Duration,
) -> Option<ContextWindow> {
    let root = root(base_url);
    let get = |path: &str| {
        let url = format!("{root}{path}");
        async move {
            let response = authorise(http.get(&url)).timeout(timeout).send().await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            serde_json::from_slice::<Value>(&response.bytes().await.ok()?).ok()
        }
    };
    if let Some(props) = get("/props").await {
        // llama-server: the slot's context, which is what one request may fill.
        let n = tokens_at(&props, "/default_generation_settings/n_ctx").or_else(|| tokens_at(&props, "/n_ctx"));
        if let Some(tokens) = n {
            return Some(ContextWindow { tokens, source: format!("{root}/props") });
        }
    }
    if let Some(list) = get("/api/v0/models").await {
        // LM Studio: the loaded context when the model is loaded, else its maximum.
        let entry = list
            .get("data")
            .and_then(Value::as_array)
            .and_then(|d| d.iter().find(|m| m.get("id").and_then(Value::as_str) == Some(model)));
        if let Some(tokens) =
            entry.and_then(|e| tokens_at(e, "/loaded_context_length").or_else(|| tokens_at(e, "/max_context_length")))
        {
            return Some(ContextWindow { tokens, source: format!("{root}/api/v0/models") });
        }
    }
    let url = format!("{root}/api/show");
    let body = json!({"model": model}).to_string();
    let request = authorise(http.post(&url)).timeout(timeout).header(reqwest::header::CONTENT_TYPE, "application/json");
    let shown = request.body(body).send().await.ok();
    if let Some(response) = shown.filter(|r| r.status().is_success())
        && let Ok(bytes) = response.bytes().await
        && let Ok(show) = serde_json::from_slice::<Value>(&bytes)
    {
        // Ollama cuts every prompt at its `num_ctx`, which `/api/show` lists among the
        // parameters only when the model file sets it; the model's own maximum is then an
        // upper bound, not what the server runs with.
        let num_ctx = show.get("parameters").and_then(Value::as_str).and_then(|p| {
            p.lines().find_map(|line| {
                let mut words = line.split_whitespace();
                (words.next() == Some("num_ctx")).then(|| words.next()?.parse::<u32>().ok()).flatten()
            })
        });
        let trained = show
            .get("model_info")
            .and_then(Value::as_object)
            .and_then(|info| info.iter().find(|(k, _)| k.ends_with(".context_length")).and_then(|(_, v)| v.as_u64()))
            .and_then(|n| u32::try_from(n).ok());
        if let Some(tokens) = num_ctx.or_else(|| trained.map(|t| t.min(DEFAULT_CONTEXT))) {
            return Some(ContextWindow { tokens, source: url });
        }
    }
    None
}

/// How many tokens `text` is, by the server's own tokenizer: llama-cpp-python's
/// `POST /extras/tokenize/count`, else llama-server's `POST /tokenize`; `None` when the
/// server has neither.
pub async fn count_tokens(
    http: &reqwest::Client,
    base_url: &str,
    text: String,
    authorise: &dyn Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    timeout: Duration,
) -> Option<u64> {
    let root = root(base_url);
    let post = |path: &str, body: Value| {
        let request = authorise(http.post(format!("{root}{path}")))
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        async move {
            let response = request.send().await.ok().filter(|r| r.status().is_success())?;
            serde_json::from_slice::<Value>(&response.bytes().await.ok()?).ok()
        }
    };
    if let Some(counted) = post("/extras/tokenize/count", json!({"input": text})).await {
        return counted.get("count").and_then(Value::as_u64);
    }
    let tokens = post("/tokenize", json!({"content": text})).await?;
    tokens.get("tokens").and_then(Value::as_array).map(|t| t.len() as u64)
}

/// What is remembered of one endpoint and model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Remembered {
    /// The strongest structured-output form the server took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_mode: Option<JsonMode>,
    /// The server refused `stream_options` (usage in streamed answers).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_stream_options: bool,
}

/// The file of what servers took, `<cache>/llm/servers.json`: one entry per endpoint and
/// model. A file that cannot be read or written only costs the refusals again.
#[derive(Debug, Clone)]
pub struct ServerMemory {
    path: PathBuf,
}

impl ServerMemory {
    /// The memory under `cache_root`.
    pub fn new(cache_root: &Path) -> Self {
        Self { path: cache_root.join("llm").join("servers.json") }
    }

    fn key(base_url: &str, model: &str) -> String {
        format!("{base_url} {model}")
    }

    fn read_all(&self) -> BTreeMap<String, Remembered> {
        std::fs::read(&self.path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default()
    }

    /// What is remembered of `model` on `base_url`.
    pub fn get(&self, base_url: &str, model: &str) -> Remembered {
        self.read_all().remove(&Self::key(base_url, model)).unwrap_or_default()
    }

    /// Remembers `entry` for `model` on `base_url`.
    pub fn put(&self, base_url: &str, model: &str, entry: &Remembered) {
        let mut all = self.read_all();
        all.insert(Self::key(base_url, model), entry.clone());
        let bytes = serde_json::to_vec_pretty(&all).expect("the server memory serialises");
        let written = self
            .path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| crate::cache::write_atomically(&self.path, &bytes));
        if let Err(e) = written {
            tracing::warn!("could not remember the model server's settings in {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_weaken_to_text_and_say_their_format() {
        let schema = json!({"type": "object"});
        assert_eq!(JsonMode::JsonSchema.weaker(), Some(JsonMode::JsonObject));
        assert_eq!(JsonMode::JsonObject.weaker(), Some(JsonMode::Text));
        assert_eq!(JsonMode::Text.weaker(), None);
        assert_eq!(JsonMode::JsonSchema.response_format("plan", &schema).unwrap()["json_schema"]["name"], "plan");
        assert_eq!(JsonMode::JsonObject.response_format("plan", &schema).unwrap()["schema"], schema);
        assert!(JsonMode::Text.response_format("plan", &schema).is_none());
    }

    #[test]
    fn vllm_and_llama_server_list_the_context_with_the_model() {
        let list =
            json!({"data": [{"id": "a", "max_model_len": 8192}, {"id": "b"}, {"id": "c", "meta": {"n_ctx": 4096}}]});
        assert_eq!(context_in_model_list(&list, "a"), Some(8192));
        assert_eq!(context_in_model_list(&list, "b"), None);
        assert_eq!(context_in_model_list(&list, "c"), Some(4096), "llama-server");
        assert_eq!(root("http://h:1/v1"), "http://h:1");
    }

    #[test]
    fn the_memory_keeps_each_endpoint_and_model_apart() {
        let dir = tempfile::tempdir().unwrap();
        let memory = ServerMemory::new(dir.path());
        let entry = Remembered { json_mode: Some(JsonMode::JsonObject), no_stream_options: false };
        memory.put("http://a/v1", "m", &entry);
        assert_eq!(memory.get("http://a/v1", "m"), entry);
        assert_eq!(memory.get("http://a/v1", "other"), Remembered::default());
    }
}
