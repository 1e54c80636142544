//! MX010 missing-error-handling (warning): no `try`/`except` anywhere.
//!
//! What: a script without a single `try` statement that has an `except` clause.
//!
//! Why: a script that reads a database and writes files should say what failed rather
//! than stop at the first surprise; the original validator asked for it, so this stays a
//! warning that lowers the score a little.
//!
//! Example: a script whose query sits in `try: … except db.DbError as e: …` passes.

use super::{Context, FILE_SPAN, Hit, Rule};
use crate::validate::Severity;
use crate::validate::ast::StmtKind;

/// The rule.
pub const RULE: Rule = Rule {
    code: "MX010",
    name: "missing-error-handling",
    severity: Severity::Warning,
    penalty: 0.05,
    summary: "no try/except anywhere in the script",
    check,
};

fn check(cx: &Context<'_>, out: &mut Vec<Hit>) {
    let handles =
        cx.statements.iter().any(|s| matches!(&s.kind, StmtKind::Try { handlers, .. } if !handlers.is_empty()));
    if !handles && !cx.statements.is_empty() {
        out.push(Hit::new(
            FILE_SPAN,
            "the script has no error handling (no try/except)",
            Some("wrap the database reads and file writes in try/except and report what failed"),
        ));
    }
}
