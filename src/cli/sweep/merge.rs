//! `metaexec sweep merge PART… --out DIR`: the parts of a sharded sweep, checked and
//! added up into the files a single-machine sweep writes.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{Output, OutputArgs, usage};
use crate::cancel::Cancel;
use crate::db::replay::{Replay, Snapshot};
use crate::guest_db::DbHandle;
use crate::job::Job;
use crate::outcome::{Outcome, OutcomeError};
use crate::sweep::part::{self, DataSource, Part};
use crate::sweep::plan::Plan;
use crate::sweep::{self, Isolation, SweepMetrics, SweepOptions, SweepReport};

/// Arguments of `metaexec sweep merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The part folders, one per shard (`part-*`).
    #[arg(required = true, value_name = "PART")]
    pub parts: Vec<PathBuf>,

    /// The results folder: the files a single-machine sweep writes go here.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// The database the break-even runs read [default: the parts' snapshot, else
    /// $DATABASE_URL, else the embedded demo portfolio].
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,

    #[command(flatten)]
    pub output: OutputArgs,

    /// Do not build the runtime if it is missing.
    #[arg(long)]
    pub no_fetch: bool,
}

/// Runs the command; the exit code is a sweep's.
pub fn run(args: MergeArgs, cache_root: PathBuf) -> i32 {
    let output = Output::new(&args.output, args.out.clone(), String::new());
    // A folder that holds anything (a file of the user's, an earlier merge) is refused:
    // the merge would overwrite it.
    let created = !args.out.exists();
    if let Err(error) = super::shard::fresh_dir(&args.out, "--out") {
        return super::report(Err(failed(error)), &output, None);
    }
    let merged = merge_dirs(
        &args.parts,
        &cache_root,
        &MergeOptions { db: args.db.clone(), no_fetch: args.no_fetch, results: args.out.clone() },
    );
    match merged {
        Ok((report, label)) => super::report(Ok(report), &Output { label, ..output }, None),
        Err(outcome) => {
            if created {
                // Only if still empty: a break-even run may have written into it.
                let _ = std::fs::remove_dir(&args.out);
            }
            super::report(Err(outcome), &output, None)
        }
    }
}

/// Where the merge's own runs (the break-even refinement) read and write.
pub(super) struct MergeOptions {
    /// `--db`.
    pub db: Option<String>,
    /// `--no-fetch`.
    pub no_fetch: bool,
    /// The results folder.
    pub results: PathBuf,
}

fn failed(error: OutcomeError) -> Box<Outcome> {
    Box::new(Outcome::failed_before_start(error, "wasi"))
}

