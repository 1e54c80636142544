//! The rules, one per file, each with a stable code. A rule looks at the [`Context`] of a
//! parsed script and reports [`Hit`]s; the validator turns them into findings with the
//! rule's code, severity and the line and column of the hit.

use super::Severity;
use super::ast::{Expr, ExprKind, Keyword, Span, Stmt};
use super::backend::{self, BackendChoice, BackendRequest};
use super::semantic::Semantic;
use super::sql::References;
use super::tables::Tables;

mod dunder_escape;
mod dynamic_code;
mod error_handling;
mod file_writes;
mod hardcoded_credentials;
mod invalid_sql;
mod logging;
mod native_code;
mod network;
mod no_results;
mod shell_process;
mod sql_formatting;
mod sql_schema;
mod unavailable_import;
mod unknown_column;
mod unknown_table;

/// A rule: its code, what it catches and how much a finding costs the score.
pub struct Rule {
    /// The stable code (`MX001`).
    pub code: &'static str,
    /// A short kebab-case name (`dynamic-code`).
    pub name: &'static str,
    /// The severity of its findings.
    pub severity: Severity,
    /// What a finding takes off the score (which starts at 1).
    pub penalty: f64,
    /// One line: what the rule catches and why.
    pub summary: &'static str,
    /// Runs the rule.
    pub(crate) check: fn(&Context<'_>, &mut Vec<Hit>),
}

/// Every rule, by code.
pub static RULES: &[&Rule] = &[
    &dynamic_code::RULE,
    &shell_process::RULE,
    &network::RULE,
    &native_code::RULE,
    &dunder_escape::RULE,
    &hardcoded_credentials::RULE,
    &sql_formatting::RULE,
    &file_writes::RULE,
    &unavailable_import::RULE,
    &error_handling::RULE,
    &logging::RULE,
    &unknown_table::RULE,
    &unknown_column::RULE,
    &invalid_sql::RULE,
    &no_results::RULE,
];

/// The rule with a code.
pub fn rule(code: &str) -> Option<&'static Rule> {
    RULES.iter().copied().find(|r| r.code.eq_ignore_ascii_case(code))
}

/// One thing a rule found.
#[derive(Debug)]
pub struct Hit {
    /// Where.
    pub span: Span,
    /// What is wrong, for a person and for a model repairing the script.
    pub message: String,
    /// What to do instead, when there is a standard answer.
    pub hint: Option<String>,
}

impl Hit {
    /// A hit with a hint.
    pub fn new(span: Span, message: impl Into<String>, hint: Option<&str>) -> Self {
        Hit { span, message: message.into(), hint: hint.map(str::to_string) }
    }
}

/// A call in the script, with what it calls.
pub struct Call<'a> {
    /// The call expression.
    pub expr: &'a Expr,
    /// The callee's qualified name, when it is a name or attribute chain.
    pub callee: Option<String>,
    /// The callee expression.
    pub func: &'a Expr,
    /// Positional arguments.
    pub args: &'a [Expr],
    /// Keyword arguments.
    pub keywords: &'a [Keyword],
}

impl<'a> Call<'a> {
    /// The argument at `position`, or the keyword argument `name`.
    pub fn arg(&self, position: usize, name: &str) -> Option<&'a Expr> {
        self.args
            .get(position)
            .or_else(|| self.keywords.iter().find(|k| k.name.as_deref() == Some(name)).map(|k| &k.value))
    }

    /// The last segment of the callee (`run` of `subprocess.run`), also for method calls
    /// on arbitrary objects.
    pub fn method(&self) -> Option<&'a str> {
        match &self.func.kind {
            ExprKind::Attribute { attr, .. } => Some(attr),
            ExprKind::Name(name) => Some(name),
            _ => None,
        }
    }
}

/// Everything a rule may look at.
pub struct Context<'a> {
    /// Names, imports and assignments.
    pub semantic: Semantic<'a>,
    /// Every statement, in source order.
    pub statements: Vec<&'a Stmt>,
    /// Every expression, parents first.
    pub expressions: Vec<&'a Expr>,
    /// Every call.
    pub calls: Vec<Call<'a>>,
    /// The database's tables, when known.
    pub tables: Option<&'a Tables>,
    /// The backend the script will run in, chosen from its imports and calls.
    pub backend: BackendChoice,
    /// The literal SQL of query calls (by index into `calls`), parsed on first use.
    pub(crate) literal_sql: std::cell::OnceCell<Vec<(usize, Result<References, String>)>>,
}

impl<'a> Context<'a> {
    /// Builds the context from the statements and expressions of a script.
    pub fn new(
        semantic: Semantic<'a>,
        statements: Vec<&'a Stmt>,
        expressions: Vec<&'a Expr>,
        tables: Option<&'a Tables>,
        backend: BackendRequest,
    ) -> Self {
        let calls: Vec<Call<'a>> = expressions
            .iter()
            .filter_map(|expr| match &expr.kind {
                ExprKind::Call { func, args, keywords } => {
                    Some(Call { expr, callee: semantic.qualified_name(func), func, args, keywords })
                }
                _ => None,
            })
            .collect();
        let backend = backend::choose(&semantic, calls.iter().filter_map(|c| c.callee.as_deref()), backend);
        Context { semantic, statements, expressions, calls, tables, backend, literal_sql: Default::default() }
    }

    /// Calls whose callee is one of `names` (qualified), with the name matched.
    pub fn calls_to<'s>(&'s self, names: &'s [&'s str]) -> impl Iterator<Item = (&'s Call<'a>, &'s str)> + 's {
        self.calls.iter().filter_map(move |call| {
            let callee = call.callee.as_deref()?;
            names.iter().find(|n| **n == callee).map(|n| (call, *n))
        })
    }
}

/// The guest library's query functions.
pub const DB_QUERY_FUNCTIONS: &[&str] = &["metaexec.db.query", "metaexec.db.query_one"];

/// The span of a whole script's first line, for findings about the script as a whole.
pub const FILE_SPAN: Span = Span { start: 0, end: 0 };
