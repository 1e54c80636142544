//! The schema inspector: tables, columns, declared types, primary and foreign keys, the
//! joins the foreign keys imply and row counts, as a typed [`Schema`] (serialisable, for
//! `--json` and the guest's `metaexec.db.schema()`) and as compact text for prompts.
//!
//! The catalog is read, never guessed: SQLite through `sqlite_master` and the table-valued
//! `pragma_table_info` / `pragma_foreign_key_list` functions; PostgreSQL through
//! `pg_catalog`, inside a `READ ONLY` transaction, over every schema but the system ones.
//! Tables of the current schema (usually `public`) are named bare, others as
//! `schema.table`, which is how a query would name them.
//!
//! [`Schema::compact_text`] stays bounded whatever the database: wide tables are
//! summarised (keys first, then the leading columns) and past a budget of characters the
//! remaining tables are only counted and named, so a prompt never drowns in a catalog.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::connect::{Database, Pool};
use super::{Cause, DbError, Dialect};

/// Past this many columns a table is summarised in the compact text.
const WIDE_TABLE_COLUMNS: usize = 24;
/// How many columns a summarised table shows (its key columns count towards it).
const SUMMARY_COLUMNS: usize = 16;
/// The compact text's budget in bytes, tables and joins together.
const TEXT_BUDGET: usize = 6_000;
/// The share of the budget the `joins:` line may take.
const JOINS_BUDGET: usize = 1_500;

/// A database's tables and the joins their foreign keys imply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// The SQL dialect queries must be written in.
    pub dialect: Dialect,
    /// The tables, sorted by name.
    pub tables: Vec<Table>,
    /// One join per foreign key.
    pub joins: Vec<Join>,
}

/// One table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// The name as a query writes it (`schema.table` outside the current schema).
    pub name: String,
    /// The columns, in table order.
    pub columns: Vec<Column>,
    /// The primary key's columns, in key order; empty when there is none.
    pub primary_key: Vec<String>,
    /// The foreign keys this table declares.
    pub foreign_keys: Vec<ForeignKey>,
    /// The exact number of rows when inspected.
    pub row_count: u64,
}

/// One column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// The column's name.
    pub name: String,
    /// The type as declared, lowercase (`integer`, `numeric(14,2)`, `text`); SQLite allows
    /// columns without one, shown as an empty string.
    pub data_type: String,
    /// Whether the column accepts NULL.
    pub nullable: bool,
    /// Whether the column is part of the primary key.
    pub primary_key: bool,
}

/// A foreign key: `columns` of this table refer to `references_columns` of another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignKey {
    /// The referring columns, in key order.
    pub columns: Vec<String>,
    /// The referenced table, named as in [`Table::name`].
    pub references_table: String,
    /// The referenced columns, paired with `columns`.
    pub references_columns: Vec<String>,
}

/// A join a foreign key implies: `left_table.left_columns = right_table.right_columns`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Join {
    /// The referring table.
    pub left_table: String,
    /// Its columns.
    pub left_columns: Vec<String>,
    /// The referenced table.
    pub right_table: String,
    /// Its columns, paired with `left_columns`.
    pub right_columns: Vec<String>,
}

impl std::fmt::Display for Join {
    /// `loans.property_id = properties.property_id`, conditions joined by `AND`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (left, right)) in self.left_columns.iter().zip(&self.right_columns).enumerate() {
            if i > 0 {
                f.write_str(" AND ")?;
            }
            write!(f, "{}.{left} = {}.{right}", self.left_table, self.right_table)?;
        }
        Ok(())
    }
}

