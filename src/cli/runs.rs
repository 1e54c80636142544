//! `metaexec runs stop ID`: ends a web app a run left serving.

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;

use crate::docker;

/// Runs subcommands.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Stop the web app a run left serving (a "create a dashboard" request): its
    /// container is stopped and removed, its results copied into the run folder, and its
    /// outcome recorded in `app/app.json`.
    ///
    /// Examples:
    ///   metaexec runs stop 20261202-140501-create-a-dashboard
    #[command(verbatim_doc_comment)]
    Stop {
        /// The run's id: its folder's name under --runs.
        id: String,
        /// Where run folders are.
        #[arg(long, value_name = "DIR", default_value = crate::store::DEFAULT_RUNS_DIR)]
        runs: PathBuf,
        /// Print the app's record as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command; returns the exit code.
pub fn run(command: RunsCommand) -> i32 {
    let RunsCommand::Stop { id, runs, json } = command;
    if id.contains('/') || id.contains('\\') || id.starts_with('.') {
        eprintln!("error[usage]: `{id}` is not a run id (a folder name under {})", runs.display());
        return 2;
    }
    let dir = runs.join(&id).join("app");
    if !dir.join("app.json").is_file() {
        eprintln!("error[usage]: the run `{id}` has no web app (no {})", dir.join("app.json").display());
        eprintln!("hint: run ids are the folder names under {}", runs.display());
        return 2;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error[internal]: failed to start the async runtime: {e}");
            return 2;
        }
    };
    runtime.block_on(async {
        let engine = match docker::connect().await {
            Ok(engine) => engine,
            Err(e) => {
                eprintln!("error[backend_unavailable]: {}", e.message);
                eprintln!("hint: {}", e.hint);
                return 2;
            }
        };
        match docker::stop_recorded(&engine, &dir, Duration::from_secs(20)).await {
            Ok(record) => {
                if json {
                    println!("{}", serde_json::to_string_pretty(&record).unwrap_or_default());
                } else {
                    println!("{id}: {}", record.status);
                }
                if matches!(record.status.as_str(), "stopped" | "failed") { 0 } else { 1 }
            }
            Err(e) => {
                eprintln!("error[backend_unavailable]: {e:#}");
                2
            }
        }
    })
}
