//! `metaexec exec`: one script, one sandboxed run, one outcome.

use std::path::{Path, PathBuf};

use clap::Args;

use super::docker::{BackendArgs, announce, is_docker};
use super::record::{self, Recorder};
use super::render;
use super::script::ScriptArgs;
use crate::docker::package::{self, PackageSpec};
use crate::job::Job;
use crate::outcome::{ErrorKind, Outcome, OutcomeError, ParamsRead, quoted};
use crate::report::run_page::PageInputs;
use crate::store::{RunKind, RunStatus};

/// Arguments of `metaexec exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub script: ScriptArgs,

    /// Print one JSON object (the outcome) on stdout instead of tables.
    #[arg(long)]
    pub json: bool,

    /// Seed Python's `random` with N, so the run (its fuel use too) repeats exactly
    /// [default: a fresh seed every run].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    #[command(flatten)]
    pub backend: BackendArgs,

    /// Also write the script as a package to run by hand with Docker into DIR: the
    /// script, requirements.txt, Dockerfile, docker-compose.yml, deploy.sh,
    /// .env.example, README.md and the guest library.
    #[arg(long, value_name = "DIR")]
    pub package: Option<PathBuf>,
}

/// Runs the command; returns the exit code.
pub fn run(args: ExecArgs, cache_root: PathBuf, runs: &Path) -> i32 {
    let mut given = Vec::new();
    let mut recorded = None;
    let outcome = match args.script.job(&cache_root) {
        Ok(mut job) => {
            job.seed = args.seed;
            given = job.params.keys().cloned().collect();
            let record =
                record::job_record(RunKind::Exec, &args.script, args.backend.backend.into(), &job, &cache_root);
            let recorder = Recorder::start(runs, RunKind::Exec, &job, &record);
            recorded = Some((job.clone(), recorder));
            let choice = args.backend.choose(&job.source, &job.script_name);
            if !args.json {
                announce(&choice);
            }
            let docker = is_docker(&choice);
            if let Some(dir) = &args.package {
                let spec = PackageSpec::new(&job, &choice, &args.backend.base_image);
                match package::write(dir, &spec) {
                    Ok(_) => super::note(&format!("metaexec: packaged the script into {}", dir.display())),
                    Err(e) => super::note(&format!("warning: could not write the package into {}: {e}", dir.display())),
                }
            }
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) if docker && choice.serves_web => runtime.block_on(serve(&args, &cache_root, &job)),
                Ok(runtime) if docker => runtime.block_on(args.backend.docker(&cache_root, args.json).run(&job)),
                Ok(runtime) => runtime.block_on(args.script.sandbox(cache_root, args.json, false).run(&job)),
                Err(e) => Outcome::failed_before_start(
                    OutcomeError::new(ErrorKind::Internal, format!("Failed to start the async runtime: {e}")),
                    "wasi",
                ),
            }
        }
        Err(error) => Outcome::failed_before_start(error, "wasi"),
    };
    if let Some((job, Some(recorder))) = recorded {
        finish_record(recorder, &job, &outcome);
    }
    if args.json {
        render::json(&outcome);
    } else {
        render::human(&outcome);
    }
    if let Some(warning) = unread_warning(&given, outcome.params_read.as_ref()) {
        super::note(&warning);
    }
    outcome.process_exit_code()
}

/// Writes the outcome and its results into the run folder and finishes the record.
pub(super) fn finish_record(recorder: Recorder, job: &Job, outcome: &Outcome) {
    recorder.write_json("outcome.json", outcome);
    recorder.write_json("results.json", &outcome.results);
    let status = if outcome.is_ok() { RunStatus::Ok } else { RunStatus::Failed };
    let page = PageInputs {
        outcome: Some(outcome),
        script: Some(&job.source),
        limits: Some(&job.limits),
        params: Some(&job.params),
        ..PageInputs::empty()
    };
    recorder.finish(
        status,
        outcome.error.as_ref().map(|e| e.kind.as_str().to_owned()),
        crate::store::entry::headline(&outcome.results),
        page,
    );
}

/// Serves a web app in the foreground until Ctrl-C (or its own end); its outcome then.
async fn serve(args: &ExecArgs, cache_root: &std::path::Path, job: &crate::job::Job) -> Outcome {
    let cancel = crate::cancel::Cancel::new();
    let backend = args.backend.docker(cache_root, args.json);
    if let Err(e) = std::fs::create_dir_all(&job.results_dir) {
        return Outcome::failed_before_start(
            OutcomeError::new(ErrorKind::Usage, format!("Failed to create {}: {e}", job.results_dir.display())),
            "docker",
        );
    }
    let log = job.results_dir.join("app.log");
    match backend.serve(job, &log).await {
        Ok(app) => {
            super::note(&format!("serving on {} (output in {}); Ctrl-C stops it", app.url, log.display()));
            if let Err(e) = super::interrupt::watch(cancel.clone(), || super::note("stopping the app")) {
                super::note(&format!("warning: Ctrl-C cannot be caught ({e}); the app stops with the process"));
            }
            app.until_stopped(Some(&cancel)).await
        }
        Err(outcome) => *outcome,
    }
}

/// A warning naming the parameters given that the script never read: they did not
/// change its answer.
fn unread_warning(given: &[String], read: Option<&ParamsRead>) -> Option<String> {
    let read = read?;
    let unread = read.unread(given.iter().map(String::as_str));
    if unread.is_empty() {
        return None;
    }
    let reads = if read.names.is_empty() { "no parameters".to_owned() } else { read.shown() };
    Some(format!(
        "warning: the script never read the parameter(s) {} it was given, so they did not change its answer (it reads {reads})",
        quoted(unread)
    ))
}
