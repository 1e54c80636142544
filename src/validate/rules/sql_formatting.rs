//! MX007 sql-string-building: SQL assembled from values instead of parameters.
//!
//! What: the SQL argument of `metaexec.db.query`/`query_one`, or of any `.execute()` /
//! `.executemany()`, built with an f-string field, `%`, `.format()`, `.join()` or `+`
//! with a non-literal, directly or through a variable assigned such a string.
//!
//! Why: a value spliced into SQL is SQL injection, and it defeats the proxy's statement
//! cache. `?` placeholders bind values safely on every database.
//!
//! Example: `db.query(f"SELECT * FROM loans WHERE lender = '{name}'")` is reported;
//! `db.query("SELECT * FROM loans WHERE lender = ?", [name])` is not.

use super::{Context, DB_QUERY_FUNCTIONS, Hit, Rule};
use crate::validate::Severity;
use crate::validate::ast::{BinOp, Expr, ExprKind};

/// The rule.
pub const RULE: Rule = Rule {
    code: "MX007",
    name: "sql-string-building",
    severity: Severity::Error,
    penalty: 0.3,
    summary: "SQL built by f-strings, %, .format() or + instead of `?` parameters",
    check,
};

/// How many variable hops to follow.
const MAX_HOPS: usize = 6;

/// How a string was built from values, if it was.
fn built(cx: &Context<'_>, expr: &Expr, hops: usize) -> Option<&'static str> {
    if hops > MAX_HOPS {
        return None;
    }
    match &expr.kind {
        ExprKind::FString(parts) if parts.iter().any(|p| p.as_str().is_none()) => Some("an f-string"),
        ExprKind::BinOp { op: BinOp::Mod, left, .. } if is_stringy(left) => Some("`%` formatting"),
        ExprKind::BinOp { op: BinOp::Add, left, right } => {
            if cx.semantic.static_string(expr).is_some() {
                None
            } else if is_stringy(left) || is_stringy(right) {
                Some("`+` concatenation")
            } else {
                built(cx, left, hops + 1).or_else(|| built(cx, right, hops + 1))
            }
        }
        ExprKind::Call { func, .. } => match &func.kind {
            ExprKind::Attribute { attr, .. } if attr == "format" => Some("`.format()`"),
            ExprKind::Attribute { attr, .. } if attr == "join" => Some("`.join()`"),
            _ => None,
        },
        ExprKind::Name(name) => cx.semantic.assigned(name).iter().find_map(|v| built(cx, v, hops + 1)),
        _ => None,
    }
}

/// Whether an expression is obviously a string (a literal or an f-string) or a name.
fn is_stringy(expr: &Expr) -> bool {
    matches!(expr.kind, ExprKind::Str(_) | ExprKind::FString(_) | ExprKind::Name(_) | ExprKind::BinOp { .. })
}

fn check(cx: &Context<'_>, out: &mut Vec<Hit>) {
    for call in &cx.calls {
        let is_query = call.callee.as_deref().is_some_and(|c| DB_QUERY_FUNCTIONS.contains(&c))
            || matches!(call.method(), Some("execute" | "executemany"));
        if !is_query {
            continue;
        }
        let Some(sql) = call.arg(0, "sql") else { continue };
        if let Some(how) = built(cx, sql, 0) {
            out.push(Hit::new(
                call.expr.span,
                format!("the SQL is built with {how}: values spliced into SQL are an injection risk"),
                Some("write the values as `?` placeholders and pass them as the params list: `db.query(sql, [value])`"),
            ));
        }
    }
}
