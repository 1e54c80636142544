//! `metaexec sweep … --shard I/N --out DIR`: one shard of a sweep, written as a part;
//! and `--prepare DIR`: what the shards need (the plan, the script, the database
//! snapshot), so that the workers hold no database and no credentials.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use super::{Plan, SweepArgs, usage};
use crate::db::replay::{Recording, Replay, Snapshot};
use crate::guest_db::DbHandle;
use crate::outcome::{ErrorKind, Outcome, OutcomeError};
use crate::scenario::ScenarioStatus;
use crate::sweep::part::{self, DataSource, PartFailure, PartInfo, PartMetrics, Shard};
use crate::sweep::plan::{self as sweep_plan, Source};

/// The flags that take a sweep beyond one machine.
#[derive(Debug, Args)]
pub struct AcrossArgs {
    /// Run only shard I of N (I from 0 to N-1) and write its part to --out. `auto` reads
    /// I from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) or SLURM_ARRAY_TASK_ID
    /// (a Slurm array, less SLURM_ARRAY_TASK_MIN), and N from SLURM_ARRAY_TASK_COUNT or
    /// METAEXEC_SHARD_COUNT; `auto/N` gives N.
    #[arg(long, value_name = "I/N", requires = "out", conflicts_with_all = ["prepare", "ray"])]
    pub shard: Option<String>,

    /// The part folder --shard writes (new, or empty).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Answer the script's reads from this snapshot (`--prepare` writes it) instead of a
    /// database: a worker then needs no database and no credentials. A read that is not
    /// in it fails as `db_denied`.
    #[arg(long, value_name = "FILE", conflicts_with = "db")]
    pub snapshot: Option<PathBuf>,

    /// Write what the shards need into DIR: plan.json, the script, and snapshot.json,
    /// the reads of the plan's first scenario with their rows; then print the commands
    /// that run the shards and merge them.
    #[arg(long, value_name = "DIR", conflicts_with = "ray")]
    pub prepare: Option<PathBuf>,

    /// Run the shards as a job on a Ray cluster: its dashboard address (for example
    /// http://127.0.0.1:8265). This binary, its runtime, the script, the plan and the
    /// snapshot are shipped with the job; the parts come back and are merged here.
    #[arg(long, value_name = "URL")]
    pub ray: Option<String>,

    /// How many shards --ray runs (one Ray task each) [default: 2].
    #[arg(long, value_name = "N", requires = "ray")]
    pub shards: Option<usize>,

    /// CPUs each Ray task asks for; the shard runs as many sandbox instances.
    #[arg(long, value_name = "N", default_value_t = 1.0, requires = "ray")]
    pub ray_cpus: f64,

    /// How many times Ray tries a failed shard again before the sweep fails naming it.
    #[arg(long, value_name = "N", default_value_t = 2, requires = "ray")]
    pub ray_retries: u32,

    /// Run an installed metaexec on the Ray workers (this path) instead of shipping
    /// this binary and its runtime with the job.
    #[arg(long, value_name = "PATH", requires = "ray")]
    pub ray_metaexec: Option<String>,

    /// Hand the Ray workers this database URL instead of a snapshot of the reads.
    #[arg(long, value_name = "URL", requires = "ray")]
    pub worker_db: Option<String>,

    /// Keep the parts the Ray job sends back in DIR (a temporary folder otherwise).
    #[arg(long, value_name = "DIR", requires = "ray")]
    pub parts: Option<PathBuf>,
}

/// Environment variables `--shard auto` reads.
const INDEX_VARS: [&str; 2] = ["JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"];

