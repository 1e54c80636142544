//! `metaexec sweep`: one script over many scenarios, summarised. The first Ctrl-C stops
//! the sweep where it is and writes what finished (exit 130); see [`super::interrupt`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use comfy_table::{Cell, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use super::interrupt;
use super::render;
use super::script::ScriptArgs;
use crate::cancel::Cancel;
use crate::outcome::{ErrorKind, Outcome, OutcomeError};
use crate::report::label;
use crate::scenario::ScenarioStatus;
use crate::sweep::output::{self, Keep, Written};
use crate::sweep::spec::{self, SweepSpec};
use crate::sweep::{self, Isolation, Summary, SweepOptions, SweepReport};

/// Arguments of `metaexec sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub script: ScriptArgs,

    #[command(flatten)]
    pub backend: super::docker::BackendArgs,

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

    /// Print one JSON object `{"scenarios", "summary", "metrics"}` on stdout.
    #[arg(long)]
    pub json: bool,
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
pub fn run(args: SweepArgs, cache_root: PathBuf) -> i32 {
    match sweep(&args, cache_root) {
        Ok(report) => {
            let script = args.script.script.display().to_string();
            let writing = std::time::Instant::now();
            match output::write_files(&report, &args.script.results, &script, args.keep.into()) {
                Ok(written) => print_written(&written),
                Err(e) => super::note(&format!("warning: {e}")),
            }
            tracing::debug!(elapsed_ms = writing.elapsed().as_secs_f64() * 1000.0, "files written");
            if args.xlsx
                && let Err(e) = sweep::output::write_xlsx(&report, &args.script.results)
            {
                super::note(&format!("warning: {e}"));
            }
            if args.json {
                // Streamed: a large sweep's report runs to tens of megabytes.
                let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                let _ = serde_json::to_writer(&mut out, &report).map_err(std::io::Error::other);
                let _ = writeln!(out).and_then(|()| out.flush());
            } else {
                print_human(&report, &args.script.results);
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
            // The process exits next: freeing a large sweep's outcomes one by one would
            // only delay it (~50 ms per 10,000 scenarios).
            std::mem::forget(report);
            code
        }
        Err(outcome) => {
            if args.json {
                render::json(&outcome);
            } else {
                render::human(&outcome);
            }
            outcome.process_exit_code()
        }
    }
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

fn build_spec(args: &SweepArgs) -> Result<SweepSpec, OutcomeError> {
    let spec_usage =
        |e: spec::SpecError| usage(e.to_string()).with_hint("see `metaexec sweep --help` for the spec syntax");
    let mut spec =
        SweepSpec::from_flags(&args.grid, &args.zip, args.monte_carlo, args.seed, &args.dist).map_err(spec_usage)?;
    if let Some(path) = &args.scenarios {
        let text = std::fs::read_to_string(path)
            .map_err(|e| usage(format!("Failed to read the scenarios file `{}`: {e}", path.display())))?;
        spec.named = spec::parse_named(&path.display().to_string(), &text).map_err(spec_usage)?;
    }
    if spec.is_empty() {
        return Err(usage("no scenarios: give --scenarios FILE, --grid, --zip or --monte-carlo".into())
            .with_hint("for example --grid \"noi_change=-0.3..0.1:0.05\""));
    }
    Ok(spec)
}

fn sweep(args: &SweepArgs, cache_root: PathBuf) -> Result<SweepReport, Box<Outcome>> {
    let failed = |error: OutcomeError| Box::new(Outcome::failed_before_start(error, "wasi"));
    let spec = build_spec(args).map_err(failed)?;
    let scenarios = spec.scenarios().map_err(|e| failed(usage(e.to_string())))?;
    let mut job = args.script.job(&cache_root).map_err(failed)?;
    let choice = args.backend.choose(&job.source, &job.script_name);
    if super::docker::is_docker(&choice) {
        // Said, not tried: thousands of scenarios in containers would each fail the same way.
        let error = OutcomeError::new(
            ErrorKind::BackendUnavailable,
            format!("Sweeps run in the WASI sandbox, and this script needs Docker: {}", choice.reason),
        )
        .with_hint(
            "run single scenarios with `metaexec exec --backend docker --param KEY=VALUE`, or keep the script to \
             the standard library and `metaexec` to sweep it",
        );
        return Err(Box::new(Outcome::failed_before_start(error, "docker")));
    }
    // Scenarios seed `random` from this seed and their ids: a sweep repeats exactly.
    job.seed = Some(args.seed);
    // Base params (--param, --params-file) are under every scenario's own.
    let scenarios: Vec<_> = scenarios
        .into_iter()
        .map(|mut s| {
            let mut params = job.params.clone();
            params.append(&mut s.params);
            s.params = params;
            s
        })
        .collect();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers = args.workers.unwrap_or(cores).max(1);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(workers.min(cores)).enable_all().build().map_err(
            |e| failed(OutcomeError::new(ErrorKind::Internal, format!("Failed to start the async runtime: {e}"))),
        )?;
    let sandbox = args.script.sandbox(cache_root, true, args.isolation == Isolation::Instance);
    let total = scenarios.len() as u64;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos}/{len} scenarios {per_sec} ETA {eta} {wide_bar}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    let progress = bar.clone();
    let options = SweepOptions { workers, isolation: args.isolation, cancel: Cancel::new() };
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
        if !options.cancel.is_cancelled() {
            bar.set_message("narrowing break-even points");
        }
        sweep::bisect::refine(&sandbox, &job, &mut report, &options).await;
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
