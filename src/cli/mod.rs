//! The command line. Clap structs carry no logic: each command turns its arguments into
//! the library's types and hands them to the stage that does the work.

mod capability;
mod check;
mod db;
mod docker;
mod exec;
mod interrupt;
mod record;
mod render;
mod run;
mod runs;
mod runtime;
mod script;
mod serve;
mod sweep;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Runs Python scripts in an embedded WASI sandbox and hands back structured results.
///
/// Scripts import the `metaexec` guest library: `metaexec.params` for their parameters,
/// `metaexec.result(...)` / `metaexec.emit(name, value)` for their results,
/// `metaexec.log(...)` for progress. They run in CPython 3.14 compiled to WebAssembly,
/// with no network, no host files except a results folder, and limits on CPU, memory,
/// wall-clock time and output.
#[derive(Debug, Parser)]
#[command(name = "metaexec", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Where metaexec caches the runtime, its compiled form, the guest library and the
    /// demo database [default: the user cache folder, e.g. ~/.cache/metaexec].
    #[arg(long, global = true, env = crate::cache::CACHE_DIR_ENV, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Where run folders are kept: every run, exec and sweep gets one, and `runs` and
    /// `serve` read them [default: METAEXEC_RUNS_DIR, else `[runs] dir` in the config
    /// file, else ./runs].
    #[arg(long, global = true, value_name = "DIR")]
    pub runs: Option<PathBuf>,

    /// Show debug logs on stderr (same as RUST_LOG=metaexec=debug).
    #[arg(long, short, global = true)]
    pub verbose: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Answer a request in plain English: plan, write a script, check it, run it.
    ///
    /// With a model (--llm-url / --model, METAEXEC_LLM_URL / METAEXEC_MODEL, or an [llm]
    /// table in ~/.config/metaexec/config.toml) the model plans and writes the script, and
    /// the validator's findings or the script's traceback go back to it for repair. Without
    /// one, the offline planner answers the portfolio requests the guest library covers:
    /// DSCR reviews, named properties, properties at risk, stress tests and scenarios,
    /// Monte Carlo simulations, sensitivity ranges, cap rate / debt yield / LTV, CSV and
    /// XLSX exports. A request with scenarios runs its one-scenario script over all of
    /// them as a sweep (see `metaexec sweep --help`): DSCR per scenario, break-even points,
    /// sensitivity, and sweep/report.html. Everything about the run (plan, prompts and
    /// answers, scripts, validation, outcome, sweep, exports) is kept in
    /// runs/<timestamp>-<request>/; model answers are cached, so a re-run costs no model time.
    ///
    /// Examples:
    ///   metaexec run "calculate DSCR for every property and show a 10/20/30% NOI stress test"
    ///   metaexec run "which assets are at risk, DSCR below 1.3?" --xlsx
    ///   metaexec run "10,000 simulations, NOI normal with sd 8%, rates uniform between 0 and 2%"
    ///   metaexec run "DSCR for Orlando Fashion Square" --db postgres://me@localhost/prod --json
    ///   metaexec run "rank by debt yield" --llm-url http://localhost:1234/v1 --model qwen2.5-7b
    #[command(verbatim_doc_comment)]
    Run(run::RunArgs),

    /// Run a Python script in the sandbox.
    ///
    /// Examples:
    ///   metaexec exec examples/dscr.py
    ///   metaexec exec stress.py --param noi_change=-0.2 --json
    ///   metaexec exec heavy.py --timeout 120 --memory 1024 --fuel 50000000000
    #[command(verbatim_doc_comment)]
    Exec(exec::ExecArgs),

    /// Run a script over many scenarios: named, a grid, zipped lists or Monte Carlo draws.
    ///
    /// Warm sandbox instances (one per core) run the scenarios one after another, each in
    /// a fresh module namespace with its own `metaexec.params`; a scenario that raises or
    /// hits a limit (--timeout and --fuel hold per scenario) is recorded and the sweep
    /// goes on. --memory caps each instance's linear memory, which only grows: a warm
    /// instance runs many scenarios, so the cap covers them together; --isolation
    /// instance gives each scenario its own instance and so its own cap. Database reads
    /// are answered from one snapshot for the whole sweep.
    /// Writes results.json, scenarios.csv and report.html (and sweep.xlsx with --xlsx)
    /// into the results folder.
    ///
    /// Beyond one machine: --shard I/N runs shard I (from 0) of N into a part folder
    /// (--out); `metaexec sweep merge` adds the parts up exactly; --prepare DIR writes
    /// the plan, the script and a database snapshot for workers that hold no database;
    /// --ray URL does all of it on a Ray cluster.
    ///
    /// Examples:
    ///   metaexec sweep examples/dscr_stress.py --grid "noi_change=-0.3..0.1:0.01" --grid "rate_change=0,0.01,0.02"
    ///   metaexec sweep examples/dscr_stress.py --scenarios scenarios.toml --json
    ///   metaexec sweep examples/dscr_stress.py --monte-carlo 10000 --seed 7 --dist "noi_change=normal(0,0.08)"
    ///   metaexec sweep examples/dscr_stress.py --monte-carlo 100000 --dist "noi_change=normal(0,0.08)" --prepare job
    ///   metaexec sweep job/dscr_stress.py --plan job/plan.json --snapshot job/snapshot.json --shard 3/8 --out part-3
    ///   metaexec sweep merge part-* --out results
    ///   metaexec sweep examples/dscr_stress.py --monte-carlo 20000 --dist "noi_change=normal(0,0.08)" --ray http://127.0.0.1:8265 --shards 4
    #[command(verbatim_doc_comment)]
    Sweep(sweep::SweepCommand),

    /// Check a script before it runs: security rules, SQL against the schema, a score.
    ///
    /// Prints findings like a linter (file:line:col code message, with the source line and
    /// a hint), then the verdict (pass / warn / reject), the score (from 1, each finding
    /// lowers it; under --threshold rejects) and the backend the script needs (wasi, or
    /// docker with the packages to install). SQL literals passed to `metaexec.db.query`
    /// are checked against the tables of --db (else DATABASE_URL, else the demo).
    /// Exit code 1 on reject.
    ///
    /// Examples:
    ///   metaexec check examples/portfolio.py
    ///   metaexec check generated.py --json --db postgres://me@localhost/prod
    ///   metaexec check --rules
    #[command(verbatim_doc_comment)]
    Check(check::CheckArgs),

    /// Manage the pinned WASI CPython runtime.
    #[command(subcommand)]
    Runtime(runtime::RuntimeCommand),

    /// Set up the demo portfolio and inspect databases.
    ///
    /// Scripts read the database named by --db, else DATABASE_URL, else the embedded demo
    /// portfolio (created in the cache on first use).
    ///
    /// Examples:
    ///   metaexec db schema
    ///   metaexec db schema --db postgres://me@localhost/prod --json
    ///   metaexec db demo --out portfolio.db
    #[command(subcommand, verbatim_doc_comment)]
    Db(db::DbCommand),

    /// The Docker backend: build its base image, remove what runs left behind.
    ///
    /// Scripts that import packages the WASI runtime lacks (pandas, numpy ...) or serve a
    /// web app run in Docker containers (`--backend docker`, or `auto`'s choice). The
    /// engine is reached at DOCKER_HOST, else the local socket.
    ///
    /// Examples:
    ///   metaexec docker base-image
    ///   metaexec docker prune --images
    #[command(subcommand, verbatim_doc_comment)]
    Docker(docker::DockerCommand),

    /// List, show, re-run, remove and stop runs.
    ///
    /// Every `run`, `exec` and `sweep` leaves a folder under the runs folder (--runs,
    /// METAEXEC_RUNS_DIR, `[runs] dir` in the config file, else ./runs) holding its
    /// script, job, outcome, results, report.html and a manifest of every file's SHA-256.
    ///
    /// Examples:
    ///   metaexec runs list --limit 10
    ///   metaexec runs show 20261202-164001-calculate-dscr-for-every-property
    ///   metaexec runs rerun 20261202-164001-calculate-dscr-for-every-property --param noi_change=-0.2
    ///   metaexec runs gc --older-than 30d
    #[command(subcommand, verbatim_doc_comment)]
    Runs(runs::RunsCommand),

    /// Serve the runs in a browser: lists, run pages, what-if forms, new requests, an API.
    ///
    /// Binds to 127.0.0.1 by default. Bound to any other address it requires a bearer
    /// token (--token or METAEXEC_TOKEN): API calls send `Authorization: Bearer TOKEN`;
    /// a browser opens any page once with `?token=TOKEN` and keeps it in a cookie.
    /// The API is described in docs/openapi.yaml (also served at /api/openapi.yaml).
    ///
    /// Examples:
    ///   metaexec serve
    ///   metaexec serve --port 8080 --runs /srv/metaexec/runs
    ///   METAEXEC_TOKEN=$(openssl rand -hex 16) metaexec serve --host 0.0.0.0
    #[command(verbatim_doc_comment)]
    Serve(serve::ServeArgs),
}

