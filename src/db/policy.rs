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
//!   other statements that reach files, programs or other databases;
//! - functions by allowlist, per dialect ([`super::functions`]): every function call
//!   anywhere in the tree (select list, `WHERE`, `ORDER BY`, window specifications, CTEs,
//!   subqueries, `VALUES`, table factors) must be on the dialect's list or allowed with
//!   `--db-allow-function`; a few (`pg_read_file`, `lo_import`, `dblink`,
//!   `load_extension`, replication and settings functions, SQL given as text) are refused
//!   even then;
//! - system catalogs (`sqlite_master`, `pg_catalog.*`, `pg_authid`, `information_schema.*`
//!   ...) and table-valued functions outside the short list (`pragma_table_info(...)`)
//!   only when named in `--db-tables`: they would bypass the allowlist and show host
//!   paths and settings;
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

use super::error::ProxyError;
use super::functions;
use super::{Capability, Dialect};
use crate::budget::BudgetExceeded;

/// Why the policy (or a cap enforced while the query ran) refused a query. Each message
/// says what was refused and why; [`Denial::hint`] says what the script can do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// A statement longer than anything a query needs (its syntax tree would grow as
    /// deep as its longest chain of operators).
    #[error("the query is too long to check ({what}; at most {max})")]
    TooLong {
        /// What was counted (`2000000 bytes`, `80000 tokens`).
        what: String,
        /// The limit, in the same unit.
        max: String,
    },
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
    /// A function outside the dialect's list of analytics functions.
    #[error(
        "the function `{name}` is not on metaexec's list of {dialect} functions a query may call (aggregates, math, text, dates, conditionals, casts, JSON, windows)"
    )]
    UnlistedFunction {
        /// The function as called (lowercase unless quoted; schema-qualified if it was).
        name: String,
        /// The connection's dialect.
        dialect: Dialect,
    },
    /// A table-valued function that is neither on the short list nor named in
    /// `--db-tables`.
    #[error(
        "the table-valued function `{name}` is not allowed: it can read the database's catalog, outside the tables this job may use"
    )]
    TableFunction {
        /// The function as called.
        name: String,
    },
    /// A system catalog or settings view, not named in `--db-tables`.
    #[error(
        "the system table `{table}` is not allowed: catalogs and settings are readable only when named in --db-tables"
    )]
    Catalog {
        /// The relation as named in the query.
        table: String,
    },
    /// A table factor metaexec does not check (`TABLE(expr)`, `JSON_TABLE`, `XMLTABLE`...).
    #[error("the table expression `{what}` is not supported")]
    TableExpression {
        /// Its kind.
        what: &'static str,
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
    #[error(
        "the query's rows passed {max} bytes as sent to the script (JSON, column names included; the byte cap); no rows were returned"
    )]
    ByteCap {
        /// The cap, in bytes.
        max: usize,
    },
    /// One value (or one row) was larger than the byte cap: the database stopped before
    /// building or sending it.
    #[error(
        "a single value or row of the query passed {max} bytes (the byte cap); the database stopped before returning it"
    )]
    ValueCap {
        /// The cap, in bytes.
        max: usize,
    },
    /// SQLite ran out of the heap the host allows it (twice the host memory budget).
    #[error("the query needed more memory inside SQLite than this job allows ({limit} bytes of host memory budget)")]
    DatabaseMemory {
        /// The job's host memory budget, in bytes.
        limit: usize,
    },
    /// The rows would take the host past the job's memory budget.
    #[error("{0}; no rows were returned")]
    HostMemory(BudgetExceeded),
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
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Self::TooLong { .. } => {
                "pass values as `?` parameters, and split very long statements into several queries".into()
            }
            Self::StatementCount { .. } => "send one statement per metaexec.db.query call".into(),
            Self::Write { .. } | Self::ReadOnly { .. } => {
                "read with SELECT and compute changes in Python; writes must be granted to the job explicitly".into()
            }
            Self::Statement { .. } | Self::Function { .. } | Self::TableExpression { .. } => {
                "use plain SELECT queries over the tables in the schema".into()
            }
            Self::UnlistedFunction { name, .. } => format!(
                "compute it in Python, or start the job with `--db-allow-function {name}` if this function is safe to run on the database"
            ),
            Self::TableFunction { name } => format!(
                "use only the tables listed by metaexec.db.schema(), or start the job with `--db-tables` naming `{name}` (with the tables it may use)"
            ),
            Self::Catalog { table } => format!(
                "use metaexec.db.schema() for the tables and columns, or start the job with `--db-tables` naming `{table}` (with the tables it may use)"
            ),
            Self::Table { .. } | Self::ShadowingCte { .. } => "use only the tables listed by metaexec.db.schema()".into(),
            Self::RowCap { .. } | Self::ByteCap { .. } | Self::ValueCap { .. } => {
                "filter with WHERE, aggregate with GROUP BY, select fewer or shorter columns, or page with LIMIT/OFFSET; the caps are set when the job starts (--db-max-rows, --db-max-bytes)".into()
            }
            Self::HostMemory(exceeded) => exceeded.hint().into(),
            Self::DatabaseMemory { .. } => {
                "return less data (aggregate in the query, fewer or smaller values per row), or raise the budget with --host-memory MIB".into()
            }
            Self::Timeout { .. } => {
                "narrow the query (WHERE, LIMIT, indexed columns); the timeout is set when the job starts".into()
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
    /// A plain read query (`SELECT`, `WITH ... SELECT`, `VALUES`), which the proxy may
    /// run as a subquery (to cap row sizes on the server).
    pub wrappable: bool,
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
        if sql.len() > MAX_SQL_BYTES {
            let (what, max) = (format!("{} bytes", sql.len()), format!("{MAX_SQL_BYTES} bytes"));
            return Err(Denial::TooLong { what, max }.into());
        }
        let (translated, placeholders) = translate_placeholders(sql, self.dialect)?;
        let statements = parse(&translated, self.dialect)?;
        if statements.len() != 1 {
            return Err(Denial::StatementCount { count: statements.len() }.into());
        }
        let statement = &statements[0];
        let mut classifier = Classifier::new(self.dialect, &self.capability);
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
        let wrappable = access == Access::Read && matches!(statement, Statement::Query(_));
        let sql = statement.to_string();
        // The proxy runs this rendering, not the text it checked, so it must say the same
        // thing. sqlparser prints a quoted name without doubling the quote character
        // inside it again (`[a]]b]` comes back as `[a]b]`): where the text doubles one,
        // the rendering must parse back to the very statement that was checked.
        if ["]]", "\"\"", "``"].iter().any(|doubled| translated.contains(doubled))
            && !parse(&sql, self.dialect).is_ok_and(|again| again.len() == 1 && again[0] == *statement)
        {
            return Err(ProxyError::invalid(
                "metaexec could not check this query: a quoted name with its own quote character inside \
                 does not print back as the same statement; rename it without `]`, `\"` or a backtick",
            ));
        }
        Ok(Checked { sql, placeholders, access, tables: classifier.relations, wrappable })
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
            // Catalogs were checked (named in the allowlist) while walking.
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

/// The longest statement checked, in bytes: generous for hand-written and generated
/// analytics SQL; values belong in parameters.
pub const MAX_SQL_BYTES: usize = 1 << 20;
/// The most tokens (whitespace aside) in a statement checked. The syntax tree of a chain
/// of binary operators (`a + b + ...`, `x AND y AND ...`) is as deep as the chain, and
/// walking, printing and dropping it recurse: this bounds the depth the checker's stack
/// must hold (see `db::proxy`, which checks on a thread with a stack sized for it).
pub const MAX_SQL_TOKENS: usize = 50_000;

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
    let words = tokens.iter().filter(|t| !matches!(t.token, Token::Whitespace(_))).count();
    if words > MAX_SQL_TOKENS {
        let (what, max) = (format!("{words} tokens"), format!("{MAX_SQL_TOKENS} tokens"));
        return Err(Denial::TooLong { what, max }.into());
    }
    let offsets = byte_offsets(sql, &tokens);
    let mut out = String::with_capacity(sql.len() + 8);
    let mut count = 0;
    for (i, token) in tokens.iter().enumerate() {
        // Offsets only ever grow and sit on character boundaries; `get` keeps a
        // disagreement about token positions from ever panicking.
        let start = offsets.get(i).copied().unwrap_or(sql.len());
        let end = offsets.get(i + 1).copied().unwrap_or(sql.len());
        let original = sql.get(start..end).unwrap_or_default();
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

/// A function's name parts as the database resolves them: PostgreSQL folds unquoted
/// names to lowercase and keeps quoted ones as written; SQLite ignores case always.
fn function_parts(name: &ObjectName, dialect: Dialect) -> Vec<String> {
    name.0
        .iter()
        .map(|part| {
            let ident = match part {
                ObjectNamePart::Identifier(ident) => ident,
                ObjectNamePart::Function(f) => &f.name,
            };
            match (dialect, ident.quote_style) {
                (Dialect::Postgres, Some(_)) => ident.value.clone(),
                _ => ident.value.to_lowercase(),
            }
        })
        .collect()
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
struct Classifier<'a> {
    dialect: Dialect,
    capability: &'a Capability,
    /// The first write found, described.
    write: Option<String>,
    relations: Vec<String>,
    ctes: HashSet<String>,
    /// Set by a table factor that is a function call: its name is not a relation.
    skip_next_relation: bool,
    placeholders: usize,
}

impl<'a> Classifier<'a> {
    fn new(dialect: Dialect, capability: &'a Capability) -> Self {
        Self {
            dialect,
            capability,
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

    /// Checks a call of the function `name`; `table_valued` when it is used as a table
    /// in `FROM`.
    fn function(&self, name: &ObjectName, table_valued: bool) -> ControlFlow<Denial> {
        let parts = function_parts(name, self.dialect);
        let full = parts.join(".");
        let Some((bare, qualifier)) = parts.split_last() else {
            return ControlFlow::Break(Denial::UnlistedFunction { name: full, dialect: self.dialect });
        };
        // Refused whatever the capability: compared lowercase, whatever the quoting.
        if let Some(why) = functions::always_refused(&bare.to_lowercase()) {
            return ControlFlow::Break(Denial::Function { name: bare.to_lowercase(), why });
        }
        if self.capability.allows_function(&full) {
            return ControlFlow::Continue(());
        }
        // A qualified name reaches the built-in function only through `pg_catalog`; any
        // other schema holds functions of the database's own.
        let builtin = match qualifier {
            [] => true,
            [schema] => self.dialect == Dialect::Postgres && schema == "pg_catalog",
            _ => false,
        };
        if table_valued {
            let listed = builtin && functions::is_listed_table_function(self.dialect, bare);
            if listed || self.capability.names_table(&full, Some(self.dialect.default_schema())) {
                return ControlFlow::Continue(());
            }
            return ControlFlow::Break(Denial::TableFunction { name: full });
        }
        if builtin && functions::is_listed(self.dialect, bare) {
            return ControlFlow::Continue(());
        }
        ControlFlow::Break(Denial::UnlistedFunction { name: full, dialect: self.dialect })
    }

    /// `TABLE t` (PostgreSQL) names its table in plain strings, not in an `ObjectName`.
    fn set_expr_tables(&mut self, body: &SetExpr) -> ControlFlow<Denial> {
        match body {
            SetExpr::Table(table) => {
                if let Some(name) = &table.table_name {
                    let name = match &table.schema_name {
                        Some(schema) => format!("{schema}.{name}"),
                        None => name.clone(),
                    }
                    .to_lowercase();
                    let parts: Vec<String> = name.split('.').map(str::to_owned).collect();
                    if functions::is_catalog(self.dialect, &parts)
                        && !self.capability.names_table(&name, Some(self.dialect.default_schema()))
                    {
                        return ControlFlow::Break(Denial::Catalog { table: name });
                    }
                    self.relations.push(name);
                }
                ControlFlow::Continue(())
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr_tables(left)?;
                self.set_expr_tables(right)
            }
            _ => ControlFlow::Continue(()),
        }
    }
}

impl Visitor for Classifier<'_> {
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
        self.set_expr_tables(&query.body)
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
                self.function(name, true)
            }
            TableFactor::Function { name, .. } => self.function(name, true),
            // `TABLE(f(...))`: the function is a table-valued one.
            TableFactor::TableFunction { expr, .. } => match expr {
                Expr::Function(function) => self.function(&function.name, true),
                _ => ControlFlow::Break(Denial::TableExpression { what: "TABLE(...)" }),
            },
            TableFactor::JsonTable { .. } => ControlFlow::Break(Denial::TableExpression { what: "JSON_TABLE" }),
            TableFactor::OpenJsonTable { .. } => ControlFlow::Break(Denial::TableExpression { what: "OPENJSON" }),
            TableFactor::XmlTable { .. } => ControlFlow::Break(Denial::TableExpression { what: "XMLTABLE" }),
            TableFactor::SemanticView { .. } => ControlFlow::Break(Denial::TableExpression { what: "SEMANTIC_VIEW" }),
            TableFactor::MatchRecognize { .. } => {
                ControlFlow::Break(Denial::TableExpression { what: "MATCH_RECOGNIZE" })
            }
            TableFactor::Pivot { .. } | TableFactor::Unpivot { .. } | TableFactor::UnpivotExpr { .. } => {
                ControlFlow::Break(Denial::TableExpression { what: "PIVOT/UNPIVOT" })
            }
            TableFactor::Table { .. }
            | TableFactor::Derived { .. }
            | TableFactor::UNNEST { .. }
            | TableFactor::NestedJoin { .. } => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<Denial> {
        if std::mem::take(&mut self.skip_next_relation) {
            return ControlFlow::Continue(());
        }
        let name = object_name(relation);
        // SQLite's `sqlite_master` & co. and PostgreSQL's catalogs are readable only when
        // the allowlist names them; without an allowlist they stay closed.
        let parts: Vec<String> = name.split('.').map(str::to_owned).collect();
        if functions::is_catalog(self.dialect, &parts)
            && !self.capability.names_table(&name, Some(self.dialect.default_schema()))
        {
            return ControlFlow::Break(Denial::Catalog { table: name });
        }
        if !self.relations.contains(&name) {
            self.relations.push(name);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Denial> {
        if let Expr::Function(function) = expr {
            return self.function(&function.name, false);
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

    /// What the proxy runs is its own rendering of the statement: a quoted name holding
    /// its quote character must not print back as another statement (found by fuzzing).
    #[test]
    fn a_name_that_does_not_print_back_is_refused() {
        let p = Policy::new(Dialect::Sqlite, Capability::default(), &[]);
        let sql =
            "SELECT propety_id,SE[ECT pg0_catalo noi, rank() OVVALUER (ORDER BY% noi DESC) AS ]]]]]]]]]]]]]](ver]";
        let err = p.check(sql, 0).unwrap_err().to_string();
        assert!(err.contains("does not print back"), "{err}");
        // Doubled quotes that print back the same stay allowed.
        let checked = p.check(r#"SELECT "a""b" FROM loans"#, 0).unwrap();
        assert!(p.check(&checked.sql, 0).is_ok(), "{}", checked.sql);
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
            "SELECT * FROM other.properties",
        ] {
            assert!(matches!(p.check(sql, 0), Err(ProxyError::Denied(Denial::Table { .. }))), "{sql}");
        }
        let catalog = p.check("SELECT * FROM information_schema.tables", 0);
        assert!(matches!(catalog, Err(ProxyError::Denied(Denial::Catalog { .. }))), "{catalog:?}");
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

    fn sqlite() -> Policy {
        policy(Dialect::Sqlite)
    }

    fn pg() -> Policy {
        policy(Dialect::Postgres)
    }

    fn refused(p: &Policy, sql: &str) -> Denial {
        match p.check(sql, 0) {
            Err(ProxyError::Denied(d)) => d,
            other => panic!("{sql}: expected a denial, got {other:?}"),
        }
    }

    #[test]
    fn postgres_admin_and_settings_functions_are_refused() {
        for sql in [
            "SELECT pg_create_physical_replication_slot('x')",
            "SELECT pg_create_logical_replication_slot('x', 'test_decoding')",
            "SELECT * FROM pg_logical_emit_message(true, 'p', 'x')",
            "SELECT pg_logical_emit_message(false, 'p', 'x')",
            "SELECT pg_stat_reset()",
            "SELECT pg_stat_reset_shared('bgwriter')",
            "SELECT pg_log_backend_memory_contexts(1)",
            "SELECT pg_catalog.pg_drop_replication_slot('x')",
            "SELECT \"pg_stat_reset\"()",
            "SELECT PG_STAT_RESET()",
        ] {
            assert!(matches!(refused(&pg(), sql), Denial::Function { .. }), "{sql}");
        }
        for (sql, name) in [
            ("SELECT current_setting('data_directory')", "current_setting"),
            ("SELECT pg_catalog.current_setting('data_directory')", "pg_catalog.current_setting"),
            ("SELECT version()", "version"),
            ("SELECT pg_backend_pid()", "pg_backend_pid"),
            ("SELECT pg_postmaster_start_time()", "pg_postmaster_start_time"),
            ("SELECT inet_server_addr()", "inet_server_addr"),
            ("SELECT txid_current()", "txid_current"),
            ("SELECT nextval('loans_loan_id_seq')", "nextval"),
            ("SELECT public.upper('x')", "public.upper"),
            ("SELECT \"Upper\"('x')", "Upper"),
        ] {
            let denial = refused(&pg(), sql);
            assert_eq!(denial, Denial::UnlistedFunction { name: name.into(), dialect: Dialect::Postgres }, "{sql}");
            let hint = denial.hint().unwrap();
            assert!(hint.contains(&format!("--db-allow-function {name}")), "{hint}");
        }
        let message = refused(&pg(), "SELECT current_setting('data_directory')").to_string();
        assert!(message.contains("`current_setting`") && message.contains("PostgreSQL"), "{message}");
    }

    #[test]
    fn catalogs_need_naming_in_the_table_allowlist() {
        for sql in [
            "SELECT * FROM pg_authid",
            "SELECT * FROM pg_catalog.pg_authid",
            "SELECT * FROM \"pg_catalog\".\"pg_authid\"",
            "SELECT * FROM PG_FILE_SETTINGS",
            "SELECT name, setting FROM pg_settings",
            "SELECT * FROM pg_shadow",
            "SELECT * FROM pg_stat_activity",
            "SELECT * FROM pg_catalog.pg_class",
            "SELECT * FROM information_schema.columns",
            "SELECT * FROM properties WHERE property_id IN (SELECT oid FROM pg_roles)",
            "WITH x AS (SELECT * FROM pg_settings) SELECT * FROM x",
            "SELECT * FROM properties p JOIN pg_stat_ssl s ON true",
        ] {
            assert!(matches!(refused(&pg(), sql), Denial::Catalog { .. }), "{sql}");
        }
        for sql in [
            "SELECT * FROM sqlite_master",
            "SELECT * FROM sqlite_schema",
            "SELECT * FROM main.sqlite_master",
            "SELECT * FROM \"main\".\"SQLITE_MASTER\"",
            "SELECT * FROM temp.sqlite_temp_master",
            "SELECT * FROM sqlite_temp_master",
            "SELECT * FROM sqlite_sequence",
            "SELECT * FROM sqlite_stat1",
            "SELECT * FROM sqlite_stat4",
            "SELECT * FROM dbstat",
            "SELECT * FROM pragma_database_list",
            "SELECT name FROM properties WHERE name IN (SELECT name FROM sqlite_master)",
        ] {
            assert!(matches!(refused(&sqlite(), sql), Denial::Catalog { .. }), "{sql}");
        }
        let hint = refused(&sqlite(), "SELECT * FROM sqlite_master").hint().unwrap();
        assert!(hint.contains("--db-tables"), "{hint}");
        // Named in --db-tables, a catalog is readable.
        let capability = Capability { tables: Some(vec!["sqlite_master".into()]), ..Default::default() };
        Policy::new(Dialect::Sqlite, capability, &[]).check("SELECT name FROM main.sqlite_master", 0).unwrap();
        // A table of one's own in a user schema is not a catalog.
        pg().check("SELECT * FROM public.pg_like_name", 0).unwrap();
    }

    #[test]
    fn sqlite_table_valued_functions_other_than_json_are_refused() {
        for sql in [
            "SELECT * FROM pragma_database_list()",
            "SELECT name FROM pragma_table_info('loans')",
            "SELECT * FROM PRAGMA_COMPILE_OPTIONS()",
            "SELECT * FROM main.pragma_table_list()",
            "SELECT * FROM properties, pragma_index_list('properties')",
            "SELECT * FROM (SELECT * FROM pragma_function_list())",
            "SELECT (SELECT count(*) FROM pragma_table_info('loans'))",
            "WITH t AS (SELECT * FROM pragma_database_list()) SELECT * FROM t",
            "SELECT * FROM generate_series(1, 3)",
        ] {
            let denial = refused(&sqlite(), sql);
            assert!(matches!(denial, Denial::TableFunction { .. }), "{sql}: {denial:?}");
            assert!(denial.hint().unwrap().contains("--db-tables"));
        }
        sqlite().check("SELECT value FROM json_each('[1,2]')", 0).unwrap();
        sqlite().check("SELECT j.value FROM loans, json_tree('{}') AS j", 0).unwrap();
        let capability = Capability { tables: Some(vec!["pragma_table_info".into()]), ..Default::default() };
        Policy::new(Dialect::Sqlite, capability, &[]).check("SELECT * FROM pragma_table_info('loans')", 0).unwrap();
    }

    /// A function is found wherever it is called: the whole tree is walked.
    #[test]
    fn functions_are_found_in_every_clause() {
        for (dialect, f) in [(Dialect::Sqlite, "sqlite_version()"), (Dialect::Postgres, "current_setting('x')")] {
            let p = policy(dialect);
            for sql in [
                format!("SELECT {f}"),
                format!("SELECT * FROM loans ORDER BY {f}"),
                format!("SELECT rank() OVER (ORDER BY {f}) FROM loans"),
                format!("SELECT sum(principal) OVER (PARTITION BY {f}) FROM loans"),
                format!("SELECT sum(principal) OVER w FROM loans WINDOW w AS (ORDER BY {f})"),
                format!("WITH c AS (SELECT {f} AS v) SELECT v FROM c"),
                format!("SELECT * FROM loans WHERE lender = (SELECT {f})"),
                format!("SELECT * FROM loans WHERE EXISTS (SELECT 1 WHERE {f} IS NULL)"),
                format!("VALUES (1), ({f})"),
                format!("SELECT * FROM (SELECT {f} AS v) s"),
                format!("SELECT * FROM loans l JOIN properties p ON {f} IS NOT NULL"),
                format!("SELECT lender FROM loans GROUP BY lender, {f}"),
                format!("SELECT lender FROM loans GROUP BY lender HAVING max({f}) IS NULL"),
                format!("SELECT CASE WHEN 1 = 1 THEN upper({f}) ELSE '' END"),
                format!("SELECT count(*) FILTER (WHERE {f} IS NULL) FROM loans"),
                format!("SELECT * FROM loans LIMIT (SELECT length({f}))"),
                format!("SELECT 1 UNION SELECT {f}"),
                format!("SELECT coalesce(NULL, lower({f}))"),
                format!("EXPLAIN SELECT {f}"),
            ] {
                assert!(matches!(refused(&p, &sql), Denial::UnlistedFunction { .. }), "{dialect}: {sql}");
            }
        }
    }

    #[test]
    fn allowed_functions_open_one_name_each() {
        let capability = Capability { allowed_functions: vec!["version".into()], ..Default::default() };
        let p = Policy::new(Dialect::Postgres, capability, &[]);
        p.check("SELECT version()", 0).unwrap();
        assert!(matches!(refused(&p, "SELECT current_setting('x')"), Denial::UnlistedFunction { .. }));
        // Never the always-refused ones.
        let capability = Capability { allowed_functions: vec!["pg_read_file".into()], ..Default::default() };
        let p = Policy::new(Dialect::Postgres, capability, &[]);
        assert!(matches!(refused(&p, "SELECT pg_read_file('/etc/passwd')"), Denial::Function { .. }));
    }

    #[test]
    fn ordinary_analytics_sql_passes() {
        for sql in [
            "SELECT p.property_name, round(f.noi / nullif(f.annual_debt_service, 0), 2) AS dscr FROM properties p JOIN financial_metrics f ON f.property_id = p.property_id",
            "SELECT count(*), sum(noi), avg(noi), min(noi), max(noi) FROM financial_metrics",
            "SELECT COUNT(DISTINCT city) AS n, upper(state) FROM properties GROUP BY upper(state)",
            "SELECT row_number() OVER (PARTITION BY property_id ORDER BY fiscal_year DESC) AS rn FROM financial_metrics",
            "SELECT CAST(principal AS TEXT), coalesce(lender, 'n/a'), abs(-1), length(lender) FROM loans",
            "SELECT substr(lender, 1, 3), trim(lender), replace(lender, 'a', 'b'), lower(lender) FROM loans",
            "SELECT * FROM loans WHERE maturity_date < ? AND interest_rate BETWEEN ? AND ?",
        ] {
            for dialect in [Dialect::Sqlite, Dialect::Postgres] {
                let params = sql.matches('?').count();
                policy(dialect).check(sql, params).unwrap_or_else(|e| panic!("{dialect}: {sql}: {e}"));
            }
        }
        for sql in [
            "SELECT date('now'), strftime('%Y', maturity_date), julianday(maturity_date), printf('%.2f', principal) FROM loans",
            "SELECT group_concat(lender), total(principal), iif(1, 'a', 'b'), ifnull(NULL, 1), typeof(1) FROM loans",
            "SELECT json_extract('{\"a\": 1}', '$.a'), json_object('a', 1), json_group_array(loan_id) FROM loans",
        ] {
            sqlite().check(sql, 0).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        for sql in [
            "SELECT date_trunc('month', maturity_date), extract(year FROM maturity_date), now(), current_date FROM loans",
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY noi), stddev(noi), string_agg(lender, ',') FROM financial_metrics, loans",
            "SELECT jsonb_build_object('a', 1), to_char(now(), 'YYYY'), greatest(1, 2), least(1, 2), generate_series(1, 3)",
            "SELECT g FROM generate_series(1, 3) AS g",
            "SELECT x FROM unnest(ARRAY[1, 2]) AS x",
            "SELECT pg_catalog.lower('A'), pg_sleep(0), pg_typeof(1)",
            "SELECT principal::numeric(14, 2), maturity_date::text FROM loans",
        ] {
            pg().check(sql, 0).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    fn corpus() -> Vec<(String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sql_policy");
        let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&path).unwrap())
            })
            .collect();
        out.sort();
        out
    }

    /// Every seed of the fuzz corpus gets the verdict its name says: `allow_` or `deny_`,
    /// then `any`, `sqlite` or `pg`.
    #[test]
    fn the_seed_corpus_is_judged_as_named() {
        let corpus = corpus();
        assert!(corpus.len() >= 30, "{}", corpus.len());
        for (name, sql) in corpus {
            let mut parts = name.splitn(3, '_');
            let (verdict, dialects) = (parts.next().unwrap(), parts.next().unwrap());
            let dialects = match dialects {
                "any" => vec![Dialect::Sqlite, Dialect::Postgres],
                "sqlite" => vec![Dialect::Sqlite],
                "pg" => vec![Dialect::Postgres],
                other => panic!("{name}: unknown dialect {other}"),
            };
            for dialect in dialects {
                let params = translate_placeholders(&sql, dialect).map_or(0, |(_, n)| n);
                let result = policy(dialect).check(&sql, params);
                match verdict {
                    "allow" => assert!(result.is_ok(), "{name} ({dialect}): {result:?}"),
                    "deny" => assert!(matches!(result, Err(ProxyError::Denied(_))), "{name} ({dialect}): {result:?}"),
                    other => panic!("{name}: unknown verdict {other}"),
                }
            }
        }
    }

    /// Random statements mutated from the corpus never panic the policy, and whatever it
    /// accepts is accepted again, with the same rendering, when its own rendering is
    /// checked (what runs is the rendering, so it must mean the same to the policy).
    #[cfg(feature = "engine")]
    #[test]
    fn mutated_sql_never_panics_and_accepted_sql_is_stable() {
        use rand::{Rng, SeedableRng};

        let corpus: Vec<String> = corpus().into_iter().map(|(_, sql)| sql).collect();
        let tokens: Vec<String> = corpus.iter().flat_map(|s| s.split_whitespace().map(str::to_owned)).collect();
        let extra = [
            "pg_authid",
            "sqlite_master",
            "pragma_table_info('x')",
            "version()",
            "(",
            ")",
            ",",
            "'",
            "\"",
            "?",
            ";",
            "--",
            "/*",
            "*/",
            "é",
            "\u{0}",
            "$1",
            "::text",
            "OVER",
            "(ORDER BY",
            "WITH",
            "AS",
            "json_each('[]')",
            "pg_catalog.",
            "current_setting('x')",
            "UNION",
            "SELECT",
            "FROM",
            "E'\\x'",
            "$$x$$",
            "[",
            "]",
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed_5a1e);
        let (mut accepted, mut accepted_pg) = (0, 0);
        for _ in 0..20_000 {
            let base = &corpus[rng.random_range(0..corpus.len())];
            let mut words: Vec<String> = base.split_whitespace().map(str::to_owned).collect();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..=words.len());
                match rng.random_range(0..6) {
                    0 => words.insert(at, tokens[rng.random_range(0..tokens.len())].clone()),
                    1 => words.insert(at, extra[rng.random_range(0..extra.len())].to_owned()),
                    2 if !words.is_empty() => {
                        words.remove(at.min(words.len() - 1));
                    }
                    3 if words.len() > 1 => {
                        let other = rng.random_range(0..words.len());
                        let last = words.len() - 1;
                        words.swap(at.min(last), other);
                    }
                    4 => {
                        let splice = &corpus[rng.random_range(0..corpus.len())];
                        let tail: Vec<String> = splice.split_whitespace().map(str::to_owned).collect();
                        let from = rng.random_range(0..tail.len().max(1));
                        words.truncate(at);
                        words.extend(tail.into_iter().skip(from));
                    }
                    _ => {
                        // Glue two words together (mutates inside tokens).
                        if at + 1 < words.len() {
                            let next = words.remove(at + 1);
                            words[at].push_str(&next);
                        }
                    }
                }
            }
            let sql = words.join(" ");
            for dialect in [Dialect::Sqlite, Dialect::Postgres] {
                let p = policy(dialect);
                let params = translate_placeholders(&sql, dialect).map_or(0, |(_, n)| n);
                let Ok(first) = p.check(&sql, params) else { continue };
                // PostgreSQL renders `$n`, which a guest may not write: re-check those
                // without parameters only.
                if dialect == Dialect::Postgres && first.placeholders > 0 {
                    continue;
                }
                let again = p.check(&first.sql, first.placeholders).unwrap_or_else(|e| {
                    panic!("{dialect}: `{sql}` was accepted as `{}`, which is refused: {e}", first.sql)
                });
                assert_eq!(again.sql, first.sql, "{dialect}: the rendering of `{sql}` is not stable");
                assert_eq!((again.access, &again.tables), (first.access, &first.tables), "{dialect}: {sql}");
                if dialect == Dialect::Postgres {
                    accepted_pg += 1;
                } else {
                    accepted += 1;
                }
            }
        }
        // The mutations keep enough SQL valid for the idempotence check to mean something.
        assert!(accepted > 1000 && accepted_pg > 1000, "{accepted} / {accepted_pg}");
    }
}
