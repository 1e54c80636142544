//! Findings as a linter prints them:
//!
//! ```text
//! script.py:3:1: MX001 [error] `eval` runs code built at run time
//!   |
//! 3 | eval(user_input)
//!   | ^^^^^^^^^^^^^^^^
//!   = hint: compute the value directly; import modules with a plain `import` statement
//! ```
//!
//! then a summary line with the verdict, the score and the backend.

use std::fmt::Write as _;

use super::{Finding, Report};

/// Renders a report as text; `colour` adds ANSI colours to severities and the verdict.
pub fn text(report: &Report, colour: bool) -> String {
    let paint = |code: &str, text: &str| if colour { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() };
    let mut out = String::new();
    for finding in &report.findings {
        let severity = match finding.severity {
            super::Severity::Error => paint("1;31", "error"),
            super::Severity::Warning => paint("1;33", "warning"),
        };
        let _ = writeln!(
            out,
            "{}:{}:{}: {} [{severity}] {}",
            report.file, finding.line, finding.column, finding.code, finding.message
        );
        source_excerpt(&mut out, finding);
        if let Some(hint) = &finding.hint {
            let _ = writeln!(out, "{:width$} = hint: {hint}", "", width = gutter(finding));
        }
    }
    let verdict = match report.verdict {
        super::Verdict::Pass => paint("1;32", "pass"),
        super::Verdict::Warn => paint("1;33", "warn"),
        super::Verdict::Reject => paint("1;31", "reject"),
    };
    let errors = report.errors().count();
    let warnings = report.findings.len() - errors;
    let _ = writeln!(
        out,
        "{}: {verdict} (score {:.2}, threshold {:.2}; {errors} error{}, {warnings} warning{}); backend: {} ({})",
        report.file,
        report.score,
        report.threshold,
        if errors == 1 { "" } else { "s" },
        if warnings == 1 { "" } else { "s" },
        report.backend.backend,
        report.backend.reason,
    );
    if !report.backend.packages.is_empty() {
        let _ = writeln!(out, "requirements.txt: {}", report.backend.packages.join(" "));
    }
    out
}

fn gutter(finding: &Finding) -> usize {
    finding.line.to_string().len() + 1
}

fn source_excerpt(out: &mut String, finding: &Finding) {
    if finding.source_line.trim().is_empty() {
        return;
    }
    let width = gutter(finding);
    let line = finding.source_line.replace('\t', "    ");
    let start = finding.column.saturating_sub(1) as usize;
    let end = if finding.end_line == finding.line {
        finding.end_column.saturating_sub(1) as usize
    } else {
        line.chars().count()
    };
    let carets = end.saturating_sub(start).max(1);
    let _ = writeln!(out, "{:width$}|", "");
    let _ = writeln!(out, "{:<width$}| {line}", finding.line);
    let _ = writeln!(out, "{:width$}| {}{}", "", " ".repeat(start), "^".repeat(carets));
}
