//! What the benchmarks share: the sandbox on the user cache, a results folder, and loops
//! timed inside the guest (so interpreter start-up is not part of a per-call figure).

#![allow(dead_code)] // each bench uses its own part

use std::sync::Arc;
use std::time::Duration;

use metaexec::job::Job;
use metaexec::sandbox::{SandboxOptions, WasiSandbox};

/// The sandbox, interpreter ready.
pub fn sandbox() -> WasiSandbox {
    let mut options = SandboxOptions::new(metaexec::cache::cache_dir());
    options.progress = Arc::new(|line| eprintln!("metaexec: {line}"));
    // A benchmark starts instance after instance, as a long-lived process does.
    options.many_instances = true;
    let sandbox = WasiSandbox::new(options);
    sandbox.prepare(false).expect("runtime ready (run `metaexec runtime fetch`)");
    sandbox
}

/// The real `python3` executable: version managers put a shell script on PATH whose own
/// start-up would be charged to Python.
pub fn python3() -> String {
    let output =
        std::process::Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A results folder for benchmark runs.
pub fn results_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join("metaexec-bench-results");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A script that runs `setup`, then `body` `iters` times (with `i` the counter), and
/// emits the loop's time in nanoseconds as `ns`.
pub fn timed_loop(setup: &str, body: &str, iters: u64) -> String {
    format!(
        "import time\nfrom metaexec import emit\n{setup}\nt = time.perf_counter_ns()\nfor i in range({iters}):\n    {body}\nemit('ns', time.perf_counter_ns() - t)\n"
    )
}

/// Runs a job whose script is a `timed_loop`; the time it reports.
pub fn run_timed(runtime: &tokio::runtime::Runtime, sandbox: &WasiSandbox, job: &Job) -> Duration {
    let outcome = runtime.block_on(sandbox.run(job));
    assert!(outcome.is_ok(), "{outcome:?}");
    Duration::from_nanos(outcome.results["ns"].as_u64().unwrap())
}
