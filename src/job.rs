//! What to run: a `Job` is the script, its parameters, its limits and the places it may
//! touch. Backends take a `Job` and return an `Outcome`; nothing else flows between them.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::budget::HostBudget;
use crate::guest_db::DbHandle;

/// Default wall-clock limit.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default linear-memory cap: 512 MiB.
pub const DEFAULT_MEMORY_BYTES: u64 = 512 * 1024 * 1024;
/// Default cap on each of stdout and stderr: 1 MiB.
pub const DEFAULT_OUTPUT_BYTES: usize = 1024 * 1024;
/// Default cap on everything the script reports through the host interface: 64 MiB.
pub const DEFAULT_RESULTS_BYTES: usize = 64 * 1024 * 1024;

/// The limits a run is held to. Every limit has a default; none can be switched off
/// except fuel, which is opt-in because metering costs about half again in CPU time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Deterministic CPU budget in fuel units; `None` runs unmetered.
    pub fuel: Option<u64>,
    /// Wall-clock limit, covering running code and code blocked in a host call.
    #[serde(with = "duration_secs")]
    pub timeout: Duration,
    /// Cap on the guest's linear memory, in bytes.
    pub memory_bytes: u64,
    /// Cap on the captured stdout, in bytes.
    pub stdout_bytes: usize,
    /// Cap on the captured stderr, in bytes.
    pub stderr_bytes: usize,
    /// Cap on all results (and log lines) reported through the host interface, in bytes.
    pub results_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: None,
            timeout: DEFAULT_TIMEOUT,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            stdout_bytes: DEFAULT_OUTPUT_BYTES,
            stderr_bytes: DEFAULT_OUTPUT_BYTES,
            results_bytes: DEFAULT_RESULTS_BYTES,
        }
    }
}

/// One script to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The script's file name as the user knows it; tracebacks use it.
    pub script_name: String,
    /// The script's source.
    pub source: String,
    /// Parameters the script reads as `metaexec.params`.
    pub params: Map<String, Value>,
    /// The limits of the run.
    pub limits: Limits,
    /// The host folder the script sees as `/results` (its working directory), the only
    /// place it can write. Created by the host if missing.
    pub results_dir: PathBuf,
    /// The database the script reaches through `metaexec.db`, already scoped to what the
    /// job may do; `None` answers every database request with an error.
    #[serde(skip)]
    pub db: Option<DbHandle>,
    /// What the guest may make the host hold (decoded results, queued replies, rows,
    /// the snapshot cache, a sweep's outcomes), shared with the job's database proxy.
    #[serde(skip)]
    pub budget: HostBudget,
    /// Seeds Python's `random` for the run; in a sweep, the base every scenario's own
    /// seed is derived from (with the scenario's id). `None`: a fresh seed for a run, and
    /// base 0 for a sweep, whose scenarios stay reproducible either way.
    #[serde(default)]
    pub seed: Option<u64>,
}

impl Job {
    /// A job with default limits.
    pub fn new(script_name: impl Into<String>, source: impl Into<String>, results_dir: impl Into<PathBuf>) -> Self {
        Self {
            script_name: script_name.into(),
            source: source.into(),
            params: Map::new(),
            limits: Limits::default(),
            results_dir: results_dir.into(),
            db: None,
            budget: HostBudget::default(),
            seed: None,
        }
    }
}

mod duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}
