//! The page of one run: what was asked, the plan, the validator's verdict, the error, the
//! results as tables, the DSCR chart, the scenario comparison, the script and what the
//! run cost, in one self-contained HTML file.
//!
//! A page is built in two steps. [`RunPage::build`] reads the run's records and lays out
//! everything as plain text, formatted cells and chart markup; the [`RunPage`] is what a
//! run folder keeps as `page.json`, so the page renders again later (and the dashboard
//! lists runs) without the records or their types. [`render`] turns it into HTML through
//! the templates in `templates/`, with HTML auto-escaping on: every text is escaped by
//! the template engine, and only the host's own markup (the SVG charts, the style sheet,
//! the script) is passed as safe. Guest text is also made visible before it is stored
//! (controls and bidi overrides as escapes, as [`terminal`] shows them), which keeps the
//! page well-formed XML.
//!
//! As a file of its own ([`Mode::Standalone`]) the page has no script and loads nothing.
//! Served by the dashboard ([`Mode::Served`]) it links to the list of runs and may carry
//! the what-if panel: a form whose script (`templates/whatif.js`) posts the shocks to
//! `/api/simulate` and rebuilds the result tables and the chart from the answer, by the
//! same formatting rules as [`cells`].

mod cells;
mod comparison;

use std::sync::OnceLock;

use minijinja::value::Value as JinjaValue;
use minijinja::{AutoEscape, Environment, context};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use cells::{Cell, Column, MAX_ROWS, Shape, Table};
pub use comparison::{Comparison, MAX_SCENARIO_LINES};

use crate::outcome::{Outcome, OutcomeError};
use crate::report::{self, Bar, dscr_colour, label, terminal};
use crate::result_table::MAIN;

/// The most characters of stdout, stderr or logs a page shows.
pub const MAX_STREAM_CHARS: usize = 20_000;
/// The most validator findings and database requests a page lists.
const MAX_LISTED: usize = 200;
/// Where the dashboard lists runs; a served page links back to it.
pub const RUNS_PATH: &str = "/";
/// The keys a row's property name is read from, as the sweep's summary reads them.
const NAME_COLUMNS: [&str; 3] = ["property_name", "property", "name"];

/// What a run page is built from: the records of one run, all optional but its id.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageInputs<'a> {
    /// The run's id.
    pub id: &'a str,
    /// The request, or the script's file name.
    pub title: &'a str,
    /// `run`, `exec` or `sweep`.
    pub kind: &'a str,
    /// When the run started, as people read it (`2026-12-02 16:40:01 UTC`).
    pub created: &'a str,
    /// `ok`, `failed`, `interrupted`, `running` ...
    pub status: &'a str,
    /// The request, for a run that had one.
    pub request: Option<&'a str>,
    /// The plan: its steps and assumptions.
    pub task: Option<&'a crate::task::TaskSpec>,
    /// The validator's report on the script that ran.
    pub validation: Option<&'a crate::validate::Report>,
    /// What the script produced.
    pub outcome: Option<&'a Outcome>,
    /// The scenario comparison, for a run that swept scenarios.
    pub sweep: Option<&'a crate::sweep::SweepRecord>,
    /// The script's source.
    pub script: Option<&'a str>,
    /// The limits it ran under.
    pub limits: Option<&'a crate::job::Limits>,
    /// The parameters it was given.
    pub params: Option<&'a Map<String, Value>>,
    /// What the run said along the way.
    pub notes: &'a [String],
    /// The run's own error, besides the outcome's (no model, a rejected script ...).
    pub error: Option<&'a OutcomeError>,
}

impl PageInputs<'_> {
    /// Inputs with nothing in them: empty texts, no records. A recorder fills in the
    /// header (id, title, kind, created, status) itself, over what a command gives.
    pub fn empty() -> Self {
        Self::default()
    }
}

