//! The check every guest query passes before it reaches a database.
//!
//! A query is tokenized and parsed with sqlparser for the connection's dialect, and
//! classified on the syntax tree, never with regexes:
//!
//! - exactly one statement;
//! - reads only (`SELECT`, `WITH ... SELECT`, `VALUES`, `TABLE t`, `EXPLAIN` of those)
//!   unless the capability grants writes; a `WITH` holding a data-modifying statement,
//!   `SELECT ... INTO` and `SELECT ... FOR UPDATE` are writes;
//! - never, even with writes: transaction control and `SET` (metaexec runs each query in
//!   its own transaction with its own timeout), `COPY`, `ATTACH`, `PRAGMA`, `VACUUM` and
//!   other statements that reach files, programs or other databases, and functions that
//!   do so (`pg_read_file`, `lo_import`, `dblink`, `load_extension`, ...) or that run SQL
//!   given as text, which could not be checked (`query_to_xml`, ...);
//! - the optional table allowlist, with common table expressions told apart from tables.
//!
//! Placeholders are `?` whatever the database. They are found among sqlparser's tokens
//! (so a `?` inside a string literal or a comment is left alone) and written as `$1..$n`
//! for PostgreSQL. What runs is the statement as sqlparser re-renders it from the tree it
//! checked, never the guest's original text: comments are gone and a tokenizer
//! disagreement between sqlparser and the server cannot smuggle in a second statement.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::time::Duration;

use sqlparser::ast::{
    Expr, ObjectName, ObjectNamePart, ObjectType, Query, Select, SetExpr, Statement, TableFactor, ValueWithSpan, Visit,
    Visitor,
};
use sqlparser::dialect::{PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};

use super::proxy::ProxyError;
use super::{Capability, Dialect};

/// Why the policy (or a cap enforced while the query ran) refused a query. Each message
/// says what was refused and why; [`Denial::hint`] says what the script can do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// Zero or several statements in one request.
    #[error("a query must hold exactly one SQL statement, this one holds {count}")]
    StatementCount {
        /// How many statements were found.
        count: usize,
    },
    /// A write, and the job may only read.
    #[error("`{statement}` writes to the database, and this job may only read")]
    Write {
        /// What kind of write (`DELETE`, `SELECT ... FOR UPDATE`, ...).
        statement: String,
    },
    /// A statement that is refused whatever the capability.
    #[error("`{statement}` statements are not allowed: {why}")]
    Statement {
        /// The statement's leading keywords (`SET TRANSACTION`, `COPY`, `ATTACH`, ...).
        statement: String,
        /// Why.
        why: &'static str,
    },
    /// A function that is refused whatever the capability.
    #[error("the function `{name}` is not allowed: {why}")]
    Function {
        /// The function, lowercase.
        name: String,
        /// Why.
        why: &'static str,
    },
    /// A table outside the job's allowlist.
    #[error("the table `{table}` is not one this job may use (allowed: {allowed})")]
    Table {
        /// The table as named in the query.
        table: String,
        /// The allowlist, comma-separated.
        allowed: String,
    },
    /// A common table expression named like a table the job may not see: it would make
    /// the allowlist ambiguous.
    #[error("the common table expression `{name}` has the name of a table this job may not use; rename it")]
    ShadowingCte {
        /// The CTE's name.
        name: String,
    },
    /// More rows than the row cap.
    #[error("the query returned more than {max} rows (the row cap); no rows were returned")]
    RowCap {
        /// The cap.
        max: usize,
    },
    /// More bytes than the byte cap.
    #[error("the query's rows passed {max} bytes as JSON (the byte cap); no rows were returned")]
    ByteCap {
        /// The cap, in bytes.
        max: usize,
    },
    /// The statement timeout elapsed; the query was cancelled on the database.
    #[error("the query ran longer than the statement timeout of {} and was cancelled", format_duration(*timeout))]
    Timeout {
        /// The timeout.
        timeout: Duration,
    },
    /// The database itself refused a write (read-only transaction or read-only file):
    /// the second line of defence behind the policy.
    #[error("the database refused to write, this job may only read: {message}")]
    ReadOnly {
        /// The database's message.
        message: String,
    },
}

