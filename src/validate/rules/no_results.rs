//! MX015 no-results (error): the script can never report anything.
//!
//! What: a script with no statement that does anything (only imports, comments,
//! docstrings, `pass`), or one in which nothing refers to `metaexec.result` or
//! `metaexec.emit`, so no path through it can report an answer.
//!
//! Why: a run's answer is what its script reports; a script that cannot report anything
//! would "succeed" with no results. Small models write such scripts (an empty reply, a
//! plan in comments, a `print` of the answer), and they must go back for repair instead.
//!
//! Example: `metaexec.result(rows)` (or `emit("portfolio_dscr", value)`) satisfies it.
//! A web app (one that serves) is exempt: its answer is the pages it serves.

use super::{Context, FILE_SPAN, Hit, Rule};
use crate::validate::Severity;
use crate::validate::ast::{ExprKind, StmtKind};

/// The rule.
pub const RULE: Rule = Rule {
    code: "MX015",
    name: "no-results",
    severity: Severity::Error,
    penalty: 0.5,
    summary: "the script does nothing, or nothing in it can call `metaexec.result` / `metaexec.emit`",
    check,
};

/// The guest library's reporting functions.
const REPORTERS: [&str; 2] = ["metaexec.result", "metaexec.emit"];

fn check(cx: &Context<'_>, out: &mut Vec<Hit>) {
    let does_something = cx.statements.iter().any(|stmt| match &stmt.kind {
        StmtKind::Import(_) | StmtKind::ImportFrom { .. } => false,
        StmtKind::Expr(expr) => match &expr.kind {
            ExprKind::Str(_) => false,
            ExprKind::Other(parts) => !parts.is_empty(),
            _ => true,
        },
        StmtKind::Other { exprs, bodies } => !exprs.is_empty() || !bodies.is_empty(),
        _ => true,
    });
    if !does_something {
        out.push(Hit::new(
            FILE_SPAN,
            "the script has no statement that does anything (only imports, comments or docstrings)",
            Some("write the whole script: read the data, compute, and report with `metaexec.result(rows)`"),
        ));
        return;
    }
    // A web app answers over HTTP as long as it serves: it has no result to report.
    if cx.backend.serves_web {
        return;
    }
    // Any reference counts, not only a call: `report = metaexec.emit` and the like.
    let reports = cx
        .expressions
        .iter()
        .any(|expr| cx.semantic.qualified_name(expr).is_some_and(|name| REPORTERS.contains(&name.as_str())));
    if !reports {
        out.push(Hit::new(
            FILE_SPAN,
            "nothing in the script reports a result: it never calls `metaexec.result` or `metaexec.emit`, so its \
             answer would be lost (printing is not reporting)",
            Some("end with `metaexec.result(rows)` (a list of dicts or a dict); add named values with `metaexec.emit(name, value)`"),
        ));
    }
}