/// A run page's content, ready to render: owned, plain text and formatted cells, so it
/// is stored as `page.json` in the run folder and rendered again later without the
/// records. Every text in it is already made visible (no controls), never HTML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPage {
    /// The run's id.
    pub id: String,
    /// The request, or the script's name.
    pub title: String,
    /// `run`, `exec` or `sweep`.
    pub kind: String,
    /// When it started.
    pub created: String,
    /// How it ended (or `running`).
    pub status: String,
    /// The answer in one line, for the list of runs.
    pub headline: Option<String>,
    /// The request.
    pub request: Option<String>,
    /// The plan's steps and assumptions, in order.
    pub plan: Vec<PlanLine>,
    /// The validator's verdict.
    pub verdict: Option<VerdictView>,
    /// The run's error and the outcome's, once each.
    pub errors: Vec<ErrorView>,
    /// Every result, in the order the script reported them.
    pub results: Vec<ResultView>,
    /// The DSCR bar chart of the main result.
    pub dscr_chart: Option<DscrChart>,
    /// The scenario comparison.
    pub comparison: Option<Comparison>,
    /// The script, a line per entry.
    pub script: Vec<String>,
    /// The parameters, as pretty JSON.
    pub params: Option<String>,
    /// What the script read of its parameters.
    pub params_read: Option<String>,
    /// The limits it ran under.
    pub limits: Vec<Fact>,
    /// What it cost.
    pub metrics: Vec<Fact>,
    /// stdout, stderr and logs.
    pub streams: Vec<Stream>,
    /// Every database request.
    pub audit: Option<Table>,
    /// What the run said along the way.
    pub notes: Vec<String>,
    /// Whether a result holds a number (which a what-if could move).
    pub numeric_results: bool,
}

/// A line of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanLine {
    /// `step` or `assumed`.
    pub kind: String,
    /// What it says.
    pub text: String,
}

/// The validator's verdict as shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictView {
    /// `pass`, `warn` or `reject`.
    pub verdict: String,
    /// The score, two decimals.
    pub score: String,
    /// The threshold, two decimals.
    pub threshold: String,
    /// `wasi` or `docker`.
    pub backend: String,
    /// Why that backend.
    pub backend_reason: String,
    /// Packages to install (Docker).
    pub packages: Vec<String>,
    /// The findings, by line.
    pub findings: Vec<FindingView>,
}

/// A finding as shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingView {
    /// `MX001`.
    pub code: String,
    /// `dynamic-code`.
    pub name: String,
    /// `error` or `warning`.
    pub severity: String,
    /// The 1-based line.
    pub line: u32,
    /// What is wrong.
    pub message: String,
    /// What to do instead.
    pub hint: Option<String>,
}

/// An error as shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorView {
    /// `run` (the run's own) or `script` (the outcome's).
    pub origin: String,
    /// `guest_exception`, `timeout` ...
    pub kind: String,
    /// What happened.
    pub message: String,
    /// What to do.
    pub hint: Option<String>,
    /// The script line it points at.
    pub line: Option<u32>,
    /// The Python traceback.
    pub traceback: Option<String>,
}

/// A result: a table when it is one, else pretty JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultView {
    /// The result's name (`result`, or the name given to `emit`).
    pub key: String,
    /// Its table.
    pub table: Option<Table>,
    /// Its JSON, when it is not a table.
    pub json: Option<String>,
}

/// The DSCR bar chart of the main result, and where the what-if panel redraws it from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DscrChart {
    /// The chart, as SVG.
    pub svg: String,
    /// The result it is drawn from.
    pub result_key: String,
    /// The column naming each bar.
    pub name_column: String,
    /// The column of each bar's DSCR.
    pub dscr_column: String,
}

/// A label and a value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    /// What it is.
    pub label: String,
    /// Its value, formatted.
    pub value: String,
}

/// A captured stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stream {
    /// `stdout`, `stderr` or `logs`.
    pub name: String,
    /// Its text, at most [`MAX_STREAM_CHARS`].
    pub text: String,
    /// What was left out.
    pub note: Option<String>,
}

