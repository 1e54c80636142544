//! Database proxy benchmarks on the SQLite demo portfolio:
//!
//! - `db/policy_check`: the proxy's own checking (tokenize, parse, classify, re-render)
//!   of a typical join, with no database involved.
//! - `db/host_uncached` / `db/host_cached`: `DbProxy::query` for a 10-row SELECT on the
//!   host, reaching SQLite or answered from the snapshot.
//! - `db/guest_uncached` / `db/guest_cached`: the same query from a script in the sandbox
//!   (`metaexec.db.query`), timed inside the guest over many calls, so the figure is the
//!   whole round trip: encode, call, check, run, decode, dicts.
//! - `db/native_sqlite3`: the same query from native `python3` with its `sqlite3` module,
//!   connection already open, for comparison.
//!
//! Run with `cargo bench --bench db`.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use metaexec::db::policy::Policy;
use metaexec::db::{Capability, DbProxy, DbUrl, Dialect};
use metaexec::guest_db::DbHandle;
use metaexec::job::Job;
use serde_json::json;

const QUERY: &str = "SELECT p.property_name, f.noi, f.annual_debt_service FROM properties p \
                     JOIN financial_metrics f ON f.property_id = p.property_id WHERE f.fiscal_year = ?";
/// Same rows, a different statement per call: `? - ?` is always 0 but the parameters
/// differ, so the snapshot never answers.
const UNCACHED: &str = "SELECT p.property_name, f.noi, f.annual_debt_service FROM properties p \
                        JOIN financial_metrics f ON f.property_id = p.property_id WHERE f.fiscal_year = 2024 + ? - ?";

fn demo() -> (tempfile::TempDir, DbUrl) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portfolio.db");
    tokio::runtime::Runtime::new().unwrap().block_on(metaexec::db::demo::create_sqlite(&path)).unwrap();
    (dir, DbUrl::sqlite(path))
}

fn bench(c: &mut Criterion) {
    let (_dir, url) = demo();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut group = c.benchmark_group("db");
    group.sample_size(20).measurement_time(Duration::from_secs(4));

    let policy = Policy::new(Dialect::Sqlite, Capability::default(), &[]);
    group.bench_function("policy_check", |b| b.iter(|| policy.check(QUERY, 1).unwrap()));

    let proxy = DbProxy::new(url.clone(), Capability::default());
    let mut n = 0i64;
    group.bench_function("host_uncached", |b| {
        b.iter(|| {
            n += 1;
            let (rows, cached) = runtime.block_on(proxy.query(UNCACHED, &[json!(n), json!(n)], false)).unwrap();
            assert!(!cached && rows.rows.count == 10);
        })
    });
    group.bench_function("host_cached", |b| {
        b.iter(|| {
            let (rows, _) = runtime.block_on(proxy.query(QUERY, &[json!(2024)], false)).unwrap();
            assert_eq!(rows.rows.count, 10);
        })
    });

    let sandbox = common::sandbox();
    for (name, cached) in [("guest_uncached", false), ("guest_cached", true)] {
        let db = DbHandle(Arc::new(DbProxy::new(url.clone(), Capability::default())));
        let (sql, first, params) = if cached { (QUERY, "[2024]", "[2024]") } else { (UNCACHED, "[-1, -1]", "[i, i]") };
        let setup = format!("from metaexec import db\nassert len(db.query({sql:?}, {first})) == 10");
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let source = common::timed_loop(&setup, &format!("rows = db.query({sql:?}, {params})"), iters);
                let mut job = Job::new("q.py", source, common::results_dir());
                job.db = Some(db.clone());
                common::run_timed(&runtime, &sandbox, &job)
            })
        });
    }

    let path = url.sqlite_path().unwrap().display().to_string();
    group.bench_function("native_sqlite3", |b| {
        b.iter_custom(|iters| {
            let script = format!(
                "import sqlite3, time\nc = sqlite3.connect({path:?})\nc.row_factory = sqlite3.Row\nq = {UNCACHED:?}.replace('?', '0', 1)\nt = time.perf_counter_ns()\nfor i in range({iters}):\n    rows = [dict(r) for r in c.execute(q, [0])]\nprint(time.perf_counter_ns() - t)\n"
            );
            let output = Command::new("python3").args(["-c", &script]).output().unwrap();
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            Duration::from_nanos(String::from_utf8_lossy(&output.stdout).trim().parse().unwrap())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