/// Parses `I/N`, `auto` or `auto/N`; `env` looks up the environment.
pub(super) fn parse_shard(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Shard, OutcomeError> {
    let bad = |why: String| {
        usage(format!("--shard `{text}`: {why}"))
            .with_hint("give --shard I/N with I from 0 to N-1 (0/4 … 3/4), or --shard auto on Kubernetes or Slurm")
    };
    let (index, count) = text.split_once('/').map_or((text, None), |(i, n)| (i, Some(n)));
    let number = |what: &str, s: &str| s.trim().parse::<usize>().map_err(|_| bad(format!("`{s}` is not a {what}")));
    let count = match count {
        Some(n) => number("number of shards", n)?,
        None if index.trim() == "auto" => {
            let (var, n) = ["SLURM_ARRAY_TASK_COUNT", "METAEXEC_SHARD_COUNT"]
                .iter()
                .find_map(|var| env(var).map(|n| (*var, n)))
                .ok_or_else(|| {
                    bad("the number of shards is not known: neither SLURM_ARRAY_TASK_COUNT nor \
                         METAEXEC_SHARD_COUNT is set (give --shard auto/N)"
                        .into())
                })?;
            number(&format!("number of shards ({var})"), &n)?
        }
        None => return Err(bad("expected I/N".into())),
    };
    let index = if index.trim() == "auto" {
        let (var, value) = INDEX_VARS.iter().find_map(|var| env(var).map(|v| (*var, v))).ok_or_else(|| {
            bad(format!(
                "none of {} is set: run it as a Kubernetes Indexed Job or a Slurm array",
                INDEX_VARS.join(", ")
            ))
        })?;
        let index = number(&format!("shard index ({var})"), &value)?;
        // A Slurm array may start anywhere (`--array=1-8`): its indices count from its first.
        let first = match var {
            "SLURM_ARRAY_TASK_ID" => {
                env("SLURM_ARRAY_TASK_MIN").map_or(Ok(0), |m| number("SLURM_ARRAY_TASK_MIN", &m))?
            }
            _ => 0,
        };
        index.checked_sub(first).ok_or_else(|| bad(format!("{var} {index} is below SLURM_ARRAY_TASK_MIN {first}")))?
    } else {
        number("shard index", index)?
    };
    if count == 0 || index >= count {
        return Err(bad(format!("shard {index} of {count} does not exist (shards count from 0 to N-1)")));
    }
    Ok(Shard { index, count })
}

/// Makes `dir` ready to be written: created when missing, refused when it holds
/// anything (nothing the user owns is overwritten).
pub(super) fn fresh_dir(dir: &Path, flag: &str) -> Result<(), OutcomeError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(usage(format!("{flag} `{}` is not empty", dir.display()))
                    .with_hint("give a new folder, or remove what it holds first"));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| usage(format!("Failed to create {flag} `{}`: {e}", dir.display())))
        }
        Err(e) => Err(usage(format!("{flag} `{}` cannot be read: {e}", dir.display()))),
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), OutcomeError> {
    crate::cache::write_atomically(path, bytes)
        .map_err(|e| OutcomeError::new(ErrorKind::Internal, format!("Failed to write `{}`: {e}", path.display())))
}

/// Writes the plan and the script into `dir`, as every shard and the merge read them.
pub(super) fn write_inputs(dir: &Path, plan: &Plan) -> Result<(), OutcomeError> {
    write_file(&dir.join(part::PLAN_FILE), plan.plan.to_json().as_bytes())?;
    write_file(&dir.join(&plan.job.script_name), plan.job.source.as_bytes())
}

/// Runs the plan's first scenario with its reads recorded, and returns them: the
/// snapshot workers answer from.
pub(super) fn record_snapshot(plan: &Plan) -> Result<Snapshot, Box<Outcome>> {
    let failed = |error: OutcomeError| Box::new(Outcome::failed_before_start(error, "wasi"));
    let Some(db) = plan.job.db.clone() else {
        return Ok(Snapshot::empty());
    };
    let first = plan.plan.enumerate(Source::Flags).map_err(|e| failed(usage(e.to_string())))?.get(0);
    let scratch = tempfile::tempdir()
        .map_err(|e| failed(OutcomeError::new(ErrorKind::Internal, format!("Failed to make a scratch folder: {e}"))))?;
    let recording = Arc::new(Recording::new(db.0));
    let mut job = plan.job.clone();
    job.params = first.params;
    job.seed = Some(crate::sandbox::scenario_seed(plan.plan.seed, &first.id));
    job.results_dir = scratch.path().to_owned();
    job.db = Some(DbHandle(recording.clone()));
    let runtime = super::tokio_runtime(1).map_err(failed)?;
    let outcome = runtime.block_on(plan.sandbox.run(&job));
    if !outcome.is_ok() {
        let mut outcome = Box::new(outcome);
        if let Some(error) = &mut outcome.error {
            error.message =
                format!("the plan's first scenario `{}`, run to record the reads: {}", first.id, error.message);
        }
        return Err(outcome);
    }
    Ok(recording.snapshot())
}

