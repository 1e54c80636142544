//! `metaexec sweep`: one script over many scenarios, summarised. The first Ctrl-C stops
//! the sweep where it is and writes what finished (exit 130); see [`super::interrupt`].
//!
//! Beyond one machine: [`shard`] runs one shard of the plan into a part folder (and
//! `--prepare` writes what the shards need, the database snapshot included), [`merge`]
//! checks the parts and writes what a single-machine sweep writes, and [`ray`] runs the
//! shards as a Ray job and merges what comes back.

mod merge;
mod ray;
mod shard;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use comfy_table::{Cell, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use super::interrupt;
use super::record::{self, Recorder};
use super::render;
use super::script::ScriptArgs;
use crate::cancel::Cancel;
use crate::job::Job;
use crate::outcome::{ErrorKind, Outcome, OutcomeError};
use crate::report::label;
use crate::report::run_page::PageInputs;
use crate::scenario::ScenarioStatus;
use crate::store::job_record::SweepFlags;
use crate::store::{RunKind, RunStatus};
use crate::sweep::output::{self, Keep, Written};
use crate::sweep::plan::{self as sweep_plan, Source};
use crate::sweep::spec::{self, PlanTexts};
use crate::sweep::{self, Isolation, Summary, SweepOptions, SweepRecord, SweepReport};

/// Arguments of `metaexec sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub script: ScriptArgs,

    #[command(flatten)]
    pub backend: super::docker::BackendArgs,

    /// A plan file instead of scenario flags: `plan.json` as `--prepare` writes it
    /// (`{"format": "metaexec-sweep-plan/1", "seed": 1, "grids": [{"param": "noi_change",
    /// "values": [-0.1, 0]}]}`; also `named`, `zips`, `monte_carlo` with `draws` and
    /// `dists`, and `base` params under every scenario).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["scenarios", "grid", "zip", "monte_carlo", "dist", "seed"])]
    pub plan: Option<PathBuf>,

    /// Named scenarios: a JSON object `{"name": {"param": value}}` or a list of objects
    /// with a `name` and their params; YAML (`.yaml`, `.yml`) of the same shape
    /// (`stress: {noi_change: -0.2}`); or TOML (`.toml`): a `[name]` table per scenario.
    #[arg(long, value_name = "FILE")]
    pub scenarios: Option<PathBuf>,

    /// A parameter grid, `KEY=START..STOP:STEP` or `KEY=V1,V2,...`. Repeat for the
    /// cartesian product.
    #[arg(long, value_name = "SPEC")]
    pub grid: Vec<String>,

    /// A list taken side by side with the other --zip lists (all the same length).
    #[arg(long, value_name = "KEY=V1,V2,...")]
    pub zip: Vec<String>,

    /// Draw this many scenarios at random from the --dist distributions.
    #[arg(long, value_name = "N")]
    pub monte_carlo: Option<usize>,

    /// The seed of the draws, and of Python's `random` in each scenario (derived from it
    /// and the scenario's id): the same seed gives the same sweep on any machine.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,

    /// A distribution for --monte-carlo: `KEY=normal(MEAN,SD)`, `uniform(LO,HI)`,
    /// `triangular(LO,MODE,HI)` or `lognormal(MU,SIGMA)`.
    #[arg(long, value_name = "KEY=DIST")]
    pub dist: Vec<String>,

    /// Sandbox instances running at once [default: one per core].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// `namespace`: warm instances, a fresh module namespace per scenario (fast);
    /// `instance`: a fresh instance of the runtime per scenario (nothing shared; a few
    /// milliseconds each).
    #[arg(long, value_enum, default_value_t = Isolation::Namespace)]
    pub isolation: Isolation,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub across: shard::AcrossArgs,
}