impl Schema {
    /// The table called `name`: an exact match, else the only case-insensitive one.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name).or_else(|| {
            let mut matches = self.tables.iter().filter(|t| t.name.eq_ignore_ascii_case(name));
            match (matches.next(), matches.next()) {
                (Some(table), None) => Some(table),
                _ => None,
            }
        })
    }

    /// The tables' names, in order.
    pub fn table_names(&self) -> Vec<String> {
        self.tables.iter().map(|t| t.name.clone()).collect()
    }

    /// The schema as text for a prompt: one line per table,
    /// `loans(loan_id integer PK, property_id integer FK→properties, ...) 10 rows`, then a
    /// `joins:` line. Bounded to about 6,000 bytes: wide tables show their keys and leading
    /// columns, and tables past the budget are counted and named instead.
    pub fn compact_text(&self) -> String {
        let joins = joins_line(&self.joins);
        let budget = TEXT_BUDGET.saturating_sub(joins.len());
        let mut out = String::new();
        for (i, table) in self.tables.iter().enumerate() {
            let line = table_line(table);
            let rest = &self.tables[i + 1..];
            // Keep room for the note about the tables left out, should this one not fit.
            let reserve = if rest.is_empty() { 0 } else { 200 };
            if out.len() + line.len() + 1 + reserve > budget && i > 0 {
                out.push_str(&omitted_line(&self.tables[i..], budget.saturating_sub(out.len())));
                break;
            }
            out.push_str(&line);
            out.push('\n');
        }
        out.push_str(&joins);
        out.push('\n');
        out
    }
}

fn table_line(table: &Table) -> String {
    let column = |c: &Column| {
        let mut text = c.name.clone();
        if !c.data_type.is_empty() {
            text.push(' ');
            text.push_str(&c.data_type);
        }
        if c.primary_key {
            text.push_str(" PK");
        }
        if let Some(fk) = table.foreign_keys.iter().find(|fk| fk.columns.contains(&c.name)) {
            text.push_str(" FK→");
            text.push_str(&fk.references_table);
        }
        text
    };
    let is_key = |c: &Column| c.primary_key || table.foreign_keys.iter().any(|fk| fk.columns.contains(&c.name));
    let mut shown: Vec<String> = Vec::new();
    if table.columns.len() > WIDE_TABLE_COLUMNS {
        let keys = table.columns.iter().filter(|c| is_key(c)).count();
        let mut others = SUMMARY_COLUMNS.saturating_sub(keys);
        for c in &table.columns {
            if is_key(c) {
                shown.push(column(c));
            } else if others > 0 {
                others -= 1;
                shown.push(column(c));
            }
        }
        shown.push(format!("… and {} more columns", table.columns.len() - shown.len()));
    } else {
        shown.extend(table.columns.iter().map(column));
    }
    let rows = if table.row_count == 1 { "1 row".to_owned() } else { format!("{} rows", table.row_count) };
    format!("{}({}) {rows}", table.name, shown.join(", "))
}

/// `… and N more tables: a, b, c, …`, the names cut to fit `room` bytes.
fn omitted_line(tables: &[Table], room: usize) -> String {
    let mut line = format!("… and {} more tables:", tables.len());
    for (i, table) in tables.iter().enumerate() {
        let separator = if i == 0 { " " } else { ", " };
        if line.len() + separator.len() + table.name.len() + 8 > room.max(80) {
            line.push_str(if i == 0 { " …" } else { ", …" });
            break;
        }
        line.push_str(separator);
        line.push_str(&table.name);
    }
    line.push('\n');
    line
}

fn joins_line(joins: &[Join]) -> String {
    if joins.is_empty() {
        return "joins: none".into();
    }
    let mut line = String::from("joins:");
    for (i, join) in joins.iter().enumerate() {
        let text = join.to_string();
        let separator = if i == 0 { " " } else { "; " };
        if line.len() + separator.len() + text.len() + 40 > JOINS_BUDGET {
            line.push_str(&format!("; … and {} more joins", joins.len() - i));
            break;
        }
        line.push_str(separator);
        line.push_str(&text);
    }
    line
}

/// Reads the schema of `db`: tables, columns, keys, joins and exact row counts.
pub async fn inspect(db: &Database) -> Result<Schema, DbError> {
    let error =
        |e: sqlx::Error| DbError::Inspect { url: db.url().masked(), source: Cause::scrubbed(&e, Some(db.url())) };
    let tables = match db.pool() {
        Pool::Sqlite(pool) => inspect_sqlite(pool).await.map_err(error)?,
        Pool::Postgres(pool) => inspect_postgres(pool).await.map_err(error)?,
    };
    let joins = tables
        .iter()
        .flat_map(|t| {
            t.foreign_keys.iter().map(|fk| Join {
                left_table: t.name.clone(),
                left_columns: fk.columns.clone(),
                right_table: fk.references_table.clone(),
                right_columns: fk.references_columns.clone(),
            })
        })
        .collect();
    Ok(Schema { dialect: db.dialect(), tables, joins })
}

