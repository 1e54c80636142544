//! Printing outcomes: JSON for machines on stdout; for people, result tables on stdout
//! and everything about the run (script output excerpts, errors, metrics) on stderr.

use std::io::Write;

use std::io::IsTerminal as _;
use std::sync::OnceLock;

use comfy_table::{Cell, Color, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde_json::Value;

use crate::outcome::{Outcome, OutcomeError};

/// How many lines of the script's stdout and stderr the human view shows.
const EXCERPT_LINES: usize = 40;

/// Prints the outcome as one JSON object on stdout.
pub fn json(outcome: &Outcome) {
    let text = serde_json::to_string_pretty(outcome).expect("outcomes serialise");
    write_stdout(&format!("{text}\n"));
}

/// Writes to stdout, ignoring a closed pipe (`metaexec ... | head` is not an error).
fn write_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Prints results as tables (stdout), then excerpts, errors and metrics (stderr).
pub fn human(outcome: &Outcome) {
    let mut out = String::new();
    for (name, value) in &outcome.results {
        out.push_str(&render_value(name, value));
        out.push('\n');
    }
    if !outcome.stdout.is_empty() {
        out.push_str(&excerpt("stdout", &outcome.stdout, outcome.truncated.stdout));
    }
    write_stdout(&out);
    if !outcome.stderr.is_empty() {
        eprint!("{}", excerpt("stderr", &outcome.stderr, outcome.truncated.stderr));
    }
    if let Some(error) = &outcome.error {
        print_error(error);
    }
    let m = &outcome.metrics;
    let fuel = m.fuel_used.map_or_else(|| "unmetered".to_owned(), |f| format!("{f} fuel"));
    eprintln!(
        "{} in {:.1} ms · peak memory {:.1} MiB · {fuel} · {} db queries · {}",
        if outcome.is_ok() { "ok" } else { "failed" },
        m.wall_ms,
        m.peak_memory_bytes as f64 / (1024.0 * 1024.0),
        m.db_queries,
        outcome.runtime,
    );
}

/// Prints a failure on stderr: `error[kind]: message (line N)`, then its hint.
pub fn print_error(error: &OutcomeError) {
    let line = error.line.map(|l| format!(" (line {l})")).unwrap_or_default();
    eprintln!("error[{}]: {}{line}", error.kind, error.message);
    if let Some(hint) = &error.hint {
        eprintln!("hint: {hint}");
    }
}

fn excerpt(label: &str, text: &str, truncated: bool) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = format!("── {label} ──\n");
    if lines.len() > EXCERPT_LINES {
        out.push_str(&format!("… {} earlier lines …\n", lines.len() - EXCERPT_LINES));
    }
    for line in &lines[lines.len().saturating_sub(EXCERPT_LINES)..] {
        out.push_str(line);
        out.push('\n');
    }
    if truncated {
        out.push_str("… (cut at the output cap)\n");
    }
    out
}

/// A result as text: a list of objects as a table, an object of scalars as a two-column
/// table, anything else as `name: value`.
pub fn render_value(name: &str, value: &Value) -> String {
    if let Some(tabular) = crate::report::tabular(value) {
        let mut table = new_table();
        table.set_header(tabular.columns.iter().map(Cell::new));
        for row in &tabular.rows {
            table.add_row(tabular.columns.iter().zip(row).map(|(column, value)| cell(column, value)));
        }
        return format!("{name}\n{table}\n");
    }
    match value {
        Value::Object(_) | Value::Array(_) => {
            format!("{name}: {}\n", serde_json::to_string_pretty(value).unwrap_or_default())
        }
        other => format!("{name}: {}\n", scalar(other)),
    }
}

fn new_table() -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
    table
}

/// Whether stdout takes colours: a terminal, and no `NO_COLOR`.
pub fn colour() -> bool {
    static COLOUR: OnceLock<bool> = OnceLock::new();
    *COLOUR.get_or_init(|| std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
}

/// A table cell; verdicts and DSCR bands in their traffic-light colours on a terminal.
fn cell(column: &str, value: &Value) -> Cell {
    let cell = Cell::new(scalar(value));
    if !colour() {
        return cell;
    }
    match (column, value.as_str()) {
        ("verdict", Some("approve")) | ("band", Some("green")) => cell.fg(Color::Green),
        ("verdict", Some("review")) | ("band", Some("yellow")) => cell.fg(Color::Yellow),
        ("verdict", Some("reject")) | ("band", Some("red")) => cell.fg(Color::Red),
        _ => cell,
    }
}

/// A cell's text: floats to at most four decimals, trailing zeros dropped.
fn scalar(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            let text = format!("{f:.4}");
            let text = text.trim_end_matches('0').trim_end_matches('.');
            if text == "-0" { "0".into() } else { text.to_owned() }
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_become_tables_and_numbers_are_trimmed() {
        let text = render_value(
            "dscr",
            &json!([{"name": "A", "dscr": 1.9400000001}, {"name": "B", "dscr": 0.5, "note": "x"}]),
        );
        assert!(text.contains("dscr") && text.contains("1.94") && text.contains("note"), "{text}");
        assert!(!text.contains("1.9400"), "{text}");
        assert_eq!(render_value("n", &json!(3)), "n: 3\n");
    }
}
