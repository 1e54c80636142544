//! The Docker backend, for scripts the WASI runtime cannot run: those that import
//! packages outside the standard library (pandas, numpy ...) and web applications.
//!
//! It talks to the engine through bollard, never through the docker CLI. A script runs in
//! an image made of a Python base image, its packages and the guest library
//! ([`image`]); in a container with the job's memory cap, a CPU share, a pids limit, a
//! read-only root with a small `/tmp`, no capabilities and no network ([`container`]);
//! and reaches the host, for its results and its data, over a unix socket mounted into
//! the container ([`proxy`]): the same session, caps, database capability and audit as in
//! the WASI sandbox, and no credential in the container. The outcome is the same contract
//! as a WASI run's, with `backend: "docker"`.

mod container;
mod engine;
mod image;
pub mod package;
mod proxy;
mod results;
mod web;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bollard::Docker;
use bollard::query_parameters::{ListContainersOptionsBuilder, ListImagesOptionsBuilder, RemoveImageOptionsBuilder};
use tokio::sync::OnceCell;

pub use container::{ContainerLimits, WEB_PORT};
pub use engine::{ENGINE_HINT, Unavailable, connect, engine_address};
pub use image::{BaseImageReport, DEFAULT_BASE_IMAGE, ENV_REPOSITORY, build as build_image, build_base_image};
pub use web::{APP_DB_ENV, AppRecord, Launch, WebApp, launch_detached, stop_recorded};

use crate::cancel::Cancel;
use crate::executor::Executor;
use crate::job::Job;
use crate::outcome::Outcome;
use crate::sandbox::LogSink;
use crate::sandbox::classify::{self, Ending, RunReport};
use crate::sandbox::session::{Session, SessionConfig};
use crate::validate::{self, BackendRequest};

/// The label every container and image of a run carries; its value names the run.
pub const LABEL: &str = "metaexec.run";

/// Where progress lines go (building an image, fetching packages).
pub type Progress = Arc<dyn Fn(&str) + Send + Sync>;

/// How the backend runs scripts.
#[derive(Clone)]
pub struct DockerOptions {
    /// Caches (package wheels) and the staging folders of runs live under here.
    pub cache_root: PathBuf,
    /// The base image.
    pub base_image: String,
    /// Docker's own limits.
    pub limits: ContainerLimits,
    /// Progress lines.
    pub progress: Progress,
    /// `metaexec.log` lines as they arrive.
    pub on_log: Option<LogSink>,
    /// Ctrl-C: the running container is killed.
    pub cancel: Option<Cancel>,
}

impl DockerOptions {
    /// Defaults: the local base image, default limits, progress nowhere.
    pub fn new(cache_root: impl Into<PathBuf>) -> Self {
        Self {
            cache_root: cache_root.into(),
            base_image: std::env::var("METAEXEC_BASE_IMAGE").unwrap_or_else(|_| DEFAULT_BASE_IMAGE.into()),
            limits: ContainerLimits::default(),
            progress: Arc::new(|_| {}),
            on_log: None,
            cancel: None,
        }
    }
}

/// Runs jobs in Docker containers.
pub struct DockerBackend {
    options: DockerOptions,
    client: OnceCell<Result<Docker, Unavailable>>,
}

/// A label value no other run of this machine uses.
pub fn run_label() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{}-{}-{}", now.as_millis(), std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

impl DockerBackend {
    /// A backend; the engine is reached on first use.
    pub fn new(options: DockerOptions) -> Self {
        Self { options, client: OnceCell::new() }
    }

    /// The engine, connected once.
    pub async fn client(&self) -> Result<&Docker, Unavailable> {
        self.client.get_or_init(connect).await.as_ref().map_err(Clone::clone)
    }

    /// The label of the runtime in outcomes.
    fn runtime_label(&self, python: &str) -> String {
        format!("CPython {python} (docker: {})", self.options.base_image)
    }

