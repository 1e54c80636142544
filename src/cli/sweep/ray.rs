//! `metaexec sweep … --ray URL`: the shards as one Ray job, merged here.
//!
//! The coordinator (this process) records the plan's reads into a snapshot, ships this
//! binary, its runtime, the script, the plan and the snapshot as the job's working
//! directory, and runs one Ray task per shard; the parts come back through the job's
//! log and are merged exactly as `metaexec sweep merge` merges them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::super::script::ScriptArgs;
use super::merge::{self, MergeOptions};
use super::{Output, SweepArgs, interrupt, usage};
use crate::cancel::Cancel;
use crate::outcome::{ErrorKind, Outcome, OutcomeError};
use crate::sweep::SweepReport;
use crate::sweep::part;
use crate::sweep::ray::{self, RayEvent, RayJob};

/// Shards when --shards is not given.
const DEFAULT_SHARDS: usize = 2;

/// Runs the sweep on Ray; the exit code is a sweep's.
pub(super) fn run(args: SweepArgs, cache_root: PathBuf, runs: &Path) -> i32 {
    let recorder = super::start_record(&args, &cache_root, runs);
    let output = Output::of(&args);
    let cancel = Cancel::new();
    let result = on_ray(&args, &cache_root, &cancel);
    let code = super::report(result, &output, recorder);
    if cancel.is_cancelled() { interrupt::INTERRUPTED } else { code }
}

fn failed(error: OutcomeError) -> Box<Outcome> {
    Box::new(Outcome::failed_before_start(error, "wasi"))
}

fn internal(message: String) -> Box<Outcome> {
    failed(OutcomeError::new(ErrorKind::Internal, message))
}

fn on_ray(args: &SweepArgs, cache_root: &Path, cancel: &Cancel) -> Result<SweepReport, Box<Outcome>> {
    let across = &args.across;
    let address = across.ray.clone().unwrap_or_default();
    let shards = across.shards.unwrap_or(DEFAULT_SHARDS);
    if shards == 0 {
        return Err(failed(usage("--shards must be at least 1".into())));
    }
    if !(across.ray_cpus.is_finite() && across.ray_cpus > 0.0) {
        return Err(failed(usage(format!("--ray-cpus must be a positive number, got `{}`", across.ray_cpus))));
    }
    let plan = super::plan(args, cache_root.to_owned())?;
    super::refuse_docker(&plan.choice)?;
    let work = tempfile::tempdir().map_err(|e| internal(format!("Failed to make a scratch folder: {e}")))?;
    super::shard::write_inputs(work.path(), &plan).map_err(failed)?;
    let script_name = plan.job.script_name.clone();
    let mut files = vec![
        (part::PLAN_FILE.to_owned(), work.path().join(part::PLAN_FILE)),
        (script_name.clone(), work.path().join(&script_name)),
    ];
    let workers = across.ray_cpus.ceil().max(1.0) as usize;
    let mut shard_args: Vec<String> = vec![
        "sweep".into(),
        script_name,
        "--plan".into(),
        part::PLAN_FILE.into(),
        "--workers".into(),
        workers.to_string(),
    ];
    shard_args.extend(script_flags(&args.script, args.isolation));
    match &across.worker_db {
        Some(url) => shard_args.extend(["--db".to_owned(), url.clone()]),
        None => {
            note("recording the reads of the plan's first scenario (workers answer from them)");
            let snapshot = super::shard::record_snapshot(&plan)?;
            let path = work.path().join(part::SNAPSHOT_FILE);
            snapshot.write(&path).map_err(|e| internal(e.to_string()))?;
            files.push((part::SNAPSHOT_FILE.to_owned(), path));
            shard_args.extend(["--snapshot".to_owned(), part::SNAPSHOT_FILE.to_owned()]);
        }
    }
    let mut env = Vec::new();
    if across.ray_metaexec.is_none() {
        let exe = std::env::current_exe().map_err(|e| internal(format!("Failed to find this binary: {e}")))?;
        files.push(("metaexec".into(), exe));
        files.extend(runtime_files(cache_root, args.script.fuel.is_some())?);
        env.push((crate::cache::CACHE_DIR_ENV.to_owned(), "cache".to_owned()));
        shard_args.push("--no-fetch".into());
    }
    let job = RayJob {
        address,
        files,
        metaexec: across.ray_metaexec.clone(),
        args: shard_args,
        env,
        shards,
        cpus_per_shard: across.ray_cpus,
        max_retries: across.ray_retries,
    };
    let kept;
    let parts_dir = match &across.parts {
        Some(dir) => {
            super::shard::fresh_dir(dir, "--parts").map_err(failed)?;
            dir.clone()
        }
        None => {
            kept = tempfile::tempdir().map_err(|e| internal(format!("Failed to make a scratch folder: {e}")))?;
            kept.path().to_owned()
        }
    };
    let parts = submit(&job, &parts_dir, cancel)?;
    note(&format!("merging {} parts", parts.len()));
    let options = MergeOptions { db: None, no_fetch: args.script.no_fetch, results: args.script.results.clone() };
    merge::merge_dirs(&parts, cache_root, &options).map(|(report, _)| report)
}

