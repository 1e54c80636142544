//! `metaexec run "<request>"`: the whole pipeline from a sentence to results, with a line of
//! progress per stage on stderr and the result tables on stdout. The first Ctrl-C stops the
//! run where it is and writes what it has to the run folder (exit 130); see
//! [`super::interrupt`].

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value};

use super::capability::CapabilityArgs;
use super::db::DbArgs;
use super::interrupt;
use super::render;
use super::sweep::KeepArg;
use crate::job;
use crate::llm::config::{self, Environment, Overrides};
use crate::outcome::{ErrorKind, OutcomeError};
use crate::pipeline::{self, Event, PipelineOptions, RunRecord, Stage, SweepRecord};
use crate::report::label;
use crate::task::ExportFormat;
use crate::validate::Report;

/// Arguments of `metaexec run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// What you want, in plain English (quoted, or as the rest of the line).
    #[arg(value_name = "REQUEST", required = true, num_args = 1..)]
    pub request: Vec<String>,

    #[command(flatten)]
    pub(crate) db: DbArgs,

    #[command(flatten)]
    pub backend: super::docker::BackendArgs,

    /// The OpenAI-compatible server's base URL (LM Studio: http://localhost:1234/v1,
    /// Ollama: http://localhost:11434/v1) [default: $METAEXEC_LLM_URL, $OPENAI_BASE_URL,
    /// the config file; none: the offline planner].
    #[arg(long, value_name = "URL")]
    pub llm_url: Option<String>,

    /// The model id [default: $METAEXEC_MODEL, the config file, else the server's first].
    #[arg(long, value_name = "ID")]
    pub model: Option<String>,

    /// Use the offline planner even when a model is configured.
    #[arg(long, conflicts_with_all = ["llm_url", "model"])]
    pub offline: bool,

    /// Sampling temperature for the model (0 to 2) [default: 0.1].
    #[arg(long, value_name = "T")]
    pub temperature: Option<f64>,

    /// The most tokens one model answer may have; each stage asks for less when it needs
    /// less or the context is small (a plan or a script 2048) [default: 4096].
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<u32>,

    /// Seconds one model answer may take in all [default: 900].
    #[arg(long, value_name = "SECS")]
    pub llm_timeout: Option<f64>,

    /// Seconds a streamed answer may pause between two pieces before the call is given up
    /// [default: 60].
    #[arg(long, value_name = "SECS")]
    pub llm_idle_timeout: Option<f64>,

    /// The model's context in tokens, for a server that does not report it
    /// (llama-cpp-python: its --n_ctx). llama-server, LM Studio, vLLM and Ollama are asked;
    /// every request is fitted to the context before it is sent [default: the server's,
    /// else 4096].
    #[arg(long, value_name = "TOKENS")]
    pub llm_context: Option<u32>,

    /// Ask the model afresh instead of reusing cached answers.
    #[arg(long)]
    pub no_cache: bool,

    /// Rounds of repair after the first script: the validator's findings or the script's
    /// traceback go back to the model.
    #[arg(long, value_name = "N", default_value_t = pipeline::DEFAULT_MAX_REPAIRS)]
    pub max_repairs: u32,

    /// Run a model's script without asking first.
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Print the whole run record as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,

    /// Also write each result table as CSV into the run folder.
    #[arg(long)]
    pub csv: bool,

    /// Also write the result tables as one XLSX workbook into the run folder.
    #[arg(long)]
    pub xlsx: bool,

    /// Print the script that ran.
    #[arg(long)]
    pub show_script: bool,

    /// Wall-clock limit of the script, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = job::DEFAULT_TIMEOUT.as_secs_f64())]
    pub timeout: f64,

    /// Memory cap in MiB: the most linear memory one sandbox instance may grow to. When
    /// the request runs as a sweep, a warm instance runs many scenarios and its memory
    /// only grows, so the cap covers them together, not each scenario on its own.
    #[arg(long, value_name = "MIB", default_value_t = job::DEFAULT_MEMORY_BYTES / (1024 * 1024))]
    pub memory: u64,

    /// Host memory budget in MiB: the most the script can make metaexec itself hold
    /// (decoded results, database rows and their snapshot, a sweep's kept outcomes).
    /// Past it the run stops with `host_memory`, or the query is refused.
    #[arg(long, value_name = "MIB", default_value_t = crate::budget::DEFAULT_HOST_MEMORY_BYTES / (1024 * 1024))]
    pub host_memory: usize,

    /// Do not build the runtime if it is missing (or does not verify).
    #[arg(long)]
    pub no_fetch: bool,

    /// Which of a sweep's files go into the run's `sweep/` folder: `auto` (a compact
    /// `scenarios.csv.gz` instead of `results.json` and `scenarios.csv` when those would
    /// pass 64 MiB), `all` or `summary` (see `metaexec sweep --help`).
    #[arg(long, value_enum, default_value_t = KeepArg::Auto)]
    pub keep: KeepArg,

    #[command(flatten)]
    pub capability: CapabilityArgs,
}

