//! Web apps in containers: a script that serves (Flask, any WSGI app, a server it starts
//! itself) runs in a container published on a loopback port only, with a health check;
//! the host keeps its database socket open for as long as it serves, and writes what the
//! app prints to a log file instead of holding it. It ends when it is stopped (Ctrl-C in
//! the foreground, `metaexec runs stop ID` for one left running), and is then removed like
//! any run's container.
//!
//! A detached app is served by a `metaexec docker serve-app DIR` process of its own, which
//! outlives the command that started it: `DIR/launch.json` says what to serve, and
//! `DIR/app.json` ([`AppRecord`]) what became of it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerState, HealthStatusEnum};
use bollard::query_parameters::StopContainerOptionsBuilder;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::container::{self, Guard, Staging};
use super::proxy::Proxy;
use super::{DockerBackend, ENGINE_HINT, run_label};
use crate::cancel::Cancel;
use crate::job::Job;
use crate::outcome::{ErrorKind, Outcome, OutcomeError};
use crate::sandbox::classify::Ending;
use crate::sandbox::session::Session;

/// The most an app's log file grows to; past it, output is dropped (and the file says so).
const LOG_CAP: u64 = 16 * 1024 * 1024;

/// A web app that is serving.
pub struct WebApp {
    docker: Docker,
    guard: Guard,
    _proxy: Proxy,
    staging: Staging,
    session: Session,
    job: Job,
    started: Instant,
    logging: tokio::task::JoinHandle<()>,
    /// Where it is served: `http://127.0.0.1:PORT/`.
    pub url: String,
    /// The container's id.
    pub container: String,
    /// The file the app's output goes to.
    pub log: PathBuf,
}

/// A free port on loopback, for the app to be published on.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

fn failed(message: String, hint: &str) -> Box<Outcome> {
    Box::new(Outcome::failed_before_start(
        OutcomeError::new(ErrorKind::BackendUnavailable, message).with_hint(hint),
        "docker",
    ))
}

