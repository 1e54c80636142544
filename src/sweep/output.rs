//! A sweep's files: `summary.json` (the totals), `results.json` (the whole report),
//! `scenarios.csv` (a flat table) and `report.html` (tables and charts).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::{Summary, SweepMetrics, SweepReport};
use crate::guest_dir::GuestDir;
use crate::scenario::ScenarioStatus;

/// What [`write_files`] wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Written {
    /// The files, in the order written.
    pub files: Vec<PathBuf>,
}

/// `summary.json`: the summary's fields, then what the sweep cost.
#[derive(Serialize)]
struct SummaryFile<'a> {
    #[serde(flatten)]
    summary: &'a Summary,
    metrics: &'a SweepMetrics,
}

/// `summary.json`, `results.json` (the whole report), `scenarios.csv` (one row per
/// scenario and result row) and `report.html` (tables and charts) in the results folder,
/// the large ones written side by side: a large sweep's JSON and CSV take as long to write
/// as thousands of scenarios to run. `title` heads the report: the script's name, or the
/// request that made the sweep. The folder may be one the script wrote into, so every file
/// goes through [`GuestDir`].
pub fn write_files(report: &SweepReport, dir: &Path, title: &str) -> Result<Written, String> {
    let dir = GuestDir::open(dir).map_err(|e| format!("Failed to open `{}`: {e}", dir.display()))?;
    let write = |name: &str, fill: &dyn Fn(&mut dyn Write) -> std::io::Result<()>| {
        dir.write_with(name, |out| fill(out))
            .map_err(|e| format!("Failed to write `{}`: {e}", dir.path().join(name).display()))
    };
    let mut files = Vec::new();
    // The summary first: it is small, and what is left if a large file fails.
    let summary = SummaryFile { summary: &report.summary, metrics: &report.metrics };
    files.push(write("summary.json", &|out| {
        serde_json::to_writer_pretty(out, &summary).map_err(std::io::Error::other)
    })?);
    let (json, others) = std::thread::scope(|scope| {
        let json = scope
            .spawn(|| write("results.json", &|out| serde_json::to_writer(out, report).map_err(std::io::Error::other)));
        let others = write("scenarios.csv", &|out| write_scenarios_csv(report, out)).and_then(|csv| {
            write("report.html", &|out| out.write_all(super::html::render(report, title).as_bytes()))
                .map(|html| vec![csv, html])
        });
        (json.join().unwrap_or_else(|_| Err("writing results.json panicked".into())), others)
    });
    files.push(json?);
    files.extend(others?);
    Ok(Written { files })
}

/// `sweep.xlsx` in `dir` (see [`super::xlsx`]), through [`GuestDir`]; its path.
pub fn write_xlsx(report: &SweepReport, dir: &Path) -> Result<PathBuf, String> {
    let failed = |e: String| format!("Failed to write `{}`: {e}", dir.join("sweep.xlsx").display());
    let bytes = super::xlsx::render(report).map_err(|e| failed(e.to_string()))?;
    GuestDir::open(dir).and_then(|dir| dir.write("sweep.xlsx", &bytes)).map_err(|e| failed(e.to_string()))
}

/// One line per scenario and row of its main result: id, status, params, row fields.
fn write_scenarios_csv(report: &SweepReport, out: &mut dyn Write) -> std::io::Result<()> {
    let (param_keys, row_keys) = super::summary::columns(&report.scenarios);
    let mut csv = csv::WriterBuilder::new().flexible(false).from_writer(out);
    let header = ["scenario", "status", "error"]
        .into_iter()
        .chain(param_keys.iter().map(String::as_str))
        .chain(row_keys.iter().map(String::as_str));
    csv.write_record(header)?;
    // The scenario's own fields, once per scenario, then each of its rows after them.
    let mut head: Vec<String> = Vec::new();
    let mut record: Vec<String> = Vec::new();
    for scenario in &report.scenarios {
        head.clear();
        head.push(scenario.id.clone());
        head.push(status_text(scenario.status).into());
        head.push(scenario.error.as_ref().map_or_else(String::new, |e| e.message.clone()));
        head.extend(param_keys.iter().map(|key| csv_text(scenario.params.get(key))));
        let mut rows = super::summary::rows(scenario).peekable();
        if rows.peek().is_none() {
            record.clear();
            record.extend(head.iter().cloned());
            record.resize(head.len() + row_keys.len(), String::new());
            csv.write_record(&record)?;
        }
        for row in rows {
            record.clear();
            record.extend(head.iter().cloned());
            record.extend(row_keys.iter().map(|key| csv_text(row.get(key))));
            csv.write_record(&record)?;
        }
    }
    csv.flush()
}

fn status_text(status: ScenarioStatus) -> &'static str {
    if status == ScenarioStatus::Ok { "ok" } else { "error" }
}

/// A JSON value as a CSV field's text: text as is, null as nothing, anything else as JSON.
pub fn csv_text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}
