//! MX014 invalid-sql (warning): literal SQL that does not parse.
//!
//! What: SQL written out in a `metaexec.db.query` call that a generic SQL parser
//! rejects.
//!
//! Why: the query would fail when the script runs; the parser's message points at the
//! mistake now. A warning, not an error: a database may accept syntax the generic parser
//! does not know.
//!
//! Example: `db.query("SELEC * FROM loans")` is reported.

use super::sql_schema::literal_queries;
use super::{Context, Hit, Rule};
use crate::validate::Severity;

/// The rule.
pub const RULE: Rule = Rule {
    code: "MX014",
    name: "invalid-sql",
    severity: Severity::Warning,
    penalty: 0.1,
    summary: "SQL passed to metaexec.db.query that does not parse",
    check,
};

fn check(cx: &Context<'_>, out: &mut Vec<Hit>) {
    for query in literal_queries(cx) {
        if let Err(message) = query.refs {
            out.push(Hit::new(
                query.call.expr.span,
                format!("the SQL does not parse: {message}"),
                Some("fix the statement; one SELECT with `?` placeholders"),
            ));
        }
    }
}
