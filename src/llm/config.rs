//! Which model endpoint to use and how: flags first, then the environment, then the config
//! file. No endpoint and no model anywhere means no model: the offline planner serves.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::LlmError;

/// LM Studio's default server address, used when a model is named but no URL is.
pub const DEFAULT_BASE_URL: &str = "http://localhost:1234/v1";
/// The endpoint variable of this tool; wins over `OPENAI_BASE_URL`.
pub const URL_ENV: &str = "METAEXEC_LLM_URL";
/// The endpoint variable most OpenAI clients read.
pub const OPENAI_URL_ENV: &str = "OPENAI_BASE_URL";
/// The model variable.
pub const MODEL_ENV: &str = "METAEXEC_MODEL";
/// The API key variable (sent as a bearer token, never logged or stored).
pub const API_KEY_ENV: &str = "OPENAI_API_KEY";
/// Names the config file instead of `<config dir>/metaexec/config.toml`.
pub const CONFIG_ENV: &str = "METAEXEC_CONFIG";

/// The whole-answer limit, in seconds, unless configured.
pub const DEFAULT_TIMEOUT_SECS: u64 = 900;
/// The longest silence within a streamed answer, in seconds, unless configured.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
/// The smallest context accepted from the configuration: less holds no useful prompt.
const MIN_CONTEXT: u32 = 512;

/// An API key: printed as `***` by `Debug` so that it never reaches a log.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: String) -> Self {
        Self(key)
    }

    /// The key itself, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How to reach and call the model.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// The OpenAI-compatible base URL, ending before `/chat/completions` (`.../v1`).
    pub base_url: String,
    /// The model id; `None` takes the first model the server lists.
    pub model: Option<String>,
    /// The bearer token, if the server wants one.
    pub api_key: Option<ApiKey>,
    /// Sampling temperature; low, since scripts should be reproducible.
    pub temperature: f64,
    /// The most tokens one answer may have.
    pub max_tokens: u32,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// How long one request may take in all, answer included.
    pub request_timeout: Duration,
    /// How long a streamed answer may fall silent between two events.
    pub idle_timeout: Duration,
    /// The model's context in tokens, when the server does not say it (or says more than
    /// it runs with).
    pub context: Option<u32>,
    /// Extra attempts after a connection error, a 5xx or a 429.
    pub retries: u32,
    /// Ask for streamed answers (progress while a slow local model writes).
    pub stream: bool,
}

impl LlmConfig {
    /// A configuration for `base_url` with the defaults.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            model: None,
            api_key: None,
            temperature: 0.1,
            max_tokens: 4096,
            connect_timeout: Duration::from_secs(5),
            // Generous: a model on a CPU writes a script in minutes while streaming steadily;
            // a stalled one is caught by the idle timeout instead.
            request_timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
            context: None,
            retries: 3,
            stream: true,
        }
    }
}

/// The `[llm]` table of the config file; every key optional.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileSettings {
    /// Base URL.
    pub url: Option<String>,
    /// Model id.
    pub model: Option<String>,
    /// API key (better kept in `OPENAI_API_KEY`).
    pub api_key: Option<String>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Most tokens per answer.
    pub max_tokens: Option<u32>,
    /// Seconds per request.
    pub timeout_secs: Option<f64>,
    /// Seconds a streamed answer may fall silent.
    pub idle_timeout_secs: Option<f64>,
    /// The model's context in tokens.
    pub context: Option<u32>,
    /// Seconds to connect.
    pub connect_timeout_secs: Option<f64>,
    /// Extra attempts on transient errors.
    pub retries: Option<u32>,
    /// Streamed answers.
    pub stream: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileConfig {
    llm: FileSettings,
}

/// What the command line said; `None` leaves the choice to the environment and the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--llm-url`.
    pub url: Option<String>,
    /// `--model`.
    pub model: Option<String>,
    /// `--temperature`.
    pub temperature: Option<f64>,
    /// `--max-tokens`.
    pub max_tokens: Option<u32>,
    /// `--llm-timeout`, seconds.
    pub timeout_secs: Option<f64>,
    /// `--llm-idle-timeout`, seconds.
    pub idle_timeout_secs: Option<f64>,
    /// `--llm-context`, tokens.
    pub context: Option<u32>,
}

/// The environment, read once so that resolution can be tested without touching it.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `METAEXEC_LLM_URL`, else `OPENAI_BASE_URL`.
    pub url: Option<String>,
    /// `METAEXEC_MODEL`.
    pub model: Option<String>,
    /// `OPENAI_API_KEY`.
    pub api_key: Option<String>,
    /// `METAEXEC_CONFIG`.
    pub config_file: Option<PathBuf>,
}

impl Environment {
    /// Reads the variables; empty ones count as unset.
    pub fn read() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            url: var(URL_ENV).or_else(|| var(OPENAI_URL_ENV)),
            model: var(MODEL_ENV),
            api_key: var(API_KEY_ENV),
            config_file: var(CONFIG_ENV).map(PathBuf::from),
        }
    }
}

/// The config file: `METAEXEC_CONFIG`, else `<config dir>/metaexec/config.toml`.
pub fn config_file(env: &Environment) -> Option<PathBuf> {
    env.config_file.clone().or_else(|| dirs::config_dir().map(|d| d.join("metaexec").join("config.toml")))
}

