//! `metaexec db demo|schema`: set up the demo portfolio and show what a database holds.
//!
//! The database is chosen the same way for every command that reads one ([`DbArgs`]):
//! `--db`, then `DATABASE_URL`, then the embedded demo. Only masked URLs are ever printed.

use std::error::Error as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use comfy_table::{Cell, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use super::note;
use crate::db::connect::Database;
use crate::db::url::DATABASE_URL_ENV;
use crate::db::{DbError, DbUrl, Dialect, Schema, demo, inspect};
use crate::outcome::{ErrorKind, OutcomeError};

/// The `--db` flag, shared by the commands that read a database.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct DbArgs {
    /// The database: a SQLite file (`data.db`, `sqlite:///abs/data.db`) or a PostgreSQL
    /// URL (`postgres://user:password@host:5432/db`) [default: $DATABASE_URL, else the
    /// embedded demo portfolio].
    #[arg(long, value_name = "URL")]
    pub(crate) db: Option<String>,
}

impl DbArgs {
    /// The database to use: `--db`, then `DATABASE_URL`, then the demo in `cache_root`.
    pub(crate) fn resolve(&self, cache_root: &Path) -> Result<DbUrl, DbError> {
        let env = std::env::var(DATABASE_URL_ENV).ok();
        DbUrl::resolve(self.db.as_deref(), env.as_deref(), cache_root)
    }

    /// [`DbArgs::resolve`] for the commands that run scripts: a bad URL is a usage error
    /// with the database layer's hint.
    pub(crate) fn url(&self, cache_root: &Path) -> Result<DbUrl, OutcomeError> {
        self.resolve(cache_root).map_err(|e| {
            let error = OutcomeError::new(ErrorKind::Usage, e.to_string());
            match e.hint() {
                Some(hint) => error.with_hint(hint),
                None => error,
            }
        })
    }
}

/// Database subcommands.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create the demo portfolio: 10 properties, their loans and 24 months of history.
    ///
    /// Ten retail properties with fiscal 2024 figures whose DSCRs match the documents.
    /// Without options, creates it in the cache (where scripts read it when no --db and
    /// no DATABASE_URL are given) and prints its path.
    ///
    /// Examples:
    ///   metaexec db demo
    ///   metaexec db demo --out portfolio.db
    ///   metaexec db demo --postgres postgres://me@localhost/scratch
    ///   metaexec db demo --sql > demo.sql
    #[command(verbatim_doc_comment)]
    Demo(DemoArgs),

    /// Show a database's tables, columns, keys, joins and row counts.
    ///
    /// The default output is the compact text that prompts are given.
    ///
    /// Examples:
    ///   metaexec db schema
    ///   metaexec db schema --db portfolio.db --tables
    ///   DATABASE_URL=postgres://me@localhost/prod metaexec db schema --json
    #[command(verbatim_doc_comment)]
    Schema(SchemaArgs),
}

/// Arguments of `metaexec db demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Write the demo into a new SQLite file here instead of the cache.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["postgres", "sql"])]
    out: Option<PathBuf>,

    /// Load the demo into this PostgreSQL database, which must not have its tables yet.
    #[arg(long, value_name = "URL", conflicts_with = "sql")]
    postgres: Option<String>,

    /// Print the demo as a PostgreSQL script on stdout.
    #[arg(long)]
    sql: bool,

    /// Replace the SQLite file if it exists (the cached demo, or --out FILE).
    #[arg(long, conflicts_with_all = ["postgres", "sql"])]
    force: bool,
}

/// Arguments of `metaexec db schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    #[command(flatten)]
    db: DbArgs,

    /// Print one JSON object: the URL (masked), the dialect, the tables and the joins.
    #[arg(long, conflicts_with = "tables")]
    json: bool,

    /// Print a table of columns per database table instead of the compact text.
    #[arg(long)]
    tables: bool,
}

/// Runs the command; returns the exit code.
pub fn run(command: DbCommand, cache_root: &Path) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: Failed to start the async runtime: {e}");
            return 2;
        }
    };
    let result = runtime.block_on(async {
        match command {
            DbCommand::Demo(args) => demo_command(args, cache_root).await,
            DbCommand::Schema(args) => schema_command(args, cache_root).await.map_err(Failure::from),
        }
    });
    match result {
        Ok(()) => 0,
        Err(failure) => failure.report(),
    }
}

/// A failed command: the error, and a hint that fits the command better than the error's
/// own, where there is one.
struct Failure {
    error: DbError,
    hint: Option<String>,
}

impl From<DbError> for Failure {
    fn from(error: DbError) -> Self {
        Self { error, hint: None }
    }
}

