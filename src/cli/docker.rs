//! `metaexec docker base-image|prune`, and the backend options of the commands that run
//! scripts (`--backend`, `--base-image`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::check::BackendArg;
use super::note;
use crate::docker::{self, DEFAULT_BASE_IMAGE, DockerBackend, DockerOptions};
use crate::validate::{self, Backend, BackendChoice, BackendRequest};

/// Where a script runs, for the commands that run one.
#[derive(Debug, Clone, Args)]
pub struct BackendArgs {
    /// Where the script runs: `auto` takes the validator's choice (the WASI sandbox when
    /// every import is in its runtime, Docker for other packages or a web app); `wasi`
    /// and `docker` insist.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,

    /// The Docker backend's base image: one with python3 and pip. Defaults to the one
    /// `metaexec docker base-image` builds here; `python:3.12-slim` where a registry is
    /// reachable.
    #[arg(long, value_name = "IMAGE", env = "METAEXEC_BASE_IMAGE", default_value = DEFAULT_BASE_IMAGE)]
    pub base_image: String,
}

impl BackendArgs {
    /// The backend for `source` and why.
    pub fn choose(&self, source: &str, file_name: &str) -> BackendChoice {
        validate::choose_backend(source, file_name, BackendRequest::from(self.backend))
    }

    /// A Docker backend with these options; `metaexec.log` lines to stderr unless `quiet`.
    pub fn docker(&self, cache_root: &Path, quiet: bool) -> DockerBackend {
        let mut options = DockerOptions::new(cache_root);
        options.base_image = self.base_image.clone();
        options.progress = Arc::new(|line| note(&format!("metaexec: {line}")));
        options.on_log = Some(Arc::new(move |line| {
            if !quiet {
                note(&format!("[log] {line}"));
            }
        }));
        DockerBackend::new(options)
    }
}

/// Tells the person which backend runs the script and why.
pub fn announce(choice: &BackendChoice) {
    let packages = if choice.packages.is_empty() { String::new() } else { format!(" [{}]", choice.packages.join(" ")) };
    note(&format!("backend: {}{packages}: {}", choice.backend, choice.reason));
}

/// Whether the choice is Docker.
pub fn is_docker(choice: &BackendChoice) -> bool {
    choice.backend == Backend::Docker
}

/// Docker subcommands.
#[derive(Debug, Subcommand)]
pub enum DockerCommand {
    /// Build a Python base image from Debian packages (debootstrap minbase with python3,
    /// pip and CA certificates), with no registry: about 2 minutes once, then reused.
    /// Needs root and `debootstrap`.
    ///
    /// Examples:
    ///   metaexec docker base-image
    ///   metaexec docker base-image --mirror http://deb.debian.org/debian --rebuild
    #[command(verbatim_doc_comment)]
    BaseImage {
        /// The tag to give it.
        #[arg(long, default_value = DEFAULT_BASE_IMAGE)]
        tag: String,
        /// The Debian release.
        #[arg(long, default_value = "bookworm")]
        suite: String,
        /// The Debian mirror.
        #[arg(long, default_value = "http://deb.debian.org/debian")]
        mirror: String,
        /// Build it again even if it exists.
        #[arg(long)]
        rebuild: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Serve the web app described in DIR/launch.json until it is stopped (the process
    /// `metaexec run` leaves serving a dashboard; `metaexec runs stop ID` ends it).
    #[command(hide = true)]
    ServeApp {
        /// The app's folder in its run folder.
        dir: PathBuf,
    },
    /// Remove what runs left behind: every container labelled `metaexec.run`, untagged
    /// images so labelled and, with --images, the package images (rebuilt on demand).
    /// Base images stay.
    Prune {
        /// Also remove the images that hold scripts' packages.
        #[arg(long)]
        images: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command; returns the exit code.
pub fn run(command: DockerCommand, cache_root: &Path) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error[internal]: failed to start the async runtime: {e}");
            return 2;
        }
    };
    if let DockerCommand::ServeApp { dir } = &command {
        return runtime.block_on(serve_app(dir, cache_root));
    }
    runtime.block_on(async {
        let docker = match docker::connect().await {
            Ok(docker) => docker,
            Err(e) => {
                eprintln!("error[backend_unavailable]: {}", e.message);
                eprintln!("hint: {}", e.hint);
                return 2;
            }
        };
        match command {
            DockerCommand::BaseImage { tag, suite, mirror, rebuild, json } => {
                let work: PathBuf = cache_root.join("docker").join("base-image");
                let progress: docker::Progress = Arc::new(|line| note(&format!("metaexec: {line}")));
                match docker::build_base_image(&docker, &tag, &suite, &mirror, &work, rebuild, &progress).await {
                    Ok(report) => {
                        if json {
                            println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
                        } else if report.built {
                            println!("built {} (Python {})", report.tag, report.python);
                        } else {
                            println!("{} is there already (Python {}); --rebuild builds it again", report.tag, report.python);
                        }
                        0
                    }
                    Err(e) => {
                        eprintln!("error[backend_unavailable]: {e:#}");
                        eprintln!("hint: run as root with debootstrap installed (`apt-get install debootstrap`), or use --base-image python:3.12-slim where a registry is reachable");
                        2
                    }
                }
            }
            DockerCommand::ServeApp { .. } => unreachable!("served above"),
            DockerCommand::Prune { images, json } => match docker::prune(&docker, images).await {
                Ok(report) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
                    } else {
                        println!(
                            "removed {} container(s) and {} image(s)",
                            report.containers.len(),
                            report.images.len()
                        );
                        for name in report.containers.iter().chain(&report.images) {
                            println!("  {name}");
                        }
                    }
                    0
                }
                Err(e) => {
                    eprintln!("error[backend_unavailable]: pruning failed: {e:#}");
                    2
                }
            },
        }
    })
}

