//! The printer: outcomes as JSON for machines on stdout; for people, result tables on
//! stdout and everything about the run (script output excerpts, errors, metrics) on
//! stderr.
//!
//! Security invariant 6 (nothing from the guest reaches a terminal unescaped) holds here
//! in two layers, both from [`crate::report::terminal`]:
//!
//! - every piece of guest text is escaped where it enters human output: [`guest`] for
//!   text that may span lines (excerpts, logs, messages), [`guest_line`] for a cell, a
//!   column, a name or an id, which must stay on one line;
//! - all human output leaves through [`out`] and [`err`], which escape any control
//!   left in the whole block except the host's own colour sequences, so text some path
//!   forgot to escape still cannot move the cursor, clear the screen or hide text.
//!
//! JSON ([`json`]) is written as serialised: serde_json escapes controls itself, and
//! consumers must get the guest's strings back exactly.

use std::borrow::Cow;
use std::io::Write;

use std::io::IsTerminal as _;
use std::sync::OnceLock;

use comfy_table::{Cell, Color, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde_json::Value;

use crate::outcome::{Outcome, OutcomeError, Sanitized};
use crate::report::{label, terminal};

/// How many lines of the script's stdout and stderr the human view shows.
const EXCERPT_LINES: usize = 40;

/// Guest text (possibly several lines) made safe to print: controls and disguising
/// characters shown as visible escapes, `\n` and `\t` kept.
pub fn guest(text: &str) -> Cow<'_, str> {
    terminal::escape(text)
}

/// Guest text that must stay on one line (a table cell or column, a name, an id):
/// like [`guest`], with `\n` and `\t` escaped too.
pub fn guest_line(text: &str) -> Cow<'_, str> {
    terminal::escape_line(text)
}

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

/// Writes human output to stdout (results), sanitised, ignoring a closed pipe.
pub fn out(text: &str) {
    write_stdout(&terminal::sanitize_output(text));
}

/// Writes human output to stderr (progress, logs, errors, metrics), sanitised.
pub fn err(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(terminal::sanitize_output(text).as_bytes()).and_then(|()| err.flush());
}

/// Writes one line of human output to stderr, sanitised.
pub fn err_line(line: &str) {
    err(&format!("{line}\n"));
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
    self::out(&out);
    if !outcome.stderr.is_empty() {
        err(&excerpt("stderr", &outcome.stderr, outcome.truncated.stderr));
    }
    print_removed(&outcome.sanitized);
    if let Some(error) = &outcome.error {
        print_error(error);
    }
    // A run that never started (a usage error, an unreadable script) cost nothing: a
    // metrics line would only suggest that something ran.
    if outcome.runtime.is_empty() && outcome.metrics.wall_ms == 0.0 {
        return;
    }
    let m = &outcome.metrics;
    let fuel = m.fuel_used.map_or_else(|| "unmetered".to_owned(), |f| format!("{f} fuel"));
    // A container's peak is not measured (it reads 0): nothing is shown rather than 0.
    let memory = if m.peak_memory_bytes == 0 {
        String::new()
    } else {
        format!(" · peak memory {:.1} MiB", m.peak_memory_bytes as f64 / (1024.0 * 1024.0))
    };
    err_line(&format!(
        "{} in {:.1} ms{memory} · {fuel} · {} db queries · {}",
        if outcome.is_ok() { "ok" } else { "failed" },
        m.wall_ms,
        m.db_queries,
        guest_line(&outcome.runtime),
    ));
}

/// Prints a failure on stderr: `error[kind]: message (line N)`, then its hint. The
/// message may quote the guest (an exception's text), so it is escaped.
pub fn print_error(error: &OutcomeError) {
    err(&error_text(error));
}

/// Prints what the host removed from the results folder after a run: links leading out
/// of it and special files, named as the guest named them.
pub fn print_removed(removed: &[Sanitized]) {
    for entry in removed {
        let target = entry.target.as_deref().map(|t| format!(" (to `{}`)", guest_line(t))).unwrap_or_default();
        err_line(&format!(
            "warning: removed the {} `{}`{target} from the results folder",
            guest_line(&entry.kind),
            guest_line(&entry.path)
        ));
    }
}

fn error_text(error: &OutcomeError) -> String {
    let line = error.line.map(|l| format!(" (line {l})")).unwrap_or_default();
    let mut text = format!("error[{}]: {}{line}\n", error.kind, guest(&error.message));
    if let Some(hint) = &error.hint {
        text.push_str(&format!("hint: {}\n", guest(hint)));
    }
    text
}