/// What a sweep writes and prints: shared by `sweep` and `sweep merge`.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Also write `sweep.xlsx` into the results folder: one sheet per table, DSCR
    /// cells coloured with the report bands.
    #[arg(long)]
    pub xlsx: bool,

    /// Which files go into the results folder. `auto`: `summary.json`, `results.json`,
    /// `scenarios.csv` and `report.html`, but when the per-scenario files would pass
    /// 64 MiB, one line per scenario in `scenarios.csv.gz` instead of the two; `all`:
    /// every file however large; `summary`: `summary.json` and `report.html` only.
    #[arg(long, value_enum, default_value_t = KeepArg::Auto)]
    pub keep: KeepArg,

    /// Print one JSON object `{"scenarios", "summary", "metrics"}` on stdout (with
    /// --shard: the part's `part.json`).
    #[arg(long)]
    pub json: bool,
}

/// `metaexec sweep SCRIPT …`, or `metaexec sweep merge PART… --out DIR`.
///
/// Written by hand rather than derived: a derived command would build the script's
/// arguments (and require the script) for `merge` too.
#[derive(Debug)]
pub enum SweepCommand {
    /// `metaexec sweep merge …`.
    Merge(merge::MergeArgs),
    /// `metaexec sweep SCRIPT …`.
    Run(Box<SweepArgs>),
}

