//! Sweep throughput on the SQLite demo portfolio with `examples/dscr_stress.py`:
//!
//! - `sweep/namespace_10000`: 10,000 Monte Carlo scenarios, warm instances (one per
//!   core), fresh namespace per scenario: the whole sweep, instances started included.
//! - `sweep/instance_1000`: 1,000 scenarios with a fresh instance each
//!   (`--isolation instance`).
//! - `sweep/namespace_10000_trivial`: 10,000 scenarios of a script that reads its two
//!   parameters and does nothing else, the runner's own cost (a script that reads no
//!   parameter is refused: its scenarios would all be the same).
//! - `sweep/command_10000`: `metaexec sweep examples/dscr_stress.py --monte-carlo 10000`
//!   as a whole process, report files written.
//! - `sweep/native_python3_10000`: the same script over 10,000 draws in native `python3`
//!   with the same guest library and the database reads kept (`benches/native/sweep.py`).
//!
//! Run with `cargo bench --bench sweep`; the figures divide by the scenario counts.

use std::sync::Arc;
use std::time::Duration;

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use metaexec::db::{Capability, DbProxy, DbUrl};
use metaexec::guest_db::DbHandle;
use metaexec::job::Job;
use metaexec::sweep::spec::PlanTexts;
use metaexec::sweep::{self, Isolation, SweepOptions};

/// A scenario that only reads its parameters.
const TRIVIAL: &str = "from metaexec import params\nparams.get('noi_change')\nparams.get('rate_change')\n";

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portfolio.db");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(metaexec::db::demo::create_sqlite(&path)).unwrap();
    let sandbox = common::sandbox();
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/dscr_stress.py")).unwrap();
    let results = dir.path().join("results");
    let job = |source: &str| {
        let mut job = Job::new("dscr_stress.py", source, &results);
        job.db = Some(DbHandle(Arc::new(DbProxy::new(DbUrl::sqlite(&path), Capability::default()))));
        job
    };
    let draws = |n| {
        let dist = ["noi_change=normal(0,0.08)".to_string(), "rate_change=uniform(0,0.02)".to_string()];
        PlanTexts { monte_carlo: Some(n), seed: 7, dist: &dist, ..Default::default() }.scenarios().unwrap()
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut group = c.benchmark_group("sweep");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    for (name, source, n, isolation) in [
        ("namespace_10000", source.as_str(), 10_000, Isolation::Namespace),
        ("namespace_10000_trivial", TRIVIAL, 10_000, Isolation::Namespace),
        ("instance_1000", source.as_str(), 1000, Isolation::Instance),
    ] {
        let scenarios = draws(n);
        group.bench_function(name, |b| {
            b.iter(|| {
                let options = SweepOptions::new(cores, isolation);
                let report = runtime.block_on(sweep::run(&sandbox, &job(source), scenarios.clone(), options, |_| {}));
                let report = report.expect("the sweep runs");
                assert_eq!(report.summary.ok, n);
            })
        });
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let db = path.display().to_string();
    group.bench_function("command_10000", |b| {
        b.iter(|| {
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_metaexec"))
                .args(["sweep", "examples/dscr_stress.py", "--db", &db, "--monte-carlo", "10000", "--seed", "7"])
                .args(["--dist", "noi_change=normal(0,0.08)", "--dist", "rate_change=uniform(0,0.02)", "--json"])
                .arg("--results")
                .arg(&results)
                .current_dir(root)
                .output()
                .unwrap();
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        })
    });
    let python3 = common::python3();
    group.bench_function("native_python3_10000", |b| {
        b.iter(|| {
            let output = std::process::Command::new(&python3)
                .args(["benches/native/sweep.py", &db, "10000"])
                .current_dir(root)
                .output()
                .unwrap();
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
