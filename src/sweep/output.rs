//! A sweep's files: `summary.json` (the totals, always), `results.json` (the whole
//! report), `scenarios.csv` (a flat table) and `report.html` (tables and charts).
//!
//! A large sweep's per-scenario files run to gigabytes (a million draws × a dozen
//! properties), so by default ([`Keep::Auto`]) they are estimated first, from the first
//! scenarios' serialized size, and past [`BIG_OUTPUT_BYTES`] replaced by one compact file,
//! `scenarios.csv.gz`: a gzip-compressed CSV with one line per scenario.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::{Summary, SweepMetrics, SweepReport};
use crate::guest_dir::GuestDir;
use crate::scenario::{ScenarioOutcome, ScenarioStatus};

/// Per-scenario files estimated larger than this are replaced by the compact file,
/// unless asked for ([`Keep::All`]).
pub const BIG_OUTPUT_BYTES: u64 = 64 << 20;

/// Scenarios serialized to estimate the size of them all.
const SAMPLE_SCENARIOS: usize = 64;

/// Which of a sweep's files are written (`--keep`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Keep {
    /// Everything, unless the per-scenario files would pass [`BIG_OUTPUT_BYTES`]: then the
    /// compact `scenarios.csv.gz` instead of `results.json` and `scenarios.csv`.
    #[default]
    Auto,
    /// Everything, however large.
    All,
    /// `summary.json` and `report.html` only: no per-scenario file.
    Summary,
}

/// What [`write_files`] wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Written {
    /// The files, in the order written.
    pub files: Vec<PathBuf>,
    /// When the compact file replaced the full ones: their estimated size in bytes.
    pub compacted: Option<u64>,
}

/// `summary.json`: the summary's fields, then what the sweep cost and which per-scenario
/// file holds the scenarios.
#[derive(Serialize)]
struct SummaryFile<'a> {
    #[serde(flatten)]
    summary: &'a Summary,
    metrics: &'a SweepMetrics,
    /// The per-scenario files written, by name.
    scenario_files: Vec<&'static str>,
}

/// The sweep's files in `dir` (see the module's header), as `keep` says. The large ones
/// are written side by side: a large sweep's JSON and CSV take as long to write as
/// thousands of scenarios to run. `title` heads the report: the script's name, or the
/// request that made the sweep. The folder may be one the script wrote into, so every
/// file goes through [`GuestDir`].
pub fn write_files(report: &SweepReport, dir: &Path, title: &str, keep: Keep) -> Result<Written, String> {
    let dir = GuestDir::open(dir).map_err(|e| format!("Failed to open `{}`: {e}", dir.display()))?;
    let write = |name: &str, fill: &dyn Fn(&mut dyn Write) -> std::io::Result<()>| {
        let started = std::time::Instant::now();
        let written = dir
            .write_with(name, |out| fill(out))
            .map_err(|e| format!("Failed to write `{}`: {e}", dir.path().join(name).display()));
        tracing::debug!(file = name, elapsed_ms = started.elapsed().as_secs_f64() * 1000.0, "written");
        written
    };
    let estimate = estimated_bytes(&report.scenarios);
    let compacted = (keep == Keep::Auto && estimate > BIG_OUTPUT_BYTES).then_some(estimate);
    let scenario_files: Vec<&'static str> = match (keep, compacted) {
        (Keep::Summary, _) => Vec::new(),
        (_, Some(_)) => vec!["scenarios.csv.gz"],
        _ => vec!["results.json", "scenarios.csv"],
    };
    let mut files = Vec::new();
    // The summary first: it is small, and what is left if a large file fails.
    let summary =
        SummaryFile { summary: &report.summary, metrics: &report.metrics, scenario_files: scenario_files.clone() };
    files.push(write("summary.json", &|out| {
        serde_json::to_writer_pretty(out, &summary).map_err(std::io::Error::other)
    })?);
    let full = scenario_files.contains(&"results.json");
    let (json, others) = std::thread::scope(|scope| {
        let json = full.then(|| {
            scope.spawn(|| {
                // The serializer writes token by token: into a buffer of a known type,
                // not through the folder's `dyn Write` for each one.
                write("results.json", &|out| {
                    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
                    serde_json::to_writer(&mut out, report).map_err(std::io::Error::other)?;
                    out.flush()
                })
            })
        });
        let mut others = Vec::new();
        let mut result = Ok(());
        if full {
            result = write("scenarios.csv", &|out| write_scenarios_csv(report, out)).map(|p| others.push(p));
        } else if compacted.is_some() {
            result = write("scenarios.csv.gz", &|out| write_compact_csv(report, out)).map(|p| others.push(p));
        }
        let result = result.and_then(|()| {
            write("report.html", &|out| out.write_all(super::html::render(report, title).as_bytes()))
                .map(|p| others.push(p))
        });
        let json = json.map(|handle| handle.join().unwrap_or_else(|_| Err("writing results.json panicked".into())));
        (json, result.map(|()| others))
    });
    if let Some(json) = json {
        files.push(json?);
    }
    files.extend(others?);
    Ok(Written { files, compacted })
}

/// About how many bytes `results.json` would take: the first scenarios' serialized size,
/// scaled to all of them.
pub fn estimated_bytes(scenarios: &[ScenarioOutcome]) -> u64 {
    let sample = &scenarios[..scenarios.len().min(SAMPLE_SCENARIOS)];
    if sample.is_empty() {
        return 0;
    }
    let mut counter = Counter(0);
    for scenario in sample {
        let _ = serde_json::to_writer(&mut counter, scenario);
    }
    counter.0 / sample.len() as u64 * scenarios.len() as u64
}

