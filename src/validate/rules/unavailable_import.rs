//! MX009 unavailable-import: an import the chosen backend cannot satisfy.
//!
//! What: in the WASI sandbox, standard modules its CPython build lacks (`tkinter`,
//! `curses`, `multiprocessing`, `lzma`, `readline`, …) and, when the sandbox was
//! requested explicitly, any third-party package. (With the automatic choice,
//! third-party packages send the script to Docker instead.) Modules another rule already
//! forbids (`ctypes`, `subprocess`, `ssl`, …) are left to that rule: its own list decides.
//!
//! Why: the script would stop at its first line with `ModuleNotFoundError`; saying so
//! before it runs lets the model pick another approach.
//!
//! Example: `import multiprocessing` is reported for the WASI backend.

use super::{Context, Hit, Rule, dynamic_code, native_code, network, shell_process};
use crate::validate::Severity;
use crate::validate::backend::{Backend, available_in_wasi, is_runtime_module, is_stdlib};
use crate::validate::semantic::module_matches;

/// The rule.
pub const RULE: Rule = Rule {
    code: "MX009",
    name: "unavailable-import",
    severity: Severity::Error,
    penalty: 0.2,
    summary: "imports the chosen backend does not have",
    check,
};

/// The module patterns of the rules that report an import themselves.
const REPORTED_ELSEWHERE: &[&[&str]] =
    &[dynamic_code::MODULES, shell_process::MODULES, network::MODULES, native_code::MODULES];

fn check(cx: &Context<'_>, out: &mut Vec<Hit>) {
    if cx.backend.backend != Backend::Wasi {
        return;
    }
    for import in &cx.semantic.imports {
        let missing = import.names.iter().find_map(|name| {
            let module = name.split('.').next().unwrap_or(name);
            let elsewhere = REPORTED_ELSEWHERE.iter().any(|patterns| patterns.iter().any(|p| module_matches(name, p)));
            (!available_in_wasi(module) && !elsewhere).then_some(module)
        });
        if let Some(module) = missing {
            let (message, hint) = if is_runtime_module(module) {
                (
                    format!("`{module}` is the runtime's own interface, not for scripts"),
                    "reach the host through `metaexec` (result, emit, log, db)",
                )
            } else if is_stdlib(module) {
                (
                    format!("`{module}` is not available in the WASI runtime's Python"),
                    "use another standard module, or run the script with the Docker backend",
                )
            } else {
                (
                    format!("`{module}` is not installed in the WASI runtime (standard library and `metaexec` only)"),
                    "use the standard library and `metaexec`, or run the script with the Docker backend",
                )
            };
            out.push(Hit::new(import.span(), message, Some(hint)));
        }
    }
}