impl Denial {
    /// What the script (or the user) can do about it.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Self::StatementCount { .. } => "send one statement per metaexec.db.query call",
            Self::Write { .. } | Self::ReadOnly { .. } => {
                "read with SELECT and compute changes in Python; writes must be granted to the job explicitly"
            }
            Self::Statement { .. } | Self::Function { .. } => "use plain SELECT queries over the tables in the schema",
            Self::Table { .. } | Self::ShadowingCte { .. } => "use only the tables listed by metaexec.db.schema()",
            Self::RowCap { .. } | Self::ByteCap { .. } => {
                "filter with WHERE, aggregate with GROUP BY, or page with LIMIT/OFFSET; the cap is set when the job starts"
            }
            Self::Timeout { .. } => {
                "narrow the query (WHERE, LIMIT, indexed columns); the timeout is set when the job starts"
            }
        })
    }
}

fn format_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{} s", d.as_secs()) } else { format!("{} ms", d.as_millis()) }
}

/// Whether a checked statement reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads only: may be answered from the snapshot cache.
    Read,
    /// Changes data or schema (only with a write capability): clears the cache.
    Write,
}

/// A query that passed the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The statement to run, re-rendered from the checked tree, with the dialect's
    /// placeholders (`?` for SQLite, `$1..$n` for PostgreSQL).
    pub sql: String,
    /// How many parameters it takes.
    pub placeholders: usize,
    /// Read or write.
    pub access: Access,
    /// The tables it names (lowercase, as written; CTEs excluded).
    pub tables: Vec<String>,
}

/// The checks of one connection: its dialect, the job's capability and, when there is a
/// table allowlist, the names of the tables the job may not see.
#[derive(Debug, Clone)]
pub struct Policy {
    dialect: Dialect,
    capability: Capability,
    /// Lowercase bare names of existing tables outside the allowlist.
    hidden_tables: HashSet<String>,
}

impl Policy {
    /// A policy for `dialect` and `capability`. `existing_tables` (bare or qualified
    /// names) is only used with an allowlist, to refuse CTEs that would shadow a table the
    /// job may not see.
    pub fn new(dialect: Dialect, capability: Capability, existing_tables: &[String]) -> Self {
        let default_schema = dialect.default_schema();
        let hidden_tables = existing_tables
            .iter()
            .filter(|t| !capability.allows_table(t, Some(default_schema)))
            .map(|t| t.rsplit('.').next().unwrap_or(t).to_lowercase())
            .collect();
        Self { dialect, capability, hidden_tables }
    }

    /// The capability this policy enforces.
    pub fn capability(&self) -> &Capability {
        &self.capability
    }

    /// Checks `sql` for a request with `param_count` parameters.
    pub fn check(&self, sql: &str, param_count: usize) -> Result<Checked, ProxyError> {
        let (translated, placeholders) = translate_placeholders(sql, self.dialect)?;
        let statements = parse(&translated, self.dialect)?;
        if statements.len() != 1 {
            return Err(Denial::StatementCount { count: statements.len() }.into());
        }
        let statement = &statements[0];
        let mut classifier = Classifier::new(self.dialect);
        if let ControlFlow::Break(denial) = statement.visit(&mut classifier) {
            return Err(denial.into());
        }
        if let Some(write) = &classifier.write
            && !self.capability.write
        {
            return Err(Denial::Write { statement: write.clone() }.into());
        }
        self.check_tables(&classifier)?;
        if classifier.placeholders != placeholders {
            return Err(ProxyError::invalid(format!(
                "metaexec could not check this query: it found {placeholders} placeholders in the text and {} in the parsed statement",
                classifier.placeholders
            )));
        }
        if placeholders != param_count {
            return Err(ProxyError::invalid(format!(
                "the query has {placeholders} `?` placeholder{} but {param_count} parameter{} {} given",
                plural(placeholders),
                plural(param_count),
                if param_count == 1 { "was" } else { "were" }
            )));
        }
        let access = if classifier.write.is_some() { Access::Write } else { Access::Read };
        Ok(Checked { sql: statement.to_string(), placeholders, access, tables: classifier.relations })
    }

