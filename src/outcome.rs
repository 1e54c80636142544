//! What a run produced: the `Outcome` every backend returns and every command can print
//! as JSON (the `--json` contract of the design).
//!
//! A failure is classified, never stringified: the kind says what the user can do about
//! it (fix the script, raise a limit, fetch the runtime), the message says what happened.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::guest_db::AuditEntry;
pub use crate::guest_dir::Sanitized;

/// Why a run did not succeed. Serialised in `snake_case` (`fuel_exhausted`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The script is not valid Python.
    Syntax,
    /// The validator rejected the script before it ran.
    Validation,
    /// The script raised an exception (or exited with a non-zero status).
    GuestException,
    /// The script used up its deterministic CPU budget (`--fuel`).
    FuelExhausted,
    /// The script ran past its wall-clock limit (`--timeout`).
    Timeout,
    /// The script needed more memory than allowed (`--memory`).
    MemoryLimit,
    /// The script wrote more to stdout, stderr or results than allowed.
    OutputLimit,
    /// A database request was refused by the job's capability.
    DbDenied,
    /// A database request failed.
    DbError,
    /// The backend cannot run here (no Docker engine, ...).
    BackendUnavailable,
    /// The pinned WASI CPython is not installed and could not be fetched.
    RuntimeMissing,
    /// No language model could be reached.
    LlmUnavailable,
    /// A request to the model does not fit its context, even shortened (or the server
    /// refused it as too long).
    LlmContext,
    /// The model server answered, but not with a usable answer: empty, cut off, or a plan
    /// cut at its token limit twice.
    LlmAnswer,
    /// The script ran to the end but reported nothing (no `result`, `emit` or file), and
    /// no repair round was left to fix it.
    NoResults,
    /// The command was misused (bad flag, unreadable script, ...).
    Usage,
    /// Part of the request was not understood (without a model), or names something the
    /// database does not have: answering the rest would answer another question.
    NotUnderstood,
    /// The guest misused the host interface (a value that is not JSON, a nameless
    /// result, results outside a scenario); the instance was stopped.
    Protocol,
    /// The guest made the host hold more than the job's host memory budget
    /// (`--host-memory`).
    HostMemory,
    /// metaexec itself failed; a bug or a broken environment.
    Internal,
}

impl ErrorKind {
    /// The process exit code for this kind: 1 when the user's script failed or hit a
    /// limit, 2 when the tool was misused or failed itself.
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Syntax
            | Self::Validation
            | Self::GuestException
            | Self::FuelExhausted
            | Self::Timeout
            | Self::MemoryLimit
            | Self::OutputLimit
            | Self::DbDenied
            | Self::DbError
            | Self::Protocol
            | Self::NotUnderstood
            | Self::HostMemory
            | Self::LlmAnswer
            | Self::NoResults => 1,
            Self::BackendUnavailable
            | Self::RuntimeMissing
            | Self::LlmUnavailable
            | Self::LlmContext
            | Self::Usage
            | Self::Internal => 2,
        }
    }

    /// The name used in JSON and in messages (`fuel_exhausted`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Syntax => "syntax",
            Self::Validation => "validation",
            Self::GuestException => "guest_exception",
            Self::FuelExhausted => "fuel_exhausted",
            Self::Timeout => "timeout",
            Self::MemoryLimit => "memory_limit",
            Self::OutputLimit => "output_limit",
            Self::DbDenied => "db_denied",
            Self::DbError => "db_error",
            Self::BackendUnavailable => "backend_unavailable",
            Self::RuntimeMissing => "runtime_missing",
            Self::LlmUnavailable => "llm_unavailable",
            Self::LlmContext => "llm_context",
            Self::LlmAnswer => "llm_answer",
            Self::NoResults => "no_results",
            Self::Usage => "usage",
            Self::NotUnderstood => "not_understood",
            Self::Protocol => "protocol",
            Self::HostMemory => "host_memory",
            Self::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeError {
    /// What kind of failure this is.
    pub kind: ErrorKind,
    /// What happened, in a sentence a user can act on.
    pub message: String,
    /// The Python traceback, for script failures.
    pub traceback: Option<String>,
    /// The line of the user's script the failure points at, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// A suggestion for what to do next, where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl OutcomeError {
    /// A failure with a message and nothing else.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), traceback: None, line: None, hint: None }
    }

    /// Adds a `hint:` for the user.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// `"ok"` or `"error"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The script ran to completion.
    Ok,
    /// See `Outcome::error`.
    Error,
}

/// Which captured streams were cut at their cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truncated {
    /// The script's stdout was cut.
    pub stdout: bool,
    /// The script's stderr was cut.
    pub stderr: bool,
}

