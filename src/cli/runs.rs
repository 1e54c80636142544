//! `metaexec runs list|show|rerun|rm|gc|stop`: the runs kept in the runs folder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Subcommand;
use comfy_table::{ContentArrangement, Table, presets::NOTHING};
use serde_json::{Map, Value};

use super::note;
use super::record::Recorder;
use crate::db::{DbProxy, DbUrl};
use crate::docker;
use crate::guest_db::DbHandle;
use crate::job::Job;
use crate::outcome::{ErrorKind, Outcome, OutcomeError};
use crate::pipeline::PipelineOptions;
use crate::store::index::Index;
use crate::store::{Entry, JobRecord, RunDir, RunKind, StoreError, manifest};

/// Runs subcommands.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first: id, when, kind, status, request or script, headline.
    ///
    /// Examples:
    ///   metaexec runs list
    ///   metaexec runs list --limit 5 --json
    #[command(verbatim_doc_comment)]
    List {
        /// Show at most N runs.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Print a JSON list of entries.
        #[arg(long)]
        json: bool,
    },
    /// Show a run: its entry, job, files and report; --verify checks every file against
    /// the run's manifest (exit 1 when one differs).
    ///
    /// Examples:
    ///   metaexec runs show 20261202-164001-calculate-dscr-for-every-property
    ///   metaexec runs show 20261202-164001-calculate-dscr-for-every-property --verify --json
    #[command(verbatim_doc_comment)]
    Show {
        /// The run's id: its folder's name.
        id: String,
        /// Check the files against the manifest.
        #[arg(long)]
        verify: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a run again as a new run: the stored script with the stored parameters,
    /// limits and database (a request: through the planner again, with the model's
    /// cached answers, so the same script runs). A deterministic script gives the same
    /// results.json byte for byte.
    ///
    /// Examples:
    ///   metaexec runs rerun 20261202-164001-calculate-dscr-for-every-property
    ///   metaexec runs rerun 20261202-164001-stress-py --param noi_change=-0.25 --json
    #[command(verbatim_doc_comment)]
    Rerun {
        /// The run's id.
        id: String,
        /// A parameter over the stored ones, `KEY=VALUE` (VALUE parsed as JSON when it
        /// can be). Repeatable.
        #[arg(long = "param", short = 'p', value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// The database, when the stored one had a password (only its masked form is
        /// kept) [default: DATABASE_URL when it is the same database].
        #[arg(long, value_name = "URL")]
        db: Option<String>,
        /// Print the new run's outcome (a request: its record) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove runs and their folders.
    ///
    /// Examples:
    ///   metaexec runs rm 20261202-164001-calculate-dscr-for-every-property
    #[command(verbatim_doc_comment)]
    Rm {
        /// The runs' ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Remove runs older than an age: `30d`, `12h`, `90m`, `2w`.
    ///
    /// Examples:
    ///   metaexec runs gc --older-than 30d --dry-run
    #[command(verbatim_doc_comment)]
    Gc {
        /// The age past which runs go.
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        older_than: Duration,
        /// List what would go, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Stop the web app a run left serving (a "create a dashboard" request): its
    /// container is stopped and removed, its results copied into the run folder, and its
    /// outcome recorded in `app/app.json`.
    ///
    /// Examples:
    ///   metaexec runs stop 20261202-140501-create-a-dashboard
    #[command(verbatim_doc_comment)]
    Stop {
        /// The run's id: its folder's name under --runs.
        id: String,
        /// Print the app's record as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command; returns the exit code.
pub fn run(command: RunsCommand, cache_root: PathBuf, runs: &Path) -> i32 {
    let result = match command {
        RunsCommand::List { limit, json } => list(runs, limit, json),
        RunsCommand::Show { id, verify, json } => show(runs, &id, verify, json),
        RunsCommand::Rerun { id, params, db, json } => {
            return rerun(runs, &id, &params, db.as_deref(), json, cache_root);
        }
        RunsCommand::Rm { ids } => remove(runs, &ids),
        RunsCommand::Gc { older_than, dry_run } => gc(runs, older_than, dry_run),
        RunsCommand::Stop { id, json } => return stop(runs, &id, json),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error[usage]: {e}");
            if matches!(e, StoreError::NotFound { .. } | StoreError::BadId(_)) {
                eprintln!("hint: `metaexec runs list` shows the runs in {}", runs.display());
            }
            2
        }
    }
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime starts")
        .block_on(future)
}

/// The runs, newest first, from the index; none when the folder does not exist yet.
pub(super) async fn entries(runs: &Path, limit: Option<usize>) -> Result<Vec<Entry>, StoreError> {
    if !runs.is_dir() {
        return Ok(Vec::new());
    }
    let index = Index::open(runs).await?;
    let entries = index.list(limit).await;
    index.close().await;
    entries
}

fn list(runs: &Path, limit: Option<usize>, json: bool) -> Result<i32, StoreError> {
    let entries = block_on(entries(runs, limit))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&entries).expect("entries serialise"));
        return Ok(0);
    }
    if entries.is_empty() {
        note(&format!(
            "no runs in {} yet: `metaexec run \"calculate DSCR for every property\"` makes one",
            runs.display()
        ));
        return Ok(0);
    }
    let mut table = Table::new();
    table.load_preset(NOTHING).set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header(["id", "when (UTC)", "kind", "status", "request or script", "headline"]);
    for e in &entries {
        let status = match &e.error_kind {
            Some(kind) => format!("{} ({kind})", e.status.as_str()),
            None => e.status.as_str().to_owned(),
        };
        let when = e.when();
        table.add_row([
            e.id.clone(),
            when,
            e.kind.as_str().to_owned(),
            status,
            super::render::guest(&shorten(&e.title, 60)).into_owned(),
            e.headline.clone().unwrap_or_default(),
        ]);
    }
    println!("{table}");
    Ok(0)
}

fn shorten(text: &str, most: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= most && !text.contains('\n') {
        return line.to_owned();
    }
    format!("{}…", line.chars().take(most - 1).collect::<String>())
}

fn show(runs: &Path, id: &str, verify: bool, json: bool) -> Result<i32, StoreError> {
    let dir = RunDir::open(runs, id)?;
    let entry = crate::store::index::read_entry(&dir.path, id)
        .ok_or_else(|| StoreError::Corrupt { path: dir.path.join("entry.json"), reason: "missing".into() })?;
    let job: Option<JobRecord> = dir.read_json("job.json")?;
    let files = manifest::files(&dir.path).map_err(|source| StoreError::Io { path: dir.path.clone(), source })?;
    let mismatches = if verify {
        Some(
            manifest::verify(&dir.path)
                .map_err(|source| StoreError::Io { path: dir.path.join(manifest::MANIFEST), source })?,
        )
    } else {
        None
    };
    if json {
        let value = serde_json::json!({
            "entry": entry,
            "job": job,
            "path": dir.path,
            "files": files.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            "verified": mismatches.as_ref().map(Vec::is_empty),
            "mismatches": mismatches,
        });
        println!("{}", serde_json::to_string_pretty(&value).expect("values serialise"));
    } else {
        println!("{}  {} · {} · {}", entry.id, entry.kind.as_str(), entry.status.as_str(), entry.created);
        println!("  {}", super::render::guest(&entry.title));
        if let Some(headline) = &entry.headline {
            println!("  {headline}");
        }
        if let Some(kind) = &entry.error_kind {
            println!("  error: {kind} (see outcome.json)");
        }
        if let Some(of) = &entry.rerun_of {
            println!("  re-run of {of}");
        }
        if let Some(job) = &job {
            println!(
                "  database {} · backend {:?} · timeout {:.0} s · memory {} MiB",
                job.database,
                job.backend,
                job.limits.timeout.as_secs_f64(),
                job.limits.memory_bytes >> 20
            );
        }
        println!("  folder {}", dir.path.display());
        let report = dir.path.join(crate::store::finish::REPORT_FILE);
        if report.is_file() {
            println!("  report {}", report.display());
        }
        println!("  {} files", files.len());
        if let Some(mismatches) = &mismatches {
            if mismatches.is_empty() {
                println!("  every file matches the manifest");
            }
            for m in mismatches {
                println!("  differs from the manifest: {}", serde_json::to_string(m).unwrap_or_default());
            }
        }
    }
    Ok(if mismatches.is_some_and(|m| !m.is_empty()) { 1 } else { 0 })
}

fn remove(runs: &Path, ids: &[String]) -> Result<i32, StoreError> {
    // Every id is checked before anything goes: a typo removes nothing.
    let dirs: Vec<RunDir> = ids.iter().map(|id| RunDir::open(runs, id)).collect::<Result<_, _>>()?;
    for dir in dirs {
        std::fs::remove_dir_all(&dir.path).map_err(|source| StoreError::Io { path: dir.path.clone(), source })?;
        println!("removed {}", dir.id);
    }
    Ok(0)
}

fn gc(runs: &Path, older_than: Duration, dry_run: bool) -> Result<i32, StoreError> {
    let cutoff = crate::store::utc_now() - chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
    let entries = block_on(entries(runs, None))?;
    let old: Vec<&Entry> = entries
        .iter()
        .filter(|e| {
            chrono::DateTime::parse_from_rfc3339(&e.created).is_ok_and(|t| t < cutoff)
                && e.status != crate::store::RunStatus::Running
        })
        .collect();
    for e in &old {
        if !dry_run {
            let path = runs.join(&e.id);
            std::fs::remove_dir_all(&path).map_err(|source| StoreError::Io { path, source })?;
        }
        println!("{} {}", if dry_run { "would remove" } else { "removed" }, e.id);
    }
    note(&format!("{} of {} runs {}", old.len(), entries.len(), if dry_run { "would go" } else { "removed" }));
    Ok(0)
}

/// `30d`, `12h`, `90m`, `45s`, `2w`.
fn parse_age(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("`{text}` is not an age; use e.g. 30d, 12h, 90m, 2w"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(format!("`{text}` has no unit: use s, m, h, d or w (e.g. 30d)")),
    };
    Ok(Duration::from_secs(n.saturating_mul(seconds)))
}

/// The stored database, or the one given for it when the stored one is masked.
fn database(record: &JobRecord, flag: Option<&str>) -> Result<DbUrl, OutcomeError> {
    let env = std::env::var(crate::db::url::DATABASE_URL_ENV).ok();
    record.database_url(flag, env.as_deref()).map_err(|e| OutcomeError::new(ErrorKind::Usage, e))
}

fn rerun(runs: &Path, id: &str, params: &[String], db: Option<&str>, json: bool, cache_root: PathBuf) -> i32 {
    let fail = |error: OutcomeError| super::run::fail(&error, json);
    let usage = |m: String| OutcomeError::new(ErrorKind::Usage, m);
    let dir = match RunDir::open(runs, id) {
        Ok(dir) => dir,
        Err(e) => return fail(usage(e.to_string()).with_hint("`metaexec runs list` shows the runs")),
    };
    let record: JobRecord = match dir.read_json("job.json") {
        Ok(Some(record)) => record,
        Ok(None) => {
            return fail(usage(format!("The run `{id}` has no job.json: it was recorded before runs could be re-run")));
        }
        Err(e) => return fail(usage(e.to_string())),
    };
    let mut overrides = Map::new();
    for param in params {
        match super::script::parse_param(param) {
            Ok((key, value)) => {
                overrides.insert(key, value);
            }
            Err(error) => return fail(error),
        }
    }
    let url = match database(&record, db) {
        Ok(url) => url,
        Err(error) => return fail(error),
    };
    match record.kind {
        RunKind::Run => match run_options(&record, url, overrides, id, cache_root, runs, json) {
            Ok(options) => {
                let request = record.request.clone().unwrap_or_default();
                super::run::answer(&request, &options, json, false)
            }
            Err(error) => fail(error),
        },
        kind => match start_rerun(&dir, record, url, overrides, id, runs) {
            Ok(rerun) if kind == RunKind::Exec => rerun_exec(rerun, &cache_root, json),
            Ok(rerun) => super::sweep::rerun(rerun, cache_root, json),
            Err(error) => fail(error),
        },
    }
}

/// The pipeline options a request's run had, with the stored model (its cached answers
/// are keyed by it) and the parameters given now.
fn run_options(
    record: &JobRecord,
    db: DbUrl,
    overrides: Map<String, Value>,
    id: &str,
    cache_root: PathBuf,
    runs: &Path,
    json: bool,
) -> Result<PipelineOptions, OutcomeError> {
    let mut options = PipelineOptions::new(cache_root, db, runs.to_owned());
    options.capability = record.capability.clone();
    options.limits = record.limits.clone();
    options.host_memory_bytes = record.host_memory_bytes;
    options.backend = record.backend;
    options.params = record.params.clone();
    options.params.extend(overrides);
    options.rerun_of = Some(id.to_owned());
    if let Some(model) = &record.model {
        let mut config = crate::llm::config::LlmConfig::new(model.endpoint.clone());
        config.model = model.model.clone();
        config.temperature = model.temperature;
        config.max_tokens = model.max_tokens;
        config.context = model.context;
        config.api_key = crate::llm::config::Environment::read().api_key.map(crate::llm::config::ApiKey::new);
        options.llm = Some(config);
    }
    super::run::show_progress(&mut options, json);
    Ok(options)
}

/// A stored script run to run again, as a new run of its own.
pub(super) struct Rerun {
    /// The new run's record, started.
    pub recorder: Recorder,
    /// The stored job, its results going to the new run's folder: the first run's
    /// results folder may be the user's, and is left as it is.
    pub job: Job,
    /// The stored job record, marked as a re-run, with the parameters given now.
    pub record: JobRecord,
}

/// Starts the re-run of the script run `id`: its job from the record, with `overrides`
/// over its parameters, and a new run folder.
fn start_rerun(
    dir: &RunDir,
    mut record: JobRecord,
    db: DbUrl,
    overrides: Map<String, Value>,
    id: &str,
    runs: &Path,
) -> Result<Rerun, OutcomeError> {
    record.rerun_of = Some(id.to_owned());
    record.params.extend(overrides);
    let mut job = stored_job(dir, &record, db)?;
    let recorder = Recorder::start(runs, record.kind, &job, &record).ok_or_else(|| {
        OutcomeError::new(ErrorKind::Usage, format!("No run folder could be made in {}", runs.display()))
    })?;
    job.results_dir = recorder.dir.results();
    Ok(Rerun { recorder, job, record })
}

/// The job a stored run describes (its results folder left to the caller).
fn stored_job(dir: &RunDir, record: &JobRecord, db: DbUrl) -> Result<Job, OutcomeError> {
    let source = std::fs::read_to_string(dir.path.join("script.py")).map_err(|e| {
        OutcomeError::new(
            ErrorKind::Usage,
            format!("Failed to read the run's script.py in {}: {e}", dir.path.display()),
        )
    })?;
    let mut job = Job::new(record.script_name.clone(), source, PathBuf::new());
    job.params = record.params.clone();
    job.limits = record.limits.clone();
    job.seed = record.seed;
    job.budget = crate::budget::HostBudget::new(record.host_memory_bytes);
    let proxy = DbProxy::new(db, record.capability.clone()).with_budget(job.budget.clone());
    job.db = Some(DbHandle::new(proxy));
    Ok(job)
}

/// Runs a script's run again where the validator chooses, and prints its outcome.
fn rerun_exec(rerun: Rerun, cache_root: &Path, json: bool) -> i32 {
    let Rerun { recorder, job, record } = rerun;
    let choice = crate::validate::choose_backend(&job.source, &job.script_name, record.backend);
    let outcome = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) if super::docker::is_docker(&choice) => {
            let mut options = docker::DockerOptions::new(cache_root);
            options.progress = std::sync::Arc::new(|line| note(&format!("metaexec: {line}")));
            runtime.block_on(docker::DockerBackend::new(options).run(&job))
        }
        Ok(runtime) => {
            let sandbox = crate::sandbox::WasiSandbox::new(crate::sandbox::SandboxOptions::new(cache_root.to_owned()));
            runtime.block_on(sandbox.run(&job))
        }
        Err(e) => Outcome::failed_before_start(
            OutcomeError::new(ErrorKind::Internal, format!("Failed to start the async runtime: {e}")),
            "wasi",
        ),
    };
    super::exec::finish_record(recorder, &job, &outcome);
    if json {
        super::render::json(&outcome);
    } else {
        super::render::human(&outcome);
    }
    outcome.process_exit_code()
}