fn excerpt(label: &str, text: &str, truncated: bool) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = format!("── {label} ──\n");
    if lines.len() > EXCERPT_LINES {
        out.push_str(&format!("… {} earlier lines …\n", lines.len() - EXCERPT_LINES));
    }
    for line in &lines[lines.len().saturating_sub(EXCERPT_LINES)..] {
        out.push_str(&guest(line));
        out.push('\n');
    }
    if truncated {
        out.push_str("… (cut at the output cap)\n");
    }
    out
}

/// A result as text: a list of objects as a table, an object of scalars as a two-column
/// table, anything else as `name: value`. The name, columns and cells are guest text,
/// escaped to one line each; other values are escaped JSON or text.
pub fn render_value(name: &str, value: &Value) -> String {
    let name = guest_line(name);
    if let Some(tabular) = crate::report::tabular(value) {
        let mut table = new_table();
        table.set_header(tabular.columns.iter().map(|column| Cell::new(guest_line(&label::column(column)))));
        for row in &tabular.rows {
            match (value.is_object(), row.as_slice()) {
                // An object of plain values: each value shown as its key says.
                (true, [Value::String(key), value]) => {
                    table.add_row(vec![Cell::new(guest_line(&label::column(key))), cell(key, value)]);
                }
                _ => {
                    table.add_row(tabular.columns.iter().zip(row).map(|(column, value)| cell(column, value)));
                }
            }
        }
        return format!("{name}\n{table}\n");
    }
    match value {
        Value::Object(_) | Value::Array(_) => {
            // serde_json escapes C0 controls but writes DEL, C1 and bidi characters as
            // they are.
            format!("{name}: {}\n", guest(&serde_json::to_string_pretty(value).unwrap_or_default()))
        }
        other => format!("{name}: {}\n", guest(&scalar(other))),
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

/// A table cell, escaped to one line, as people read it: money with thousands separators,
/// rates in percent, scenario ids in words; verdicts and DSCR bands in their
/// traffic-light colours on a terminal.
fn cell(column: &str, value: &Value) -> Cell {
    let text = match value {
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), |x| label::number(column, x)),
        Value::String(s) if column == "scenario" || column.ends_with("_scenario") => label::scenario(s),
        other => scalar(other),
    };
    let cell = Cell::new(guest_line(&text));
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
        Value::Number(n) if n.is_f64() => label::trim(n.as_f64().unwrap_or(f64::NAN)),
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

    /// What a guest can put in its results, logs and messages to fool a terminal.
    const HOSTILE: &str = "\x1b[2J\x1b[Hstatus: ok\rforged\x07\u{9b}31m\u{202e}cod.exe\u{2066}\t\nnext";

    /// No control or disguising character is left but `\n` (and `\t` outside tables).
    #[track_caller]
    fn assert_inert(text: &str, allow_tab: bool) {
        let bad: Vec<char> =
            text.chars().filter(|&c| terminal::needs_escape(c) && c != '\n' && !(allow_tab && c == '\t')).collect();
        assert!(bad.is_empty(), "raw {bad:?} in {text:?}");
    }

    #[test]
    fn guest_text_in_tables_stays_in_its_cell() {
        let benign = render_value("r", &json!([{"a": "x", "b": "y"}, {"a": "z", "b": "w"}]));
        let hostile = render_value(HOSTILE, &json!([{HOSTILE: HOSTILE, "b": "y"}, {HOSTILE: "z", "b": HOSTILE}]));
        assert_inert(&hostile, false);
        assert!(hostile.contains("\\x1b[2J") && hostile.contains("\\u{202e}") && hostile.contains("\\r"), "{hostile}");
        // One title line and the same table shape: newlines and tabs did not break rows.
        let shape = |t: &str| t.lines().map(|l| l.chars().filter(|c| "│┆".contains(*c)).count()).collect::<Vec<_>>();
        assert_eq!(shape(&hostile).len(), shape(&benign).len(), "{hostile}");
        assert!(hostile.lines().skip(1).all(|l| l.starts_with(['┌', '│', '╞', '├', '└'])), "{hostile}");
        for value in [json!({"k": HOSTILE}), json!(HOSTILE), json!([HOSTILE, 1]), json!({"nested": {"k": HOSTILE}})] {
            assert_inert(&render_value(HOSTILE, &value), true);
        }
    }

    #[test]
    fn excerpts_and_errors_are_escaped() {
        let text = excerpt("stdout", &format!("{HOSTILE}\n{HOSTILE}"), false);
        assert_inert(&text, true);
        assert!(text.contains("\\x1b[Hstatus: ok\\rforged"), "{text}");
        let mut error = OutcomeError::new(crate::outcome::ErrorKind::GuestException, format!("ValueError: {HOSTILE}"));
        error.hint = Some(HOSTILE.into());
        let text = error_text(&error);
        assert_inert(&text, true);
        assert!(text.starts_with("error[guest_exception]: ValueError: \\x1b[2J"), "{text}");
    }
}
