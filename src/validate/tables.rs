//! The validator's view of a database: table and column names, which is all the SQL
//! check needs. Built from the inspector's `Schema` when the engine is compiled in, or
//! by hand (tests, the fuzz target).

use serde::{Deserialize, Serialize};

/// The tables a script's SQL may name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tables {
    /// The tables, named as a query writes them.
    pub tables: Vec<TableColumns>,
}

/// One table's name and columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableColumns {
    /// The name as a query writes it (`schema.table` outside the current schema).
    pub name: String,
    /// The column names, in table order.
    pub columns: Vec<String>,
}

impl Tables {
    /// The table a query's name refers to: exact, then case-insensitive, then by the last
    /// part of a qualified name (`main.loans`, `public.loans`).
    pub fn find(&self, name: &str) -> Option<&TableColumns> {
        let exact = |n: &str| {
            self.tables
                .iter()
                .find(|t| t.name == n)
                .or_else(|| self.tables.iter().find(|t| t.name.eq_ignore_ascii_case(n)))
        };
        exact(name).or_else(|| name.rsplit_once('.').and_then(|(_, last)| exact(last)))
    }

    /// Every table name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tables.iter().map(|t| t.name.as_str())
    }
}

impl TableColumns {
    /// Whether the table has the column (SQL names are case-insensitive unless quoted;
    /// the check is lenient and ignores case).
    pub fn has(&self, column: &str) -> bool {
        self.columns.iter().any(|c| c.eq_ignore_ascii_case(column))
    }
}

#[cfg(feature = "engine")]
impl From<&crate::db::inspect::Schema> for Tables {
    fn from(schema: &crate::db::inspect::Schema) -> Self {
        Tables {
            tables: schema
                .tables
                .iter()
                .map(|t| TableColumns {
                    name: t.name.clone(),
                    columns: t.columns.iter().map(|c| c.name.clone()).collect(),
                })
                .collect(),
        }
    }
}
