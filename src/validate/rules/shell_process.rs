//! MX002 shell-process: starting programs or processes.
//!
//! What: `os.system`, `os.popen`, the `os.exec*`, `os.spawn*` and `os.posix_spawn*`
//! families, `os.fork`/`os.forkpty`, and any import of `subprocess` or `pty`.
//!
//! Why: an analysis script has no business running other programs; a shell command is
//! how an injected instruction becomes an attack. (The WASI sandbox cannot start
//! processes at all, so such a script would also simply fail there.)
//!
//! Example: `os.system("rm -rf /results")` and `import subprocess` are reported.

use super::{Context, Hit, Rule};
use crate::validate::Severity;
use crate::validate::semantic::find_import;

/// The rule.
pub const RULE: Rule = Rule {
    code: "MX002",
    name: "shell-process",
    severity: Severity::Error,
    penalty: 0.5,
    summary: "os.system/os.popen/os.exec*/subprocess/pty: starting programs or processes",
    check,
};

/// The modules this rule reports on import.
pub(super) const MODULES: &[&str] = &["subprocess", "pty"];
const HINT: Option<&str> = Some("do the work in Python; scripts cannot start programs");

/// Whether a qualified name is one of the `os` functions that start processes.
fn is_process_function(name: &str) -> bool {
    let Some(function) = name.strip_prefix("os.") else { return false };
    matches!(function, "system" | "popen" | "fork" | "forkpty" | "posix_spawn" | "posix_spawnp")
        || function.starts_with("exec")
        || function.starts_with("spawn")
}

fn check(cx: &Context<'_>, out: &mut Vec<Hit>) {
    for (import, module) in find_import(&cx.semantic.imports, MODULES) {
        out.push(Hit::new(import.span(), format!("`{module}` starts other programs"), HINT));
    }
    for import in &cx.semantic.imports {
        if let Some(name) = import.names.iter().find(|n| is_process_function(n)) {
            out.push(Hit::new(import.span(), format!("`{name}` starts other programs"), HINT));
        }
    }
    for call in &cx.calls {
        if let Some(callee) = call.callee.as_deref().filter(|c| is_process_function(c)) {
            out.push(Hit::new(call.expr.span, format!("`{callee}` starts other programs"), HINT));
        }
    }
}