impl clap::FromArgMatches for SweepCommand {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        match matches.subcommand() {
            Some(("merge", sub)) => Ok(Self::Merge(merge::MergeArgs::from_arg_matches(sub)?)),
            _ => Ok(Self::Run(Box::new(SweepArgs::from_arg_matches(matches)?))),
        }
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for SweepCommand {
    fn augment_args(command: clap::Command) -> clap::Command {
        use clap::Subcommand as _;
        SweepAction::augment_subcommands(SweepArgs::augment_args(command))
            .args_conflicts_with_subcommands(true)
            .subcommand_negates_reqs(true)
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

/// `metaexec sweep merge`: the parts of a sharded sweep, added up.
#[derive(Debug, clap::Subcommand)]
pub enum SweepAction {
    /// Merge the parts of a sharded sweep into the files a single-machine sweep writes.
    ///
    /// Checks that the parts are the shards of one sweep (the same plan, script and
    /// runtime, each shard once, none missing), then writes results.json,
    /// scenarios.csv, summary.json and report.html (and sweep.xlsx with --xlsx) into
    /// --out. Percentiles and probabilities come from every scenario's own figures;
    /// break-even points are narrowed once, here, answering the script's reads from
    /// the parts' database snapshot (or --db).
    ///
    /// Examples:
    ///   metaexec sweep merge parts/part-* --out results
    ///   metaexec sweep merge part-0 part-1 part-2 --out results --xlsx --json
    #[command(verbatim_doc_comment)]
    Merge(merge::MergeArgs),
}

/// `--keep`: the command line's names for [`Keep`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeepArg {
    /// Everything, compacted when it would be large.
    Auto,
    /// Everything, however large.
    All,
    /// The summary only.
    Summary,
}

impl From<KeepArg> for Keep {
    fn from(arg: KeepArg) -> Self {
        match arg {
            KeepArg::Auto => Keep::Auto,
            KeepArg::All => Keep::All,
            KeepArg::Summary => Keep::Summary,
        }
    }
}

/// Runs the command; returns the exit code: 0 when every scenario finished, 1 when some
/// failed, 2 when the sweep could not run, 130 when it was interrupted (what finished is
/// written all the same).
pub fn run(args: SweepArgs, cache_root: PathBuf, runs: &Path) -> i32 {
    if args.across.ray.is_some() {
        return ray::run(args, cache_root, runs);
    }
    if args.across.prepare.is_some() {
        return shard::prepare(args, cache_root);
    }
    if args.across.shard.is_some() {
        return shard::run(args, cache_root);
    }
    let recorder = start_record(&args, &cache_root, runs);
    let output = Output::of(&args);
    let result = plan(&args, cache_root).and_then(|plan| execute(plan, None, true));
    report(result, &output, recorder)
}

/// Runs `metaexec sweep …` or `metaexec sweep merge …`.
pub fn run_command(command: SweepCommand, cache_root: PathBuf, runs: &Path) -> i32 {
    match command {
        SweepCommand::Merge(args) => merge::run(args, cache_root),
        SweepCommand::Run(args) => run(*args, cache_root, runs),
    }
}

/// Runs a recorded sweep again as a new run, its files in the new run's folder.
pub(super) fn rerun(rerun: super::runs::Rerun, cache_root: PathBuf, json: bool) -> i32 {
    let super::runs::Rerun { recorder, job, record } = rerun;
    let output = Output {
        json,
        keep: Keep::Auto,
        xlsx: false,
        results: job.results_dir.clone(),
        label: job.script_name.clone(),
    };
    let flags = record.sweep.clone().ok_or_else(|| {
        usage(format!("The run `{}` is a sweep without its scenarios in job.json", record.rerun_of.unwrap_or_default()))
    });
    let planned = flags
        .and_then(|flags| Ok((plan_of(&flags)?, flags)))
        .map_err(|e| Box::new(Outcome::failed_before_start(e, "wasi")));
    let planned = planned.map(|(mut plan, flags)| {
        plan.base.extend(job.params.clone());
        let mut options = crate::sandbox::SandboxOptions::new(cache_root);
        options.many_instances = flags.isolation == Isolation::Instance;
        options.progress = std::sync::Arc::new(|line| super::note(&format!("metaexec: {line}")));
        Plan {
            choice: crate::validate::choose_backend(&job.source, &job.script_name, record.backend),
            job: job.clone(),
            plan,
            workers: flags.workers,
            isolation: flags.isolation,
            sandbox: crate::sandbox::WasiSandbox::new(options),
        }
    });
    report(planned.and_then(|plan| execute(plan, None, true)), &output, Some((recorder, job)))
}

/// How a sweep's outcome is shown and kept.
struct Output {
    json: bool,
    keep: Keep,
    xlsx: bool,
    /// The results folder, where the sweep's files go.
    results: PathBuf,
    /// The script, as the report names it.
    label: String,
}

impl Output {
    /// What the command line asks for.
    fn of(args: &SweepArgs) -> Self {
        Self::new(&args.output, args.script.results.clone(), args.script.script.display().to_string())
    }

    /// `args`' output into `results`, the script named `label`.
    fn new(args: &OutputArgs, results: PathBuf, label: String) -> Self {
        Self { json: args.json, keep: args.keep.into(), xlsx: args.xlsx, results, label }
    }
}

/// Writes the sweep's files and its run record, prints it and returns the exit code.
fn report(result: Result<SweepReport, Box<Outcome>>, out: &Output, recorder: Option<(Recorder, Job)>) -> i32 {
    match result {
        Ok(report) => {
            let writing = std::time::Instant::now();
            match output::write_files(&report, &out.results, &out.label, out.keep) {
                Ok(written) => print_written(&written),
                Err(e) => super::note(&format!("warning: {e}")),
            }
            tracing::debug!(elapsed_ms = writing.elapsed().as_secs_f64() * 1000.0, "files written");
            if out.xlsx
                && let Err(e) = sweep::output::write_xlsx(&report, &out.results)
            {
                super::note(&format!("warning: {e}"));
            }
            if out.json {
                // Streamed: a large sweep's report runs to tens of megabytes.
                let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
                let _ = serde_json::to_writer(&mut stdout, &report).map_err(std::io::Error::other);
                let _ = writeln!(stdout).and_then(|()| stdout.flush());
            } else {
                print_human(&report, &out.results);
            }
            for error in &report.instance_errors {
                super::note(&format!("warning: an instance was replaced: {}", error.message));
            }
            if let Some(interrupted) = &report.summary.interrupted {
                super::note(&interrupted_line(interrupted));
            }
            let code = if report.summary.interrupted.is_some() {
                interrupt::INTERRUPTED
            } else if report.summary.failed > 0 || !report.instance_errors.is_empty() {
                1
            } else {
                0
            };
            if let Some((recorder, job)) = recorder {
                finish_record(recorder, &job, Ok(&report), &out.results);
            }
            // The process exits next: freeing a large sweep's outcomes one by one would
            // only delay it (~50 ms per 10,000 scenarios).
            std::mem::forget(report);
            code
        }
        Err(outcome) => {
            if let Some((recorder, job)) = recorder {
                finish_record(recorder, &job, Err(&outcome), &out.results);
            }
            if out.json {
                render::json(&outcome);
            } else {
                render::human(&outcome);
            }
            outcome.process_exit_code()
        }
    }
}

/// Starts the sweep's run record: its script, job and scenario flags. `None` when the
/// script cannot be read (the sweep then fails on its own) or no folder can be made.
fn start_record(args: &SweepArgs, cache_root: &Path, runs: &Path) -> Option<(Recorder, Job)> {
    let mut job = args.script.job(cache_root).ok()?;
    let flags = flags(args).ok()?;
    job.seed = Some(flags.seed);
    let plan = plan_of(&flags).ok().map(|mut plan| {
        plan.base.extend(job.params.clone());
        plan
    });
    let mut record = record::job_record(RunKind::Sweep, &args.script, args.backend.backend.into(), &job, cache_root);
    record.sweep = Some(flags);
    let recorder = Recorder::start(runs, RunKind::Sweep, &job, &record)?;
    // The plan as `--plan` reads it: the same sweep again, or in shards.
    if let Some(plan) = plan {
        recorder.write_json("plan.json", &plan);
    }
    Some((recorder, job))
}

/// Finishes the sweep's run record: `sweep.json` (a line per scenario, the summary),
/// the page, the entry.
fn finish_record(recorder: Recorder, job: &Job, report: Result<&SweepReport, &Outcome>, results: &Path) {
    let record = report.ok().map(|report| {
        let files = ["summary.json", "results.json", "scenarios.csv", "report.html"]
            .iter()
            .map(|name| results.join(name))
            .filter(|path| path.is_file())
            .collect();
        SweepRecord::new(report, files)
    });
    if let Some(record) = &record {
        recorder.write_json("sweep.json", record);
    }
    let failure = report.err().and_then(|o| o.error.as_ref());
    if let Err(outcome) = report {
        recorder.write_json("outcome.json", outcome);
    }
    let status = match &record {
        Some(r) if r.summary.interrupted.is_some() => RunStatus::Interrupted,
        Some(r) if r.summary.failed == 0 && r.instance_errors.is_empty() => RunStatus::Ok,
        _ => RunStatus::Failed,
    };
    let page = PageInputs {
        sweep: record.as_ref(),
        script: Some(&job.source),
        limits: Some(&job.limits),
        params: Some(&job.params),
        error: failure,
        ..PageInputs::empty()
    };
    let headline = record.as_ref().map(|r| crate::store::entry::sweep_headline(&r.summary));
    recorder.finish(status, failure.map(|e| e.kind.as_str().to_owned()), headline, page);
}

/// The line that says a sweep was interrupted, and what its figures cover.
pub(super) fn interrupted_line(interrupted: &sweep::summary::Interrupted) -> String {
    format!(
        "interrupted: {} of {} scenarios finished; the summary and the files cover those only",
        interrupted.finished, interrupted.planned
    )
}

/// Says when the per-scenario files were replaced by the compact one.
pub(super) fn print_written(written: &Written) {
    if let Some(bytes) = written.compacted {
        super::note(&format!(
            "results.json and scenarios.csv would take about {} MiB: wrote summary.json and scenarios.csv.gz \
             (one line per scenario) instead; --keep all writes them anyway",
            bytes >> 20
        ));
    }
}

fn usage(message: String) -> OutcomeError {
    OutcomeError::new(ErrorKind::Usage, message)
}

/// The sweep's scenarios as given: the flags, and the scenarios file's text.
fn flags(args: &SweepArgs) -> Result<SweepFlags, OutcomeError> {
    let read = |path: &Path, what: &str| {
        std::fs::read_to_string(path).map_err(|e| usage(format!("Failed to read the {what} `{}`: {e}", path.display())))
    };
    let named = match &args.scenarios {
        Some(path) => Some((path.display().to_string(), read(path, "scenarios file")?)),
        None => None,
    };
    let plan = match &args.plan {
        Some(path) => {
            let plan = sweep_plan::Plan::from_json(&path.display().to_string(), &read(path, "plan file")?)
                .map_err(|e| usage(e.to_string()).with_hint("`metaexec sweep --help` describes the plan file"))?;
            Some(plan)
        }
        None => None,
    };
    Ok(SweepFlags {
        grid: args.grid.clone(),
        zip: args.zip.clone(),
        monte_carlo: args.monte_carlo,
        seed: plan.as_ref().map_or(args.seed, |p| p.seed),
        dist: args.dist.clone(),
        named,
        plan,
        isolation: args.isolation,
        workers: args.workers,
    })
}

/// The plan the flags describe (or the plan file given), checked.
fn plan_of(flags: &SweepFlags) -> Result<sweep_plan::Plan, OutcomeError> {
    if let Some(plan) = &flags.plan {
        return Ok(plan.clone());
    }
    let spec_usage =
        |e: spec::SpecError| usage(e.to_string()).with_hint("see `metaexec sweep --help` for the spec syntax");
    let texts = PlanTexts {
        grid: &flags.grid,
        zip: &flags.zip,
        monte_carlo: flags.monte_carlo,
        seed: flags.seed,
        dist: &flags.dist,
    };
    let mut plan = texts.plan(Source::Flags).map_err(spec_usage)?;
    if let Some((source, text)) = &flags.named {
        plan.named = spec::named(spec::parse_named(source, text).map_err(spec_usage)?);
    }
    if plan.is_empty() {
        return Err(usage("no scenarios: give --scenarios FILE, --grid, --zip, --monte-carlo or --plan FILE".into())
            .with_hint("for example --grid \"noi_change=-0.3..0.1:0.05\""));
    }
    plan.enumerate(Source::Flags).map_err(spec_usage)?;
    Ok(plan)
}

/// What a sweep runs: a job over a plan's scenarios, where and how.
struct Plan {
    job: Job,
    /// The scenarios; `base` holds the job's own parameters.
    plan: sweep_plan::Plan,
    workers: Option<usize>,
    isolation: Isolation,
    sandbox: crate::sandbox::WasiSandbox,
    choice: crate::validate::BackendChoice,
}

/// The plan the command line describes.
fn plan(args: &SweepArgs, cache_root: PathBuf) -> Result<Plan, Box<Outcome>> {
    let failed = |error: OutcomeError| Box::new(Outcome::failed_before_start(error, "wasi"));
    let mut plan = plan_of(&flags(args).map_err(failed)?).map_err(failed)?;
    let job = args.script.job(&cache_root).map_err(failed)?;
    // --param and --params-file sit under every scenario's own parameters, and are part
    // of the plan: shards given other ones are shards of another sweep.
    plan.base.extend(job.params.clone());
    Ok(Plan {
        choice: args.backend.choose(&job.source, &job.script_name),
        job,
        plan,
        workers: args.workers,
        isolation: args.isolation,
        sandbox: args.script.sandbox(cache_root, true, args.isolation == Isolation::Instance),
    })
}

/// Sweeps run in the WASI sandbox: a script that needs Docker is refused up front, since
/// thousands of scenarios in containers would each fail the same way.
fn refuse_docker(choice: &crate::validate::BackendChoice) -> Result<(), Box<Outcome>> {
    if !super::docker::is_docker(choice) {
        return Ok(());
    }
    let error = OutcomeError::new(
        ErrorKind::BackendUnavailable,
        format!("Sweeps run in the WASI sandbox, and this script needs Docker: {}", choice.reason),
    )
    .with_hint(
        "run single scenarios with `metaexec exec --backend docker --param KEY=VALUE`, or keep the script to \
         the standard library and `metaexec` to sweep it",
    );
    Err(Box::new(Outcome::failed_before_start(error, "docker")))
}

/// The async runtime a sweep runs on, `threads` worker threads.
fn tokio_runtime(threads: usize) -> Result<tokio::runtime::Runtime, OutcomeError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| OutcomeError::new(ErrorKind::Internal, format!("Failed to start the async runtime: {e}")))
}