impl RunPage {
    /// The page of the run `inputs` describe.
    pub fn build(inputs: &PageInputs<'_>) -> Self {
        let outcome = inputs.outcome;
        let results: Vec<ResultView> = outcome.map(|o| o.results.iter().map(result_view).collect()).unwrap_or_default();
        let numeric_results = outcome.is_some_and(|o| o.results.values().any(has_number));
        let dscr_chart = outcome.and_then(|o| dscr_chart(&o.results));
        let comparison = inputs.sweep.map(Comparison::build);
        let mut page = Self {
            id: line(inputs.id),
            title: line(inputs.title),
            kind: line(inputs.kind),
            created: line(inputs.created),
            status: line(inputs.status),
            headline: None,
            request: inputs.request.map(block),
            plan: inputs
                .task
                .map(|t| t.plan_lines().map(|(kind, text)| PlanLine { kind: kind.into(), text: line(text) }).collect())
                .unwrap_or_default(),
            verdict: inputs.validation.map(verdict_view),
            errors: errors(inputs.error, outcome.and_then(|o| o.error.as_ref())),
            results,
            dscr_chart,
            comparison,
            script: inputs.script.map(|s| s.lines().map(block).collect()).unwrap_or_default(),
            params: inputs.params.filter(|p| !p.is_empty()).map(|p| block(&pretty(&Value::Object(p.clone())))),
            params_read: outcome.and_then(|o| o.params_read.as_ref()).map(params_read),
            limits: inputs.limits.map(limits).unwrap_or_default(),
            metrics: outcome.map(metrics).unwrap_or_default(),
            streams: outcome.map(streams).unwrap_or_default(),
            audit: outcome.and_then(audit),
            notes: inputs.notes.iter().map(|n| block(n)).collect(),
            numeric_results,
        };
        page.headline = headline(&page, inputs);
        page
    }

    /// Why the what-if panel cannot work on this run, if it cannot: it reruns the script
    /// with shocks, so it needs the script and a result with numbers to move.
    pub fn what_if_unavailable(&self) -> Option<&'static str> {
        if self.script.is_empty() {
            Some("the run kept no script to run again")
        } else if !self.numeric_results {
            Some("the run has no numeric results a shock could move")
        } else {
            None
        }
    }
}

/// Guest text on one line: controls, line breaks and bidi overrides shown as escapes.
fn line(text: &str) -> String {
    xml_chars(terminal::escape_line(text).into_owned())
}

/// Guest text over several lines: like [`line`], but line breaks and tabs stay.
fn block(text: &str) -> String {
    let text = if text.contains('\r') { text.replace("\r\n", "\n") } else { text.to_owned() };
    xml_chars(terminal::escape(&text).into_owned())
}

/// `text` without the two characters [`terminal`] lets through that XML forbids.
fn xml_chars(text: String) -> String {
    if text.contains(['\u{fffe}', '\u{ffff}']) {
        text.replace('\u{fffe}', "\\u{fffe}").replace('\u{ffff}', "\\u{ffff}")
    } else {
        text
    }
}

