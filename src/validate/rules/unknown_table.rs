//! MX012 unknown-table: literal SQL names a table the database does not have.
//!
//! What: a table in the FROM/JOIN of SQL written out in a `metaexec.db.query` call that
//! is neither in the inspected schema nor a CTE of the statement.
//!
//! Why: models invent table names (`property` for `properties`, `loan_data` for
//! `loans`); the query would fail at run time. The message names the closest real table.
//!
//! Example: `db.query("SELECT * FROM property")` is reported with "did you mean
//! `properties`?".

use super::sql_schema::literal_queries;
use super::{Context, Hit, Rule};
use crate::validate::Severity;
use crate::validate::suggest::closest;

/// The rule.
pub const RULE: Rule = Rule {
    code: "MX012",
    name: "unknown-table",
    severity: Severity::Error,
    penalty: 0.2,
    summary: "SQL naming a table the database does not have",
    check,
};

fn check(cx: &Context<'_>, out: &mut Vec<Hit>) {
    let Some(tables) = cx.tables else { return };
    for query in literal_queries(cx) {
        let Ok(refs) = query.refs else { continue };
        let mut seen = Vec::new();
        for table in refs.tables.iter().filter(|t| tables.find(&t.name).is_none()) {
            if seen.contains(&table.name) {
                continue;
            }
            seen.push(table.name.clone());
            let suggestion =
                closest(&table.name, tables.names()).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default();
            let names = tables.names().collect::<Vec<_>>().join(", ");
            out.push(Hit::new(
                query.call.expr.span,
                format!("table `{}` does not exist{suggestion}", table.name),
                Some(&format!("the tables are: {names}")),
            ));
        }
    }
}
