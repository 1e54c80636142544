//! MX004 native-code: loading machine code.
//!
//! What: imports of `ctypes`, `_ctypes`, `cffi` and `mmap`, and `importlib.import_module`
//! / `__import__` with one of them as a literal name.
//!
//! Why: native code runs outside the interpreter's checks: raw memory, arbitrary
//! functions of the C library. It is the classic way out of a Python-level sandbox.
//!
//! Example: `import ctypes` and `__import__("ctypes")` are reported.

use super::{Context, Hit, Rule};
use crate::validate::Severity;
use crate::validate::semantic::{find_import, module_matches};

/// The rule.
pub const RULE: Rule = Rule {
    code: "MX004",
    name: "native-code",
    severity: Severity::Error,
    penalty: 0.5,
    summary: "ctypes/cffi/mmap: loading and calling machine code",
    check,
};

/// The modules this rule reports on import.
pub(super) const MODULES: &[&str] = &["ctypes", "_ctypes", "cffi", "mmap"];
const HINT: Option<&str> = Some("use pure Python and the standard library");

fn check(cx: &Context<'_>, out: &mut Vec<Hit>) {
    for (import, module) in find_import(&cx.semantic.imports, MODULES) {
        out.push(Hit::new(import.span(), format!("`{module}` loads and calls machine code"), HINT));
    }
    let loaders = ["__import__", "importlib.import_module", "importlib.__import__"];
    for (call, _) in cx.calls_to(&loaders) {
        let Some(name) = call.arg(0, "name").and_then(|a| cx.semantic.static_string(a)) else { continue };
        if MODULES.iter().any(|m| module_matches(&name, m)) {
            out.push(Hit::new(call.expr.span, format!("`{name}` loads and calls machine code"), HINT));
        }
    }
}
