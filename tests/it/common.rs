//! Shared helpers: one sandbox per test process (so the interpreter is loaded once), a
//! temporary results folder per test, and a way to run a snippet of Python.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use metaexec::job::Job;
use metaexec::outcome::Outcome;
use metaexec::sandbox::{SandboxOptions, WasiSandbox};

/// The process-wide sandbox on the user cache (fetched by `.ci/run`, or on first use).
pub fn sandbox() -> &'static WasiSandbox {
    static SANDBOX: OnceLock<WasiSandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        let mut options = SandboxOptions::new(metaexec::cache::cache_dir());
        options.progress = Arc::new(|line| eprintln!("metaexec: {line}"));
        WasiSandbox::new(options)
    })
}

/// A temporary folder for one test's results.
pub struct TestContext {
    dir: tempfile::TempDir,
}

impl TestContext {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn results(&self) -> PathBuf {
        self.dir.path().join("results")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A job for `source` with default limits and this context's results folder.
    pub fn job(&self, source: &str) -> Job {
        Job::new("script.py", dedent(source), self.results())
    }

    /// Runs `source` with default limits.
    pub fn run(&self, source: &str) -> Outcome {
        run_job(&self.job(source))
    }
}

/// Runs a job on the shared sandbox.
pub fn run_job(job: &Job) -> Outcome {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(sandbox().run(job))
}

/// Strips the common leading indentation, so tests can indent their Python.
pub fn dedent(source: &str) -> String {
    let source = source.strip_prefix('\n').unwrap_or(source);
    let indent =
        source.lines().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min().unwrap_or(0);
    source.lines().map(|l| if l.len() >= indent { &l[indent..] } else { l.trim_start() }).collect::<Vec<_>>().join("\n")
        + "\n"
}

/// Asserts the run failed with `kind`, showing the whole outcome otherwise.
#[track_caller]
pub fn assert_kind(outcome: &Outcome, kind: metaexec::outcome::ErrorKind) {
    assert_eq!(outcome.error_kind(), Some(kind), "outcome: {outcome:#?}");
}

/// Asserts the run succeeded, showing the whole outcome otherwise.
#[track_caller]
pub fn assert_ok(outcome: &Outcome) {
    assert!(outcome.is_ok(), "outcome: {outcome:#?}");
}

/// The real `metaexec` binary, run in `ctx`'s folder, with no colours and no database
/// from the environment (so `DATABASE_URL` on the test machine cannot leak in).
pub fn metaexec_command(ctx: &TestContext) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_metaexec"));
    command.current_dir(ctx.path()).env("NO_COLOR", "1").env_remove("DATABASE_URL");
    command
}