/// Runs the job with a progress bar of shards; Ctrl-C (`cancel`) stops it on the cluster.
fn submit(job: &RayJob, parts_dir: &Path, cancel: &Cancel) -> Result<Vec<PathBuf>, Box<Outcome>> {
    let runtime = super::tokio_runtime(2).map_err(failed)?;
    let bar = indicatif::ProgressBar::new(job.shards as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos}/{len} shards on Ray {elapsed} {wide_msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    let told = bar.clone();
    let watched = {
        let _entered = runtime.enter();
        interrupt::watch(cancel.clone(), move || {
            let line = "interrupted: stopping the Ray job (Ctrl-C again to quit at once)";
            // A hidden bar (stderr is not a terminal) prints nothing.
            if told.is_hidden() { super::super::note(line) } else { told.println(line) }
        })
    };
    if let Err(e) = watched {
        tracing::warn!("Ctrl-C will not stop the Ray job: {e}");
    }
    let shown = bar.clone();
    let progress = move |event: RayEvent| match event {
        RayEvent::Uploading { bytes } => shown.set_message(format!("uploading {} MiB", bytes >> 20)),
        RayEvent::Submitted { job_id } => shown.println(format!("submitted Ray job {job_id}")),
        RayEvent::Status(status) => shown.set_message(status),
        RayEvent::ShardDone { .. } => shown.inc(1),
        RayEvent::ShardRetry { index, attempt, message } => {
            shown.println(format!("shard {index} failed (attempt {attempt}), trying again: {message}"))
        }
        RayEvent::Warning(warning) => shown.println(format!("warning: {warning}")),
    };
    let result = runtime.block_on(ray::run(job, parts_dir, &progress, cancel));
    bar.finish_and_clear();
    result.map_err(|e| {
        let kind =
            if matches!(e, ray::RayError::Stopped { .. }) { ErrorKind::Usage } else { ErrorKind::BackendUnavailable };
        failed(OutcomeError::new(kind, e.to_string()))
    })
}

/// The runtime as a worker needs it, under `cache/` in the job's folder: the
/// component, its standard library, and its compiled form for this engine (so no
/// worker compiles it again).
fn runtime_files(cache_root: &Path, metered: bool) -> Result<Vec<(String, PathBuf)>, Box<Outcome>> {
    let installed = crate::python_wasm::installed(cache_root).map_err(|e| {
        failed(OutcomeError::new(ErrorKind::RuntimeMissing, e.to_string()).with_hint("run `metaexec runtime fetch`"))
    })?;
    let dir = crate::python_wasm::runtime_dir(cache_root);
    let inside =
        |path: &Path| path.strip_prefix(cache_root).map(|p| format!("cache/{}", p.display())).unwrap_or_default();
    let digest = crate::cache::digest_path(&installed.component);
    let mut files = vec![
        (inside(&installed.component), installed.component.clone()),
        (inside(&digest), digest.clone()),
        (inside(&installed.stdlib), installed.stdlib.clone()),
    ];
    let prefix = format!("metaexec-sandbox-{}-", &installed.sha256[..16.min(installed.sha256.len())]);
    if let Ok(entries) = std::fs::read_dir(dir.join("compiled")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) && name.contains("-fuel.cwasm") == metered {
                files.push((inside(&entry.path()), entry.path()));
            }
        }
    }
    Ok(files)
}

/// The limits and database rights of `script`, as flags for the shards.
fn script_flags(script: &ScriptArgs, isolation: crate::sweep::Isolation) -> Vec<String> {
    let mut flags = vec![
        format!("--timeout={}", script.timeout),
        format!("--memory={}", script.memory),
        format!("--max-output={}", script.max_output),
        format!("--max-results={}", script.max_results),
        format!("--host-memory={}", script.host_memory),
    ];
    if let Some(fuel) = script.fuel {
        flags.push(format!("--fuel={fuel}"));
    }
    if isolation == crate::sweep::Isolation::Instance {
        flags.push("--isolation=instance".into());
    }
    let capability = &script.capability;
    flags.push(format!("--db-max-rows={}", capability.db_max_rows));
    flags.push(format!("--db-max-bytes={}", capability.db_max_bytes));
    flags.push(format!("--db-timeout={}", capability.db_timeout));
    if capability.db_write {
        flags.push("--db-write".into());
    }
    if capability.db_exact_decimals {
        flags.push("--db-exact-decimals".into());
    }
    if let Some(tables) = &capability.db_tables {
        flags.push(format!("--db-tables={}", tables.join(",")));
    }
    for function in &capability.db_allow_function {
        flags.push(format!("--db-allow-function={function}"));
    }
    flags
}

fn note(line: &str) {
    super::super::note(&format!("metaexec: {line}"));
}