/// Runs the plan's scenarios (those in `range`, or all of them) with a progress bar,
/// then narrows the break-even points when `refine`; Ctrl-C stops it where it is.
fn execute(plan: Plan, range: Option<std::ops::Range<usize>>, refine: bool) -> Result<SweepReport, Box<Outcome>> {
    let failed = |error: OutcomeError| Box::new(Outcome::failed_before_start(error, "wasi"));
    let Plan { mut job, plan, workers, isolation, sandbox, choice } = plan;
    let enumerated = plan.enumerate(Source::Flags).map_err(|e| failed(usage(e.to_string())))?;
    let scenarios: Vec<_> = enumerated.range(range.unwrap_or(0..enumerated.len())).collect();
    let seed = plan.seed;
    refuse_docker(&choice)?;
    // Scenarios seed `random` from this seed and their ids: a sweep repeats exactly.
    job.seed = Some(seed);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers = workers.unwrap_or(cores).max(1);
    let runtime = tokio_runtime(workers.min(cores)).map_err(failed)?;
    let total = scenarios.len() as u64;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos}/{len} scenarios {per_sec} ETA {eta} {wide_bar}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    let progress = bar.clone();
    let options = SweepOptions { workers, isolation, cancel: Cancel::new() };
    let told = bar.clone();
    let watched = {
        let _entered = runtime.enter();
        interrupt::watch(options.cancel.clone(), move || {
            let line = "interrupted: stopping the running scenarios and writing what finished \
                        (Ctrl-C again to quit at once)";
            // A hidden bar (stderr is not a terminal) prints nothing.
            if told.is_hidden() { super::note(line) } else { told.println(line) }
        })
    };
    if let Err(e) = watched {
        tracing::warn!("Ctrl-C will stop the sweep at once, writing nothing: {e}");
    }
    let result = runtime.block_on(async {
        let mut report =
            sweep::run(&sandbox, &job, scenarios, options.clone(), move |done| progress.set_position(done as u64))
                .await?;
        if refine {
            if !options.cancel.is_cancelled() {
                bar.set_message("narrowing break-even points");
            }
            sweep::bisect::refine(&sandbox, &job, &mut report, &options).await;
        }
        Ok(report)
    });
    bar.finish_and_clear();
    result
}