/// Resolves the model configuration: flags, then the environment, then the file. `Ok(None)`
/// when no URL and no model is configured anywhere: the offline planner's case.
pub fn resolve(flags: &Overrides, env: &Environment) -> Result<Option<LlmConfig>, LlmError> {
    let file = match config_file(env) {
        Some(path) => read_file(&path, env.config_file.is_some())?,
        None => FileSettings::default(),
    };
    let url = flags.url.clone().or_else(|| env.url.clone()).or(file.url);
    let model = flags.model.clone().or_else(|| env.model.clone()).or(file.model);
    if url.is_none() && model.is_none() {
        return Ok(None);
    }
    let url = url.unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(LlmError::Config(format!(
            "the model endpoint `{url}` is not an http(s) URL; give the server's base URL, e.g. {DEFAULT_BASE_URL}"
        )));
    }
    let mut config = LlmConfig::new(url);
    config.model = model;
    config.api_key = env.api_key.clone().or(file.api_key).map(ApiKey);
    if let Some(t) = flags.temperature.or(file.temperature) {
        if !(0.0..=2.0).contains(&t) {
            return Err(LlmError::Config(format!("the temperature must be between 0 and 2, got {t}")));
        }
        config.temperature = t;
    }
    if let Some(n) = flags.max_tokens.or(file.max_tokens) {
        config.max_tokens = n.max(1);
    }
    if let Some(secs) = flags.timeout_secs.or(file.timeout_secs) {
        config.request_timeout = seconds(secs, "timeout")?;
    }
    if let Some(secs) = flags.idle_timeout_secs.or(file.idle_timeout_secs) {
        config.idle_timeout = seconds(secs, "idle timeout")?;
    }
    if let Some(tokens) = flags.context.or(file.context) {
        if tokens < MIN_CONTEXT {
            return Err(LlmError::Config(format!(
                "the model context must be at least {MIN_CONTEXT} tokens, got {tokens}"
            )));
        }
        config.context = Some(tokens);
    }
    if let Some(secs) = file.connect_timeout_secs {
        config.connect_timeout = seconds(secs, "connect_timeout_secs")?;
    }
    if let Some(n) = file.retries {
        config.retries = n;
    }
    if let Some(stream) = file.stream {
        config.stream = stream;
    }
    Ok(Some(config))
}

fn seconds(secs: f64, what: &str) -> Result<Duration, LlmError> {
    if secs.is_finite() && secs > 0.0 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(LlmError::Config(format!("the model {what} must be a positive number of seconds, got {secs}")))
    }
}

/// Reads the `[llm]` table; a missing default file is fine, a missing named one is not.
fn read_file(path: &Path, named: bool) -> Result<FileSettings, LlmError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => return Ok(FileSettings::default()),
        Err(e) => return Err(LlmError::Config(format!("failed to read the config file `{}`: {e}", path.display()))),
    };
    toml::from_str::<FileConfig>(&text)
        .map(|c| c.llm)
        .map_err(|e| LlmError::Config(format!("the config file `{}` is not valid: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with_file(text: &str) -> (tempfile::TempDir, Environment) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        (dir, Environment { config_file: Some(path), ..Environment::default() })
    }

    #[test]
    fn nothing_configured_means_offline() {
        let (_dir, env) = env_with_file("");
        assert!(resolve(&Overrides::default(), &env).unwrap().is_none());
    }

    #[test]
    fn flags_win_over_environment_over_file() {
        let (_dir, mut env) = env_with_file(
            "[llm]\nurl = \"http://file:1/v1\"\nmodel = \"file-model\"\ntemperature = 0.5\nretries = 1\n",
        );
        let from_file = resolve(&Overrides::default(), &env).unwrap().unwrap();
        assert_eq!((from_file.base_url.as_str(), from_file.model.as_deref()), ("http://file:1/v1", Some("file-model")));
        assert_eq!((from_file.temperature, from_file.retries), (0.5, 1));
        env.url = Some("http://env:2/v1/".into());
        env.api_key = Some("sk-secret".into());
        let from_env = resolve(&Overrides::default(), &env).unwrap().unwrap();
        assert_eq!(from_env.base_url, "http://env:2/v1");
        assert_eq!(format!("{:?}", from_env.api_key), "Some(***)");
        let flags = Overrides { url: Some("http://flag:3/v1".into()), model: Some("m".into()), ..Overrides::default() };
        let from_flags = resolve(&flags, &env).unwrap().unwrap();
        assert_eq!((from_flags.base_url.as_str(), from_flags.model.as_deref()), ("http://flag:3/v1", Some("m")));
    }

    #[test]
    fn a_model_alone_uses_the_lm_studio_default() {
        let (_dir, env) = env_with_file("");
        let flags = Overrides { model: Some("qwen".into()), ..Overrides::default() };
        assert_eq!(resolve(&flags, &env).unwrap().unwrap().base_url, DEFAULT_BASE_URL);
    }

    #[test]
    fn bad_settings_say_what_is_wrong() {
        let (_dir, env) = env_with_file("[llm]\nurl = \"localhost:1234\"\n");
        assert!(resolve(&Overrides::default(), &env).unwrap_err().to_string().contains("not an http(s) URL"));
        let (_dir, env) = env_with_file("[llm]\nmodle = \"x\"\n");
        assert!(resolve(&Overrides::default(), &env).unwrap_err().to_string().contains("modle"));
        let env = Environment { config_file: Some("/nonexistent/metaexec.toml".into()), ..Environment::default() };
        assert!(resolve(&Overrides::default(), &env).unwrap_err().to_string().contains("failed to read"));
    }
}