impl DockerBackend {
    /// Starts `job`'s script as a web app and waits until it answers its health check (or
    /// fails, or `job.limits.timeout` passes); its output goes to `log`. Its socket and log
    /// are served by tasks of the calling runtime, which must keep running while the app
    /// serves (a multi-thread runtime, or one driving [`WebApp::until_stopped`]).
    pub async fn serve(&self, job: &Job, log: &Path) -> Result<WebApp, Box<Outcome>> {
        let docker =
            self.client().await.map_err(|e| Box::new(Outcome::failed_before_start(e.to_outcome_error(), "docker")))?;
        let run = run_label();
        let (tag, _python) = self
            .image(docker, job, &run)
            .await
            .map_err(|e| Box::new(Outcome::failed_before_start(e.to_outcome_error(), "docker")))?;
        let engine_failed =
            |e: &dyn std::fmt::Display| failed(format!("The Docker engine failed the app: {e}"), ENGINE_HINT);
        let staging = Staging::create(
            super::staging_root(&self.options.cache_root, &run),
            &job.source,
            Some(container::container_user()),
        )
        .map_err(|e| engine_failed(&e))?;
        let (session, proxy) = self.host_side(job, &staging, false).map_err(|e| engine_failed(&e))?;
        let port = free_port().map_err(|e| engine_failed(&e))?;
        let spec = container::Spec {
            image: &tag,
            job,
            staging: &staging,
            run: &run,
            limits: self.options.limits,
            web_port: Some(port),
        };
        let guard = container::create(docker, &spec).await.map_err(|e| engine_failed(&e))?;
        let output = container::attach(docker, &guard.id).await.map_err(|e| engine_failed(&e))?;
        let file = std::fs::File::create(log).map_err(|e| engine_failed(&e))?;
        let logging = tokio::spawn(write_log(output, file));
        docker.start_container(&guard.id, None).await.map_err(|e| engine_failed(&e))?;
        let started = Instant::now();
        let container = guard.id.clone();
        let app = WebApp {
            docker: docker.clone(),
            guard,
            _proxy: proxy,
            staging,
            session,
            job: job.clone(),
            started,
            logging,
            url: format!("http://127.0.0.1:{port}/"),
            container,
            log: log.to_owned(),
        };
        let deadline = started + job.limits.timeout;
        loop {
            let state = docker.inspect_container(&app.container, None).await.map_err(|e| engine_failed(&e))?;
            let state = state.state.unwrap_or_default();
            if !state.running.unwrap_or(false) {
                // It ended before it served: its outcome says why (a traceback, a limit).
                let mut outcome = app.finish(&state).await;
                if outcome.is_ok() {
                    outcome.status = crate::outcome::Status::Error;
                    outcome.error = Some(
                        OutcomeError::new(ErrorKind::GuestException, "The web app ended before it served a page")
                            .with_hint("a web app must keep serving: define a WSGI `app` or start a server"),
                    );
                }
                return Err(Box::new(outcome));
            }
            if state.health.and_then(|h| h.status) == Some(HealthStatusEnum::HEALTHY) {
                return Ok(app);
            }
            if Instant::now() > deadline {
                let mut outcome = app.stop().await;
                outcome.status = crate::outcome::Status::Error;
                outcome.error = Some(
                    OutcomeError::new(
                        ErrorKind::Timeout,
                        format!(
                            "The web app did not answer its health check within {:.0} s",
                            job.limits.timeout.as_secs_f64()
                        ),
                    )
                    .with_hint(
                        "serve on 0.0.0.0:$METAEXEC_PORT (a WSGI `app` is served there by itself), or raise --timeout",
                    ),
                );
                return Err(Box::new(outcome));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl WebApp {
    /// Serves until the container ends by itself or `cancel` is set (then it is stopped),
    /// and returns the run's outcome.
    pub async fn until_stopped(self, cancel: Option<&Cancel>) -> Outcome {
        let mut wait = self.docker.wait_container(&self.container, None);
        let stop = tokio::select! {
            _ = wait.next() => false,
            () = container::cancelled(cancel) => true,
        };
        drop(wait);
        if stop { self.stop().await } else { self.ended().await }
    }

    /// Stops the app (SIGTERM, then SIGKILL after 5 s) and returns its outcome.
    pub async fn stop(self) -> Outcome {
        let _ = self
            .docker
            .stop_container(&self.container, Some(StopContainerOptionsBuilder::default().t(5).build()))
            .await;
        self.ended().await
    }

    /// The outcome of the app once its container has ended, as the engine reports it.
    async fn ended(self) -> Outcome {
        let state =
            self.docker.inspect_container(&self.container, None).await.ok().and_then(|c| c.state).unwrap_or_default();
        self.finish(&state).await
    }

    /// Removes the container, copies its results out and classifies how it ended.
    async fn finish(self, state: &ContainerState) -> Outcome {
        let WebApp { guard, staging, session, job, started, logging, log, .. } = self;
        guard.remove().await;
        let _ = logging.await;
        let sanitized = super::results::copy_out(&staging.results(), &job.results_dir).unwrap_or_default();
        drop(staging);
        let ending = match state.exit_code.unwrap_or(-1) {
            // 143: stopped by SIGTERM before the app's own handler ran.
            143 => Ending::Returned,
            code => super::exit_ending(code),
        };
        let oom_killed = state.oom_killed.unwrap_or(false);
        let mut outcome = super::container_outcome(&session, &job, ending, oom_killed, started.elapsed(), sanitized);
        if let Ok(text) = std::fs::read_to_string(&log) {
            // The tail, where a failure's traceback is.
            let start = text.len().saturating_sub(8192);
            let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
            outcome.stderr = text[start..].to_owned();
        }
        outcome
    }
}

async fn write_log(mut output: container::Output, file: std::fs::File) {
    let mut file = std::io::BufWriter::new(file);
    let mut written = 0u64;
    while let Some(Ok(item)) = output.next().await {
        let bytes = match &item {
            LogOutput::StdOut { message } | LogOutput::StdErr { message } | LogOutput::Console { message } => message,
            LogOutput::StdIn { .. } => continue,
        };
        if written + bytes.len() as u64 > LOG_CAP {
            let _ = file.write_all(b"\n[metaexec: the log reached its cap; later output is dropped]\n");
            break;
        }
        written += bytes.len() as u64;
        let _ = file.write_all(bytes).and_then(|()| file.flush());
    }
}

/// What a detached app's host process says of it, in `DIR/app.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppRecord {
    /// `starting`, `serving`, `failed` or `stopped`.
    pub status: String,
    /// Where it is served, once it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The container's id, once it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The host process serving its socket.
    pub pid: u32,
    /// Its outcome, once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Box<Outcome>>,
}

impl AppRecord {
    /// The record in `dir`, if there is one.
    pub fn read(dir: &Path) -> Option<Self> {
        serde_json::from_str(&std::fs::read_to_string(dir.join("app.json")).ok()?).ok()
    }

    /// Writes the record into `dir` (whole, by rename).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let temp = dir.join(".app.json.tmp");
        std::fs::write(&temp, serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
        std::fs::rename(temp, dir.join("app.json"))
    }
}

/// Stops the app recorded in `dir`: its container is stopped, after which its host process
/// copies its results out, records its outcome and ends. Waits up to `wait` for that.
pub async fn stop_recorded(docker: &Docker, dir: &Path, wait: Duration) -> anyhow::Result<AppRecord> {
    let record = AppRecord::read(dir).ok_or_else(|| anyhow::anyhow!("no web app was started in {}", dir.display()))?;
    if matches!(record.status.as_str(), "stopped" | "failed") {
        return Ok(record);
    }
    if let Some(container) = &record.container {
        let options = StopContainerOptionsBuilder::default().t(5).build();
        if let Err(e) = docker.stop_container(container, Some(options)).await
            && !super::engine::is_not_found(&e)
        {
            anyhow::bail!("could not stop the container {container}: {e}");
        }
    }
    let deadline = Instant::now() + wait;
    loop {
        let now = AppRecord::read(dir).unwrap_or_default();
        if matches!(now.status.as_str(), "stopped" | "failed") || Instant::now() > deadline {
            return Ok(now);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a detached app's host process serves, in `DIR/launch.json`. The database's
/// address is not in it: it goes to the process in its environment
/// ([`APP_DB_ENV`]), so no credential is written to disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Launch {
    /// The script, its parameters, limits and results folder.
    pub job: Job,
    /// What the script may do in the database.
    pub capability: crate::db::Capability,
    /// The host memory budget, in bytes.
    pub host_memory_bytes: usize,
    /// The base image.
    pub base_image: String,
}

/// The environment variable that carries a detached app's database address.
pub const APP_DB_ENV: &str = "METAEXEC_APP_DB";

/// Starts a detached app: a `metaexec docker serve-app DIR` process of its own (its own
/// process group, so Ctrl-C on this command leaves it be) serves `launch`, and this
/// returns once the app serves or has failed, with its record.
pub async fn launch_detached(
    dir: &Path,
    launch: &Launch,
    db_url: Option<&str>,
    progress: &super::Progress,
) -> anyhow::Result<AppRecord> {
    use anyhow::Context as _;
    use std::os::unix::process::CommandExt as _;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("launch.json"), serde_json::to_vec_pretty(launch)?)?;
    let _ = std::fs::remove_file(dir.join("app.json"));
    let log = std::fs::File::create(dir.join("host.log"))?;
    let mut command = std::process::Command::new(std::env::current_exe().context("finding the metaexec binary")?);
    command.args(["docker", "serve-app"]).arg(dir).stdin(std::process::Stdio::null());
    command.stdout(log.try_clone()?).stderr(log).process_group(0);
    match db_url {
        Some(url) => command.env(APP_DB_ENV, url),
        None => command.env_remove(APP_DB_ENV),
    };
    let mut child = command.spawn().context("starting the app's host process")?;
    progress("starting the web app (its image may need building first)");
    loop {
        if let Some(record) = AppRecord::read(dir).filter(|r| r.status != "starting") {
            // The host process goes on serving; it is not this process's child to wait for.
            std::mem::forget(child);
            return Ok(record);
        }
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(dir.join("host.log")).unwrap_or_default();
            anyhow::bail!("the app's host process ended ({status}) before the app served: {}", log.trim());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