impl Failure {
    /// Prints the error with its causes and hint on stderr; returns the exit code.
    fn report(&self) -> i32 {
        eprintln!("error: {}", self.error);
        let mut source = self.error.source();
        while let Some(cause) = source {
            eprintln!("  caused by: {cause}");
            source = cause.source();
        }
        if let Some(hint) = self.hint.clone().or_else(|| self.error.hint()) {
            eprintln!("hint: {hint}");
        }
        2
    }
}

/// Writes to stdout, ignoring a closed pipe (`metaexec db demo --sql | head` is fine).
fn write_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

async fn demo_command(args: DemoArgs, cache_root: &Path) -> Result<(), Failure> {
    if args.sql {
        write_stdout(&demo::postgres_script());
        return Ok(());
    }
    if let Some(text) = &args.postgres {
        let url = DbUrl::parse(text)?;
        if url.dialect() != Dialect::Postgres {
            return Err(DbError::InvalidUrl {
                url: url.masked(),
                reason: "--postgres takes a postgres:// URL (use --out FILE for SQLite)".into(),
            }
            .into());
        }
        demo::load_postgres(&url).await?;
        note(&format!("metaexec: loaded the demo portfolio into {url}"));
        write_stdout(&format!("{url}\n"));
        return Ok(());
    }
    let (path, cached) = match &args.out {
        Some(out) => (out.clone(), false),
        None => (demo::demo_path(cache_root), true),
    };
    if path.exists() {
        if cached && !args.force {
            note(&format!("metaexec: the demo portfolio is already at {}", path.display()));
            write_stdout(&format!("{}\n", path.display()));
            return Ok(());
        }
        if args.force {
            std::fs::remove_file(&path).map_err(|source| DbError::Io { path: path.clone(), source })?;
        }
    }
    demo::create_sqlite(&path).await.map_err(|error| {
        let hint = matches!(error, DbError::Demo { .. } if path.exists())
            .then(|| "choose another --out FILE, or add --force to replace it".to_owned());
        Failure { error, hint }
    })?;
    note(&format!("metaexec: created the demo portfolio ({}) at {}", demo::DEMO_TABLES.join(", "), path.display()));
    write_stdout(&format!("{}\n", path.display()));
    Ok(())
}

/// What `db schema --json` prints.
#[derive(Serialize)]
struct SchemaJson<'a> {
    url: String,
    #[serde(flatten)]
    schema: &'a Schema,
}

async fn schema_command(args: SchemaArgs, cache_root: &Path) -> Result<(), DbError> {
    let url = args.db.resolve(cache_root)?;
    if url.is_demo() {
        note(&format!("metaexec: no --db and no {DATABASE_URL_ENV}: showing the demo portfolio ({url})"));
    }
    let database = Database::open(&url, false).await?;
    let schema = inspect::inspect(&database).await;
    database.close().await;
    let schema = schema?;
    if args.json {
        let json = SchemaJson { url: url.masked(), schema: &schema };
        write_stdout(&format!("{}\n", serde_json::to_string_pretty(&json).expect("schemas serialise")));
    } else if args.tables {
        write_stdout(&tables_text(&schema));
    } else {
        note(&format!("metaexec: {} database {url}", schema.dialect));
        write_stdout(&schema.compact_text());
    }
    Ok(())
}

/// One table of columns per database table, then the joins.
fn tables_text(schema: &Schema) -> String {
    let mut out = String::new();
    for table in &schema.tables {
        let mut grid = Table::new();
        grid.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
        grid.set_header(["column", "type", "null", "key"]);
        for column in &table.columns {
            let mut keys = Vec::new();
            if column.primary_key {
                keys.push("PK".to_owned());
            }
            for fk in table.foreign_keys.iter().filter(|fk| fk.columns.contains(&column.name)) {
                let position = fk.columns.iter().position(|c| c == &column.name).unwrap_or(0);
                let target = fk.references_columns.get(position).map_or("?", String::as_str);
                keys.push(format!("FK → {}.{target}", fk.references_table));
            }
            grid.add_row([
                Cell::new(&column.name),
                Cell::new(&column.data_type),
                Cell::new(if column.nullable { "yes" } else { "no" }),
                Cell::new(keys.join(", ")),
            ]);
        }
        let rows = if table.row_count == 1 { "1 row".to_owned() } else { format!("{} rows", table.row_count) };
        out.push_str(&format!("{} ({rows})\n{grid}\n\n", table.name));
    }
    out.push_str("joins:\n");
    if schema.joins.is_empty() {
        out.push_str("  none\n");
    }
    for join in &schema.joins {
        out.push_str(&format!("  {join}\n"));
    }
    out
}