    fn check_tables(&self, classifier: &Classifier) -> Result<(), ProxyError> {
        let Some(allowed) = &self.capability.tables else { return Ok(()) };
        for cte in &classifier.ctes {
            if self.hidden_tables.contains(cte) {
                return Err(Denial::ShadowingCte { name: cte.clone() }.into());
            }
        }
        let default_schema = self.dialect.default_schema();
        for table in &classifier.relations {
            let is_cte = !table.contains('.') && classifier.ctes.contains(table);
            if !is_cte && !self.capability.allows_table(table, Some(default_schema)) {
                return Err(Denial::Table { table: table.clone(), allowed: allowed.join(", ") }.into());
            }
        }
        Ok(())
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn parser_dialect(dialect: Dialect) -> Box<dyn sqlparser::dialect::Dialect> {
    match dialect {
        Dialect::Sqlite => Box::new(SQLiteDialect {}),
        Dialect::Postgres => Box::new(PostgreSqlDialect {}),
    }
}

/// Statements a query may start with. SQL that does not parse and starts with anything
/// else is refused rather than reported as a syntax error: what metaexec cannot check, it
/// does not run, and a typo in a query reads better as a failure than as a refusal.
const READ_KEYWORDS: [&str; 4] = ["SELECT", "WITH", "VALUES", "EXPLAIN"];

fn parse(sql: &str, dialect: Dialect) -> Result<Vec<Statement>, ProxyError> {
    let parser_dialect = parser_dialect(dialect);
    Parser::new(&*parser_dialect).try_with_sql(sql).and_then(|mut parser| parser.parse_statements()).map_err(|e| {
        let (first, is_keyword) = first_word(sql, &*parser_dialect);
        if !is_keyword || READ_KEYWORDS.contains(&first.as_str()) {
            ProxyError::invalid(format!("the query is not valid {dialect} SQL: {e}"))
        } else {
            Denial::Statement {
                statement: first,
                why: "metaexec could not parse it, and it only runs statements it has checked",
            }
            .into()
        }
    })
}

/// The first word or symbol of `sql`, uppercase, skipping whitespace and comments, and
/// whether it is an SQL keyword (a typo such as `SELEC` is not).
fn first_word(sql: &str, dialect: &dyn sqlparser::dialect::Dialect) -> (String, bool) {
    let Ok(tokens) = Tokenizer::new(dialect, sql).tokenize() else { return (String::new(), false) };
    match tokens.iter().find(|t| !matches!(t, Token::Whitespace(_))) {
        Some(Token::Word(w)) => (w.value.to_uppercase(), w.keyword != sqlparser::keywords::Keyword::NoKeyword),
        Some(other) => (other.to_string(), false),
        None => (String::new(), false),
    }
}

/// Rewrites the guest's `?` placeholders for `dialect` on sqlparser's tokens (string
/// literals, quoted identifiers and comments are tokens of their own, so a `?` inside them
/// is untouched), drops comments, and counts the placeholders.
pub fn translate_placeholders(sql: &str, dialect: Dialect) -> Result<(String, usize), ProxyError> {
    let parser_dialect = parser_dialect(dialect);
    let tokens = Tokenizer::new(&*parser_dialect, sql)
        .tokenize_with_location()
        .map_err(|e| ProxyError::invalid(format!("the query is not valid {dialect} SQL: {e}")))?;
    let offsets = byte_offsets(sql, &tokens);
    let mut out = String::with_capacity(sql.len() + 8);
    let mut count = 0;
    for (i, token) in tokens.iter().enumerate() {
        let original = &sql[offsets[i]..offsets.get(i + 1).copied().unwrap_or(sql.len())];
        // PostgreSQL's tokenizer reads `?` as the start of jsonb/geometric operators
        // (`?|`, `?&`, `?-`, ...). In metaexec `?` is always a placeholder: keep the rest
        // of the operator after it.
        let question_rest = match (&token.token, dialect) {
            (Token::Placeholder(p), _) if p == "?" => Some(""),
            (Token::Placeholder(p), _) => {
                return Err(ProxyError::invalid(format!(
                    "the placeholder `{p}` is not supported: write `?` for every parameter, in order"
                )));
            }
            (Token::Question, Dialect::Postgres) => Some(""),
            (Token::QuestionPipe, Dialect::Postgres) => Some("|"),
            (Token::QuestionAnd, Dialect::Postgres) => Some("&"),
            (Token::QuestionMarkDash, Dialect::Postgres) => Some("-"),
            (Token::QuestionMarkDashVerticalBar, Dialect::Postgres) => Some("-|"),
            (Token::QuestionMarkDoubleVerticalBar, Dialect::Postgres) => Some("||"),
            (Token::QuestionMarkSharp, Dialect::Postgres) => Some("#"),
            _ => None,
        };
        if let Some(rest) = question_rest {
            count += 1;
            match dialect {
                Dialect::Sqlite => out.push('?'),
                Dialect::Postgres => {
                    out.push('$');
                    out.push_str(&count.to_string());
                }
            }
            if !rest.is_empty() {
                out.push(' ');
                out.push_str(rest);
            }
            continue;
        }
        match &token.token {
            Token::Whitespace(Whitespace::SingleLineComment { .. }) => out.push('\n'),
            Token::Whitespace(Whitespace::MultiLineComment(_)) => out.push(' '),
            _ => out.push_str(original),
        }
    }
    Ok((out, count))
}

/// The byte offset in `sql` where each token starts (token locations are 1-based lines
/// and character columns).
fn byte_offsets(sql: &str, tokens: &[TokenWithSpan]) -> Vec<usize> {
    let mut offsets = Vec::with_capacity(tokens.len());
    let mut chars = sql.char_indices().peekable();
    let (mut line, mut col) = (1u64, 1u64);
    for token in tokens {
        let target = (token.span.start.line, token.span.start.column);
        while (line, col) < target {
            match chars.next() {
                Some((_, '\n')) => {
                    line += 1;
                    col = 1;
                }
                Some(_) => col += 1,
                None => break,
            }
        }
        offsets.push(chars.peek().map_or(sql.len(), |(i, _)| *i));
    }
    offsets
}

/// Functions refused whatever the capability, by lowercase name or name prefix, with why.
const FORBIDDEN_FUNCTIONS: &[(&str, bool, &str)] = &[
    // (name, is a prefix, why)
    ("pg_read_file", false, FILES),
    ("pg_read_binary_file", false, FILES),
    ("pg_ls_", true, FILES),
    ("pg_stat_file", false, FILES),
    ("pg_file_", true, FILES),
    ("pg_logdir_ls", false, FILES),
    ("lo_", true, FILES),
    ("loread", false, FILES),
    ("lowrite", false, FILES),
    ("dblink", true, SERVERS),
    ("set_config", false, SETTINGS),
    ("pg_reload_conf", false, SETTINGS),
    ("pg_rotate_logfile", false, SETTINGS),
    ("pg_terminate_backend", false, SETTINGS),
    ("pg_cancel_backend", false, SETTINGS),
    ("pg_promote", false, SETTINGS),
    ("pg_switch_wal", false, SETTINGS),
    ("pg_create_restore_point", false, SETTINGS),
    ("pg_backup_", true, SETTINGS),
    ("pg_start_backup", false, SETTINGS),
    ("pg_stop_backup", false, SETTINGS),
    ("pg_advisory_lock", true, LOCKS),
    ("pg_try_advisory_lock", true, LOCKS),
    ("query_to_xml", true, SQL_TEXT),
    ("cursor_to_xml", true, SQL_TEXT),
    ("table_to_xml", true, SQL_TEXT),
    ("schema_to_xml", true, SQL_TEXT),
    ("database_to_xml", true, SQL_TEXT),
    ("ts_stat", false, SQL_TEXT),
    ("ts_rewrite", false, SQL_TEXT),
    ("load_extension", false, NATIVE),
    ("readfile", false, FILES),
    ("writefile", false, FILES),
    ("edit", false, FILES),
    ("fts3_tokenizer", false, NATIVE),
    ("zipfile", true, FILES),
    ("sqlar_", true, FILES),
];
const FILES: &str = "it reads or writes files on the database server";
const SERVERS: &str = "it connects to other database servers";
const SETTINGS: &str = "it changes server settings or other sessions";
const LOCKS: &str = "it takes locks that outlive the query";
const SQL_TEXT: &str = "it runs SQL given as text, which metaexec cannot check";
const NATIVE: &str = "it loads native code into the database";

fn forbidden_function(name: &str) -> Option<&'static str> {
    FORBIDDEN_FUNCTIONS
        .iter()
        .find(|(n, prefix, _)| if *prefix { name.starts_with(n) } else { name == *n })
        .map(|(_, _, why)| *why)
}

/// Lowercase dotted name (`schema.table`).
fn object_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => ident.value.to_lowercase(),
            ObjectNamePart::Function(f) => f.name.value.to_lowercase(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn last_part(name: &ObjectName) -> String {
    let full = object_name(name);
    full.rsplit('.').next().unwrap_or(&full).to_owned()
}

/// The statement's leading keywords, for messages (`SET TRANSACTION`, `COPY`).
fn statement_label(statement: &Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    let first = words.first().copied().unwrap_or("").to_uppercase();
    let two_words = matches!(first.as_str(), "CREATE" | "DROP" | "ALTER" | "SET" | "START" | "ATTACH" | "DETACH");
    match (two_words, words.get(1)) {
        (true, Some(second)) if second.chars().all(|c| c.is_ascii_alphabetic()) => {
            format!("{first} {}", second.to_uppercase())
        }
        _ => first,
    }
}

/// What a statement is, before the capability is applied.
enum Class {
    Read,
    Write,
    Forbidden(&'static str),
}

fn classify(statement: &Statement) -> Class {
    match statement {
        Statement::Query(_) | Statement::Explain { .. } => Class::Read,
        Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_)
        | Statement::Merge(_)
        | Statement::CreateTable(_)
        | Statement::CreateView(_)
        | Statement::CreateIndex(_)
        | Statement::AlterTable(_)
        | Statement::Truncate(_)
        | Statement::RenameTable(_) => Class::Write,
        Statement::Drop {
            object_type: ObjectType::Table | ObjectType::View | ObjectType::MaterializedView | ObjectType::Index,
            ..
        } => Class::Write,
        Statement::Set(_)
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. }
        | Statement::Reset(_)
        | Statement::Discard { .. }
        | Statement::Lock(_)
        | Statement::LockTables { .. }
        | Statement::UnlockTables => {
            Class::Forbidden("metaexec runs every query in its own transaction, with its own settings and timeout")
        }
        Statement::Copy { .. }
        | Statement::CopyIntoSnowflake { .. }
        | Statement::Unload { .. }
        | Statement::LoadData { .. }
        | Statement::Directory { .. }
        | Statement::Install { .. }
        | Statement::Load { .. }
        | Statement::ExportData(_)
        | Statement::Put { .. }
        | Statement::Remove(_)
        | Statement::List(_) => Class::Forbidden("it reads or writes files on the server or runs programs there"),
        Statement::AttachDatabase { .. }
        | Statement::AttachDuckDBDatabase { .. }
        | Statement::DetachDuckDBDatabase { .. } => Class::Forbidden("it opens other database files"),
        Statement::Pragma { .. } => Class::Forbidden("it reads or changes the connection's settings"),
        Statement::Vacuum(_) => Class::Forbidden("it can write a copy of the database to a file"),
        _ => Class::Forbidden("only queries (and, when granted, changes to table data) are allowed"),
    }
}

/// Walks one statement: statement kinds (nested ones included), functions, relations,
/// CTE names, placeholders.
struct Classifier {
    dialect: Dialect,
    /// The first write found, described.
    write: Option<String>,
    relations: Vec<String>,
    ctes: HashSet<String>,
    /// Set by a table factor that is a function call: its name is not a relation.
    skip_next_relation: bool,
    placeholders: usize,
}

impl Classifier {
    fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            write: None,
            relations: Vec::new(),
            ctes: HashSet::new(),
            skip_next_relation: false,
            placeholders: 0,
        }
    }

    fn write(&mut self, what: impl Into<String>) {
        if self.write.is_none() {
            self.write = Some(what.into());
        }
    }

    fn function(&mut self, name: &ObjectName) -> ControlFlow<Denial> {
        let bare = last_part(name);
        match forbidden_function(&bare) {
            Some(why) => ControlFlow::Break(Denial::Function { name: bare, why }),
            None => ControlFlow::Continue(()),
        }
    }

    /// `TABLE t` (PostgreSQL) names its table in plain strings, not in an `ObjectName`.
    fn set_expr_tables(&mut self, body: &SetExpr) {
        match body {
            SetExpr::Table(table) => {
                if let Some(name) = &table.table_name {
                    let name = match &table.schema_name {
                        Some(schema) => format!("{schema}.{name}"),
                        None => name.clone(),
                    };
                    self.relations.push(name.to_lowercase());
                }
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr_tables(left);
                self.set_expr_tables(right);
            }
            _ => {}
        }
    }
}