/// Serves a detached web app until its container ends, recording what becomes of it in
/// `dir/app.json`.
async fn serve_app(dir: &Path, cache_root: &Path) -> i32 {
    let pid = std::process::id();
    let record = |record: &docker::AppRecord| {
        if let Err(e) = record.write(dir) {
            eprintln!("metaexec: could not write {}: {e}", dir.join("app.json").display());
        }
    };
    record(&docker::AppRecord { status: "starting".into(), pid, ..Default::default() });
    let launch: docker::Launch = match std::fs::read_to_string(dir.join("launch.json"))
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
    {
        Ok(launch) => launch,
        Err(e) => {
            eprintln!("metaexec: no app to serve in {}: {e}", dir.display());
            record(&docker::AppRecord { status: "failed".into(), pid, ..Default::default() });
            return 2;
        }
    };
    let mut job = launch.job;
    job.budget = crate::budget::HostBudget::new(launch.host_memory_bytes);
    if let Ok(address) = std::env::var(docker::APP_DB_ENV) {
        match crate::db::url::DbUrl::parse(&address) {
            Ok(url) => {
                let proxy = crate::db::DbProxy::new(url, launch.capability).with_budget(job.budget.clone());
                job.db = Some(crate::guest_db::DbHandle::new(proxy));
            }
            Err(e) => eprintln!("metaexec: the app's database address does not parse: {e}"),
        }
    }
    let mut options = DockerOptions::new(cache_root);
    options.base_image = launch.base_image;
    options.progress = Arc::new(|line| eprintln!("metaexec: {line}"));
    let backend = DockerBackend::new(options);
    // SIGTERM (and Ctrl-C) stop the app; its outcome is still recorded.
    let cancel = crate::cancel::Cancel::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else { return };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        on_signal.cancel();
    });
    match backend.serve(&job, &dir.join("app.log")).await {
        Ok(app) => {
            let serving = docker::AppRecord {
                status: "serving".into(),
                url: Some(app.url.clone()),
                container: Some(app.container.clone()),
                pid,
                outcome: None,
            };
            record(&serving);
            let outcome = app.until_stopped(Some(&cancel)).await;
            let code = outcome.process_exit_code();
            record(&docker::AppRecord { status: "stopped".into(), outcome: Some(Box::new(outcome)), ..serving });
            code
        }
        Err(outcome) => {
            let code = outcome.process_exit_code();
            record(&docker::AppRecord { status: "failed".into(), pid, outcome: Some(outcome), ..Default::default() });
            code
        }
    }
}
