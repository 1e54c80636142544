//! Runs a sweep's shards on a Ray cluster, through the dashboard's job submission REST API.
//!
//! One sweep is one Ray job. [`run`] packs [`RayJob::files`] and the driver
//! (`runtime/ray/driver.py`) into a zip ([`package`]), uploads it to the cluster's GCS unless
//! it is there already, and submits `python3 driver.py <spec>` with the package as the job's
//! working directory. The driver starts one Ray task per shard, each running
//! `metaexec ... --shard I/N --out DIR` in the working directory, retries failed shards, and
//! prints each part (the shard's `--out` folder, zipped) into the job's log as base64 lines
//! ([`protocol`]). The coordinator polls the job's status and log, then reads the parts out
//! of the log, checks their SHA-256 and unpacks part I into `parts_dir/part-I` ([`unpack`]).
//!
//! Why the log carries the parts: the job API has no way to download a job's files, and the
//! cluster's nodes need not share a file system with the machine that submits. The log is
//! the one channel from the job back to us that needs nothing installed on either side.
//!
//! Only the dashboard's HTTP port is needed; no Ray installation on this side. reqwest stays
//! inside [`api`].

mod api;
mod package;
mod protocol;
mod unpack;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cancel::Cancel;
use api::{Dashboard, JobStatus};
use protocol::{DriverLog, DriverSpec, Progress};

/// The driver the job runs, shipped in the package as `driver.py`.
const DRIVER: &str = include_str!("../../runtime/ray/driver.py");
/// How often the job's status and log are read while it runs.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long a stopped job gets to reach `STOPPED` before we give up waiting.
const STOP_WAIT: Duration = Duration::from_secs(10);
/// Failed status reads in a row tolerated while a job runs (a dashboard restarting).
const POLL_FAILURES_TOLERATED: u32 = 6;
/// Log lines quoted in [`RayError::JobFailed`].
const LOG_TAIL_LINES: usize = 20;

/// A sweep's shards to run as one Ray job.
#[derive(Debug, Clone)]
pub struct RayJob {
    /// The Ray dashboard address, e.g. `http://127.0.0.1:8265` (`http://` is assumed when
    /// no scheme is given).
    pub address: String,
    /// What the job's working directory holds: name inside it (`/`-separated, relative) → a
    /// local file or folder (folders recursively, symlinks followed). `driver.py` is taken.
    pub files: Vec<(String, PathBuf)>,
    /// The metaexec to run on the workers: `None` runs `./metaexec` shipped in `files` (the
    /// driver makes it executable); `Some(path)` one installed on the workers.
    pub metaexec: Option<String>,
    /// Arguments after `metaexec` for every shard (paths relative to the working
    /// directory); the driver appends `--shard I/N --out DIR`, `I` counting from 0 and `DIR`
    /// an empty folder.
    pub args: Vec<String>,
    /// Environment for the shard processes. A relative value whose first component is a name
    /// in `files` (`METAEXEC_CACHE_DIR=cache`) is made absolute against the working directory
    /// on the worker; other values are passed as they are.
    pub env: Vec<(String, String)>,
    /// How many shards; one Ray task each.
    pub shards: usize,
    /// CPUs each task asks for (`num_cpus`); fractions are allowed.
    pub cpus_per_shard: f64,
    /// How many times a failed shard is tried again before the job reports it.
    pub max_retries: u32,
}

/// What [`run`] reports while it works.
#[derive(Debug, Clone, PartialEq)]
pub enum RayEvent {
    /// The package is being uploaded (it was not on the cluster yet).
    Uploading {
        /// Its size.
        bytes: u64,
    },
    /// The job was accepted.
    Submitted {
        /// Its submission id (`ray job logs <id>`).
        job_id: String,
    },
    /// The job's status changed (`PENDING`, `RUNNING`, ...), or another step worth a line.
    Status(String),
    /// A shard produced its part.
    ShardDone {
        /// The shard, from 0.
        index: usize,
        /// The attempt that succeeded, from 1.
        attempt: u32,
    },
    /// A shard's attempt failed and the shard runs again.
    ShardRetry {
        /// The shard, from 0.
        index: usize,
        /// The attempt that failed, from 1.
        attempt: u32,
        /// Why it failed (exit code, the end of its stderr).
        message: String,
    },
    /// Something the driver warns about (shards asking for more CPUs than any node has).
    Warning(String),
}

/// A shard that still failed after its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardFailure {
    /// The shard, from 0.
    pub index: usize,
    /// Attempts made.
    pub attempts: u32,
    /// Why the last one failed (exit code, the end of its stderr).
    pub message: String,
}

