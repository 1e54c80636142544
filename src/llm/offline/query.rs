//! The one query that gives a row per property with every figure the guest library can use:
//! the property table, joined through foreign keys to the tables that hold its finances
//! (the latest fiscal year where there are several), whatever the schema calls them. The
//! guest library then finds NOI and debt service among the columns, or derives them.

use crate::db::inspect::{Schema, Table};

/// Column names (lower case, without `_`) that make a table worth joining.
const FINANCE_WORDS: [&str; 16] = [
    "noi",
    "revenue",
    "income",
    "expense",
    "opex",
    "debt",
    "principal",
    "loan",
    "interest",
    "rate",
    "amort",
    "occupancy",
    "vacancy",
    "value",
    "rent",
    "payment",
];
/// Columns that name a property, best first.
const NAME_COLUMNS: [&str; 6] = ["property_name", "name", "asset_name", "building_name", "property", "title"];
/// Columns that hold the year a row's figures are for.
const YEAR_COLUMNS: [&str; 4] = ["fiscal_year", "year", "fy", "period_year"];

/// The query and what the script needs to know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct PortfolioQuery {
    /// The SQL, with no parameters.
    pub sql: String,
    /// The property table.
    pub base_table: String,
    /// Its name column, as the rows carry it.
    pub name_column: Option<String>,
    /// The tables joined in, with why others were left out.
    pub notes: Vec<String>,
}

/// Why no query could be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

/// Builds the per-property query for `schema`.
pub fn portfolio_query(schema: &Schema) -> Result<PortfolioQuery, QueryError> {
    let base = property_table(schema).ok_or_else(|| {
        QueryError(format!(
            "no table in the database looks like a list of properties (tables: {}); \
             the offline planner needs a table with a name column",
            schema.table_names().join(", ")
        ))
    })?;
    let mut aliases = vec![alias_for(&base.name, &[])];
    let mut select: Vec<String> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for column in &base.columns {
        seen.push(column.name.to_lowercase());
        select.push(format!("{}.{}", aliases[0], ident(&column.name)));
    }
    let mut joins = String::new();
    let mut notes = Vec::new();
    for child in schema.tables.iter().filter(|t| t.name != base.name) {
        let Some(fk) = child.foreign_keys.iter().find(|fk| fk.references_table == base.name) else { continue };
        if !child.columns.iter().any(|c| is_finance(&c.name)) {
            continue;
        }
        let year = child.columns.iter().find(|c| YEAR_COLUMNS.contains(&c.name.to_lowercase().as_str()));
        if year.is_none() && child.row_count > base.row_count {
            notes.push(format!(
                "`{}` left out: {} rows for {} properties and no year column to pick one row each",
                child.name, child.row_count, base.row_count
            ));
            continue;
        }
        let alias = alias_for(&child.name, &aliases);
        let on: Vec<String> = fk
            .columns
            .iter()
            .zip(&fk.references_columns)
            .map(|(c, r)| format!("{alias}.{} = {}.{}", ident(c), aliases[0], ident(r)))
            .collect();
        joins.push_str(&format!(" LEFT JOIN {} {alias} ON {}", ident(&child.name), on.join(" AND ")));
        if let Some(year) = year {
            let y = ident(&year.name);
            joins.push_str(&format!(" AND {alias}.{y} = (SELECT MAX({y}) FROM {})", ident(&child.name)));
        }
        for column in &child.columns {
            if column.primary_key || fk.columns.contains(&column.name) {
                continue;
            }
            let lower = column.name.to_lowercase();
            if seen.contains(&lower) {
                // Same name in two tables: prefixed, which the guest library's column
                // matching ignores.
                select.push(format!(
                    "{alias}.{} AS {}",
                    ident(&column.name),
                    ident(&format!("{}_{}", child.name, column.name))
                ));
            } else {
                select.push(format!("{alias}.{}", ident(&column.name)));
                seen.push(lower);
            }
        }
        notes.push(format!("`{}` joined on {}", child.name, on.join(" AND ")));
        aliases.push(alias);
    }
    let name_column = name_column(base);
    let order = base.primary_key.first().map(String::as_str).or(name_column.as_deref());
    let order_by = order.map(|c| format!(" ORDER BY {}.{}", aliases[0], ident(c))).unwrap_or_default();
    let sql = format!("SELECT {} FROM {} {}{joins}{order_by}", select.join(", "), ident(&base.name), aliases[0]);
    Ok(PortfolioQuery { sql, base_table: base.name.clone(), name_column, notes })
}

/// Columns that date a row of a history table, best first.
const PERIOD_COLUMNS: [&str; 7] =
    ["month", "period", "month_start", "period_start", "year_month", "report_month", "date"];