    /// The image `job`'s script runs in, built when missing, and the base's Python.
    async fn image(&self, docker: &Docker, job: &Job, run: &str) -> Result<(String, String), Unavailable> {
        let base = image::base(docker, &self.options.base_image, &self.options.progress).await?;
        let packages = packages(job);
        let tag =
            image::environment(docker, &base, &packages, &self.options.cache_root, run, &self.options.progress).await?;
        Ok((tag, base.python))
    }

    /// Runs a console script to its end.
    pub async fn run(&self, job: &Job) -> Outcome {
        let docker = match self.client().await {
            Ok(docker) => docker,
            Err(e) => return Outcome::failed_before_start(e.to_outcome_error(), "docker"),
        };
        let run = run_label();
        let (tag, python) = match self.image(docker, job, &run).await {
            Ok(found) => found,
            Err(e) => return Outcome::failed_before_start(e.to_outcome_error(), "docker"),
        };
        let mut outcome = match self.run_in(docker, job, &tag, &run).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::failed_before_start(
                crate::outcome::OutcomeError::new(
                    crate::outcome::ErrorKind::BackendUnavailable,
                    format!("The Docker engine failed the run: {e:#}"),
                )
                .with_hint(ENGINE_HINT),
                "docker",
            ),
        };
        outcome.runtime = self.runtime_label(&python);
        outcome
    }

    /// The session a container's script reports into, and the socket it reaches it over.
    /// With `capture`, the container's output is held under the job's caps too (a web
    /// app's goes to its log file instead).
    fn host_side(
        &self,
        job: &Job,
        staging: &container::Staging,
        capture: bool,
    ) -> std::io::Result<(Session, proxy::Proxy)> {
        let session = Session::new(SessionConfig {
            stdout_cap: if capture { job.limits.stdout_bytes } else { 0 },
            stderr_cap: if capture { job.limits.stderr_bytes } else { 0 },
            results_cap: job.limits.results_bytes,
            on_log: self.options.on_log.clone(),
            db: job.db.clone(),
            sweep: None,
            budget: job.budget.clone(),
        });
        let hello = proxy::Hello { params: job.params.clone(), seed: job.seed };
        let socket = container::Staging::socket_path(&staging.root);
        let proxy = proxy::serve(&socket, session.clone(), hello, job.limits.results_bytes)?;
        Ok((session, proxy))
    }

    async fn run_in(&self, docker: &Docker, job: &Job, tag: &str, run: &str) -> anyhow::Result<Outcome> {
        let owner = container::container_user();
        let staging =
            container::Staging::create(staging_root(&self.options.cache_root, run), &job.source, Some(owner))?;
        let (session, proxy) = self.host_side(job, &staging, true)?;
        let spec =
            container::Spec { image: tag, job, staging: &staging, run, limits: self.options.limits, web_port: None };
        let guard = container::create(docker, &spec).await?;
        let mut on_output = |stderr: bool, bytes: &[u8]| {
            let mut state = session.lock();
            if stderr { state.write_stderr(bytes).is_ok() } else { state.write_stdout(bytes).is_ok() }
        };
        let watch = container::Watch {
            timeout: job.limits.timeout,
            on_output: &mut on_output,
            stopped: &proxy.stopped,
            cancel: self.options.cancel.as_ref(),
        };
        let ended = container::run(docker, &guard.id, watch).await;
        guard.remove().await;
        drop(proxy);
        let ended = ended?;
        let sanitized = results::copy_out(&staging.results(), &job.results_dir)?;
        drop(staging);
        let ending = match ended.end {
            container::End::Exited(code) => exit_ending(code),
            container::End::Deadline => Ending::Deadline,
            // The session recorded why; the classification reads it from there.
            container::End::Stopped => Ending::Exited(125),
            container::End::Cancelled => Ending::Host("interrupted".into()),
        };
        let outcome = container_outcome(&session, job, ending, ended.oom_killed, ended.wall, sanitized);
        Ok(outcome)
    }
}

/// How a container that exited by itself with `code` ended, as the classification reads it.
fn exit_ending(code: i64) -> Ending {
    if code == 0 { Ending::Returned } else { Ending::Exited(i32::try_from(code).unwrap_or(1)) }
}

