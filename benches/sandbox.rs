//! Sandbox benchmarks, each beside the native `python3` equivalent where one exists:
//!
//! - `fresh_run/print1`: a fresh interpreter instance running `print(1)`, module cached.
//! - `process/exec_dscr`: `metaexec exec examples/dscr.py --json` as a whole process,
//!   from process start to results printed.
//! - `channel/round_trip`: one guest request answered by the host, timed inside the
//!   guest over many calls.
//!
//! Run with `cargo bench --bench sandbox`.

use std::process::Command;
use std::time::Duration;

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use metaexec::job::Job;

use common::{results_dir, run_timed, sandbox, timed_loop};

/// The real `python3` executable: version managers put a shell script on PATH whose own
/// start-up would be charged to Python.
fn python3() -> String {
    let output = Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn fresh_run(c: &mut Criterion) {
    let sandbox = sandbox();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let job = Job::new("print1.py", "print(1)\n", results_dir());
    let mut group = c.benchmark_group("fresh_run");
    group.sample_size(30).measurement_time(Duration::from_secs(5));
    group.bench_function("print1", |b| {
        b.iter(|| {
            let outcome = runtime.block_on(sandbox.run(&job));
            assert!(outcome.is_ok(), "{outcome:?}");
        });
    });
    let python3 = python3();
    group.bench_function("native_python3_print1", |b| {
        b.iter(|| {
            let status = Command::new(&python3).args(["-S", "-c", "print(1)"]).output().unwrap().status;
            assert!(status.success());
        });
    });
    group.finish();
}

/// The example's arithmetic without the guest library, for the native comparison.
const NATIVE_DSCR: &str = r#"
import json, sys
sys.path.insert(0, "runtime/metaexec")
import finance
rows = []
for name, noi, ads in [("A", 7616500.0, 3926027.2)] * 10:
    r = finance.dscr(noi, ads)
    rows.append({"property": name, "noi": noi, "annual_debt_service": ads, "dscr": round(r, 2), "verdict": finance.classify_dscr(r)})
print(json.dumps({"result": rows}))
"#;

fn process(c: &mut Criterion) {
    sandbox(); // make sure the runtime is compiled and unpacked before timing
    let binary = env!("CARGO_BIN_EXE_metaexec");
    let root = env!("CARGO_MANIFEST_DIR");
    let results = results_dir();
    let mut group = c.benchmark_group("process");
    group.sample_size(20).measurement_time(Duration::from_secs(8));
    group.bench_function("exec_dscr", |b| {
        b.iter(|| {
            let output = Command::new(binary)
                .args(["exec", "examples/dscr.py", "--json", "--results"])
                .arg(&results)
                .current_dir(root)
                .output()
                .unwrap();
            assert!(output.status.success());
        });
    });
    let python3 = python3();
    group.bench_function("native_python3_dscr", |b| {
        b.iter(|| {
            let output = Command::new(&python3).args(["-c", NATIVE_DSCR]).current_dir(root).output().unwrap();
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        });
    });
    group.finish();
}

fn channel(c: &mut Criterion) {
    let sandbox = sandbox();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut group = c.benchmark_group("channel");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    group.bench_function("round_trip", |b| {
        b.iter_custom(|iters| {
            let source =
                timed_loop("from metaexec import _channel", "_channel.request({'op': 'hello', 'v': 1})", iters);
            run_timed(&runtime, &sandbox, &Job::new("rt.py", source, results_dir()))
        });
    });
    group.bench_function("emit", |b| {
        b.iter_custom(|iters| {
            let row = "row = {'property': 'A', 'noi': 7616500.0, 'dscr': 1.94}";
            let source = timed_loop(row, "emit('row', row)", iters);
            run_timed(&runtime, &sandbox, &Job::new("emit.py", source, results_dir()))
        });
    });
    group.finish();
}

criterion_group!(benches, fresh_run, process, channel);
criterion_main!(benches);
