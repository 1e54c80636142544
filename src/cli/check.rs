//! `metaexec check`: the validator as a linter. Findings go to stdout (they are the
//! command's output), notes about the check itself to stderr.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::db::DbArgs;
use super::note;
use crate::db::connect::Database;
use crate::db::inspect;
use crate::sandbox::{CompileCheck, SandboxOptions, WasiSandbox};
use crate::validate::{self, BackendRequest, Options, Tables, Verdict, rules::RULES};

/// Arguments of `metaexec check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The script to check.
    #[arg(value_name = "SCRIPT.py", required_unless_present = "rules")]
    pub script: Option<PathBuf>,

    /// Print one JSON object (the report) on stdout.
    #[arg(long)]
    pub json: bool,

    /// The backend the script is meant for: `auto` picks `wasi` when every import is in
    /// the WASI runtime and `docker` otherwise.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,

    /// Reject scripts scoring under this (0 to 1; each finding lowers the score).
    #[arg(long, default_value_t = validate::DEFAULT_THRESHOLD, value_name = "SCORE")]
    pub threshold: f64,

    #[command(flatten)]
    pub(crate) db: DbArgs,

    /// Do not check SQL against the database's tables.
    #[arg(long)]
    pub no_schema: bool,

    /// Do not ask the sandboxed CPython about syntax the validator's parser rejects
    /// (such scripts are then rejected as syntax errors).
    #[arg(long)]
    pub no_cpython: bool,

    /// List the rules and exit.
    #[arg(long)]
    pub rules: bool,
}

/// `--backend` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// Choose from the imports.
    Auto,
    /// The embedded WASI sandbox.
    Wasi,
    /// A Docker container.
    Docker,
}

impl From<BackendArg> for BackendRequest {
    fn from(arg: BackendArg) -> Self {
        match arg {
            BackendArg::Auto => BackendRequest::Auto,
            BackendArg::Wasi => BackendRequest::Wasi,
            BackendArg::Docker => BackendRequest::Docker,
        }
    }
}

/// Runs the command; returns the exit code: 0 pass or warn, 1 reject, 2 misuse.
pub fn run(args: CheckArgs, cache_root: PathBuf) -> i32 {
    if args.rules {
        print_rules(args.json);
        return 0;
    }
    let Some(path) = args.script.as_deref() else { return 2 };
    if !(0.0..=1.0).contains(&args.threshold) {
        eprintln!("error: --threshold must be between 0 and 1, got `{}`", args.threshold);
        return 2;
    }
    let source = match read(path) {
        Ok(source) => source,
        Err(message) => {
            eprintln!("error: {message}");
            eprintln!("hint: check the path of the script");
            return 2;
        }
    };
    let tables = if args.no_schema { None } else { tables(&args.db, &cache_root) };
    let oracle = (!args.no_cpython).then(|| {
        let mut options = SandboxOptions::new(cache_root.clone());
        options.progress = std::sync::Arc::new(|line| note(&format!("metaexec: {line}")));
        CompileCheck::new(WasiSandbox::new(options), crate::cache::scratch_dir(&cache_root))
    });
    let file_name = path.display().to_string();
    let options = Options {
        file_name: &file_name,
        tables: tables.as_ref(),
        backend: args.backend.into(),
        threshold: args.threshold,
        oracle: oracle.as_ref().map(|o| o as &dyn validate::SyntaxOracle),
    };
    let report = validate::validate(&source, &options);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("reports serialise"));
    } else {
        let colour = super::render::colour();
        // The script may come from a model: its lines are shown, never obeyed.
        super::render::out(&validate::render::text(&report, colour));
    }
    i32::from(report.verdict == Verdict::Reject)
}

fn read(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("Failed to read the script `{}`: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| format!("The script `{}` is not UTF-8 text", path.display()))
}

/// The tables of the database `--db` names; a database that cannot be read skips the SQL
/// check with a note rather than failing the whole check.
fn tables(db: &DbArgs, cache_root: &Path) -> Option<Tables> {
    let inspected = (|| {
        let url = db.resolve(cache_root).map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("Failed to start the async runtime: {e}"))?;
        runtime.block_on(async {
            let database = Database::open(&url, false).await.map_err(|e| e.to_string())?;
            let schema = inspect::inspect(&database).await;
            database.close().await;
            schema.map_err(|e| e.to_string())
        })
    })();
    match inspected {
        Ok(schema) => Some(Tables::from(&schema)),
        Err(message) => {
            note(&format!("metaexec: SQL not checked against a schema: {message}"));
            None
        }
    }
}

fn print_rules(json: bool) {
    if json {
        let rules: Vec<_> = RULES
            .iter()
            .map(|r| serde_json::json!({"code": r.code, "name": r.name, "severity": r.severity, "summary": r.summary}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&rules).expect("rules serialise"));
        return;
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING).set_header(["code", "name", "severity", "what it catches"]);
    table.add_row([validate::SYNTAX_CODE, "syntax-error", "error", "the script does not parse"]);
    for rule in RULES {
        table.add_row([rule.code, rule.name, &rule.severity.to_string(), rule.summary]);
    }
    println!("{table}");
}
