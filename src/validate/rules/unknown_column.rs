//! MX013 unknown-column: literal SQL names a column its table does not have.
//!
//! What: a column in SQL written out in a `metaexec.db.query` call that none of the
//! statement's tables has (or, for `alias.column`, that the aliased table lacks), and
//! that the statement does not define itself (select-list aliases, CTE and derived-table
//! columns).
//!
//! Why: an invented column is the most common failure of generated SQL; the message names
//! the closest real column, synonyms included (`net_income` → `noi`), so a model can
//! repair the query without running it.
//!
//! Example: `db.query("SELECT net_income FROM financial_metrics")` is reported as
//! "`net_income` does not exist in `financial_metrics`; did you mean `noi`?".

use super::sql_schema::literal_queries;
use super::{Context, Hit, Rule};
use crate::validate::Severity;
use crate::validate::sql::{ColumnRef, References};
use crate::validate::suggest::closest;
use crate::validate::tables::{TableColumns, Tables};

/// The rule.
pub const RULE: Rule = Rule {
    code: "MX013",
    name: "unknown-column",
    severity: Severity::Error,
    penalty: 0.2,
    summary: "SQL naming a column its table does not have",
    check,
};

fn check(cx: &Context<'_>, out: &mut Vec<Hit>) {
    let Some(tables) = cx.tables else { return };
    for query in literal_queries(cx) {
        let Ok(refs) = query.refs else { continue };
        let mut seen: Vec<(Option<String>, String)> = Vec::new();
        for column in &refs.columns {
            let key = (column.qualifier.clone(), column.name.to_ascii_lowercase());
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            if let Some(message) = problem(tables, refs, column) {
                out.push(Hit::new(query.call.expr.span, message, Some("use the columns `metaexec db schema` lists")));
            }
        }
    }
}

/// What is wrong with one column reference, if anything.
fn problem(tables: &Tables, refs: &References, column: &ColumnRef) -> Option<String> {
    let known: Vec<&TableColumns> = refs.tables.iter().filter_map(|t| tables.find(&t.name)).collect();
    let defined = |name: &str| refs.defined.contains(&name.to_ascii_lowercase());
    match &column.qualifier {
        Some(qualifier) => match refs.qualifiers.get(&qualifier.to_ascii_lowercase()) {
            Some(table_name) => {
                let table = tables.find(table_name)?;
                (!table.has(&column.name)).then(|| missing(&column.name, &[table]))
            }
            None if defined(qualifier) => {
                (!defined(&column.name) && !known.iter().any(|t| t.has(&column.name)) && !known.is_empty())
                    .then(|| missing(&column.name, &known))
            }
            // `schema.table.column` with a table this statement does not read, or an
            // unknown qualifier: either way the column cannot be resolved.
            None => Some(format!("`{qualifier}.{}`: `{qualifier}` is not a table or alias of this query", column.name)),
        },
        None => {
            // With a table MX012 reports, the column may well be that table's.
            let all_known = known.len() == refs.tables.len();
            if !all_known || known.is_empty() || defined(&column.name) || known.iter().any(|t| t.has(&column.name)) {
                None
            } else {
                Some(missing(&column.name, &known))
            }
        }
    }
}

/// "`x` does not exist in `t`; did you mean `y`?"
fn missing(name: &str, tables: &[&TableColumns]) -> String {
    let in_tables = tables.iter().map(|t| format!("`{}`", t.name)).collect::<Vec<_>>().join(" or ");
    let candidates = tables.iter().flat_map(|t| t.columns.iter().map(String::as_str));
    let suggestion = closest(name, candidates).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default();
    format!("`{name}` does not exist in {in_tables}{suggestion}")
}