/// At most `max` characters of `text`, and a note of what was left out.
fn excerpt(text: &str, max: usize) -> (String, Option<String>) {
    match text.char_indices().nth(max) {
        None => (block(text), None),
        Some((cut, _)) => {
            let left = text[cut..].chars().count();
            (block(&text[..cut]), Some(format!("{left} more characters not shown.")))
        }
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn has_number(value: &Value) -> bool {
    match value {
        Value::Number(_) => true,
        Value::Array(items) => items.iter().any(has_number),
        Value::Object(map) => map.values().any(has_number),
        _ => false,
    }
}

fn result_view((key, value): (&String, &Value)) -> ResultView {
    match Table::of_result(key, value) {
        Some(table) => ResultView { key: line(key), table: Some(table), json: None },
        None => {
            let (json, _) = excerpt(&pretty(value), MAX_STREAM_CHARS);
            ResultView { key: line(key), table: None, json: Some(json) }
        }
    }
}

/// The bar chart of the main result's DSCR by property, when it is a list of rows with a
/// name and a DSCR.
fn dscr_chart(results: &Map<String, Value>) -> Option<DscrChart> {
    let rows: Vec<&Map<String, Value>> = results.get(MAIN)?.as_array()?.iter().filter_map(Value::as_object).collect();
    let first = rows.first()?;
    let name_column = NAME_COLUMNS.into_iter().find(|k| first.get(*k).is_some_and(Value::is_string))?;
    let dscr_column = ["dscr"]
        .into_iter()
        .chain(first.keys().map(String::as_str).filter(|k| cells::is_dscr_column(k)))
        .find(|k| first.get(*k).is_some_and(Value::is_number))?;
    let bars: Vec<Bar> = rows
        .iter()
        .take(MAX_ROWS)
        .filter_map(|row| {
            let name = row.get(name_column)?.as_str()?;
            let dscr = row.get(dscr_column)?.as_f64()?;
            Some(Bar { label: line(name), value: dscr, colour: dscr_colour(dscr) })
        })
        .collect();
    Some(DscrChart {
        svg: report::bar_chart("DSCR by property", &bars, &[1.0, 1.25]),
        result_key: MAIN.to_owned(),
        name_column: name_column.to_owned(),
        dscr_column: line(dscr_column),
    })
}

fn verdict_view(report: &crate::validate::Report) -> VerdictView {
    VerdictView {
        verdict: report.verdict.to_string(),
        score: format!("{:.2}", report.score),
        threshold: format!("{:.2}", report.threshold),
        backend: report.backend.backend.to_string(),
        backend_reason: line(&report.backend.reason),
        packages: report.backend.packages.iter().map(|p| line(p)).collect(),
        findings: report
            .findings
            .iter()
            .take(MAX_LISTED)
            .map(|f| FindingView {
                code: line(&f.code),
                name: line(&f.name),
                severity: f.severity.to_string(),
                line: f.line,
                message: block(&f.message),
                hint: f.hint.as_deref().map(block),
            })
            .collect(),
    }
}

fn errors(run: Option<&OutcomeError>, script: Option<&OutcomeError>) -> Vec<ErrorView> {
    let view = |origin: &str, e: &OutcomeError| ErrorView {
        origin: origin.to_owned(),
        kind: e.kind.to_string(),
        message: block(&e.message),
        hint: e.hint.as_deref().map(block),
        line: e.line,
        traceback: e.traceback.as_deref().map(|t| excerpt(t, MAX_STREAM_CHARS).0),
    };
    let mut out: Vec<ErrorView> = run.map(|e| view("run", e)).into_iter().collect();
    // A run whose error is its script's says it once.
    if let Some(e) = script.filter(|e| run != Some(*e)) {
        out.push(view("script", e));
    }
    out
}

fn params_read(read: &crate::outcome::ParamsRead) -> String {
    let names: Vec<String> = read
        .names
        .iter()
        .map(|(name, default)| match default {
            Some(d) => format!("{name} (default {})", label::trim(*d)),
            None => name.clone(),
        })
        .collect();
    let mut text = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
    if read.listed {
        text.push_str("; it also lists them all, so it may use any");
    }
    line(&text)
}

/// `bytes` as people read them: `512 MiB`, `1.5 KiB`, `300 B`.
fn bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    UNITS.iter().find(|(_, size)| bytes >= *size).map_or_else(
        || format!("{bytes} B"),
        |(unit, size)| format!("{} {unit}", label::trim((bytes as f64 / *size as f64 * 10.0).round() / 10.0)),
    )
}

fn limits(limits: &crate::job::Limits) -> Vec<Fact> {
    let fact = |label: &str, value: String| Fact { label: label.to_owned(), value };
    vec![
        fact("timeout", format!("{} s", label::trim(limits.timeout.as_secs_f64()))),
        fact("memory", bytes(limits.memory_bytes)),
        fact("fuel", limits.fuel.map_or_else(|| "unmetered".to_owned(), |f| f.to_string())),
        fact("stdout cap", bytes(limits.stdout_bytes as u64)),
        fact("stderr cap", bytes(limits.stderr_bytes as u64)),
        fact("results cap", bytes(limits.results_bytes as u64)),
    ]
}

fn metrics(outcome: &Outcome) -> Vec<Fact> {
    let m = &outcome.metrics;
    let fact = |label: &str, value: String| Fact { label: label.to_owned(), value };
    let mut facts = vec![
        fact("wall time", format!("{:.1} ms", m.wall_ms)),
        fact("peak memory", bytes(m.peak_memory_bytes)),
        fact("database queries", m.db_queries.to_string()),
    ];
    if let Some(fuel) = m.fuel_used {
        facts.push(fact("fuel used", fuel.to_string()));
    }
    if !outcome.backend.is_empty() {
        facts.push(fact("backend", line(&outcome.backend)));
    }
    if !outcome.runtime.is_empty() {
        facts.push(fact("runtime", line(&outcome.runtime)));
    }
    facts.push(fact("exit code", outcome.exit_code.to_string()));
    facts
}

fn streams(outcome: &Outcome) -> Vec<Stream> {
    let stream = |name: &str, text: &str, capped: bool| {
        let (text, mut note) = excerpt(text, MAX_STREAM_CHARS);
        if capped {
            note = Some(format!("Cut at the run's {name} cap.{}", note.map(|n| format!(" {n}")).unwrap_or_default()));
        }
        Stream { name: name.to_owned(), text, note }
    };
    let mut out = Vec::new();
    if !outcome.stdout.is_empty() {
        out.push(stream("stdout", &outcome.stdout, outcome.truncated.stdout));
    }
    if !outcome.stderr.is_empty() {
        out.push(stream("stderr", &outcome.stderr, outcome.truncated.stderr));
    }
    if !outcome.logs.is_empty() {
        out.push(stream("logs", &outcome.logs.join("\n"), false));
    }
    out
}

fn audit(outcome: &Outcome) -> Option<Table> {
    if outcome.db_audit.is_empty() {
        return None;
    }
    let rows = outcome
        .db_audit
        .iter()
        .take(MAX_LISTED)
        .map(|e| {
            let params = if e.params.is_empty() { String::new() } else { Value::Array(e.params.clone()).to_string() };
            vec![
                Cell::text(&e.op),
                // A statement over several lines reads as well on one.
                Cell::text(&e.sql.split_whitespace().collect::<Vec<_>>().join(" ")),
                Cell::text(&params),
                Cell::text(if e.allowed { "yes" } else { "no" }),
                Cell::text(&e.status),
                Cell::text(e.reason.as_deref().unwrap_or_default()),
                Cell::number(e.rows.to_string()),
                Cell::number(bytes(e.bytes)),
                Cell::number(format!("{:.1}", e.duration_ms)),
                Cell::text(if e.cached { "yes" } else { "no" }),
            ]
        })
        .collect();
    let mut table = Table::fixed(
        &[
            ("op", "op"),
            ("sql", "statement"),
            ("params", "parameters"),
            ("allowed", "allowed"),
            ("status", "status"),
            ("reason", "reason"),
            ("rows", "rows"),
            ("bytes", "size"),
            ("duration_ms", "ms"),
            ("cached", "cached"),
        ],
        rows,
    );
    if outcome.db_audit.len() > MAX_LISTED {
        table.note = Some(format!("The first {MAX_LISTED} of {} requests.", outcome.db_audit.len()));
    }
    Some(table)
}

/// The answer in one line: the error, the sweep's worst case, the weakest property, or
/// the results' names.
fn headline(page: &RunPage, inputs: &PageInputs<'_>) -> Option<String> {
    if let Some(e) = page.errors.first() {
        let first = e.message.lines().next().unwrap_or_default();
        return Some(format!("{}: {first}", e.kind));
    }
    if let Some(record) = inputs.sweep {
        let s = &record.summary;
        let worst = s.properties.iter().min_by(|a, b| a.min_dscr.total_cmp(&b.min_dscr));
        return Some(match worst {
            Some(p) => line(&format!(
                "{} scenarios · lowest DSCR {:.2} ({}, {})",
                s.total,
                p.min_dscr,
                p.property_name,
                label::scenario(&p.worst_scenario)
            )),
            None => format!("{} scenarios, {} failed", s.total, s.failed),
        });
    }
    let results = &inputs.outcome?.results;
    if let Some(chart) = &page.dscr_chart {
        let rows = results.get(&chart.result_key).and_then(Value::as_array)?;
        let weakest = rows
            .iter()
            .filter_map(|r| Some((r.get(&chart.name_column)?.as_str()?, r.get(&chart.dscr_column)?.as_f64()?)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((name, dscr)) = weakest {
            return Some(line(&format!("{} properties · lowest DSCR {dscr:.2} ({name})", rows.len())));
        }
    }
    match page.results.len() {
        0 => None,
        n => {
            let names: Vec<&str> = page.results.iter().take(5).map(|r| r.key.as_str()).collect();
            Some(format!("{n} result{}: {}", if n == 1 { "" } else { "s" }, names.join(", ")))
        }
    }
}

/// How a page is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A file of its own (`report.html`): no script, nothing fetched.
    Standalone,
    /// Served by `metaexec serve`: links to the other pages, and the what-if panel when
    /// `whatif` (the run has numeric results and a script, see
    /// [`RunPage::what_if_unavailable`]).
    Served {
        /// Whether to show the what-if panel.
        whatif: bool,
    },
}

/// A page could not be rendered: a bug in a template, which the tests render.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The template engine failed.
    #[error("Failed to render the page template `{template}`")]
    Template {
        /// The template's name.
        template: &'static str,
        /// What the engine said.
        #[source]
        source: minijinja::Error,
    },
}

/// One line of the list of runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunLine {
    /// The run's id.
    pub id: String,
    /// When it started.
    pub created: String,
    /// `run`, `exec` or `sweep`.
    pub kind: String,
    /// The request or the script's name.
    pub title: String,
    /// How it ended.
    pub status: String,
    /// The answer in one line.
    pub headline: Option<String>,
}

