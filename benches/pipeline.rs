//! Request pipeline benchmarks, model time excluded (the offline planner):
//!
//! - `pipeline/offline_portfolio`: the documents' DSCR request through every stage in
//!   process (schema, plan, script, validation, sandboxed run, run folder written).
//! - `pipeline/offline_stress_test`: the same with a 10/20/30% NOI stress test: the base
//!   run, then 4 scenarios as a sweep with break-even bisection.
//! - `pipeline/offline_monte_carlo_1000`: 1,000 Monte Carlo draws of NOI and rates as a
//!   sweep, the run folder's sweep files included.
//! - `pipeline/plan_only`: the offline planner alone (recognise, script; the query is
//!   built once per database).
//! - `process/run_portfolio`: `metaexec run "<request>" --json` as a whole process, from
//!   process start to results printed.
//!
//! Run with `cargo bench --bench pipeline`.

use std::process::Command;
use std::time::Duration;

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use metaexec::db::{DbUrl, demo};
use metaexec::pipeline::{self, PipelineOptions};

const PORTFOLIO: &str = "I need to review the debt service coverage for our entire property portfolio. Pull all \
    properties from the database, calculate their DSCR, show name, NOI, debt service and the ratio for each, plus a \
    portfolio summary.";
const STRESS: &str = "calculate DSCR for every property and show a 10/20/30% NOI stress test";
const MONTE_CARLO: &str = "Run 1,000 Monte Carlo simulations where NOI is normally distributed with a standard \
    deviation of 8% and interest rates are uniform between 0 and 2%, seed 7";

fn options(runs: &std::path::Path) -> PipelineOptions {
    let cache = metaexec::cache::cache_dir();
    PipelineOptions::new(cache.clone(), DbUrl::demo(&cache), runs.to_path_buf())
}

fn in_process(c: &mut Criterion) {
    common::sandbox();
    let runs = tempfile::tempdir().unwrap();
    let options = options(runs.path());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut group = c.benchmark_group("pipeline");
    group.sample_size(30).measurement_time(Duration::from_secs(6));
    for (name, request) in [("offline_portfolio", PORTFOLIO), ("offline_stress_test", STRESS)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let record = runtime.block_on(pipeline::run(request, &options));
                assert!(record.is_ok(), "{record:#?}");
            });
        });
    }
    let schema = runtime.block_on(async {
        let db = metaexec::db::Database::open(&options.db, false).await.unwrap();
        metaexec::db::inspect::inspect(&db).await.unwrap()
    });
    let names: Vec<String> = demo::DEMO_DSCR.iter().map(|(name, _)| (*name).to_owned()).collect();
    group.bench_function("plan_only", |b| {
        let query = metaexec::llm::offline::portfolio_query(&schema);
        b.iter(|| metaexec::llm::offline::plan(STRESS, query.clone(), &names, &schema).unwrap());
    });
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    group.bench_function("offline_monte_carlo_1000", |b| {
        b.iter(|| {
            let record = runtime.block_on(pipeline::run(MONTE_CARLO, &options));
            assert!(record.is_ok() && record.sweep.as_ref().is_some_and(|s| s.summary.ok == 1000), "{record:#?}");
        });
    });
    group.finish();
}

fn process(c: &mut Criterion) {
    let runs = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("process");
    group.sample_size(20).measurement_time(Duration::from_secs(6));
    group.bench_function("run_portfolio", |b| {
        b.iter(|| {
            let output = Command::new(env!("CARGO_BIN_EXE_metaexec"))
                .args(["run", PORTFOLIO, "--json", "--offline", "--runs"])
                .arg(runs.path())
                .env_remove("DATABASE_URL")
                .output()
                .unwrap();
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        });
    });
    group.finish();
}

criterion_group!(benches, in_process, process);
criterion_main!(benches);