/// A query for the rows of one table beside the property table, each with its property's
/// name as `property_name`: the monthly history for a trend, the loans for maturities.
#[derive(Debug, Clone, PartialEq)]
pub struct SideQuery {
    /// The SQL, with no parameters.
    pub sql: String,
    /// The table read.
    pub table: String,
}

/// The monthly history: a table referring to the property table with a period column
/// (`month`, `period`, `date`, ...) and finance columns.
pub fn history_query(schema: &Schema, portfolio: &PortfolioQuery) -> Option<SideQuery> {
    side_query(schema, portfolio, |t| {
        let period = PERIOD_COLUMNS.iter().find_map(|p| t.columns.iter().find(|c| c.name.eq_ignore_ascii_case(p)))?;
        t.columns.iter().any(|c| is_finance(&c.name)).then(|| period.name.clone())
    })
}

/// The loans: the table with a maturity column (`maturity_date`, `maturity`, `due_date`).
pub fn loans_query(schema: &Schema, portfolio: &PortfolioQuery) -> Option<SideQuery> {
    side_query(schema, portfolio, |t| {
        t.columns
            .iter()
            .find(|c| {
                let lower = c.name.to_lowercase();
                lower.contains("matur") || lower == "due_date"
            })
            .map(|c| c.name.clone())
    })
}

/// The rows of the first table `order_column` accepts (giving the column to order by):
/// the property table itself, or one that refers to it, joined for the name.
fn side_query(
    schema: &Schema,
    portfolio: &PortfolioQuery,
    order_column: impl Fn(&Table) -> Option<String>,
) -> Option<SideQuery> {
    let base = schema.tables.iter().find(|t| t.name == portfolio.base_table)?;
    let name = portfolio.name_column.as_deref()?;
    if let Some(order) = order_column(base) {
        let sql = format!(
            "SELECT {} AS property_name, {} FROM {} ORDER BY {}",
            ident(name),
            base.columns.iter().map(|c| ident(&c.name)).collect::<Vec<_>>().join(", "),
            ident(&base.name),
            ident(&order)
        );
        return Some(SideQuery { sql, table: base.name.clone() });
    }
    schema.tables.iter().filter(|t| t.name != base.name).find_map(|child| {
        let fk = child.foreign_keys.iter().find(|fk| fk.references_table == base.name)?;
        let order = order_column(child)?;
        let (c, p) = ("c", "p");
        let on: Vec<String> = fk
            .columns
            .iter()
            .zip(&fk.references_columns)
            .map(|(a, b)| format!("{c}.{} = {p}.{}", ident(a), ident(b)))
            .collect();
        let columns: Vec<String> = child
            .columns
            .iter()
            .filter(|col| !col.name.eq_ignore_ascii_case("property_name"))
            .map(|col| format!("{c}.{}", ident(&col.name)))
            .collect();
        let sql = format!(
            "SELECT {p}.{} AS property_name, {} FROM {} {c} JOIN {} {p} ON {} ORDER BY {p}.{}, {c}.{}",
            ident(name),
            columns.join(", "),
            ident(&child.name),
            ident(&base.name),
            on.join(" AND "),
            ident(name),
            ident(&order)
        );
        Some(SideQuery { sql, table: child.name.clone() })
    })
}

/// The table that lists properties: a name column, many tables referring to it, and a
/// name that says so weigh in.
fn property_table(schema: &Schema) -> Option<&Table> {
    let referrers = |t: &Table| {
        schema.tables.iter().filter(|o| o.foreign_keys.iter().any(|fk| fk.references_table == t.name)).count()
    };
    schema.tables.iter().filter(|t| name_column(t).is_some()).max_by_key(|t| {
        let lower = t.name.to_lowercase();
        let named = ["propert", "asset", "building", "site"].iter().any(|w| lower.contains(w));
        (usize::from(named) * 3 + referrers(t) + usize::from(t.columns.iter().any(|c| is_finance(&c.name))), {
            // Ties go to the earlier table.
            std::cmp::Reverse(schema.tables.iter().position(|o| o.name == t.name))
        })
    })
}

fn name_column(table: &Table) -> Option<String> {
    NAME_COLUMNS
        .iter()
        .find_map(|want| table.columns.iter().find(|c| c.name.eq_ignore_ascii_case(want)))
        .map(|c| c.name.clone())
}

fn is_finance(column: &str) -> bool {
    let lower = column.to_lowercase().replace('_', "");
    FINANCE_WORDS.iter().any(|w| lower.contains(w))
}

