//! A sweep's files: `results.json` (the whole report), `scenarios.csv` (a flat table) and
//! `report.html` (tables and charts).

use std::io::Write;
use std::path::Path;

use serde_json::Value;

use super::SweepReport;
use crate::scenario::ScenarioStatus;

/// `results.json` (the whole report), `scenarios.csv` (one row per scenario and result
/// row) and `report.html` (tables and charts) in the results folder, written side by side:
/// a large sweep's JSON and CSV take as long to write as thousands of scenarios to run.
/// `title` heads the report: the script's name, or the request that made the sweep.
pub fn write_files(report: &SweepReport, dir: &Path, title: &str) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("Failed to create `{}`: {e}", dir.display()))?;
    let write = |name: &str, fill: &dyn Fn(&mut dyn Write) -> std::io::Result<()>| {
        let path = dir.join(name);
        let failed = |e: std::io::Error| format!("Failed to write `{}`: {e}", path.display());
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).map_err(failed)?);
        fill(&mut out).and_then(|()| out.flush()).map_err(failed)
    };
    let (json, others) = std::thread::scope(|scope| {
        let json = scope
            .spawn(|| write("results.json", &|out| serde_json::to_writer(out, report).map_err(std::io::Error::other)));
        let others = write("scenarios.csv", &|out| write_scenarios_csv(report, out))
            .and_then(|()| write("report.html", &|out| out.write_all(super::html::render(report, title).as_bytes())));
        (json.join().unwrap_or_else(|_| Err("writing results.json panicked".into())), others)
    });
    json.and(others)
}

/// One line per scenario and row of its main result: id, status, params, row fields.
fn write_scenarios_csv(report: &SweepReport, out: &mut dyn Write) -> std::io::Result<()> {
    let (param_keys, row_keys) = super::summary::columns(&report.scenarios);
    let mut line = String::new();
    for (i, name) in
        ["scenario", "status", "error"].into_iter().chain(param_keys.iter().map(String::as_str)).enumerate()
    {
        push_csv_field(&mut line, i > 0, name);
    }
    for name in &row_keys {
        push_csv_field(&mut line, true, name);
    }
    line.push('\n');
    out.write_all(line.as_bytes())?;
    // The scenario's own fields, once per scenario, then each of its rows after them.
    let mut head = String::new();
    for scenario in &report.scenarios {
        head.clear();
        push_csv_field(&mut head, false, &scenario.id);
        push_csv_field(&mut head, true, if scenario.status == ScenarioStatus::Ok { "ok" } else { "error" });
        push_csv_field(&mut head, true, scenario.error.as_ref().map_or("", |e| e.message.as_str()));
        for key in &param_keys {
            push_csv_value(&mut head, scenario.params.get(key));
        }
        let mut rows = super::summary::rows(scenario).peekable();
        if rows.peek().is_none() {
            line.clear();
            line.push_str(&head);
            line.extend(std::iter::repeat_n(',', row_keys.len()));
            line.push('\n');
            out.write_all(line.as_bytes())?;
        }
        for row in rows {
            line.clear();
            line.push_str(&head);
            for key in &row_keys {
                push_csv_value(&mut line, row.get(key));
            }
            line.push('\n');
            out.write_all(line.as_bytes())?;
        }
    }
    Ok(())
}

/// Appends `,` and a JSON value as a CSV field: text as is, null as nothing.
fn push_csv_value(line: &mut String, value: Option<&Value>) {
    match value {
        None | Some(Value::Null) => line.push(','),
        Some(Value::String(s)) => push_csv_field(line, true, s),
        Some(Value::Number(n)) => {
            line.push(',');
            let _ = std::fmt::Write::write_fmt(line, format_args!("{n}"));
        }
        Some(other) => push_csv_field(line, true, &other.to_string()),
    }
}

/// Appends one field (after a comma unless it is the first), quoted when it needs it.
fn push_csv_field(line: &mut String, comma: bool, field: &str) {
    if comma {
        line.push(',');
    }
    if field.contains([',', '"', '\n', '\r']) {
        line.push('"');
        line.push_str(&field.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(field);
    }
}
