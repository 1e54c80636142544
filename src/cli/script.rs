//! The arguments every command that runs a script shares: the script, its parameters,
//! its limits, its results folder, its database and what it may do there; and the job
//! and sandbox they make.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::{Map, Value};

use super::capability::CapabilityArgs;
use super::db::DbArgs;
use super::note;
use crate::budget::{self, HostBudget};
use crate::db::DbProxy;
use crate::guest_db::DbHandle;
use crate::job::{self, Job, Limits};
use crate::outcome::{ErrorKind, OutcomeError};
use crate::sandbox::{SandboxOptions, WasiSandbox};

/// The script, its parameters, limits, results folder and database.
#[derive(Debug, Args)]
pub struct ScriptArgs {
    /// The Python script to run.
    pub script: PathBuf,

    /// A parameter for the script, read as `metaexec.params["KEY"]`. VALUE is parsed as
    /// JSON when it can be (numbers, true/false, null, lists, objects), as text otherwise.
    /// Repeatable; wins over --params-file.
    #[arg(long = "param", short = 'p', value_name = "KEY=VALUE")]
    pub params: Vec<String>,

    /// A JSON object of parameters.
    #[arg(long, value_name = "FILE")]
    pub params_file: Option<PathBuf>,

    /// Deterministic CPU budget in fuel units (about one per wasm instruction); the run
    /// stops with `fuel_exhausted` past it. Off by default: metering costs ~50% CPU.
    #[arg(long, value_name = "N")]
    pub fuel: Option<u64>,

    /// Wall-clock limit in seconds, including time blocked in sleeps and host calls.
    #[arg(long, value_name = "SECS", default_value_t = job::DEFAULT_TIMEOUT.as_secs_f64())]
    pub timeout: f64,

    /// Memory cap in MiB: the most linear memory one sandbox instance may grow to. Past
    /// it the script gets a MemoryError, or stops with `memory_limit`. In a sweep a warm
    /// instance runs many scenarios and its memory only grows, so the cap covers them
    /// together; `--isolation instance` gives each scenario its own instance and cap.
    #[arg(long, value_name = "MIB", default_value_t = job::DEFAULT_MEMORY_BYTES / (1024 * 1024))]
    pub memory: u64,

    /// Cap on each of the script's stdout and stderr, in bytes; past it the run stops
    /// with `output_limit`.
    #[arg(long, value_name = "BYTES", default_value_t = job::DEFAULT_OUTPUT_BYTES)]
    pub max_output: usize,

    /// Cap on everything the script reports with `result`/`emit`, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = job::DEFAULT_RESULTS_BYTES)]
    pub max_results: usize,

    /// Host memory budget in MiB: the most the script can make metaexec itself hold
    /// (decoded results, database rows and their snapshot, replies, a sweep's kept
    /// outcomes). Past it the run stops with `host_memory`, or the query is refused.
    #[arg(long, value_name = "MIB", default_value_t = budget::DEFAULT_HOST_MEMORY_BYTES / (1024 * 1024))]
    pub host_memory: usize,

    /// The folder the script sees as `/results` (its working directory and the only
    /// place it can write). Created if missing.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,

    /// Do not build the runtime if it is missing (or does not verify); fail with
    /// `runtime_missing`.
    #[arg(long)]
    pub no_fetch: bool,

    #[command(flatten)]
    pub(crate) db: DbArgs,

    #[command(flatten)]
    pub capability: CapabilityArgs,
}

impl ScriptArgs {
    /// The job these arguments describe, its database opened lazily.
    pub fn job(&self, cache_root: &Path) -> Result<Job, OutcomeError> {
        job_from_args(self, cache_root)
    }

    /// A sandbox on `cache_root`; `metaexec.log` lines go to stderr unless `quiet`;
    /// `many_instances` for a command that starts one fresh instance after another.
    pub fn sandbox(&self, cache_root: PathBuf, quiet: bool, many_instances: bool) -> WasiSandbox {
        let mut options = SandboxOptions::new(cache_root);
        options.many_instances = many_instances;
        options.auto_fetch = !self.no_fetch;
        options.progress = Arc::new(|line| note(&format!("metaexec: {line}")));
        options.on_log = Some(Arc::new(move |line| {
            if !quiet {
                note(&format!("[log] {line}"));
            }
        }));
        WasiSandbox::new(options)
    }
}

