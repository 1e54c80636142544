//! The language-model side of the pipeline: the client for OpenAI-compatible servers, the
//! answer cache, the prompt templates, reading JSON and code out of answers, and the
//! offline planner that serves without a model. Nothing here knows about the sandbox.

pub mod cache;
pub mod client;
pub mod config;
pub mod json_repair;
pub mod offline;
pub mod prompts;
pub mod wire;

pub use cache::AnswerCache;
pub use client::{ChatRequest, Completion, LlmClient};
pub use config::LlmConfig;
pub use wire::Message;

/// Why the model could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// The configuration is wrong (bad URL, unreadable config file).
    #[error("{0}")]
    Config(String),
    /// No connection could be made.
    #[error("cannot reach the model server at {url}: {reason}")]
    Unreachable {
        /// The base URL.
        url: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// The server took longer than the request timeout.
    #[error("the model server at {url} did not answer within {secs:.0} s")]
    Timeout {
        /// The base URL.
        url: String,
        /// The timeout.
        secs: f64,
    },
    /// The server answered with an error status.
    #[error("the model server answered {status}: {message}")]
    Http {
        /// The HTTP status.
        status: u16,
        /// The error body's message.
        message: String,
    },
    /// The configured model is not on the server.
    #[error("the model `{model}` is not available on {url}; it has: {available}")]
    ModelNotFound {
        /// The configured model.
        model: String,
        /// The base URL.
        url: String,
        /// The models the server lists.
        available: String,
    },
    /// The server lists no model and none was configured.
    #[error("the model server at {url} has no model loaded")]
    NoModel {
        /// The base URL.
        url: String,
    },
    /// The answer is not in the chat-completions format.
    #[error("the model server's answer could not be read: {0}")]
    Protocol(String),
}

impl LlmError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        let offline =
            "or run without --llm-url, --model, METAEXEC_LLM_URL and METAEXEC_MODEL to use the offline planner";
        match self {
            Self::Config(_) | Self::Protocol(_) => None,
            Self::Unreachable { .. } => Some(format!(
                "start the model server (LM Studio: Developer > Start Server, http://localhost:1234/v1; \
                 Ollama: `ollama serve`, http://localhost:11434/v1) or pass --llm-url, {offline}"
            )),
            Self::Timeout { .. } => {
                Some("a large local model can be slow: raise --llm-timeout, or load a smaller model".into())
            }
            Self::Http { status: 401 | 403, .. } => Some("set OPENAI_API_KEY to a key the server accepts".into()),
            Self::Http { .. } => None,
            Self::ModelNotFound { .. } => {
                Some("load the model (LM Studio: load it; Ollama: `ollama pull <model>`) or pass --model with one of the listed ids".into())
            }
            Self::NoModel { .. } => Some(format!("load a model in the server, or pass --model; {offline}")),
        }
    }
}