impl From<&RunPage> for RunLine {
    fn from(page: &RunPage) -> Self {
        Self {
            id: page.id.clone(),
            created: page.created.clone(),
            kind: page.kind.clone(),
            title: page.title.clone(),
            status: page.status.clone(),
            headline: page.headline.clone(),
        }
    }
}

/// A field of the what-if panel: a scenario shock, typed in percent or points and sent
/// as a fraction (`/ 100`).
#[derive(Debug, Clone, Copy, Serialize)]
struct WhatIfField {
    key: &'static str,
    label: &'static str,
    min: &'static str,
    max: &'static str,
    step: &'static str,
}

/// The five shocks a scenario takes (`crate::task::SHOCK_KEYS`), in its order.
const WHATIF_FIELDS: [WhatIfField; 5] = [
    WhatIfField { key: "noi_change", label: "NOI change %", min: "-50", max: "50", step: "1" },
    WhatIfField { key: "revenue_change", label: "revenue change %", min: "-50", max: "50", step: "1" },
    WhatIfField { key: "expense_change", label: "expense change %", min: "-50", max: "50", step: "1" },
    WhatIfField { key: "vacancy_change", label: "vacancy change (pts)", min: "-50", max: "50", step: "1" },
    WhatIfField { key: "rate_change", label: "rate change (pts)", min: "-5", max: "5", step: "0.25" },
];