/// `--prepare DIR`.
pub(super) fn prepare(args: SweepArgs, cache_root: PathBuf) -> i32 {
    let dir = args.across.prepare.clone().unwrap_or_default();
    let result = (|| {
        let failed = |error: OutcomeError| Box::new(Outcome::failed_before_start(error, "wasi"));
        fresh_dir(&dir, "--prepare").map_err(failed)?;
        let plan = super::plan(&args, cache_root)?;
        super::refuse_docker(&plan.choice)?;
        let snapshot = record_snapshot(&plan)?;
        write_inputs(&dir, &plan).map_err(failed)?;
        snapshot
            .write(&dir.join(part::SNAPSHOT_FILE))
            .map_err(|e| failed(OutcomeError::new(ErrorKind::Internal, e.to_string())))?;
        Ok::<_, Box<Outcome>>((plan, snapshot))
    })();
    match result {
        Ok((plan, snapshot)) => {
            let total = plan.plan.enumerate(Source::Flags).map_or(0, |s| s.len());
            let shown = |name: &str| dir.join(name).display().to_string();
            let script = shown(&plan.job.script_name);
            let lines = [
                format!(
                    "prepared {total} scenarios in {}: {}, {} and {} ({} reads recorded)",
                    dir.display(),
                    part::PLAN_FILE,
                    plan.job.script_name,
                    part::SNAPSHOT_FILE,
                    snapshot.queries.len()
                ),
                "run shard I of N anywhere (no database needed there):".into(),
                format!(
                    "  metaexec sweep {script} --plan {} --snapshot {} --shard I/N --out part-I",
                    shown(part::PLAN_FILE),
                    shown(part::SNAPSHOT_FILE)
                ),
                "then merge the parts:".into(),
                "  metaexec sweep merge part-* --out results".into(),
            ];
            if args.output.json {
                let value = serde_json::json!({
                    "dir": dir, "scenarios": total, "reads": snapshot.queries.len(),
                    "plan_sha256": plan.plan.sha256(),
                });
                crate::cli::render::out(&format!("{value}\n"));
            } else {
                for line in lines {
                    crate::cli::render::err_line(&line);
                }
            }
            0
        }
        Err(outcome) => fail(&outcome, args.output.json),
    }
}

fn fail(outcome: &Outcome, json: bool) -> i32 {
    if json {
        crate::cli::render::json(outcome);
    } else {
        crate::cli::render::human(outcome);
    }
    outcome.process_exit_code()
}