/// What the run cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Wall-clock time of the run, from job start to outcome, in milliseconds.
    pub wall_ms: f64,
    /// Fuel consumed; `null` when the run was not metered (no `--fuel`).
    pub fuel_used: Option<u64>,
    /// The largest linear memory the guest reached, in bytes.
    pub peak_memory_bytes: u64,
    /// Database requests the guest made.
    pub db_queries: u64,
}

/// Everything a run produced. Serialises to the design's `--json` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// `ok` when the script ran to completion.
    pub status: Status,
    /// The classified failure, when `status` is `error`.
    pub error: Option<OutcomeError>,
    /// The guest's exit status (0 when it finished normally).
    pub exit_code: i32,
    /// What the script reported: `result(obj)` under `"result"`, `emit(name, v)` under
    /// `name`. Kept on failure: whatever was emitted before the failure is here.
    pub results: Map<String, Value>,
    /// The script's own stdout (never contains results).
    pub stdout: String,
    /// The script's stderr.
    pub stderr: String,
    /// Which of the two were cut at their cap.
    pub truncated: Truncated,
    /// Progress lines the script sent with `metaexec.log`.
    #[serde(default)]
    pub logs: Vec<String>,
    /// Every database request the script made: what, allowed or not, rows, time.
    #[serde(default)]
    pub db_audit: Vec<AuditEntry>,
    /// What the run cost.
    pub metrics: Metrics,
    /// What the host removed from the results folder after the run: links leading
    /// outside it (or nowhere) and special files, which the host and the user's own
    /// tools would otherwise follow.
    #[serde(default)]
    pub sanitized: Vec<Sanitized>,
    /// `wasi` or `docker`.
    pub backend: String,
    /// The interpreter that ran the script.
    pub runtime: String,
    /// What the script read of its parameters, when it finished (the runtime reports it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params_read: Option<ParamsRead>,
}

/// What a script read of its parameters (`metaexec.params`): which names, and the number
/// it falls back to when one is absent. A parameter it never reads cannot change its
/// answer, so a sweep over one answers a different question than the one asked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParamsRead {
    /// Each name read, with the number the script falls back to when it is absent
    /// (`params.get("rate_change", 0.0)`): `None` when it gave none, or not always the same.
    pub names: std::collections::BTreeMap<String, Option<f64>>,
    /// The script listed the parameters (iterated them, `items()`, `dict(params)`), so
    /// it may use any of them.
    pub listed: bool,
}

/// Names for a message, each in backticks: `` `a`, `b` ``.
pub fn quoted<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names.into_iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ")
}

impl ParamsRead {
    /// Adds what another run of the same script read: a fallback stays only where both
    /// agree on it.
    pub fn merge(&mut self, other: ParamsRead) {
        self.listed |= other.listed;
        for (name, default) in other.names {
            match self.names.entry(name) {
                std::collections::btree_map::Entry::Vacant(entry) => {
                    entry.insert(default);
                }
                std::collections::btree_map::Entry::Occupied(mut entry) => {
                    if *entry.get() != default {
                        entry.insert(None);
                    }
                }
            }
        }
    }

    /// Whether the script may have used `name`.
    pub fn reads(&self, name: &str) -> bool {
        self.listed || self.names.contains_key(name)
    }

    /// Those of `names` the script did not read, each once, in their order.
    pub fn unread<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        let mut unread: Vec<&str> = Vec::new();
        for name in names {
            if !self.reads(name) && !unread.contains(&name) {
                unread.push(name);
            }
        }
        unread
    }

    /// The names read, for a message: `` `a`, `b` ``.
    pub fn shown(&self) -> String {
        quoted(self.names.keys().map(String::as_str))
    }

    /// The numbers the script falls back to, by parameter name.
    pub fn defaults(&self) -> std::collections::BTreeMap<String, f64> {
        self.names.iter().filter_map(|(name, default)| Some((name.clone(), (*default)?))).collect()
    }
}

impl Outcome {
    /// An outcome for a run that never started (missing runtime, unreadable script).
    pub fn failed_before_start(error: OutcomeError, backend: &str) -> Self {
        Self {
            status: Status::Error,
            exit_code: error.kind.exit_code(),
            error: Some(error),
            results: Map::new(),
            stdout: String::new(),
            stderr: String::new(),
            truncated: Truncated::default(),
            logs: Vec::new(),
            db_audit: Vec::new(),
            metrics: Metrics::default(),
            sanitized: Vec::new(),
            backend: backend.to_owned(),
            runtime: String::new(),
            params_read: None,
        }
    }

    /// True when the script ran to completion.
    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok
    }

    /// The error kind, if any.
    pub fn error_kind(&self) -> Option<ErrorKind> {
        self.error.as_ref().map(|e| e.kind)
    }

    /// The exit code the `metaexec` process should end with for this outcome.
    pub fn process_exit_code(&self) -> i32 {
        self.error.as_ref().map_or(0, |e| e.kind.exit_code())
    }
}
