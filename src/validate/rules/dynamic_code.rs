//! MX001 dynamic-code: code that builds and runs other code.
//!
//! What: calls of `eval`, `exec`, `compile`, `__import__` (also as `builtins.eval`),
//! any use of `importlib`, `getattr`/`setattr`/`delattr` that reach into a module with a
//! computed name or fetch one of those functions by name, and `globals()`/`locals()`.
//!
//! Why: code assembled at run time is invisible to every other rule; it is the first step
//! of nearly every published sandbox escape. A generated analysis script never needs it.
//!
//! Example: `getattr(__builtins__, "ev" + "al")("1+1")` is reported (and `__builtins__`
//! by MX005); `round(x, 2)` is not.

use super::{Context, Hit, Rule};
use crate::validate::Severity;
use crate::validate::ast::{Expr, ExprKind};
use crate::validate::semantic::find_import;

/// The rule.
pub const RULE: Rule = Rule {
    code: "MX001",
    name: "dynamic-code",
    severity: Severity::Error,
    penalty: 0.5,
    summary: "eval/exec/compile/__import__/importlib: code built and run at run time",
    check,
};

/// Functions that run or load code from a value.
pub const DYNAMIC: &[&str] = &["eval", "exec", "compile", "__import__"];
/// The modules this rule reports on import.
pub(super) const MODULES: &[&str] = &["importlib"];
const HINT: Option<&str> = Some("compute the value directly; import modules with a plain `import` statement");

fn check(cx: &Context<'_>, out: &mut Vec<Hit>) {
    for (import, _) in find_import(&cx.semantic.imports, MODULES) {
        out.push(Hit::new(import.span(), "`importlib` loads modules by a name computed at run time", HINT));
    }
    for expr in &cx.expressions {
        match &expr.kind {
            ExprKind::Subscript { index, .. } => {
                if let Some(name) = index.as_str().filter(|n| DYNAMIC.contains(n)) {
                    out.push(Hit::new(
                        expr.span,
                        format!("`{name}` is fetched by name to run code built at run time"),
                        HINT,
                    ));
                }
            }
            ExprKind::Attribute { attr, .. }
                if attr == "modules" && cx.semantic.qualified_name(expr).as_deref() == Some("sys.modules") =>
            {
                out.push(Hit::new(expr.span, "`sys.modules` reaches modules by a name given as a string", HINT));
            }
            _ => {}
        }
    }
    for call in &cx.calls {
        let Some(callee) = call.callee.as_deref() else { continue };
        if DYNAMIC.contains(&callee) {
            out.push(Hit::new(call.expr.span, format!("`{callee}` runs code built at run time"), HINT));
        } else if callee.starts_with("importlib.") {
            out.push(Hit::new(call.expr.span, format!("`{callee}` loads a module by a computed name"), HINT));
        } else if matches!(callee, "getattr" | "setattr" | "delattr") {
            let (Some(target), Some(name)) = (call.args.first(), call.args.get(1)) else { continue };
            match name.as_str() {
                Some(literal) if DYNAMIC.contains(&literal) => out.push(Hit::new(
                    call.expr.span,
                    format!("`{callee}` fetches `{literal}` by name, which runs code built at run time"),
                    HINT,
                )),
                None if is_module(cx, target) => out.push(Hit::new(
                    call.expr.span,
                    format!("`{callee}` reaches into a module with a name computed at run time"),
                    Some("name the attribute directly (`module.function`)"),
                )),
                _ => {}
            }
        } else if matches!(callee, "globals" | "locals") && call.args.is_empty() {
            out.push(Hit::new(
                call.expr.span,
                format!("`{callee}()` exposes the namespace to code that looks names up by string"),
                Some("use the variables directly"),
            ));
        }
    }
}

/// Whether an expression names a module (bound by an import) or the builtins.
fn is_module(cx: &Context<'_>, expr: &Expr) -> bool {
    match &expr.kind {
        ExprKind::Name(name) => cx.semantic.is_imported(name) || matches!(name.as_str(), "builtins" | "__builtins__"),
        _ => false,
    }
}
