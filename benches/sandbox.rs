//! Sandbox benchmarks, each beside the native `python3` equivalent where one exists:
//!
//! - `fresh_run/print1`: a fresh instance of the runtime's snapshot running `print(1)`,
//!   component compiled and cached.
//! - `process/exec_print1` and `process/exec_dscr`: `metaexec exec` of `print(1)` and of
//!   `examples/dscr.py --json` as whole processes, from process start to results printed.
//! - `python/dscr_loop`: pure Python, the DSCR of 10 properties with the guest library
//!   (`benches/native/dscr_rows.py`), timed inside the guest over many loops.
//! - `host_call/round_trip`: one call from the guest into the host interface, timed
//!   inside the guest over many calls; `host_call/emit`: `metaexec.emit` of a row.
//!
//! Run with `cargo bench --bench sandbox`.

use std::process::Command;
use std::time::Duration;

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use metaexec::job::Job;

use common::{python3, results_dir, run_timed, sandbox, timed_loop};

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
    std::fs::write(results.join("print1.py"), "print(1)\n").unwrap();
    group.bench_function("exec_print1", |b| {
        b.iter(|| {
            let output = Command::new(binary).arg("exec").arg(results.join("print1.py")).output().unwrap();
            assert!(output.status.success());
        });
    });
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

fn host_call(c: &mut Criterion) {
    let sandbox = sandbox();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut group = c.benchmark_group("host_call");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    group.bench_function("round_trip", |b| {
        b.iter_custom(|iters| {
            let source = timed_loop("from wit_world.imports import host", "host.emit('x', '1')", iters);
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

fn python(c: &mut Criterion) {
    let sandbox = sandbox();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let rows = std::fs::read_to_string(format!("{root}/benches/native/dscr_rows.py")).unwrap();
    let mut group = c.benchmark_group("python");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    group.bench_function("dscr_loop", |b| {
        b.iter_custom(|iters| {
            let setup = format!("{rows}\nfrom metaexec import finance");
            let source = timed_loop(&setup, "dscr_loop(finance, ROWS)", iters);
            run_timed(&runtime, &sandbox, &Job::new("loop.py", source, results_dir()))
        });
    });
    let python3 = python3();
    group.bench_function("native_python3_dscr_loop", |b| {
        b.iter_custom(|iters| {
            let output = Command::new(&python3)
                .args(["benches/native/dscr_loop.py", &iters.to_string()])
                .current_dir(root)
                .output()
                .unwrap();
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            Duration::from_nanos(String::from_utf8_lossy(&output.stdout).trim().parse().unwrap())
        });
    });
    group.finish();
}

criterion_group!(benches, fresh_run, process, host_call, python);
criterion_main!(benches);
