//! MX005 dunder-escape: walking the interpreter's internals.
//!
//! What: the attributes `__subclasses__`, `__globals__`, `__builtins__`, `__code__`,
//! `__closure__`, `__base__`, `__bases__`, `__mro__`, `__getattribute__`, `__reduce__`,
//! `__reduce_ex__`, `__loader__`, `__spec__`; the names `__builtins__` and `__loader__`;
//! frame and code objects (`f_globals`, `f_back`, `gi_frame`, `tb_frame`, `co_code`, …,
//! `sys._getframe`, `inspect.currentframe`/`stack`/`trace`); and `getattr`/`setattr`/
//! `hasattr` with any of those names as a literal, and format templates that walk to
//! them (`"{0.__class__.__base__}".format(x)`).
//!
//! Why: these reach objects the script was never given (every class, every module's
//! globals, the caller's frame), which is how restricted-Python sandboxes are escaped.
//!
//! Example: `().__class__.__base__.__subclasses__()` is reported.

use super::{Context, Hit, Rule};
use crate::validate::Severity;
use crate::validate::ast::ExprKind;

/// The rule.
pub const RULE: Rule = Rule {
    code: "MX005",
    name: "dunder-escape",
    severity: Severity::Error,
    penalty: 0.5,
    summary: "__subclasses__/__globals__/__builtins__/frames: reaching interpreter internals",
    check,
};

const ATTRIBUTES: &[&str] = &[
    "__subclasses__",
    "__globals__",
    "__builtins__",
    "__code__",
    "__closure__",
    "__base__",
    "__bases__",
    "__mro__",
    "__getattribute__",
    "__reduce__",
    "__reduce_ex__",
    "__loader__",
    "__spec__",
    "f_globals",
    "f_locals",
    "f_builtins",
    "f_back",
    "f_code",
    "gi_frame",
    "gi_code",
    "cr_frame",
    "tb_frame",
    "co_code",
];
const NAMES: &[&str] = &["__builtins__", "__loader__"];
const FRAME_FUNCTIONS: &[&str] = &["sys._getframe", "inspect.currentframe", "inspect.stack", "inspect.trace"];
const HINT: Option<&str> = Some("use the objects the script was given; internals are off limits");

fn check(cx: &Context<'_>, out: &mut Vec<Hit>) {
    for expr in &cx.expressions {
        match &expr.kind {
            ExprKind::Attribute { attr, .. } if ATTRIBUTES.contains(&attr.as_str()) => {
                out.push(Hit::new(expr.span, format!("`{attr}` reaches interpreter internals"), HINT));
            }
            ExprKind::Name(name) if NAMES.contains(&name.as_str()) => {
                out.push(Hit::new(expr.span, format!("`{name}` reaches interpreter internals"), HINT));
            }
            _ => {}
        }
    }
    for (call, name) in cx.calls_to(FRAME_FUNCTIONS) {
        out.push(Hit::new(call.expr.span, format!("`{name}` reaches the interpreter's frames"), HINT));
    }
    for call in &cx.calls {
        let (Some("format" | "format_map"), ExprKind::Attribute { value, .. }) = (call.method(), &call.func.kind)
        else {
            continue;
        };
        if cx.semantic.static_string(value).is_some_and(|t| walks_attributes(&t)) {
            out.push(Hit::new(call.expr.span, "the format template walks to dunder attributes", HINT));
        }
    }
    for (call, name) in cx.calls_to(&["getattr", "setattr", "hasattr"]) {
        if let Some(attr) = call.args.get(1).and_then(|a| a.as_str()).filter(|a| ATTRIBUTES.contains(a)) {
            out.push(Hit::new(call.expr.span, format!("`{name}` with `{attr}` reaches interpreter internals"), HINT));
        }
    }
}

/// Whether a `str.format` template has a field that reads a dunder attribute
/// (`{0.__class__}`, `{x.__init__.__globals__}`).
fn walks_attributes(template: &str) -> bool {
    template.split('{').skip(1).any(|field| field.split('}').next().is_some_and(|f| f.contains(".__")))
}