/// The summary's tables as text: the per-property DSCR distribution (with `distribution`),
/// break-even points per swept parameter, the sensitivity ranking and the verdict counts.
/// Property names, scenario ids, parameter names and verdicts came from the guest or the
/// plan: each is escaped to one line (`line`).
pub(super) fn summary_text(s: &Summary, distribution: bool) -> String {
    let line = |text: &str| render::guest_line(text).into_owned();
    let mut out = String::new();
    if distribution && !s.properties.is_empty() {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
        table.set_header([
            "property",
            "min DSCR",
            "worst scenario",
            "p05",
            "median",
            "p95",
            "P(DSCR<1.0)",
            "P(DSCR<1.25)",
        ]);
        for p in &s.properties {
            table.add_row(vec![
                Cell::new(line(&p.property_name)),
                Cell::new(format!("{:.2}", p.min_dscr)),
                Cell::new(line(&label::scenario(&p.worst_scenario))),
                Cell::new(format!("{:.2}", p.p05)),
                Cell::new(format!("{:.2}", p.p50)),
                Cell::new(format!("{:.2}", p.p95)),
                Cell::new(format!("{:.1}%", p.prob_below_1 * 100.0)),
                Cell::new(format!("{:.1}%", p.prob_below_1_25 * 100.0)),
            ]);
        }
        out.push_str(&format!("DSCR across {} scenarios\n{table}\n", s.ok));
    }
    let mut params: Vec<&str> = Vec::new();
    for b in &s.analysis.break_even {
        if !params.contains(&b.param.as_str()) {
            params.push(&b.param);
        }
    }
    for param in params {
        let break_even: Vec<_> = s.analysis.break_even.iter().filter(|b| b.param == param).collect();
        let shown = line(&label::param_name(param));
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
        table.set_header(["property".to_owned(), format!("{shown} to DSCR 1.25"), format!("{shown} to DSCR 1.0")]);
        let show = |b: Option<&&crate::sweep::analysis::BreakEven>| b.map(|b| b.label()).unwrap_or_default();
        let mut names: Vec<&str> = Vec::new();
        for b in &break_even {
            if !names.contains(&b.property_name.as_str()) {
                names.push(&b.property_name);
            }
        }
        for name in names {
            let at = |t: f64| break_even.iter().find(|b| b.property_name == name && b.threshold == t);
            table.add_row(vec![line(name), show(at(1.25)), show(at(1.0))]);
        }
        out.push_str(&format!("Break-even in {shown} (other parameters at base)\n{table}\n"));
    }
    if !s.analysis.sensitivity.is_empty() {
        let lines: Vec<String> = s
            .analysis
            .sensitivity
            .iter()
            .map(|t| {
                let at = |x: f64| line(&label::param(&t.param, x));
                let base = match (t.base_value, t.dscr_at_base) {
                    (Some(x), Some(d)) => format!(", {d:.2} at base ({})", at(x)),
                    _ => String::new(),
                };
                format!(
                    "{}: portfolio DSCR {:.2} at low ({}){base}, {:.2} at high ({}) (swing {:.2})",
                    line(&label::param_name(&t.param)),
                    t.dscr_at_low,
                    at(t.low_value),
                    t.dscr_at_high,
                    at(t.high_value),
                    t.swing
                )
            })
            .collect();
        out.push_str(&format!("Sensitivity, one parameter at a time, widest first:\n  {}\n", lines.join("\n  ")));
    }
    if !s.verdicts.is_empty() {
        let verdicts: Vec<String> = s.verdicts.iter().map(|(k, v)| format!("{} {v}", line(k))).collect();
        out.push_str(&format!("verdicts over all scenarios × properties: {}\n", verdicts.join(" · ")));
    }
    out
}