fn usage(message: String) -> OutcomeError {
    OutcomeError::new(ErrorKind::Usage, message)
}

fn job_from_args(args: &ScriptArgs, cache_root: &Path) -> Result<Job, OutcomeError> {
    let source = read_script(&args.script)?;
    let name = args.script.file_name().map_or_else(|| "script.py".to_owned(), |n| n.to_string_lossy().into_owned());
    let mut job = Job::new(name, source, args.results.clone());
    if let Some(file) = &args.params_file {
        job.params = read_params_file(file)?;
    }
    for param in &args.params {
        let (key, value) = parse_param(param)?;
        job.params.insert(key, value);
    }
    job.limits = Limits {
        fuel: args.fuel,
        stdout_bytes: args.max_output,
        stderr_bytes: args.max_output,
        results_bytes: args.max_results,
        ..limits(args.timeout, args.memory)?
    };
    if args.host_memory == 0 {
        return Err(usage("--host-memory must be at least 1 MiB".into()));
    }
    job.budget = HostBudget::new(args.host_memory.saturating_mul(1024 * 1024));
    let url = args.db.url(cache_root)?;
    // Opened on the script's first request: scripts that never read data never wait.
    let proxy = DbProxy::new(url, args.capability.capability()?).with_budget(job.budget.clone());
    job.db = Some(DbHandle::new(proxy));
    Ok(job)
}

/// The default limits with `--timeout` (seconds) and `--memory` (MiB), both checked.
pub(super) fn limits(timeout_secs: f64, memory_mib: u64) -> Result<Limits, OutcomeError> {
    if !(timeout_secs.is_finite() && timeout_secs > 0.0) {
        return Err(usage(format!("--timeout must be a positive number of seconds, got `{timeout_secs}`")));
    }
    if memory_mib == 0 {
        return Err(usage("--memory must be at least 1 MiB".into()));
    }
    Ok(Limits {
        timeout: Duration::from_secs_f64(timeout_secs),
        memory_bytes: memory_mib.saturating_mul(1024 * 1024),
        ..Limits::default()
    })
}

fn read_script(path: &Path) -> Result<String, OutcomeError> {
    let bytes = std::fs::read(path).map_err(|e| {
        usage(format!("Failed to read the script `{}`: {e}", path.display())).with_hint("check the path of the script")
    })?;
    String::from_utf8(bytes).map_err(|_| usage(format!("The script `{}` is not UTF-8 text", path.display())))
}

fn read_params_file(path: &Path) -> Result<Map<String, Value>, OutcomeError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("Failed to read the params file `{}`: {e}", path.display())))?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(usage(format!("The params file `{}` must hold a JSON object", path.display()))),
        Err(e) => Err(usage(format!("The params file `{}` is not valid JSON: {e}", path.display()))),
    }
}

/// Splits `KEY=VALUE`; VALUE is JSON if it parses as JSON, text otherwise.
pub fn parse_param(param: &str) -> Result<(String, Value), OutcomeError> {
    let Some((key, value)) = param.split_once('=') else {
        return Err(
            usage(format!("--param expects KEY=VALUE, got `{param}`")).with_hint("for example --param noi_change=-0.1")
        );
    };
    let key = key.trim();
    if key.is_empty() {
        return Err(usage(format!("--param `{param}` has an empty key")));
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((key.to_owned(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_parse_as_json_or_text() {
        assert_eq!(parse_param("x=-0.1").unwrap(), ("x".into(), serde_json::json!(-0.1)));
        assert_eq!(parse_param("name=West Oaks").unwrap(), ("name".into(), serde_json::json!("West Oaks")));
        assert_eq!(parse_param("l=[1,2]").unwrap(), ("l".into(), serde_json::json!([1, 2])));
        assert_eq!(parse_param("e=").unwrap(), ("e".into(), serde_json::json!("")));
        assert_eq!(parse_param("novalue").unwrap_err().kind, ErrorKind::Usage);
        assert_eq!(parse_param("=3").unwrap_err().kind, ErrorKind::Usage);
    }
}