/// Checks the parts in `dirs`, adds them up and narrows the break-even points: the
/// report and the script's name.
pub(super) fn merge_dirs(
    dirs: &[PathBuf],
    cache_root: &Path,
    options: &MergeOptions,
) -> Result<(SweepReport, String), Box<Outcome>> {
    let parted = |e: part::PartError| {
        failed(usage(e.to_string()).with_hint("`metaexec sweep merge` takes every part of one sweep, each once"))
    };
    let parts = dirs.iter().map(|dir| Part::open(dir)).collect::<Result<Vec<_>, _>>().map_err(parted)?;
    let parts = part::check_set(parts).map_err(parted)?;
    let first = &parts[0];
    let damaged =
        |reason: String| failed(usage(part::PartError::Corrupt { dir: first.dir.clone(), reason }.to_string()));
    let plan_text = std::fs::read_to_string(first.dir.join(part::PLAN_FILE))
        .map_err(|e| damaged(format!("{}: {e}", part::PLAN_FILE)))?;
    let plan = Plan::from_json(part::PLAN_FILE, &plan_text).map_err(|e| damaged(e.to_string()))?;
    if plan.sha256() != first.info.plan_sha256 {
        return Err(damaged(format!("its {} is not the plan its {} names", part::PLAN_FILE, part::PART_FILE)));
    }
    let script = std::fs::read_to_string(first.dir.join(&first.info.script_name))
        .map_err(|e| damaged(format!("{}: {e}", first.info.script_name)))?;
    if crate::cache::sha256_hex(script.as_bytes()) != first.info.script_sha256 {
        return Err(damaged(format!("its {} is not the script its {} names", first.info.script_name, part::PART_FILE)));
    }
    let started = std::time::Instant::now();
    let (scenarios, params_read) = part::merge_outcomes(&parts).map_err(parted)?;
    let longest = parts.iter().map(|p| p.info.metrics.wall_ms).fold(0.0, f64::max);
    let metrics = SweepMetrics {
        wall_ms: longest,
        // The shards ran side by side: the sweep took as long as the longest one.
        scenarios_per_s: if longest > 0.0 { scenarios.len() as f64 / (longest / 1000.0) } else { 0.0 },
        db_queries: parts.iter().map(|p| p.info.metrics.db_queries).sum(),
        workers: parts.iter().map(|p| p.info.metrics.workers).sum(),
        bisection_runs: 0,
        bisection_ms: 0.0,
    };
    let instance_errors = parts.iter().flat_map(|p| p.info.instance_errors.clone()).collect();
    let sanitized = parts.iter().flat_map(|p| p.info.sanitized.clone()).collect();
    let mut report = sweep::assemble(scenarios, params_read, instance_errors, sanitized, metrics).map_err(failed)?;
    tracing::debug!(elapsed_ms = started.elapsed().as_secs_f64() * 1000.0, "parts merged");

    // The break-even points are narrowed once, here, as a single-machine sweep does.
    let mut job = Job::new(first.info.script_name.clone(), script, options.results.clone());
    job.params = plan.base.clone();
    job.limits = first.info.limits.clone();
    job.seed = Some(plan.seed);
    job.db = Some(database(first, options, cache_root)?);
    let mut sandbox_options = crate::sandbox::SandboxOptions::new(cache_root.to_owned());
    sandbox_options.auto_fetch = !options.no_fetch;
    let sandbox = crate::sandbox::WasiSandbox::new(sandbox_options);
    if let Ok(installed) = crate::python_wasm::installed(cache_root)
        && installed.sha256 != first.info.runtime_sha256
    {
        super::super::note(
            "note: the shards ran another runtime than this machine's; the break-even runs use this one",
        );
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = super::tokio_runtime(cores).map_err(failed)?;
    let sweep_options = SweepOptions { workers: cores, isolation: Isolation::Namespace, cancel: Cancel::new() };
    runtime.block_on(sweep::bisect::refine(&sandbox, &job, &mut report, &sweep_options));
    Ok((report, first.info.script_name.clone()))
}

/// What the break-even runs read: `--db`, else the snapshot the shards answered from
/// (checked against the digest the parts recorded), else the database a sweep reads by
/// default, named when it is not the one the shards read.
fn database(first: &Part, options: &MergeOptions, cache_root: &Path) -> Result<DbHandle, Box<Outcome>> {
    if options.db.is_none()
        && let DataSource::Snapshot { sha256 } = &first.info.data
    {
        let path = first.dir.join(part::SNAPSHOT_FILE);
        let file = Snapshot::read(&path).map_err(|e| failed(usage(e.to_string())))?;
        if file.sha256() != *sha256 {
            let reason = format!("its {} is not the snapshot its {} names", part::SNAPSHOT_FILE, part::PART_FILE);
            return Err(failed(usage(part::PartError::Corrupt { dir: first.dir.clone(), reason }.to_string())));
        }
        return Ok(DbHandle::new(Replay::new(&file.snapshot, &path.display().to_string())));
    }
    let args = crate::cli::db::DbArgs { db: options.db.clone() };
    let url = args.url(cache_root).map_err(failed)?;
    if options.db.is_none()
        && let DataSource::Database { url: theirs } = &first.info.data
        && *theirs != url.masked()
    {
        super::super::note(&format!(
            "note: the shards read {theirs}; the break-even runs read {} (give --db to choose)",
            url.masked()
        ));
    }
    let proxy = crate::db::DbProxy::new(url, crate::db::Capability::default());
    Ok(DbHandle::new(proxy))
}