/// Runs the command; returns the exit code.
pub fn run(args: RunArgs, cache_root: PathBuf, runs: PathBuf) -> i32 {
    let request = args.request.join(" ");
    let options = match options(&args, cache_root, runs) {
        Ok(options) => options,
        Err(error) => return fail(&error, args.json),
    };
    answer(&request, &options, args.json, args.show_script)
}

/// Runs the pipeline on `request` with Ctrl-C watched, prints the record (as JSON with
/// `json`) and returns the exit code. `runs rerun` comes here too.
pub(super) fn answer(request: &str, options: &PipelineOptions, json: bool, show_script: bool) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            return fail(
                &OutcomeError::new(ErrorKind::Internal, format!("Failed to start the async runtime: {e}")),
                json,
            );
        }
    };
    let watched = {
        let _entered = runtime.enter();
        interrupt::watch(options.cancel.clone(), || {
            super::note("interrupted: stopping and writing what the run has (Ctrl-C again to quit at once)");
        })
    };
    if let Err(e) = watched {
        tracing::warn!("Ctrl-C will stop the run at once, writing nothing more: {e}");
    }
    let record = runtime.block_on(pipeline::run(request, options));
    if json {
        let text = serde_json::to_string_pretty(&record).expect("run records serialise");
        let _ = writeln!(std::io::stdout().lock(), "{text}");
    } else {
        print_human(&record, show_script);
    }
    record.exit_code()
}

pub(super) fn fail(error: &OutcomeError, json: bool) -> i32 {
    if json {
        let value = serde_json::json!({"error": error});
        println!("{}", serde_json::to_string_pretty(&value).expect("errors serialise"));
    } else {
        render::print_error(error);
    }
    error.kind.exit_code()
}

fn usage(message: String) -> OutcomeError {
    OutcomeError::new(ErrorKind::Usage, message)
}

fn options(args: &RunArgs, cache_root: PathBuf, runs: PathBuf) -> Result<PipelineOptions, OutcomeError> {
    let db = args.db.url(&cache_root)?;
    let llm = if args.offline {
        None
    } else {
        let overrides = Overrides {
            url: args.llm_url.clone(),
            model: args.model.clone(),
            temperature: args.temperature,
            max_tokens: args.max_tokens,
            timeout_secs: args.llm_timeout,
            idle_timeout_secs: args.llm_idle_timeout,
            context: args.llm_context,
        };
        config::resolve(&overrides, &Environment::read()).map_err(|e| usage(e.to_string()))?
    };
    let mut options = PipelineOptions::new(cache_root, db, runs);
    options.capability = args.capability.capability()?;
    options.llm = llm;
    options.use_cache = !args.no_cache;
    options.max_repairs = args.max_repairs;
    options.limits = super::script::limits(args.timeout, args.memory)?;
    if args.host_memory == 0 {
        return Err(usage("--host-memory must be at least 1 MiB".into()));
    }
    options.host_memory_bytes = args.host_memory.saturating_mul(1024 * 1024);
    options.auto_fetch = !args.no_fetch;
    options.keep = args.keep.into();
    options.backend = args.backend.backend.into();
    options.base_image = args.backend.base_image.clone();
    options.exports = [(args.csv, ExportFormat::Csv), (args.xlsx, ExportFormat::Xlsx)]
        .into_iter()
        .filter_map(|(on, format)| on.then_some(format))
        .collect();
    let display = show_progress(&mut options, args.json);
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if !args.yes && !args.json && interactive {
        let asker = display;
        options.confirm = Some(Arc::new(move |script: &str, report: &Report| asker.confirm(script, report)));
    }
    Ok(options)
}

/// Shows the stages' progress on stderr, and the script's log lines unless `json`.
pub(super) fn show_progress(options: &mut PipelineOptions, json: bool) -> Arc<Display> {
    let display = Arc::new(Display::new());
    let progress = display.clone();
    options.progress = Arc::new(move |event| progress.event(event));
    let logs = display.clone();
    options.on_log = Some(Arc::new(move |line| {
        if !json {
            logs.line(&log_lines(line));
        }
    }));
    display
}

