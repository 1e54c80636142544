//! `job.json`: what a run was asked to do, enough to do it again (`metaexec runs rerun`):
//! the script's name and parameters, the limits, what it could do in which database, the
//! backend, the runtime, and for a request its model and for a sweep its scenarios.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::RunKind;
use crate::db::Capability;
use crate::job::Limits;

/// What a run was asked to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// What made the run.
    pub kind: RunKind,
    /// The request (`run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// The script's file name (`script.py` in the run folder holds its text).
    pub script_name: String,
    /// The parameters it was given.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Its limits.
    pub limits: Limits,
    /// What it could make the host hold, in bytes.
    pub host_memory_bytes: usize,
    /// What it could do in the database.
    pub capability: Capability,
    /// The database, its password masked.
    pub database: String,
    /// The backend asked for (`auto` follows the validator, whose choice is in the
    /// outcome).
    pub backend: crate::validate::BackendRequest,
    /// The SHA-256 of the runtime component it ran on, when it was built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// The seed of Python's `random`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Where the script's results folder was, when it was not the run folder's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results_dir: Option<PathBuf>,
    /// The model that planned and wrote a request's script.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelSettings>,
    /// A sweep's scenarios, as they were given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepFlags>,
    /// The run this one repeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<String>,
}

/// The model settings that shape its answers (and so the keys of cached answers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSettings {
    /// The base URL.
    pub endpoint: String,
    /// The model id, when one was named.
    pub model: Option<String>,
    /// Sampling temperature.
    pub temperature: f64,
    /// Most tokens per answer.
    pub max_tokens: u32,
    /// The context, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<u32>,
}

/// A sweep's scenarios as given on the command line: the same flags make the same
/// scenarios again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SweepFlags {
    /// `--grid` specs.
    #[serde(default)]
    pub grid: Vec<String>,
    /// `--zip` lists.
    #[serde(default)]
    pub zip: Vec<String>,
    /// `--monte-carlo` draws.
    #[serde(default)]
    pub monte_carlo: Option<usize>,
    /// `--seed`.
    pub seed: u64,
    /// `--dist` specs.
    #[serde(default)]
    pub dist: Vec<String>,
    /// The `--scenarios` file: its name and text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub named: Option<(String, String)>,
    /// The `--plan` file's plan, when one was given instead of the flags above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<crate::sweep::plan::Plan>,
    /// `--isolation`.
    pub isolation: crate::sweep::Isolation,
    /// `--workers`, when given.
    #[serde(default)]
    pub workers: Option<usize>,
}

impl JobRecord {
    /// The database the run read: `given` when there is one, else the stored URL, else
    /// (the stored one had a password, kept masked only) `env` when it is the same
    /// database. An error says what to pass.
    pub fn database_url(&self, given: Option<&str>, env: Option<&str>) -> Result<crate::db::DbUrl, String> {
        use crate::db::DbUrl;
        if let Some(url) = given {
            return DbUrl::parse(url).map_err(|e| e.to_string());
        }
        if !self.database.contains("***") {
            return DbUrl::parse(&self.database).map_err(|e| e.to_string());
        }
        match env.and_then(|t| DbUrl::parse(t).ok()) {
            Some(url) if url.masked() == self.database => Ok(url),
            _ => Err(format!(
                "the run read {}, whose password is not kept: give the full URL (--db, or DATABASE_URL)",
                self.database
            )),
        }
    }
}
