//! MX011 missing-logging (warning): the script never logs.
//!
//! What: a script that neither uses the `logging` module nor calls `metaexec.log`.
//!
//! Why: the run record keeps a script's log lines next to its results; without them a
//! failed or surprising run is hard to explain. A warning, as in the original validator.
//!
//! Example: `metaexec.log(f"{len(rows)} properties read")` satisfies it.

use super::{Context, FILE_SPAN, Hit, Rule};
use crate::validate::Severity;
use crate::validate::semantic::find_import;

/// The rule.
pub const RULE: Rule = Rule {
    code: "MX011",
    name: "missing-logging",
    severity: Severity::Warning,
    penalty: 0.05,
    summary: "neither `logging` nor `metaexec.log` is used",
    check,
};

fn check(cx: &Context<'_>, out: &mut Vec<Hit>) {
    let imports_logging = !find_import(&cx.semantic.imports, &["logging"]).is_empty();
    let logs = cx.calls.iter().any(|c| c.callee.as_deref() == Some("metaexec.log"));
    if !imports_logging && !logs && !cx.statements.is_empty() {
        out.push(Hit::new(
            FILE_SPAN,
            "the script does not log what it does",
            Some("call `metaexec.log(...)` at each step (or use the `logging` module)"),
        ));
    }
}