/// A `metaexec.log` line as printed: escaped, and every line of a multi-line message
/// marked as the script's, so a log cannot pass for one of the host's own lines.
fn log_lines(line: &str) -> String {
    let escaped = render::guest(line);
    let mut out = String::new();
    for (i, part) in escaped.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str("  [log] ");
        out.push_str(part);
    }
    out
}

/// Progress on stderr: a spinner per stage on a terminal, one line per finished stage
/// otherwise (logs, CI). Every line goes through the printer's escaping.
pub(super) struct Display {
    bar: Mutex<Option<ProgressBar>>,
    terminal: bool,
}

impl Display {
    fn new() -> Self {
        Self { bar: Mutex::new(None), terminal: std::io::stderr().is_terminal() }
    }

    fn event(&self, event: &Event) {
        let mut bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Started { stage, round } => {
                if self.terminal {
                    let spinner = ProgressBar::new_spinner();
                    spinner.set_style(
                        ProgressStyle::with_template("{spinner} {prefix:>9} {msg} {elapsed}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    spinner.set_prefix(stage_label(*stage, *round));
                    spinner.enable_steady_tick(Duration::from_millis(100));
                    *bar = Some(spinner);
                }
            }
            Event::Progress { stage, detail } => match bar.as_ref() {
                Some(spinner) => spinner.set_message(render::guest_line(detail).into_owned()),
                // Without a spinner, only the runtime's own notices (building it, compiling
                // it once) get a line: they explain a wait of seconds, where streamed
                // characters and scenario counts would flood a log.
                None if *stage == Stage::Execute => {
                    render::err_line(&format!("metaexec: {}", render::guest_line(detail)))
                }
                None => {}
            },
            Event::Plan(steps) => {
                // The plan before its results, so the numbers are read against what was
                // computed; its assumptions follow as notes.
                let lines: Vec<String> = steps.iter().map(|s| format!("\n  - {}", render::guest(s))).collect();
                let line = format!("plan:{}", lines.concat());
                match bar.as_ref() {
                    Some(spinner) => spinner.println(crate::report::terminal::sanitize_output(&line)),
                    None => render::err_line(&line),
                }
            }
            Event::Note(text) => {
                let line = format!("note: {}", render::guest(text));
                match bar.as_ref() {
                    Some(spinner) => spinner.println(crate::report::terminal::sanitize_output(&line)),
                    None => render::err_line(&line),
                }
            }
            Event::Finished { stage, ms, detail, ok } => {
                if let Some(spinner) = bar.take() {
                    spinner.finish_and_clear();
                }
                let mark = match (*ok, self.terminal && std::env::var_os("NO_COLOR").is_none()) {
                    (true, true) => "\x1b[32m✓\x1b[0m",
                    (false, true) => "\x1b[31m✗\x1b[0m",
                    (true, false) => "✓",
                    (false, false) => "✗",
                };
                render::err_line(&format!(
                    "{mark} {:>9} {} ({})",
                    stage.as_str(),
                    render::guest_line(detail),
                    duration(*ms)
                ));
            }
        }
    }

    fn line(&self, text: &str) {
        match self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(bar) => bar.println(crate::report::terminal::sanitize_output(text)),
            None => render::err_line(text),
        }
    }

    fn confirm(&self, script: &str, report: &Report) -> bool {
        let bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        let ask = || {
            // The model wrote the script: shown escaped, so bidi overrides or control
            // sequences cannot hide from the person approving it what it does.
            render::err(&format!(
                "── script ({} lines, {}, score {:.2}) ──\n{}Run this script in the sandbox? [Y/n] ",
                script.lines().count(),
                report.verdict,
                report.score,
                render::guest(script)
            ));
            let mut answer = String::new();
            let _ = std::io::stdin().lock().read_line(&mut answer);
            !matches!(answer.trim().to_ascii_lowercase().as_str(), "n" | "no")
        };
        match bar.as_ref() {
            Some(bar) => bar.suspend(ask),
            None => ask(),
        }
    }
}

fn stage_label(stage: Stage, round: u32) -> String {
    if round > 0 { format!("{} #{round}", stage.as_str()) } else { stage.as_str().to_owned() }
}

fn duration(ms: f64) -> String {
    if ms < 1000.0 { format!("{ms:.0} ms") } else { format!("{:.1} s", ms / 1000.0) }
}

