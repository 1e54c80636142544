//! The language-model side of the pipeline: the client for OpenAI-compatible servers, the
//! answer cache, the prompt templates, reading JSON and code out of answers, and the
//! offline planner that serves without a model. Nothing here knows about the sandbox.

pub mod cache;
pub mod client;
pub mod config;
pub mod fit;
pub mod json_repair;
pub mod offline;
pub mod prompts;
pub mod server;
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
    /// The request does not fit the model's context, even shortened: nothing was sent.
    #[error(
        "the request needs about {needed} tokens (prompt and the shortest useful answer) but the model's context \
         holds {available} (from {origin}); nothing was sent"
    )]
    Context {
        /// Prompt, least answer and margin, counted.
        needed: u32,
        /// The context.
        available: u32,
        /// Where the context's size came from.
        origin: String,
    },
    /// The server refused the request as longer than its context.
    #[error("the model server refused the request as longer than its context ({context} tokens assumed): {message}")]
    ServerContext {
        /// The server's message.
        message: String,
        /// The context the request was fitted to.
        context: u32,
    },
    /// The answer ended without ending properly: empty, or a stream cut off.
    #[error("the model server's answer ended early, twice: {reason}")]
    Incomplete {
        /// What was wrong with it.
        reason: String,
    },
    /// A streamed answer fell silent for longer than the idle timeout.
    #[error("the model server at {url} sent nothing for {secs:.0} s in the middle of its answer")]
    Stalled {
        /// The base URL.
        url: String,
        /// The idle timeout.
        secs: f64,
    },
}

impl LlmError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        let offline =
            "or run without --llm-url, --model, METAEXEC_LLM_URL and METAEXEC_MODEL to use the offline planner";
        match self {
            Self::Config(_) | Self::Protocol(_) => None,
            Self::Context { .. } => Some(
                "run the model with a larger context (llama-server -c N, llama-cpp-python --n_ctx N, LM Studio's \
                 context length, Ollama's num_ctx) and pass --llm-context N if the server does not say it, or \
                 shorten the request"
                    .into(),
            ),
            Self::ServerContext { .. } => Some(
                "pass --llm-context N with the context the server runs with (llama-server -c, llama-cpp-python \
                 --n_ctx), so that requests are fitted to it"
                    .into(),
            ),
            Self::Incomplete { .. } => Some(
                "llama-cpp-python ends a stream with nothing when the prompt is longer than its context: pass \
                 --llm-context N with its --n_ctx; otherwise check the server's log"
                    .into(),
            ),
            Self::Stalled { .. } => {
                Some("a slow model on a busy machine can pause: raise --llm-idle-timeout, or load a smaller model".into())
            }
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