/// The outcome of a container that ended: how, whether the kernel killed it for its
/// memory, and what its session recorded, classified as a WASI run's is.
fn container_outcome(
    session: &Session,
    job: &Job,
    ending: Ending,
    oom_killed: bool,
    wall: std::time::Duration,
    sanitized: Vec<crate::guest_dir::Sanitized>,
) -> Outcome {
    let mut state = session.lock();
    let mut outcome = classify::outcome(RunReport {
        ending,
        state: &mut state,
        memory_hit: oom_killed,
        peak_memory: 0,
        fuel_used: None,
        job,
        wall,
        runtime: String::new(),
    });
    outcome.backend = "docker".into();
    outcome.sanitized = sanitized;
    outcome
}

/// The longest socket path a unix socket takes (`sun_path`, with its terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Where a run's staging folder goes: under the cache, unless the socket's path there
/// would be too long for a unix socket, then under the system's temporary folder.
fn staging_root(cache_root: &std::path::Path, run: &str) -> PathBuf {
    let root = cache_root.join("docker").join("runs").join(run);
    let socket = container::Staging::socket_path(&root);
    if socket.as_os_str().len() <= MAX_SOCKET_PATH {
        root
    } else {
        std::env::temp_dir().join("metaexec-runs").join(run)
    }
}

/// The packages `job`'s script imports, as `requirements.txt` names them.
pub fn packages(job: &Job) -> Vec<String> {
    validate::choose_backend(&job.source, &job.script_name, BackendRequest::Docker).packages
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache deep in the file system still gets a socket path a unix socket takes.
    #[test]
    fn a_long_cache_path_moves_the_staging_folder_where_the_socket_fits() {
        let short = staging_root(std::path::Path::new("/home/me/.cache/metaexec"), "1-2-3");
        assert!(short.starts_with("/home/me/.cache/metaexec"));
        let deep = format!("/{}", "deep/".repeat(30));
        let moved = staging_root(std::path::Path::new(&deep), "1-2-3");
        assert!(moved.starts_with(std::env::temp_dir()), "{}", moved.display());
    }
}

#[async_trait]
impl Executor for DockerBackend {
    fn backend(&self) -> &'static str {
        "docker"
    }

    async fn execute(&self, job: &Job) -> Outcome {
        self.run(job).await
    }
}

/// What `metaexec docker prune` removed.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct PruneReport {
    /// Containers, by name.
    pub containers: Vec<String>,
    /// Images, by tag or id.
    pub images: Vec<String>,
}

/// Removes every container that carries [`LABEL`], every untagged image that does, and,
/// with `images`, the environment images too (they are rebuilt on demand). Base images
/// stay.
pub async fn prune(docker: &Docker, images: bool) -> anyhow::Result<PruneReport> {
    let mut report = PruneReport::default();
    let filters = std::collections::HashMap::from([("label", vec![LABEL])]);
    let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    for summary in docker.list_containers(Some(options)).await? {
        let Some(id) = summary.id else { continue };
        container::kill(docker, &id).await;
        let name = summary.names.and_then(|n| n.first().cloned()).unwrap_or_else(|| id.clone());
        docker
            .remove_container(
                &id,
                Some(bollard::query_parameters::RemoveContainerOptionsBuilder::default().force(true).build()),
            )
            .await?;
        report.containers.push(name.trim_start_matches('/').to_owned());
    }
    let options = ListImagesOptionsBuilder::default().all(true).filters(&filters).build();
    for summary in docker.list_images(Some(options)).await? {
        let tags: Vec<&String> = summary.repo_tags.iter().filter(|t| t.as_str() != "<none>:<none>").collect();
        let is_env = tags.iter().any(|t| t.starts_with(&format!("{ENV_REPOSITORY}:")));
        if summary.labels.get(LABEL).is_some_and(|v| v == "base") || !(tags.is_empty() || (images && is_env)) {
            continue;
        }
        let options = RemoveImageOptionsBuilder::default().force(true).build();
        match docker.remove_image(&summary.id, Some(options), None).await {
            Ok(_) => report.images.push(tags.first().map_or_else(|| summary.id.clone(), |t| t.to_string())),
            Err(e) if engine::is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(report)
}