const TEMPLATES: [(&str, &str); 5] = [
    ("base.html.j2", include_str!("templates/base.html.j2")),
    ("macros.html.j2", include_str!("templates/macros.html.j2")),
    ("run.html.j2", include_str!("templates/run.html.j2")),
    ("runs.html.j2", include_str!("templates/runs.html.j2")),
    ("new_run.html.j2", include_str!("templates/new_run.html.j2")),
];
const STYLE: &str = include_str!("templates/app.css");
const WHATIF_JS: &str = include_str!("templates/whatif.js");
const NEW_RUN_JS: &str = include_str!("templates/new_run.js");

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // Every page template escapes what it prints; the style sheet and scripts are not
        // templates at all but safe values, so nothing in them is read as template syntax.
        env.set_auto_escape_callback(
            |name| if name.ends_with(".html.j2") { AutoEscape::Html } else { AutoEscape::None },
        );
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        for (name, source) in TEMPLATES {
            env.add_template(name, source).expect("the embedded page templates parse");
        }
        env
    })
}

fn render_template(name: &'static str, ctx: JinjaValue) -> Result<String, RenderError> {
    environment()
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|source| RenderError::Template { template: name, source })
}

/// Host markup, which the template prints as it is.
fn safe(markup: &str) -> JinjaValue {
    JinjaValue::from_safe_string(markup.to_owned())
}