/// A short alias: the table's initials (`financial_metrics` → `fm`), made unique.
fn alias_for(table: &str, taken: &[String]) -> String {
    let base: String = table
        .rsplit('.')
        .next()
        .unwrap_or(table)
        .split('_')
        .filter_map(|w| w.chars().find(char::is_ascii_alphabetic))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let base = if base.is_empty() { "t".to_owned() } else { base };
    let mut alias = base.clone();
    let mut n = 2;
    while taken.contains(&alias) || is_keyword(&alias) {
        alias = format!("{base}{n}");
        n += 1;
    }
    alias
}

fn is_keyword(word: &str) -> bool {
    matches!(word, "as" | "on" | "or" | "in" | "is" | "by" | "to" | "do" | "if" | "of" | "at" | "no")
}

/// An identifier as SQL needs it: bare when plain lower-case, quoted otherwise.
pub(crate) fn ident(name: &str) -> String {
    if name.split('.').all(|part| {
        !part.is_empty()
            && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !part.starts_with(|c: char| c.is_ascii_digit())
    }) {
        name.to_owned()
    } else {
        name.split('.').map(|part| format!("\"{}\"", part.replace('"', "\"\""))).collect::<Vec<_>>().join(".")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Dialect;
    use crate::db::inspect::{Column, ForeignKey};

    fn table(name: &str, columns: &[&str], fk: Option<(&str, &str, &str)>, rows: u64) -> Table {
        Table {
            name: name.into(),
            columns: columns
                .iter()
                .enumerate()
                .map(|(i, c)| Column {
                    name: (*c).into(),
                    data_type: String::new(),
                    nullable: true,
                    primary_key: i == 0,
                })
                .collect(),
            primary_key: vec![columns[0].into()],
            foreign_keys: fk
                .map(|(col, table, refcol)| ForeignKey {
                    columns: vec![col.into()],
                    references_table: table.into(),
                    references_columns: vec![refcol.into()],
                })
                .into_iter()
                .collect(),
            row_count: rows,
        }
    }

    #[test]
    fn joins_finance_tables_and_leaves_out_monthly_history() {
        let schema = Schema {
            dialect: Dialect::Sqlite,
            tables: vec![
                table(
                    "financial_metrics",
                    &["metric_id", "property_id", "noi", "fiscal_year"],
                    Some(("property_id", "properties", "property_id")),
                    20,
                ),
                table(
                    "loans",
                    &["loan_id", "property_id", "principal", "interest_rate"],
                    Some(("property_id", "properties", "property_id")),
                    10,
                ),
                table(
                    "monthly_performance",
                    &["id", "property_id", "month", "noi"],
                    Some(("property_id", "properties", "property_id")),
                    240,
                ),
                table("properties", &["property_id", "property_name", "city"], None, 10),
            ],
            joins: vec![],
        };
        let q = portfolio_query(&schema).unwrap();
        assert_eq!(q.base_table, "properties");
        assert_eq!(q.name_column.as_deref(), Some("property_name"));
        assert_eq!(
            q.sql,
            "SELECT p.property_id, p.property_name, p.city, fm.noi, fm.fiscal_year, l.principal, l.interest_rate \
             FROM properties p \
             LEFT JOIN financial_metrics fm ON fm.property_id = p.property_id AND fm.fiscal_year = (SELECT MAX(fiscal_year) FROM financial_metrics) \
             LEFT JOIN loans l ON l.property_id = p.property_id ORDER BY p.property_id"
        );
        assert!(q.notes.iter().any(|n| n.contains("monthly_performance") && n.contains("240 rows")), "{:?}", q.notes);
    }

    #[test]
    fn odd_names_are_quoted_and_clashes_prefixed() {
        let schema = Schema {
            dialect: Dialect::Sqlite,
            tables: vec![
                table("Assets", &["id", "Name", "value"], None, 3),
                table("debt", &["id", "asset", "value", "rate"], Some(("asset", "Assets", "id")), 3),
            ],
            joins: vec![],
        };
        let q = portfolio_query(&schema).unwrap();
        assert_eq!(
            q.sql,
            "SELECT a.id, a.\"Name\", a.value, d.value AS debt_value, d.rate FROM \"Assets\" a \
             LEFT JOIN debt d ON d.asset = a.id ORDER BY a.id"
        );
    }

    #[test]
    fn a_schema_without_properties_is_explained() {
        let schema =
            Schema { dialect: Dialect::Sqlite, tables: vec![table("events", &["id", "at"], None, 1)], joins: vec![] };
        assert!(portfolio_query(&schema).unwrap_err().0.contains("events"));
    }
}