/// A sink that only counts what is written to it.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `sweep.xlsx` in `dir` (see [`super::xlsx`]), through [`GuestDir`]; its path.
pub fn write_xlsx(report: &SweepReport, dir: &Path) -> Result<PathBuf, String> {
    let failed = |e: String| format!("Failed to write `{}`: {e}", dir.join("sweep.xlsx").display());
    let bytes = super::xlsx::render(report).map_err(|e| failed(e.to_string()))?;
    GuestDir::open(dir).and_then(|dir| dir.write("sweep.xlsx", &bytes)).map_err(|e| failed(e.to_string()))
}

/// One line per scenario and row of its main result: id, status, params, row fields.
/// Written field by field, with one buffer for the text of numbers: a 10,000-scenario
/// sweep writes a million fields.
fn write_scenarios_csv(report: &SweepReport, out: &mut dyn Write) -> std::io::Result<()> {
    let (param_keys, row_keys) = super::summary::columns(&report.scenarios);
    let mut csv = csv::WriterBuilder::new().flexible(false).from_writer(out);
    let header = ["scenario", "status", "error"]
        .into_iter()
        .chain(param_keys.iter().map(String::as_str))
        .chain(row_keys.iter().map(String::as_str));
    csv.write_record(header)?;
    let mut text = String::new();
    let mut params: Vec<String> = Vec::new();
    for scenario in &report.scenarios {
        let error = scenario.error.as_ref().map_or("", |e| e.message.as_str());
        params.clear();
        params.extend(param_keys.iter().map(|key| csv_text(scenario.params.get(key))));
        // The scenario's own fields, once per scenario, then each of its rows after them.
        let head = |csv: &mut csv::Writer<_>| -> csv::Result<()> {
            csv.write_field(&scenario.id)?;
            csv.write_field(status_text(scenario.status))?;
            csv.write_field(error)?;
            params.iter().try_for_each(|p| csv.write_field(p))
        };
        let mut rows = super::summary::rows(scenario).peekable();
        if rows.peek().is_none() {
            head(&mut csv)?;
            row_keys.iter().try_for_each(|_| csv.write_field(""))?;
            csv.write_record(None::<&[u8]>)?;
        }
        for row in rows {
            head(&mut csv)?;
            for key in &row_keys {
                csv.write_field(csv_field(row.get(key), &mut text))?;
            }
            csv.write_record(None::<&[u8]>)?;
        }
    }
    csv.flush()
}

/// [`csv_text`] without a new string: text is borrowed, anything else written to `buf`.
fn csv_field<'a>(value: Option<&'a Value>, buf: &'a mut String) -> &'a str {
    use std::fmt::Write as _;
    match value {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s,
        // A number's own formatting: going through the value's (a JSON serializer behind
        // a formatter) costs a large sweep's CSV a third of its time.
        Some(Value::Number(n)) => {
            buf.clear();
            let _ = write!(buf, "{n}");
            buf
        }
        Some(Value::Bool(b)) => {
            if *b {
                "true"
            } else {
                "false"
            }
        }
        Some(other) => {
            buf.clear();
            let _ = write!(buf, "{other}");
            buf
        }
    }
}

/// `scenarios.csv.gz`: one line per scenario (id, status, error, params, portfolio DSCR,
/// the weakest property and its DSCR, rows per verdict), gzip-compressed.
fn write_compact_csv(report: &SweepReport, out: &mut dyn Write) -> std::io::Result<()> {
    let (param_keys, _) = super::summary::columns(&report.scenarios);
    let verdicts: Vec<&String> = report.summary.verdicts.keys().collect();
    let gzip = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    let mut csv = csv::WriterBuilder::new().flexible(false).from_writer(gzip);
    let header = ["scenario", "status", "error"]
        .into_iter()
        .chain(param_keys.iter().map(String::as_str))
        .chain(["portfolio_dscr", "weakest_property", "weakest_dscr"])
        .chain(verdicts.iter().map(|v| v.as_str()));
    csv.write_record(header)?;
    let mut record: Vec<String> = Vec::new();
    for scenario in &report.scenarios {
        let line = super::summary::scenario_line(scenario);
        record.clear();
        record.push(line.id);
        record.push(status_text(line.status).into());
        record.push(line.error.unwrap_or_default());
        record.extend(param_keys.iter().map(|key| csv_text(line.params.get(key))));
        record.push(line.portfolio_dscr.map(|d| d.to_string()).unwrap_or_default());
        record.push(line.weakest.as_ref().map(|w| w.property_name.clone()).unwrap_or_default());
        record.push(line.weakest.as_ref().map(|w| w.dscr.to_string()).unwrap_or_default());
        record.extend(verdicts.iter().map(|v| line.verdicts.get(*v).copied().unwrap_or(0).to_string()));
        csv.write_record(&record)?;
    }
    let gzip = csv.into_inner().map_err(|e| e.into_error())?;
    gzip.finish()?.flush()
}

fn status_text(status: ScenarioStatus) -> &'static str {
    if status == ScenarioStatus::Ok { "ok" } else { "error" }
}

/// A JSON value as a CSV field's text: text as is, null as nothing, anything else as JSON.
pub fn csv_text(value: Option<&Value>) -> String {
    csv_field(value, &mut String::new()).to_owned()
}
