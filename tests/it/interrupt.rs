//! Ctrl-C on the real binary: the first SIGINT stops a sweep (or a run) where it is and
//! writes what finished, marked interrupted, with exit code 130; a second exits at once.
//! The tests wait on what the process leaves behind (files a scenario writes, lines on
//! stderr), never on elapsed time.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{TestContext, metaexec_command};

/// A scenario that takes a while and leaves a mark in the results folder once it is done.
const SLOW_SCENARIO: &str = "import time\n\
import metaexec\n\
x = metaexec.params.get(\"x\")\n\
time.sleep(0.05)\n\
open(f\"done-{x}\", \"w\").close()\n\
metaexec.result([{\"x\": x}])\n";

/// Scenarios the slow sweep plans: far more than run before the test interrupts it.
const PLANNED: u64 = 5000;

/// How long to wait for the process to get somewhere before the test gives up: a bound on
/// a hung process, not a timing the test checks.
const PATIENCE: Duration = Duration::from_secs(300);

/// A started `metaexec` whose stderr is collected line by line as it comes.
struct Running {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
}

impl Running {
    fn spawn(mut command: Command) -> Self {
        let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("metaexec starts");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Self { child, stderr, reader }
    }

    /// Waits until `ready` holds, checking every few milliseconds; panics if the process
    /// ends first.
    fn wait_until(&mut self, what: &str, ready: impl Fn(&[String]) -> bool) {
        let started = Instant::now();
        while !ready(&self.stderr.lock().unwrap()) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("metaexec ended ({status}) before {what}:\n{}", self.stderr.lock().unwrap().join("\n"));
            }
            assert!(started.elapsed() < PATIENCE, "gave up waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn interrupt(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: `kill` has no memory effects; the pid is our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    }

    /// The exit code and everything printed on stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        self.reader.join().unwrap();
        let stderr = self.stderr.lock().unwrap().join("\n");
        (status.code(), stderr)
    }
}

fn done_marks(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with("done-")).count()
    })
}

fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

/// `metaexec sweep` over the slow scenario on two instances, results in `out/`.
fn slow_sweep(ctx: &TestContext, args: &[&str]) -> Running {
    std::fs::write(ctx.path().join("slow.py"), SLOW_SCENARIO).unwrap();
    let mut command = metaexec_command(ctx);
    command.args(["sweep", "slow.py", "--grid", &format!("x=1..{PLANNED}:1"), "--results", "out", "--workers", "2"]);
    command.args(args);
    Running::spawn(command)
}

#[test]
fn ctrl_c_stops_a_sweep_and_writes_what_finished_marked_interrupted() {
    interrupted_sweep_keeps_what_finished(&[]);
}

#[test]
fn ctrl_c_stops_a_sweep_of_fresh_instances_too() {
    interrupted_sweep_keeps_what_finished(&["--isolation", "instance"]);
}

fn interrupted_sweep_keeps_what_finished(args: &[&str]) {
    let ctx = TestContext::new();
    let out = ctx.path().join("out");
    let mut sweep = slow_sweep(&ctx, args);
    // Several scenarios done: with two instances, at most two more are under way.
    sweep.wait_until("scenarios finished", |_| done_marks(&out) >= 4);
    sweep.interrupt();
    let (code, stderr) = sweep.finish();
    assert_eq!(code, Some(130), "{stderr}");

    let summary = read_json(&out.join("summary.json"));
    let interrupted = &summary["interrupted"];
    let finished = interrupted["finished"].as_u64().unwrap_or_else(|| panic!("{summary}"));
    assert_eq!(interrupted["planned"].as_u64(), Some(PLANNED));
    assert!(finished > 0 && finished < PLANNED, "{interrupted}");
    assert_eq!(summary["total"].as_u64(), Some(finished), "the summary covers what finished");
    assert_eq!(summary["ok"].as_u64(), Some(finished));

    // The per-scenario files hold exactly the finished scenarios.
    let results = read_json(&out.join("results.json"));
    assert_eq!(results["scenarios"].as_array().unwrap().len() as u64, finished);
    assert_eq!(results["summary"]["interrupted"], *interrupted);
    let csv = std::fs::read_to_string(out.join("scenarios.csv")).unwrap();
    assert_eq!(csv.lines().count() as u64, 1 + finished);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains(&format!("interrupted: {finished} of {PLANNED} planned scenarios finished")));
    assert!(stderr.contains(&format!("interrupted: {finished} of {PLANNED} scenarios finished")), "{stderr}");
}