/// `"name"`, with embedded quotes doubled: the same in SQLite and PostgreSQL.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn inspect_sqlite(pool: &sqlx::SqlitePool) -> Result<Vec<Table>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut tables = Vec::with_capacity(names.len());
    for name in names {
        let rows = sqlx::query(r#"SELECT name, type, "notnull", pk FROM pragma_table_info(?1) ORDER BY cid"#)
            .bind(&name)
            .fetch_all(&mut *conn)
            .await?;
        let mut columns = Vec::with_capacity(rows.len());
        let mut key: Vec<(i64, String)> = Vec::new();
        for row in &rows {
            let column: String = row.try_get(0)?;
            let data_type: String = row.try_get::<Option<String>, _>(1)?.unwrap_or_default().to_lowercase();
            let not_null: i64 = row.try_get(2)?;
            let pk: i64 = row.try_get(3)?;
            if pk > 0 {
                key.push((pk, column.clone()));
            }
            columns.push(Column { name: column, data_type, nullable: not_null == 0, primary_key: pk > 0 });
        }
        key.sort();
        let primary_key: Vec<String> = key.into_iter().map(|(_, c)| c).collect();
        // An INTEGER PRIMARY KEY is the rowid and can never be NULL, though the pragma
        // reports no NOT NULL for it; other SQLite key columns may really hold NULLs.
        if let [only] = primary_key.as_slice()
            && let Some(column) = columns.iter_mut().find(|c| &c.name == only && c.data_type == "integer")
        {
            column.nullable = false;
        }
        let rows = sqlx::query(r#"SELECT id, "table", "from", "to" FROM pragma_foreign_key_list(?1) ORDER BY id, seq"#)
            .bind(&name)
            .fetch_all(&mut *conn)
            .await?;
        let mut foreign_keys: Vec<(i64, ForeignKey)> = Vec::new();
        for row in &rows {
            let id: i64 = row.try_get(0)?;
            let target: String = row.try_get(1)?;
            let from: String = row.try_get(2)?;
            let to: Option<String> = row.try_get(3)?;
            if foreign_keys.last().is_none_or(|(last, _)| *last != id) {
                foreign_keys.push((
                    id,
                    ForeignKey { columns: Vec::new(), references_table: target, references_columns: Vec::new() },
                ));
            }
            let (_, fk) = foreign_keys.last_mut().expect("pushed above");
            fk.columns.push(from);
            // `REFERENCES t` without columns means t's primary key, filled in below.
            fk.references_columns.extend(to);
        }
        let row_count: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM {}", quote_ident(&name))).fetch_one(&mut *conn).await?;
        tables.push(Table {
            name,
            columns,
            primary_key,
            foreign_keys: foreign_keys.into_iter().map(|(_, fk)| fk).collect(),
            row_count: row_count.max(0) as u64,
        });
    }
    // SQLite lists foreign keys in reverse order of declaration.
    for table in &mut tables {
        table.foreign_keys.reverse();
    }
    let keys: Vec<(String, Vec<String>)> = tables.iter().map(|t| (t.name.clone(), t.primary_key.clone())).collect();
    for fk in tables.iter_mut().flat_map(|t| t.foreign_keys.iter_mut()) {
        if fk.references_columns.is_empty()
            && let Some((_, key)) = keys.iter().find(|(name, _)| name.eq_ignore_ascii_case(&fk.references_table))
        {
            fk.references_columns = key.clone();
        }
    }
    Ok(tables)
}

/// The tables PostgreSQL inspection covers: ordinary and partitioned tables (not their
/// partitions) outside the system schemas, that the connection's role may read (the others
/// could not be counted, nor queried by a script).
const PG_TABLES: &str = "c.relkind IN ('r', 'p') AND NOT c.relispartition \
     AND has_table_privilege(c.oid, 'SELECT') \
     AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

/// A table's name as a query writes it: bare in the current schema, qualified elsewhere.
const PG_NAME: &str = "CASE WHEN n.nspname = current_schema() THEN c.relname::text \
     ELSE n.nspname::text || '.' || c.relname::text END";

async fn inspect_postgres(pool: &sqlx::PgPool) -> Result<Vec<Table>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION READ ONLY").execute(&mut *tx).await?;
    let rows = sqlx::query(&format!(
        "SELECT n.nspname::text, c.relname::text, {PG_NAME} FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {PG_TABLES} ORDER BY 3"
    ))
    .fetch_all(&mut *tx)
    .await?;
    let mut tables = Vec::with_capacity(rows.len());
    let mut qualified = Vec::with_capacity(rows.len());
    for row in &rows {
        let (schema, relation, name): (String, String, String) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        qualified.push(format!("{}.{}", quote_ident(&schema), quote_ident(&relation)));
        tables.push(Table {
            name,
            columns: Vec::new(),
            primary_key: Vec::new(),
            foreign_keys: Vec::new(),
            row_count: 0,
        });
    }
    let positions: HashMap<String, usize> = tables.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
    let index = |name: &str| positions.get(name).copied();

    let rows = sqlx::query(&format!(
        "SELECT {PG_NAME}, a.attname::text, lower(format_type(a.atttypid, a.atttypmod)), NOT a.attnotnull \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE {PG_TABLES} AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, a.attnum"
    ))
    .fetch_all(&mut *tx)
    .await?;
    for row in &rows {
        let table: String = row.try_get(0)?;
        if let Some(i) = index(&table) {
            tables[i].columns.push(Column {
                name: row.try_get(1)?,
                data_type: row.try_get(2)?,
                nullable: row.try_get(3)?,
                primary_key: false,
            });
        }
    }

    let rows = sqlx::query(&format!(
        "SELECT {PG_NAME}, a.attname::text FROM pg_constraint k \
         JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         CROSS JOIN LATERAL unnest(k.conkey) WITH ORDINALITY AS u(attnum, position) \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = u.attnum \
         WHERE k.contype = 'p' AND {PG_TABLES} ORDER BY 1, u.position"
    ))
    .fetch_all(&mut *tx)
    .await?;
    for row in &rows {
        let (table, column): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        if let Some(i) = index(&table) {
            if let Some(c) = tables[i].columns.iter_mut().find(|c| c.name == column) {
                c.primary_key = true;
            }
            tables[i].primary_key.push(column);
        }
    }

    // The referenced table is named by the same rule, from its own namespace.
    let rows = sqlx::query(&format!(
        "SELECT {PG_NAME}, k.conname::text, a.attname::text, \
         CASE WHEN rn.nspname = current_schema() THEN rc.relname::text \
              ELSE rn.nspname::text || '.' || rc.relname::text END, ra.attname::text \
         FROM pg_constraint k \
         JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_class rc ON rc.oid = k.confrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace \
         CROSS JOIN LATERAL unnest(k.conkey, k.confkey) WITH ORDINALITY AS u(attnum, refnum, position) \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = u.attnum \
         JOIN pg_attribute ra ON ra.attrelid = rc.oid AND ra.attnum = u.refnum \
         WHERE k.contype = 'f' AND {PG_TABLES} ORDER BY 1, 2, u.position"
    ))
    .fetch_all(&mut *tx)
    .await?;
    let mut last: Option<(String, String)> = None;
    for row in &rows {
        let (table, constraint): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        let Some(i) = index(&table) else { continue };
        let key = Some((table, constraint));
        if last != key {
            tables[i].foreign_keys.push(ForeignKey {
                columns: Vec::new(),
                references_table: row.try_get(3)?,
                references_columns: Vec::new(),
            });
            last = key;
        }
        let fk = tables[i].foreign_keys.last_mut().expect("pushed above");
        fk.columns.push(row.try_get(2)?);
        fk.references_columns.push(row.try_get(4)?);
    }

    for (table, qualified) in tables.iter_mut().zip(&qualified) {
        let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {qualified}")).fetch_one(&mut *tx).await?;
        table.row_count = count.max(0) as u64;
    }
    tx.rollback().await?;
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, data_type: &str) -> Column {
        Column { name: name.into(), data_type: data_type.into(), nullable: true, primary_key: false }
    }

    fn demo_like() -> Schema {
        let mut properties = Table {
            name: "properties".into(),
            columns: vec![column("property_id", "integer"), column("property_name", "text")],
            primary_key: vec!["property_id".into()],
            foreign_keys: vec![],
            row_count: 10,
        };
        properties.columns[0].primary_key = true;
        let mut loans = Table {
            name: "loans".into(),
            columns: vec![column("loan_id", "integer"), column("property_id", "integer"), column("principal", "real")],
            primary_key: vec!["loan_id".into()],
            foreign_keys: vec![ForeignKey {
                columns: vec!["property_id".into()],
                references_table: "properties".into(),
                references_columns: vec!["property_id".into()],
            }],
            row_count: 1,
        };
        loans.columns[0].primary_key = true;
        Schema {
            dialect: Dialect::Sqlite,
            joins: vec![Join {
                left_table: "loans".into(),
                left_columns: vec!["property_id".into()],
                right_table: "properties".into(),
                right_columns: vec!["property_id".into()],
            }],
            tables: vec![loans, properties],
        }
    }

    #[test]
    fn compact_text_lists_tables_keys_and_joins() {
        let text = demo_like().compact_text();
        assert_eq!(
            text,
            "loans(loan_id integer PK, property_id integer FK→properties, principal real) 1 row\n\
             properties(property_id integer PK, property_name text) 10 rows\n\
             joins: loans.property_id = properties.property_id\n"
        );
    }

    #[test]
    fn wide_tables_are_summarised_keeping_their_keys() {
        let mut schema = demo_like();
        let wide = &mut schema.tables[0];
        for i in 0..60 {
            wide.columns.push(column(&format!("metric_{i:02}"), "double precision"));
        }
        // A key column far down the table must still be shown.
        wide.columns.push(column("lender_id", "integer"));
        wide.foreign_keys.push(ForeignKey {
            columns: vec!["lender_id".into()],
            references_table: "lenders".into(),
            references_columns: vec!["id".into()],
        });
        let text = schema.compact_text();
        let line = text.lines().next().unwrap();
        assert!(
            line.starts_with("loans(loan_id integer PK, property_id integer FK→properties, principal real"),
            "{line}"
        );
        assert!(line.contains("lender_id integer FK→lenders"), "{line}");
        assert!(line.contains("metric_11 double precision"), "{line}");
        assert!(!line.contains("metric_12"), "{line}");
        assert!(line.ends_with("… and 48 more columns) 1 row"), "{line}");
    }

    #[test]
    fn many_tables_stay_within_the_budget() {
        let mut schema = demo_like();
        for i in 0..400 {
            schema.tables.push(Table {
                name: format!("audit_table_{i:03}"),
                columns: (0..20).map(|c| column(&format!("column_{c}"), "text")).collect(),
                primary_key: vec![],
                foreign_keys: vec![],
                row_count: 0,
            });
            schema.joins.push(schema.joins[0].clone());
        }
        let text = schema.compact_text();
        assert!(text.len() <= TEXT_BUDGET + 100, "{} bytes", text.len());
        assert!(text.starts_with("loans("), "{text}");
        assert!(text.contains("more tables: audit_table_"), "{text}");
        let joins = text.lines().last().unwrap();
        assert!(joins.starts_with("joins: loans.property_id = properties.property_id; "), "{joins}");
        assert!(joins.contains("more joins"), "{joins}");
    }

    #[test]
    fn lookups_and_serde() {
        let schema = demo_like();
        assert_eq!(schema.table_names(), ["loans", "properties"]);
        assert_eq!(schema.table("LOANS").unwrap().row_count, 1);
        assert!(schema.table("missing").is_none());
        let json = serde_json::to_value(&schema).unwrap();
        assert_eq!(json["dialect"], "sqlite");
        assert_eq!(json["tables"][0]["foreign_keys"][0]["references_table"], "properties");
        assert_eq!(serde_json::from_value::<Schema>(json).unwrap(), schema);
        assert_eq!(
            Join {
                left_table: "a".into(),
                left_columns: vec!["x".into(), "y".into()],
                right_table: "b".into(),
                right_columns: vec!["u".into(), "v".into()],
            }
            .to_string(),
            "a.x = b.u AND a.y = b.v"
        );
    }
}