impl Visitor for Classifier {
    type Break = Denial;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<Denial> {
        match classify(statement) {
            Class::Read => ControlFlow::Continue(()),
            Class::Write => {
                self.write(statement_label(statement));
                ControlFlow::Continue(())
            }
            Class::Forbidden(why) => {
                ControlFlow::Break(Denial::Statement { statement: statement_label(statement), why })
            }
        }
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Denial> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.to_lowercase());
            }
        }
        if !query.locks.is_empty() {
            self.write("SELECT ... FOR UPDATE/SHARE");
        }
        self.set_expr_tables(&query.body);
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<Denial> {
        if select.into.is_some() {
            self.write("SELECT ... INTO");
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Denial> {
        match factor {
            TableFactor::Table { name, args: Some(_), .. } => {
                self.skip_next_relation = true;
                self.function(name)
            }
            TableFactor::Function { name, .. } => self.function(name),
            _ => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<Denial> {
        if std::mem::take(&mut self.skip_next_relation) {
            return ControlFlow::Continue(());
        }
        let name = object_name(relation);
        // SQLite's `sqlite_master` & co. and PostgreSQL's catalogs are relations too: the
        // allowlist applies to them like to any table.
        if !self.relations.contains(&name) {
            self.relations.push(name);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Denial> {
        if let Expr::Function(function) = expr {
            return self.function(&function.name);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_value(&mut self, value: &ValueWithSpan) -> ControlFlow<Denial> {
        if let sqlparser::ast::Value::Placeholder(p) = &value.value {
            let ours = match self.dialect {
                Dialect::Sqlite => p == "?",
                Dialect::Postgres => p.starts_with('$'),
            };
            if ours {
                self.placeholders += 1;
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::ProxyErrorKind;

    fn policy(dialect: Dialect) -> Policy {
        Policy::new(dialect, Capability::default(), &[])
    }

    fn denial(dialect: Dialect, sql: &str) -> Denial {
        match policy(dialect).check(sql, 0) {
            Err(ProxyError::Denied(d)) => d,
            other => panic!("{sql}: expected a denial, got {other:?}"),
        }
    }

    #[test]
    fn reads_pass_and_are_rerendered() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let p = policy(dialect);
            let c = p.check("select * from properties -- trailing comment", 0).unwrap();
            assert_eq!(c.sql, "SELECT * FROM properties");
            assert_eq!(c.access, Access::Read);
            assert_eq!(c.tables, vec!["properties"]);
            p.check("WITH t AS (SELECT 1 AS x) SELECT x FROM t", 0).unwrap();
            p.check("VALUES (1, 2)", 0).unwrap();
            p.check("EXPLAIN SELECT 1", 0).unwrap();
            p.check("SELECT 1;", 0).unwrap();
        }
    }

    #[test]
    fn placeholders_become_dollar_n_for_postgres_only_outside_literals() {
        let (sql, n) =
            translate_placeholders("SELECT '?', \"a?\", x FROM t WHERE a = ? AND b = ? -- ?", Dialect::Postgres)
                .unwrap();
        assert_eq!(n, 2);
        assert_eq!(sql, "SELECT '?', \"a?\", x FROM t WHERE a = $1 AND b = $2 \n");
        let (sql, n) = translate_placeholders("SELECT ? /* ? */, '?'", Dialect::Sqlite).unwrap();
        assert_eq!((sql.as_str(), n), ("SELECT ?  , '?'", 1));
        let (sql, _) = translate_placeholders("SELECT name FROM t WHERE name LIKE ?||'%'", Dialect::Postgres).unwrap();
        assert_eq!(sql, "SELECT name FROM t WHERE name LIKE $1 ||'%'");
        let c = policy(Dialect::Postgres).check("SELECT 'it''s ?', ? + 1", 1).unwrap();
        assert_eq!(c.sql, "SELECT 'it''s ?', $1 + 1");
        assert_eq!(c.placeholders, 1);
        let err = policy(Dialect::Postgres).check("SELECT $1", 1).unwrap_err();
        assert_eq!(err.kind(), ProxyErrorKind::Failed);
        let err = policy(Dialect::Sqlite).check("SELECT ?", 2).unwrap_err();
        assert!(err.to_string().contains("1 `?` placeholder but 2 parameters were given"), "{err}");
    }

    #[test]
    fn writes_are_refused_without_the_capability() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            for sql in [
                "DELETE FROM loans",
                "UPDATE loans SET principal = 0",
                "INSERT INTO loans (loan_id) VALUES (99)",
                "DROP TABLE loans",
                "CREATE TABLE x (a INT)",
                "ALTER TABLE loans ADD COLUMN x INT",
                "SELECT * FROM loans FOR UPDATE",
                "EXPLAIN DELETE FROM loans",
            ] {
                if dialect == Dialect::Sqlite && sql.contains("FOR UPDATE") {
                    continue;
                }
                assert!(matches!(denial(dialect, sql), Denial::Write { .. }), "{dialect}: {sql}");
            }
        }
        let d = denial(Dialect::Postgres, "WITH d AS (DELETE FROM loans RETURNING *) SELECT * FROM d");
        assert_eq!(d, Denial::Write { statement: "DELETE".into() });
        let d = denial(Dialect::Postgres, "SELECT * INTO stolen FROM loans");
        assert_eq!(d, Denial::Write { statement: "SELECT ... INTO".into() });
    }

    #[test]
    fn writes_pass_with_the_capability() {
        let p = Policy::new(Dialect::Sqlite, Capability { write: true, ..Default::default() }, &[]);
        let c = p.check("INSERT INTO loans (loan_id) VALUES (?)", 1).unwrap();
        assert_eq!(c.access, Access::Write);
        assert!(matches!(p.check("ATTACH DATABASE 'x.db' AS x", 0), Err(ProxyError::Denied(Denial::Statement { .. }))));
        assert!(matches!(p.check("BEGIN", 0), Err(ProxyError::Denied(Denial::Statement { .. }))));
    }

    #[test]
    fn one_statement_only_whatever_the_comments() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            assert_eq!(denial(dialect, "SELECT 1; DELETE FROM loans"), Denial::StatementCount { count: 2 });
            assert_eq!(denial(dialect, "SELECT 1 /* ; */ ; DELETE FROM loans"), Denial::StatementCount { count: 2 });
            assert_eq!(denial(dialect, "SELECT 1 -- x\n; DROP TABLE loans"), Denial::StatementCount { count: 2 });
            assert_eq!(denial(dialect, "SELECT '--'; DELETE FROM loans"), Denial::StatementCount { count: 2 });
            assert_eq!(denial(dialect, "-- only a comment"), Denial::StatementCount { count: 0 });
        }
    }

    #[test]
    fn forbidden_statements_and_functions() {
        let pg = [
            "SET TRANSACTION READ WRITE",
            "SET statement_timeout = 0",
            "BEGIN",
            "COMMIT",
            "COPY loans TO PROGRAM 'rm -rf /'",
            "COPY loans TO '/tmp/x'",
            "COPY loans FROM '/etc/passwd'",
            "LOCK TABLE loans",
        ];
        for sql in pg {
            assert!(matches!(denial(Dialect::Postgres, sql), Denial::Statement { .. }), "{sql}");
        }
        assert_eq!(
            denial(Dialect::Postgres, "SET TRANSACTION READ WRITE"),
            Denial::Statement {
                statement: "SET TRANSACTION".into(),
                why: "metaexec runs every query in its own transaction, with its own settings and timeout"
            }
        );
        for sql in [
            "SELECT pg_read_file('/etc/passwd')",
            "SELECT * FROM pg_read_file('/etc/passwd')",
            "SELECT pg_catalog.PG_READ_BINARY_FILE('/etc/passwd')",
            "SELECT pg_ls_dir('.')",
            "SELECT lo_import('/etc/passwd')",
            "SELECT dblink_connect('host=x')",
            "SELECT set_config('statement_timeout', '0', false)",
            "SELECT query_to_xml('delete from loans', true, true, '')",
            "SELECT x FROM (SELECT pg_stat_file('/') AS x) s",
        ] {
            assert!(matches!(denial(Dialect::Postgres, sql), Denial::Function { .. }), "{sql}");
        }
        for sql in [
            "ATTACH DATABASE '/tmp/x.db' AS x",
            "PRAGMA query_only = 0",
            "VACUUM INTO '/tmp/copy.db'",
            "/* hidden */ VACUUM INTO '/tmp/copy.db'",
        ] {
            assert!(matches!(denial(Dialect::Sqlite, sql), Denial::Statement { .. }), "{sql}");
        }
        for sql in
            ["SELECT load_extension('/tmp/evil.so')", "SELECT readfile('/etc/passwd')", "SELECT writefile('x', 'y')"]
        {
            assert!(matches!(denial(Dialect::Sqlite, sql), Denial::Function { .. }), "{sql}");
        }
        // Allowed: pg_sleep (the timeout cancels it), ordinary functions.
        policy(Dialect::Postgres).check("SELECT pg_sleep(1), round(2.5), now()", 0).unwrap();
    }

    #[test]
    fn table_allowlist_with_ctes() {
        let capability = Capability { tables: Some(vec!["properties".into()]), ..Default::default() };
        let existing = ["properties".to_owned(), "loans".to_owned()];
        let p = Policy::new(Dialect::Postgres, capability, &existing);
        p.check("SELECT * FROM properties", 0).unwrap();
        p.check("SELECT * FROM public.properties", 0).unwrap();
        p.check("WITH t AS (SELECT * FROM properties) SELECT * FROM t", 0).unwrap();
        p.check("SELECT * FROM generate_series(1, 3)", 0).unwrap();
        for sql in [
            "SELECT * FROM loans",
            "SELECT * FROM properties p JOIN loans l ON l.property_id = p.property_id",
            "SELECT * FROM properties WHERE property_id IN (SELECT property_id FROM loans)",
            "SELECT * FROM information_schema.tables",
            "SELECT * FROM other.properties",
        ] {
            assert!(matches!(p.check(sql, 0), Err(ProxyError::Denied(Denial::Table { .. }))), "{sql}");
        }
        // sqlparser does not parse PostgreSQL's `TABLE t`: refused one way or the other.
        assert!(matches!(p.check("TABLE loans", 0), Err(ProxyError::Denied(Denial::Statement { .. }))));
        assert!(p.check("SELECT 1 UNION TABLE loans", 0).is_err());
        let shadow = "SELECT * FROM (WITH loans AS (SELECT 1) SELECT * FROM loans) a, loans";
        assert!(matches!(p.check(shadow, 0), Err(ProxyError::Denied(Denial::ShadowingCte { .. }))));
    }

    #[test]
    fn invalid_sql_is_a_failure_not_a_denial() {
        let err = policy(Dialect::Sqlite).check("SELEC 1", 0).unwrap_err();
        assert_eq!(err.kind(), ProxyErrorKind::Failed);
    }
}