#[test]
fn a_second_ctrl_c_exits_at_once() {
    let ctx = TestContext::new();
    let out = ctx.path().join("out");
    let mut sweep = slow_sweep(&ctx, &[]);
    sweep.wait_until("a scenario finished", |_| done_marks(&out) >= 1);
    sweep.interrupt();
    sweep.wait_until("the first Ctrl-C was taken", |lines| lines.iter().any(|l| l.starts_with("interrupted:")));
    // The sweep may already be done winding down; either way the exit code is 130.
    if sweep.child.try_wait().unwrap().is_none() {
        sweep.interrupt();
    }
    let (code, stderr) = sweep.finish();
    assert_eq!(code, Some(130), "{stderr}");
    if stderr.contains("interrupted again") {
        assert!(!stderr.contains("scenarios finished;"), "nothing more is reported after the second: {stderr}");
    }
}

/// A request for more draws than the planner runs: the cap is said before anything runs
/// and recorded in the plan; Ctrl-C during its sweep keeps every stage's output in the
/// run folder, the sweep's finished scenarios included, and exits 130.
#[test]
fn a_capped_request_says_so_first_and_ctrl_c_keeps_the_run_folder() {
    let ctx = TestContext::new();
    let config = ctx.path().join("empty-config.toml");
    std::fs::write(&config, "").unwrap();
    let mut command = metaexec_command(&ctx);
    for var in ["METAEXEC_LLM_URL", "OPENAI_BASE_URL", "METAEXEC_MODEL", "OPENAI_API_KEY"] {
        command.env_remove(var);
    }
    command.env("METAEXEC_CONFIG", &config).args([
        "run",
        "--runs",
        "runs",
        "Run 100,000,000 Monte Carlo simulations of the portfolio where NOI is normally distributed with a \
         standard deviation of 8%, seed 11",
    ]);
    let mut run = Running::spawn(command);
    // The base scenario has run and its outcome is on disk: the sweep comes next.
    let runs = ctx.path().join("runs");
    let outcome_written = || {
        std::fs::read_dir(&runs)
            .ok()
            .and_then(|mut dirs| dirs.next())
            .is_some_and(|dir| dir.is_ok_and(|dir| dir.path().join("outcome.json").is_file()))
    };
    run.wait_until("the execute stage", |lines| lines.iter().any(|l| l.contains("execute")) && outcome_written());
    let lines = run.stderr.lock().unwrap().clone();
    let note = lines.iter().position(|l| l.starts_with("note: assumed 1000000 draws")).unwrap_or_else(|| {
        panic!("the cap is noted before the script runs:\n{}", lines.join("\n"));
    });
    let execute = lines.iter().position(|l| l.contains("execute")).unwrap();
    assert!(note < execute, "{}", lines.join("\n"));
    assert!(lines[note].contains("asked for 100000000"), "{}", lines[note]);

    let run_dir = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap().path();
    // The stages before the sweep are on disk already.
    for file in ["request.txt", "task.json", "script.py", "validation.json", "run.json"] {
        assert!(run_dir.join(file).is_file(), "{file} is written as its stage ends");
    }
    let task = read_json(&run_dir.join("task.json"));
    assert_eq!(task["sweep"]["monte_carlo"], 1_000_000);
    assert!(task["assumptions"].to_string().contains("asked for 100000000"), "{task}");
    // Give the sweep a moment to finish some scenarios (what the test checks holds either way).
    std::thread::sleep(Duration::from_secs(2));
    run.interrupt();
    let (code, stderr) = run.finish();
    assert_eq!(code, Some(130), "{stderr}");
    let record = read_json(&run_dir.join("run.json"));
    assert_eq!(record["interrupted"], true, "{stderr}");
    assert!(stderr.contains("run interrupted"), "{stderr}");
    // Interrupted in the sweep (the usual case), it wrote the scenarios that finished.
    let summary = run_dir.join("sweep/summary.json");
    if summary.exists() {
        let summary = read_json(&summary);
        let finished = summary["interrupted"]["finished"].as_u64().unwrap_or_else(|| panic!("{summary}"));
        assert_eq!(summary["interrupted"]["planned"], 1_000_000);
        assert!(finished < 1_000_000);
        assert_eq!(summary["total"].as_u64(), Some(finished));
    }
}