/// Why a Ray run failed.
#[derive(Debug, thiserror::Error)]
pub enum RayError {
    /// The job description cannot be run.
    #[error("Failed to start a Ray job: {reason}")]
    InvalidJob {
        /// What is wrong with it.
        reason: String,
    },
    /// No connection to the dashboard.
    #[error(
        "Failed to reach the Ray dashboard at `{address}`\n\
         hint: start a head with `ray start --head` and pass its dashboard address \
         (`http://127.0.0.1:8265` by default), or check the address and that the port is reachable"
    )]
    Unreachable {
        /// The address tried.
        address: String,
        /// What the connection attempt said.
        #[source]
        source: reqwest::Error,
    },
    /// A request failed after the connection was made (dropped, timed out).
    #[error("Failed to {what} at `{address}`\nhint: check that the Ray dashboard is still up, then run again")]
    Http {
        /// The step.
        what: &'static str,
        /// The dashboard address.
        address: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The dashboard answered with an error status.
    #[error("Failed to {what}: the Ray dashboard answered {status}: {body}\nhint: {hint}")]
    Api {
        /// The step.
        what: &'static str,
        /// The HTTP status.
        status: u16,
        /// The answer's body (shortened).
        body: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// A file to ship could not be read or the package not written.
    #[error("Failed to pack `{}` into the Ray job's package\nhint: check the file exists and is readable, and that the temp folder has room", path.display())]
    Package {
        /// The file or the package being written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The package exceeds what the dashboard accepts in one upload.
    #[error(
        "Failed to upload the Ray job's package: it is {} MiB, the dashboard accepts at most {} MiB\n\
         hint: ship less: install metaexec on the workers and set its path instead of shipping the binary, \
         or leave the runtime cache out and let the workers build it",
        bytes / (1 << 20), package::UPLOAD_LIMIT / (1 << 20)
    )]
    PackageTooLarge {
        /// The compressed package's size.
        bytes: u64,
    },
    /// The job ended `FAILED` without naming a failed shard: the driver itself failed.
    #[error(
        "Ray job `{job_id}` failed: {message}\nthe last lines of its log:\n{log_tail}\n\
         hint: {hint}; the whole log: `ray job logs --address {address} {job_id}`"
    )]
    JobFailed {
        /// The submission id.
        job_id: String,
        /// The dashboard address.
        address: String,
        /// Ray's status message.
        message: String,
        /// The last lines of the job's log.
        log_tail: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// Shards that still failed after their retries. The parts of the other shards were
    /// unpacked into the parts folder.
    #[error(
        "Ray job `{job_id}`: {} shard(s) failed after their retries:\n{}\n\
         hint: fix the cause shown above and run the failed shards again; the other shards' parts are in `{}`",
        failures.len(), failures.iter().map(|f| format!("  shard {} (after {} attempt(s)): {}", f.index, f.attempts, f.message.replace('\n', "\n    "))).collect::<Vec<_>>().join("\n"), parts_dir.display()
    )]
    ShardsFailed {
        /// The submission id.
        job_id: String,
        /// The failed shards, by index.
        failures: Vec<ShardFailure>,
        /// Where the other parts are.
        parts_dir: PathBuf,
    },
    /// A shard finished but its part is not in the job's log.
    #[error(
        "Failed to read part {index} from Ray job `{job_id}`: it is not in the job's log\n\
         hint: run the sweep again; if it recurs, look at `ray job logs {job_id}` for the driver's output"
    )]
    PartMissing {
        /// The submission id.
        job_id: String,
        /// The shard.
        index: usize,
    },
    /// A part in the log is damaged (bad base64, wrong checksum, not a zip).
    #[error(
        "Failed to read part {index} from Ray job `{job_id}`: {reason}\n\
         hint: run the sweep again; a damaged part means the job's log was cut or mixed with other output"
    )]
    PartCorrupt {
        /// The submission id.
        job_id: String,
        /// The shard.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A part holds a path that would leave its folder, or a symlink.
    #[error(
        "Refused to unpack part {index}: entry `{name}` {reason}\n\
         hint: parts hold plain files below their folder; check what the shard wrote into --out"
    )]
    UnsafePart {
        /// The shard.
        index: usize,
        /// The entry's name in the zip.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A part could not be written into the parts folder.
    #[error("Failed to unpack part {index} into `{}`\nhint: check the folder is writable and the disk has room", path.display())]
    Unpack {
        /// The shard.
        index: usize,
        /// The file or folder being written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The run was cancelled (or someone stopped the job).
    #[error("{}", stopped_message(job_id.as_deref(), *still_running))]
    Stopped {
        /// The submission id, when the job had been submitted.
        job_id: Option<String>,
        /// The job had not reached `STOPPED` when we stopped waiting.
        still_running: bool,
    },
}

fn stopped_message(job_id: Option<&str>, still_running: bool) -> String {
    match (job_id, still_running) {
        (None, _) => "The Ray run was cancelled before its job was submitted; nothing runs on the cluster".to_owned(),
        (Some(id), false) => format!("Ray job `{id}` was stopped; no parts were collected\nhint: run the sweep again"),
        (Some(id), true) => format!(
            "Ray job `{id}` was asked to stop but had not stopped after {} s\nhint: stop it with `ray job stop {id}`",
            STOP_WAIT.as_secs()
        ),
    }
}

/// Runs `job` on the cluster and unpacks part I into `parts_dir/part-I` (an existing one is
/// replaced). Returns the part folders in index order. `progress` hears each step; setting
/// `cancel` stops the job and returns [`RayError::Stopped`].
pub async fn run(
    job: &RayJob,
    parts_dir: &Path,
    progress: &(dyn Fn(RayEvent) + Send + Sync),
    cancel: &Cancel,
) -> Result<Vec<PathBuf>, RayError> {
    let spec = DriverSpec::new(job)?;
    let dashboard = Dashboard::new(&job.address)?;
    let version = dashboard.version().await?;
    progress(RayEvent::Status(format!("Ray {version} at {}", dashboard.address())));

    // Zipping reads the whole payload (the binary, the runtime cache): off the async threads.
    let files = job.files.clone();
    let building = tokio::task::spawn_blocking(move || package::build(&files, DRIVER));
    let package = tokio::select! {
        built = building => built.expect("packing the Ray job's files panicked")?,
        () = cancel.cancelled() => return Err(RayError::Stopped { job_id: None, still_running: false }),
    };
    if dashboard.package_exists(package.name()).await? {
        progress(RayEvent::Status(format!("package {} is already on the cluster", package.name())));
    } else {
        progress(RayEvent::Uploading { bytes: package.bytes() });
        tokio::select! {
            uploaded = dashboard.upload(&package) => uploaded?,
            () = cancel.cancelled() => return Err(RayError::Stopped { job_id: None, still_running: false }),
        }
    }
    let uri = package.uri();
    drop(package);

    let job_id = dashboard.submit(&spec.entrypoint(), &uri, job.shards).await?;
    progress(RayEvent::Submitted { job_id: job_id.clone() });

    let (info, mut seen) = watch(&dashboard, &job_id, progress, cancel).await?;
    let logs = dashboard.logs(&job_id).await?;
    // The progress lines printed after the last poll.
    seen.report(&logs, &mut |event| progress(event));
    let log = DriverLog::parse(&logs, job.shards).map_err(|(index, reason)| RayError::PartCorrupt {
        job_id: job_id.clone(),
        index,
        reason,
    })?;
    match info.status {
        JobStatus::Succeeded => {
            if let Some(index) = log.parts.iter().position(Option::is_none) {
                return Err(RayError::PartMissing { job_id, index });
            }
            unpack_parts(log.parts, parts_dir, &job_id).await
        }
        JobStatus::Failed if !log.failures.is_empty() => {
            unpack_parts(log.parts, parts_dir, &job_id).await?;
            Err(RayError::ShardsFailed { job_id, failures: log.failures, parts_dir: parts_dir.to_owned() })
        }
        JobStatus::Failed => {
            let (message, hint) = explain_failure(&info.message, &logs);
            Err(RayError::JobFailed {
                job_id,
                address: dashboard.address().to_owned(),
                message,
                log_tail: log_tail(&logs, LOG_TAIL_LINES),
                hint,
            })
        }
        JobStatus::Stopped => Err(RayError::Stopped { job_id: Some(job_id), still_running: false }),
        JobStatus::Pending | JobStatus::Running => unreachable!("watch returns terminal states only"),
    }
}

/// Polls the job until it ends, reporting status changes and the driver's progress lines;
/// stops it when `cancel` is set. Returns the final status and what was reported.
async fn watch(
    dashboard: &Dashboard,
    job_id: &str,
    progress: &(dyn Fn(RayEvent) + Send + Sync),
    cancel: &Cancel,
) -> Result<(api::JobInfo, Progress), RayError> {
    let mut last_status = None;
    let mut seen = Progress::default();
    let mut failures = 0;
    loop {
        if cancel.is_cancelled() {
            return Err(stop(dashboard, job_id).await);
        }
        let polled = async {
            let info = dashboard.info(job_id).await?;
            // Once the parts are being printed the log grows fast: the rest is read once, at
            // the end.
            if !seen.parts_begun() {
                let logs = dashboard.logs(job_id).await?;
                seen.report(&logs, &mut |event| progress(event));
            }
            Ok::<_, RayError>(info)
        };
        match polled.await {
            Ok(info) => {
                failures = 0;
                if last_status != Some(info.status) {
                    progress(RayEvent::Status(info.status.as_str().to_owned()));
                    last_status = Some(info.status);
                }
                if info.status.is_terminal() {
                    return Ok((info, seen));
                }
            }
            Err(e @ (RayError::Http { .. } | RayError::Unreachable { .. })) => {
                failures += 1;
                if failures > POLL_FAILURES_TOLERATED {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
        tokio::select! {
            () = tokio::time::sleep(POLL_INTERVAL) => {}
            () = cancel.cancelled() => {}
        }
    }
}

/// Asks the cluster to stop the job and waits (bounded) until it has.
async fn stop(dashboard: &Dashboard, job_id: &str) -> RayError {
    if let Err(e) = dashboard.stop(job_id).await {
        tracing::warn!("stopping Ray job {job_id}: {e}");
    }
    let deadline = tokio::time::Instant::now() + STOP_WAIT;
    while tokio::time::Instant::now() < deadline {
        if let Ok(info) = dashboard.info(job_id).await
            && info.status.is_terminal()
        {
            return RayError::Stopped { job_id: Some(job_id.to_owned()), still_running: false };
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    RayError::Stopped { job_id: Some(job_id.to_owned()), still_running: true }
}

/// Unpacks the parts there are into `parts_dir/part-I`, off the async threads.
async fn unpack_parts(parts: Vec<Option<Vec<u8>>>, parts_dir: &Path, job_id: &str) -> Result<Vec<PathBuf>, RayError> {
    let parts_dir = parts_dir.to_owned();
    let job_id = job_id.to_owned();
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&parts_dir).map_err(|source| RayError::Unpack {
            index: 0,
            path: parts_dir.clone(),
            source,
        })?;
        let mut folders = Vec::new();
        for (index, part) in parts.into_iter().enumerate() {
            let Some(bytes) = part else { continue };
            folders.push(unpack::unpack_part(&bytes, &parts_dir, index, &job_id)?);
        }
        Ok(folders)
    })
    .await
    .expect("unpacking the Ray job's parts panicked")
}

/// Ray's status message, and a hint for the failures we recognise in the log.
fn explain_failure(message: &str, logs: &str) -> (String, &'static str) {
    let hint = if logs.contains("No module named 'ray'") {
        "the cluster's `python3` has no ray: start the head from the environment ray is installed in \
         (`source venv/bin/activate && ray start --head`)"
    } else if logs.contains("METAEXEC_PARTS_BEGIN") {
        "the driver failed while printing the parts: the log may have hit a size limit"
    } else {
        "the driver (runtime/ray/driver.py) failed before it could report the shards; the log above says why"
    };
    (message.trim().to_owned(), hint)
}

/// The last `lines` lines of the log, base64 part lines left out.
fn log_tail(logs: &str, lines: usize) -> String {
    let kept: Vec<&str> = logs.lines().filter(|l| !l.starts_with("METAEXEC_PART ")).collect();
    kept[kept.len().saturating_sub(lines)..].iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_dashboard_says_how_to_start_one() {
        let job = RayJob {
            address: "127.0.0.1:9".into(),
            files: vec![],
            metaexec: Some("metaexec".into()),
            args: vec![],
            env: vec![],
            shards: 1,
            cpus_per_shard: 1.0,
            max_retries: 0,
        };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let parts = tempfile::tempdir().unwrap();
        let error = runtime.block_on(run(&job, parts.path(), &|_| {}, &Cancel::new())).unwrap_err();
        assert!(matches!(error, RayError::Unreachable { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("`http://127.0.0.1:9`") && message.contains("ray start --head"), "{message}");
    }

    #[test]
    fn the_log_tail_leaves_out_part_lines() {
        let logs = "a\nb\nMETAEXEC_PART 0 0 QUJD\nc\n";
        assert_eq!(log_tail(logs, 2), "  b\n  c");
    }

    #[test]
    fn a_missing_ray_module_gets_its_own_hint() {
        let (_, hint) = explain_failure("failed", "ModuleNotFoundError: No module named 'ray'\n");
        assert!(hint.contains("ray start --head"));
    }
}