fn print_human(record: &RunRecord, show_script: bool) {
    if show_script && let Some(script) = record.script() {
        render::err_line(&format!("── script.py ──\n{}", render::guest(script)));
    }
    if let Some(outcome) = &record.outcome {
        render::human(outcome);
    }
    if let Some(sweep) = &record.sweep {
        print_sweep(sweep, record.task.as_ref().and_then(|t| t.threshold));
    }
    // The notes were shown as they came (`Event::Note`).
    if let Some(error) = &record.error {
        render::print_error(error);
    }
    for path in &record.exports {
        render::err_line(&format!("wrote {}", render::guest_line(&path.display().to_string())));
    }
    let model_calls = record.model_calls.len();
    let cached = record.model_calls.iter().filter(|c| c.cached).count();
    let model = if model_calls == 0 {
        String::new()
    } else {
        format!(" · {model_calls} model calls ({cached} cached, {})", duration(record.timings.model_ms))
    };
    render::err_line(&format!(
        "run {} in {}{model} · {}",
        if record.interrupted {
            "interrupted"
        } else if record.is_ok() {
            "ok"
        } else {
            "failed"
        },
        duration(record.timings.total_ms),
        render::guest_line(&record.run_dir.display().to_string())
    ));
}

/// The scenarios: side by side per property when there are few, as distributions when
/// there are many; then break-even points and sensitivity, and what the sweep cost. With a
/// `threshold` (a covenant) the portfolio lines count the properties under it.
fn print_sweep(sweep: &SweepRecord, threshold: Option<f64>) {
    let mut out = String::new();
    if let Some(matrix) = &sweep.matrix {
        let rows = matrix
            .properties
            .iter()
            .map(|property| {
                let mut row = Map::new();
                row.insert("property_name".into(), property.property_name.as_str().into());
                for (scenario, dscr) in matrix.scenarios.iter().zip(&property.dscr) {
                    row.insert(label::scenario(scenario), dscr.map_or(Value::Null, Value::from));
                }
                Value::Object(row)
            })
            .collect();
        out.push_str(&render::render_value("DSCR by scenario", &Value::Array(rows)));
        let lines = sweep
            .scenarios
            .iter()
            .map(|line| {
                let count = |verdict: &str| line.verdicts.get(verdict).copied().unwrap_or(0);
                // The verdicts' cut-offs are in their headers, so a count is never read
                // against a covenant it does not use.
                let mut row = serde_json::json!({
                    "scenario": line.id,
                    "portfolio_dscr": line.portfolio_dscr,
                });
                if let Some(t) = threshold
                    && let Some(column) = matrix.scenarios.iter().position(|s| *s == line.id)
                {
                    let under = matrix
                        .properties
                        .iter()
                        .filter(|p| p.dscr.get(column).copied().flatten().is_some_and(|d| d < t))
                        .count();
                    row[format!("under {t}x")] = under.into();
                }
                row["approve (≥ 1.25)"] = count("approve").into();
                row["review (≥ 1.15)"] = count("review").into();
                row["reject (< 1.15)"] = count("reject").into();
                row["weakest"] = line.weakest.as_ref().map(|w| w.property_name.as_str()).into();
                if let Some(error) = &line.error {
                    row["error"] = error.as_str().into();
                }
                row
            })
            .collect();
        out.push_str(&render::render_value("Portfolio by scenario", &Value::Array(lines)));
    }
    out.push_str(&super::sweep::summary_text(&sweep.summary, sweep.matrix.is_none()));
    render::out(&out);
    let (s, m) = (&sweep.summary, &sweep.metrics);
    if sweep.matrix.is_none() {
        for line in sweep.scenarios.iter().filter(|l| l.error.is_some()).take(3) {
            render::err_line(&format!(
                "scenario {}: {}",
                render::guest_line(&line.id),
                render::guest(line.error.as_deref().unwrap_or_default())
            ));
        }
    }
    for error in &sweep.instance_errors {
        render::print_error(error);
    }
    render::print_removed(&sweep.sanitized);
    let report = sweep.files.iter().find(|f| f.ends_with("report.html"));
    render::err_line(&format!(
        "{} scenarios ({} ok, {} failed) in {} · {:.0} scenarios/s{}",
        s.total,
        s.ok,
        s.failed,
        duration(m.wall_ms + m.bisection_ms),
        m.scenarios_per_s,
        report.map(|r| format!(" · {}", render::guest_line(&r.display().to_string()))).unwrap_or_default()
    ));
}