fn print_human(report: &SweepReport, results: &Path) {
    let s = &report.summary;
    let m = &report.metrics;
    render::out(&summary_text(s, true));
    for failed in report.scenarios.iter().filter(|o| o.status == ScenarioStatus::Error).take(5) {
        if let Some(error) = &failed.error {
            render::err_line(&format!(
                "scenario {}: error[{}]: {}",
                render::guest_line(&failed.id),
                error.kind,
                render::guest(&error.message)
            ));
        }
    }
    if s.failed > 5 {
        render::err_line(&format!("… and {} more failed scenarios (see results.json)", s.failed - 5));
    }
    for error in &report.instance_errors {
        render::print_error(error);
    }
    render::print_removed(&report.sanitized);
    let bisection = match m.bisection_runs {
        0 => String::new(),
        n => format!(" · analysis: {n} more runs in {:.0} ms", m.bisection_ms),
    };
    render::err_line(&format!(
        "{} scenarios ({} ok, {} failed) in {:.0} ms · {:.0} scenarios/s · {} workers · {} db queries{bisection} · {}",
        s.total,
        s.ok,
        s.failed,
        m.wall_ms,
        m.scenarios_per_s,
        m.workers,
        m.db_queries,
        render::guest_line(&results.join("report.html").display().to_string())
    ));
}
