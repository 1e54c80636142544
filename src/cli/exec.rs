//! `metaexec exec`: one script, one sandboxed run, one outcome.

use std::path::PathBuf;

use clap::Args;

use super::render;
use super::script::ScriptArgs;
use crate::outcome::{ErrorKind, Outcome, OutcomeError};

/// Arguments of `metaexec exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub script: ScriptArgs,

    /// Print one JSON object (the outcome) on stdout instead of tables.
    #[arg(long)]
    pub json: bool,

    /// Seed Python's `random` with N, so the run (its fuel use too) repeats exactly
    /// [default: a fresh seed every run].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

/// Runs the command; returns the exit code.
pub fn run(args: ExecArgs, cache_root: PathBuf) -> i32 {
    let outcome = match args.script.job(&cache_root) {
        Ok(mut job) => {
            job.seed = args.seed;
            let sandbox = args.script.sandbox(cache_root, args.json);
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime.block_on(sandbox.run(&job)),
                Err(e) => Outcome::failed_before_start(
                    OutcomeError::new(ErrorKind::Internal, format!("Failed to start the async runtime: {e}")),
                    "wasi",
                ),
            }
        }
        Err(error) => Outcome::failed_before_start(error, "wasi"),
    };
    if args.json {
        render::json(&outcome);
    } else {
        render::human(&outcome);
    }
    outcome.process_exit_code()
}