/// `--shard I/N --out DIR`.
pub(super) fn run(args: SweepArgs, cache_root: PathBuf) -> i32 {
    let failed = |error: OutcomeError| Box::new(Outcome::failed_before_start(error, "wasi"));
    let text = args.across.shard.clone().unwrap_or_default();
    let out = args.across.out.clone().unwrap_or_default();
    let prepared = (|| {
        let shard = parse_shard(&text, &|var| std::env::var(var).ok()).map_err(failed)?;
        fresh_dir(&out, "--out").map_err(failed)?;
        let mut plan = super::plan(&args, cache_root.clone())?;
        let data = match &args.across.snapshot {
            Some(path) => {
                let file = Snapshot::read(path).map_err(|e| {
                    failed(
                        usage(e.to_string()).with_hint("give the snapshot.json that `metaexec sweep --prepare` wrote"),
                    )
                })?;
                write_file(&out.join(part::SNAPSHOT_FILE), &file.bytes).map_err(failed)?;
                plan.job.db = Some(DbHandle::new(Replay::new(&file.snapshot, &path.display().to_string())));
                DataSource::Snapshot { sha256: file.sha256() }
            }
            None => match plan.job.db.as_ref() {
                Some(_) => DataSource::Database {
                    url: args.script.db.url(&cache_root).map(|u| u.masked()).unwrap_or_default(),
                },
                None => DataSource::None,
            },
        };
        plan.job.results_dir = out.join("results");
        let total = plan.plan.enumerate(Source::Flags).map_err(|e| failed(usage(e.to_string())))?.len();
        Ok::<_, Box<Outcome>>((shard, plan, data, total))
    })();
    let (shard, plan, data, total) = match prepared {
        Ok(prepared) => prepared,
        Err(outcome) => return fail(&outcome, args.output.json),
    };
    let range = sweep_plan::shard_range(total, shard.index, shard.count);
    let started = std::time::Instant::now();
    let (job, plan_json, plan_sha) = (plan.job.clone(), plan.plan.to_json(), plan.plan.sha256());
    let report = match super::execute(plan, Some(range.clone()), false) {
        Ok(report) => report,
        Err(outcome) => return fail(&outcome, args.output.json),
    };
    if let Some(interrupted) = &report.summary.interrupted {
        super::super::note(&format!(
            "interrupted: {} of {} scenarios of shard {shard} finished; no part was written (run the shard again)",
            interrupted.finished, interrupted.planned
        ));
        return super::interrupt::INTERRUPTED;
    }
    let failures = report
        .scenarios
        .iter()
        .enumerate()
        .filter(|(_, o)| o.status == ScenarioStatus::Error)
        .map(|(i, o)| PartFailure {
            index: range.start + i,
            id: o.id.clone(),
            kind: o.error.as_ref().map_or_else(|| "error".into(), |e| e.kind.as_str().to_owned()),
            message: o.error.as_ref().map(|e| e.message.clone()).unwrap_or_default(),
        })
        .collect::<Vec<_>>();
    let mut info = PartInfo {
        format: part::PART_FORMAT.into(),
        plan_sha256: plan_sha,
        script_sha256: crate::cache::sha256_hex(job.source.as_bytes()),
        runtime_sha256: crate::python_wasm::installed(&cache_root).map(|i| i.sha256).unwrap_or_default(),
        // Filled in once the rows are written.
        rows_sha256: String::new(),
        script_name: job.script_name.clone(),
        shard,
        range: range.clone(),
        total,
        ok: report.summary.ok,
        failures,
        params_read: report.params_read.clone(),
        instance_errors: report.instance_errors.clone(),
        sanitized: report.sanitized.clone(),
        limits: job.limits.clone(),
        data,
        metrics: PartMetrics {
            wall_ms: started.elapsed().as_secs_f64() * 1000.0,
            workers: report.metrics.workers,
            db_queries: report.metrics.db_queries,
        },
        finished: crate::store::utc_now().to_rfc3339(),
    };
    let written = (|| {
        info.rows_sha256 = part::write_rows(&out, &report.scenarios, range.start).map_err(|e| e.to_string())?;
        write_file(&out.join(part::PLAN_FILE), plan_json.as_bytes()).map_err(|e| e.message)?;
        write_file(&out.join(&job.script_name), job.source.as_bytes()).map_err(|e| e.message)?;
        part::write_info(&out, &info).map_err(|e| e.to_string())
    })();
    if let Err(e) = written {
        return fail(
            &Outcome::failed_before_start(OutcomeError::new(ErrorKind::Internal, e), "wasi"),
            args.output.json,
        );
    }
    if args.output.json {
        crate::cli::render::out(&format!("{}\n", serde_json::to_string(&info).unwrap_or_default()));
    } else {
        crate::cli::render::err_line(&format!(
            "shard {shard}: scenarios {}..{} of {total} ({} ok, {} failed) in {:.0} ms · part written to {}",
            range.start,
            range.end,
            info.ok,
            info.failures.len(),
            info.metrics.wall_ms,
            crate::cli::render::guest_line(&out.display().to_string())
        ));
    }
    i32::from(!info.failures.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn shards_from_flags_kubernetes_and_slurm() {
        let none = env(&[]);
        assert_eq!(parse_shard("3/8", &none).unwrap(), Shard { index: 3, count: 8 });
        for bad in ["8/8", "1", "a/2", "0/0", "auto"] {
            assert!(parse_shard(bad, &none).is_err(), "{bad}");
        }
        let k8s = env(&[("JOB_COMPLETION_INDEX", "5")]);
        assert_eq!(parse_shard("auto/7", &k8s).unwrap(), Shard { index: 5, count: 7 });
        let e = parse_shard("auto", &k8s).unwrap_err().message;
        assert!(e.contains("METAEXEC_SHARD_COUNT"), "{e}");
        let k8s = env(&[("JOB_COMPLETION_INDEX", "5"), ("METAEXEC_SHARD_COUNT", "6")]);
        assert_eq!(parse_shard("auto", &k8s).unwrap(), Shard { index: 5, count: 6 });
        let slurm =
            env(&[("SLURM_ARRAY_TASK_ID", "4"), ("SLURM_ARRAY_TASK_MIN", "1"), ("SLURM_ARRAY_TASK_COUNT", "4")]);
        assert_eq!(parse_shard("auto", &slurm).unwrap(), Shard { index: 3, count: 4 });
        let e = parse_shard("auto/3", &none).unwrap_err().message;
        assert!(e.contains("JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID"), "{e}");
        let e = parse_shard("auto/4", &env(&[("JOB_COMPLETION_INDEX", "4")])).unwrap_err().message;
        assert!(e.contains("does not exist"), "{e}");
    }
}
