//! A sweep on this machine against the same sweep as shards on a local Ray head, through
//! the real binary: what Ray costs per job and per shard.
//!
//! The Ray cases run when `METAEXEC_RAY_ADDRESS` names a dashboard (`.ci/ray` starts one);
//! without it they are left out, and the bench says so.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

const SCENARIOS: &str = "10000";

fn sweep(dir: &Path, db: &Path, extra: &[&str]) {
    let results = dir.join("results");
    let _ = std::fs::remove_dir_all(&results);
    let output = Command::new(env!("CARGO_BIN_EXE_metaexec"))
        .env("METAEXEC_RUNS_DIR", dir.join("runs"))
        .arg("sweep")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/dscr_stress.py"))
        .arg("--db")
        .arg(db)
        .arg("--results")
        .arg(&results)
        .args(["--monte-carlo", SCENARIOS, "--dist", "noi_change=normal(0,0.08)", "--keep", "summary"])
        .args(extra)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("portfolio.db");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(metaexec::db::demo::create_sqlite(&db)).unwrap();
    let mut group = c.benchmark_group("shards");
    group.sample_size(10).measurement_time(Duration::from_secs(30));
    group.bench_function("local_10000", |b| b.iter(|| sweep(dir.path(), &db, &[])));
    match std::env::var("METAEXEC_RAY_ADDRESS") {
        Ok(address) => {
            for (name, shards, cpus) in [("ray_1_shard_10000", "1", "2"), ("ray_2_shards_10000", "2", "1")] {
                let args = ["--ray", &address, "--shards", shards, "--ray-cpus", cpus];
                group.bench_function(name, |b| b.iter(|| sweep(dir.path(), &db, &args)));
            }
        }
        Err(_) => eprintln!("METAEXEC_RAY_ADDRESS is not set: the Ray cases are left out (start a head with .ci/ray)"),
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
