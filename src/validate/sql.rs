//! What a SQL statement refers to: the tables it reads (with their aliases) and the
//! columns it names, parsed with sqlparser. The schema check compares these with the
//! inspected tables.
//!
//! Scoping is approximate on purpose: a name defined anywhere in the statement (a CTE, a
//! select-list alias, a derived table) counts as defined everywhere in it. That can miss
//! a wrong column in a complex query, but it never flags a correct one, which matters
//! more: a false error would send a model to "repair" a right query.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use sqlparser::ast::{Expr, ObjectName, ObjectNamePart, Query, Select, SelectItem, TableFactor, Visit, Visitor};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

/// A table a statement reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    /// The name as written (`main.loans` stays qualified).
    pub name: String,
    /// The alias, if any.
    pub alias: Option<String>,
}

/// A column a statement names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRef {
    /// The qualifier (`p` in `p.noi`), if any.
    pub qualifier: Option<String>,
    /// The column's name.
    pub name: String,
}

/// The references of one statement.
#[derive(Debug, Default)]
pub struct References {
    /// Real tables (not CTEs), in order of appearance.
    pub tables: Vec<TableRef>,
    /// Columns, in order of appearance.
    pub columns: Vec<ColumnRef>,
    /// Names the statement defines itself: CTEs, derived tables, select-list aliases and
    /// column aliases. Lowercase.
    pub defined: HashSet<String>,
    /// Qualifier → table name, for real tables (their aliases and their own names).
    /// Lowercase keys.
    pub qualifiers: HashMap<String, String>,
}

/// Parses `sql` (one or more statements, `?` placeholders allowed) and collects its
/// references; the error is the parser's message.
pub fn references(sql: &str) -> Result<References, String> {
    let statements = Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| e.to_string())?;
    let mut collect = Collect::default();
    let _ = statements.visit(&mut collect);
    let mut refs = collect.refs;
    // A name that is a CTE is not a table of the database.
    let ctes = collect.ctes;
    refs.tables.retain(|t| !ctes.contains(&t.name.to_ascii_lowercase()));
    for table in &refs.tables {
        refs.qualifiers.insert(table.name.to_ascii_lowercase(), table.name.clone());
        if let Some((_, last)) = table.name.rsplit_once('.') {
            refs.qualifiers.insert(last.to_ascii_lowercase(), table.name.clone());
        }
        if let Some(alias) = &table.alias {
            refs.qualifiers.insert(alias.to_ascii_lowercase(), table.name.clone());
        }
    }
    refs.defined.extend(ctes);
    Ok(refs)
}

fn object_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => ident.value.clone(),
            ObjectNamePart::Function(f) => f.name.value.clone(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[derive(Default)]
struct Collect {
    refs: References,
    ctes: HashSet<String>,
}

impl Visitor for Collect {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.to_ascii_lowercase());
                self.refs.defined.extend(cte.alias.columns.iter().map(|c| c.name.value.to_ascii_lowercase()));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        for item in &select.projection {
            if let SelectItem::ExprWithAlias { alias, .. } = item {
                self.refs.defined.insert(alias.value.to_ascii_lowercase());
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        let alias = match factor {
            TableFactor::Table { name, alias, args: None, .. } => {
                self.refs
                    .tables
                    .push(TableRef { name: object_name(name), alias: alias.as_ref().map(|a| a.name.value.clone()) });
                return ControlFlow::Continue(());
            }
            TableFactor::Table { alias, .. }
            | TableFactor::Derived { alias, .. }
            | TableFactor::TableFunction { alias, .. }
            | TableFactor::Function { alias, .. }
            | TableFactor::UNNEST { alias, .. } => alias,
            _ => return ControlFlow::Continue(()),
        };
        if let Some(alias) = alias {
            self.refs.defined.insert(alias.name.value.to_ascii_lowercase());
            self.refs.defined.extend(alias.columns.iter().map(|c| c.name.value.to_ascii_lowercase()));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::Identifier(ident) => {
                self.refs.columns.push(ColumnRef { qualifier: None, name: ident.value.clone() });
            }
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                let (last, qualifier) = parts.split_last().expect("two parts");
                let qualifier = qualifier.iter().map(|p| p.value.as_str()).collect::<Vec<_>>().join(".");
                self.refs.columns.push(ColumnRef { qualifier: Some(qualifier), name: last.value.clone() });
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::references;

    #[test]
    fn tables_aliases_and_columns_are_collected() {
        let refs = references(
            "WITH t AS (SELECT property_id, SUM(noi) AS total FROM financial_metrics GROUP BY property_id) \
             SELECT p.property_name, t.total FROM properties p JOIN t ON t.property_id = p.property_id \
             WHERE p.city = ? ORDER BY total",
        )
        .unwrap();
        let tables: Vec<_> = refs.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(tables, ["financial_metrics", "properties"]);
        assert_eq!(refs.qualifiers.get("p").map(String::as_str), Some("properties"));
        assert!(refs.defined.contains("t") && refs.defined.contains("total"));
        assert!(refs.columns.iter().any(|c| c.qualifier.as_deref() == Some("p") && c.name == "city"));
    }

    #[test]
    fn a_parse_error_is_reported() {
        assert!(references("SELEC * FROM loans").is_err());
    }
}