fn stop(runs: &Path, id: &str, json: bool) -> i32 {
    let dir = match RunDir::open(runs, id) {
        Ok(dir) => dir.path.join("app"),
        Err(e) => {
            eprintln!("error[usage]: {e}");
            eprintln!("hint: run ids are the folder names under {}", runs.display());
            return 2;
        }
    };
    if !dir.join("app.json").is_file() {
        eprintln!("error[usage]: the run `{id}` has no web app (no {})", dir.join("app.json").display());
        return 2;
    }
    block_on(async {
        let engine = match docker::connect().await {
            Ok(engine) => engine,
            Err(e) => {
                eprintln!("error[backend_unavailable]: {}", e.message);
                eprintln!("hint: {}", e.hint);
                return 2;
            }
        };
        match docker::stop_recorded(&engine, &dir, Duration::from_secs(20)).await {
            Ok(record) => {
                if json {
                    println!("{}", serde_json::to_string_pretty(&record).unwrap_or_default());
                } else {
                    println!("{id}: {}", record.status);
                }
                if matches!(record.status.as_str(), "stopped" | "failed") { 0 } else { 1 }
            }
            Err(e) => {
                eprintln!("error[backend_unavailable]: {e:#}");
                2
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_with_their_unit() {
        assert_eq!(parse_age("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_age("2w").unwrap(), Duration::from_secs(14 * 86_400));
        assert_eq!(parse_age("90m").unwrap(), Duration::from_secs(5400));
        assert!(parse_age("30").unwrap_err().contains("no unit"));
        assert!(parse_age("d").unwrap_err().contains("not an age"));
    }
}