/// Parses the command line, runs the command and returns the process exit code:
/// 0 ok, 1 the script failed or hit a limit, 2 the tool was misused or failed.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let cache_root = cli.cache_dir.clone().unwrap_or_else(crate::cache::cache_dir);
    let env = crate::llm::config::Environment::read();
    let runs_env = std::env::var(crate::store::RUNS_DIR_ENV).ok();
    let runs = match crate::store::runs_root(
        cli.runs.as_deref(),
        runs_env.as_deref(),
        crate::llm::config::config_file(&env).as_deref(),
    ) {
        Ok(runs) => runs,
        Err(e) => {
            eprintln!("error[usage]: {e}");
            return ExitCode::from(2);
        }
    };
    let code = match cli.command {
        Command::Run(args) => run::run(args, cache_root, runs),
        Command::Exec(args) => exec::run(args, cache_root, &runs),
        Command::Sweep(command) => sweep::run_command(command, cache_root, &runs),
        Command::Check(args) => check::run(args, cache_root),
        Command::Runtime(command) => runtime::run(command, &cache_root),
        Command::Db(command) => db::run(command, &cache_root),
        Command::Docker(command) => docker::run(command, &cache_root),
        Command::Runs(command) => runs::run(command, cache_root, &runs),
        Command::Serve(args) => serve::run(args, cache_root, runs),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}

fn init_tracing(verbose: bool) {
    let default = if verbose { "metaexec=debug" } else { "metaexec=warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::env::var_os("NO_COLOR").is_none())
        .without_time()
        .try_init();
}

/// Writes a line for people to stderr, through the printer: progress, warnings and the
/// script's `metaexec.log` lines (the sandbox's `on_log` sink), escaped as guest text.
pub(crate) fn note(line: &str) {
    render::err_line(&render::guest(line));
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
