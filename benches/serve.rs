//! Dashboard and run store benchmarks:
//!
//! - `serve/simulate_1_scenario`: `POST /api/simulate` through the router for the demo
//!   portfolio's DSCR run, one what-if (NOI -20%): what the what-if form waits for, the
//!   browser's own time excluded. `serve/simulate_5_scenarios`: five at once (two
//!   sandboxes per core).
//! - `serve/run_page`: `GET /runs/{id}`, the page rendered from its record.
//! - `runs/list_1000_index`: the list of 1,000 runs from the SQLite index, synced with
//!   the folders first (what `runs list` and the dashboard do); against
//!   `runs/list_1000_scan`, every folder's `entry.json` read and sorted.
//!
//! Run with `cargo bench --bench serve`.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, header};
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt as _;
use metaexec::db::DbUrl;
use metaexec::pipeline::{self, PipelineOptions};
use metaexec::serve::{self, AppState, ServeOptions};
use metaexec::store::Entry;
use metaexec::store::index::Index;
use tower::ServiceExt as _;

fn post(body: String) -> Request<Body> {
    Request::post("/api/simulate").header(header::CONTENT_TYPE, "application/json").body(Body::from(body)).unwrap()
}

fn dashboard(c: &mut Criterion) {
    let sandbox = common::sandbox();
    let cache = metaexec::cache::cache_dir();
    let runs = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let options = PipelineOptions::new(cache.clone(), DbUrl::demo(&cache), runs.path().to_owned());
    let record = runtime.block_on(pipeline::run("calculate DSCR for every property", &options));
    assert!(record.is_ok(), "{record:#?}");
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let state = AppState::new(ServeOptions {
        runs: runs.path().to_owned(),
        cache_root: cache.clone(),
        token: None,
        default_db: DbUrl::demo(&cache),
        database_url: None,
        llm: None,
        sandbox_slots: cores * 2,
        pipeline_slots: 1,
        sandbox,
    });
    let id = record.id.clone();
    let one = serde_json::json!({"run_id": id, "scenarios": [{"noi_change": -0.2}]}).to_string();
    let five: Vec<_> = [-0.3, -0.2, -0.1, 0.0, 0.1].iter().map(|x| serde_json::json!({"noi_change": x})).collect();
    let five = serde_json::json!({"run_id": id, "scenarios": five}).to_string();
    let call = |request: Request<Body>| {
        runtime.block_on(async {
            let response = serve::router(state.clone()).oneshot(request).await.unwrap();
            assert!(response.status().is_success());
            response.into_body().collect().await.unwrap().to_bytes()
        })
    };
    let mut group = c.benchmark_group("serve");
    group.sample_size(40).measurement_time(Duration::from_secs(6));
    group.bench_function("simulate_1_scenario", |b| b.iter(|| call(post(one.clone()))));
    group.bench_function("simulate_5_scenarios", |b| b.iter(|| call(post(five.clone()))));
    let page = format!("/runs/{id}");
    group.bench_function("run_page", |b| b.iter(|| call(Request::get(page.as_str()).body(Body::empty()).unwrap())));
    group.finish();
}

fn listing(c: &mut Criterion) {
    let runs = tempfile::tempdir().unwrap();
    for i in 0..1000 {
        let id = format!("20261201-{:06}-run-{i}", i * 7);
        let dir = runs.path().join(&id);
        std::fs::create_dir(&dir).unwrap();
        let mut entry = Entry::started(&id, metaexec::store::RunKind::Exec, "dscr.py");
        entry.headline = Some(format!("portfolio DSCR 1.{i:03}"));
        std::fs::write(dir.join("entry.json"), serde_json::to_vec_pretty(&entry).unwrap()).unwrap();
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let index = runtime.block_on(Index::open(runs.path())).unwrap();
    let mut group = c.benchmark_group("runs");
    group.sample_size(30);
    group.bench_function("list_1000_index", |b| {
        b.iter(|| {
            runtime.block_on(async {
                index.sync().await.unwrap();
                assert_eq!(index.list(None).await.unwrap().len(), 1000);
            })
        })
    });
    group.bench_function("list_1000_scan", |b| {
        b.iter(|| {
            let mut entries: Vec<Entry> = std::fs::read_dir(runs.path())
                .unwrap()
                .filter_map(|e| std::fs::read(e.unwrap().path().join("entry.json")).ok())
                .map(|bytes| serde_json::from_slice(&bytes).unwrap())
                .collect();
            entries.sort_by(|a, b| b.created.cmp(&a.created));
            assert_eq!(entries.len(), 1000);
        })
    });
    group.finish();
}

criterion_group!(benches, dashboard, listing);
criterion_main!(benches);