/// The page of a run, as `mode` shows it.
pub fn render(page: &RunPage, mode: &Mode) -> Result<String, RenderError> {
    let (served, whatif) = match *mode {
        Mode::Standalone => (false, false),
        Mode::Served { whatif } => (true, whatif),
    };
    let comparison = page.comparison.as_ref();
    let charts = context! {
        dscr => page.dscr_chart.as_ref().map(|c| safe(&c.svg)),
        bars => comparison.and_then(|c| c.bars_chart.as_deref()).map(safe),
        distribution => comparison.and_then(|c| c.distribution_chart.as_deref()).map(safe),
        tornado => comparison.and_then(|c| c.tornado_chart.as_deref()).map(safe),
    };
    // A served page without the panel says why, in the page's words or the server's.
    let whatif_off =
        (served && !whatif).then(|| page.what_if_unavailable().unwrap_or("the server does not offer it for this run"));
    render_template(
        "run.html.j2",
        context! {
            page => JinjaValue::from_serialize(page),
            charts,
            served,
            whatif,
            whatif_off,
            whatif_fields => JinjaValue::from_serialize(WHATIF_FIELDS),
            runs_path => RUNS_PATH,
            css => safe(STYLE),
            script => whatif.then(|| safe(WHATIF_JS)),
        },
    )
}

/// The list of runs (served), in the order given (newest first), each linking to its page.
pub fn render_runs(runs: &[RunLine]) -> Result<String, RenderError> {
    #[derive(Serialize)]
    struct Shown<'a> {
        #[serde(flatten)]
        line: &'a RunLine,
        href: String,
    }
    let runs: Vec<Shown<'_>> = runs.iter().map(|line| Shown { line, href: run_href(&line.id) }).collect();
    render_template(
        "runs.html.j2",
        context! {
            runs => JinjaValue::from_serialize(&runs),
            served => true,
            runs_path => RUNS_PATH,
            css => safe(STYLE),
        },
    )
}

/// The page that starts a run from a request (served), and follows its progress.
pub fn render_new_run() -> Result<String, RenderError> {
    render_template(
        "new_run.html.j2",
        context! { served => true, runs_path => RUNS_PATH, css => safe(STYLE), script => safe(NEW_RUN_JS) },
    )
}

/// The path of a run's page: `/runs/{id}`, the id percent-encoded beyond the characters
/// run ids are made of.
pub fn run_href(id: &str) -> String {
    let mut out = String::from("/runs/");
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
