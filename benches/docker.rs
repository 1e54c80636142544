//! The Docker backend beside the WASI sandbox, on the same DSCR script
//! (`examples/dscr.py`), in one process:
//!
//! - `docker/warm`: a run in a container whose image exists (create, attach, start, wait,
//!   copy out, remove);
//! - `docker/cold`: the same with the environment image built first (its cache removed
//!   before each run; the base image stays, as it does on a user's machine);
//! - `docker/wasi`: the same script in a fresh WASI instance.
//!
//! Needs a running engine and the base image (`metaexec docker base-image`). Run with
//! `cargo bench --bench docker`.

use std::time::Duration;

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use metaexec::docker::{DockerBackend, DockerOptions, ENV_REPOSITORY};
use metaexec::job::Job;

use common::{results_dir, sandbox};

fn dscr_job() -> Job {
    let source = std::fs::read_to_string("examples/dscr.py").expect("examples/dscr.py");
    Job::new("dscr.py", source, results_dir())
}

fn docker_against_wasi(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let backend = DockerBackend::new(DockerOptions::new(metaexec::cache::cache_dir()));
    let docker = match runtime.block_on(backend.client()) {
        Ok(docker) => docker.clone(),
        Err(e) => {
            eprintln!("SKIPPED: the Docker benchmarks need an engine: {} ({})", e.message, e.hint);
            return;
        }
    };
    let job = dscr_job();
    let first = runtime.block_on(backend.run(&job));
    assert!(first.is_ok(), "{first:?}");
    let mut group = c.benchmark_group("docker");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    group.bench_function("warm", |b| {
        b.iter(|| {
            let outcome = runtime.block_on(backend.run(&job));
            assert!(outcome.is_ok(), "{outcome:?}");
        });
    });
    group.bench_function("cold", |b| {
        b.iter(|| {
            remove_environment_images(&runtime, &docker);
            let outcome = runtime.block_on(backend.run(&job));
            assert!(outcome.is_ok(), "{outcome:?}");
        });
    });
    let sandbox = sandbox();
    group.bench_function("wasi", |b| {
        b.iter(|| {
            let outcome = runtime.block_on(sandbox.run(&job));
            assert!(outcome.is_ok(), "{outcome:?}");
        });
    });
    group.finish();
}

fn remove_environment_images(runtime: &tokio::runtime::Runtime, docker: &bollard::Docker) {
    use bollard::query_parameters::{ListImagesOptionsBuilder, RemoveImageOptionsBuilder};
    let filters = std::collections::HashMap::from([("reference", vec![format!("{ENV_REPOSITORY}:*")])]);
    let images = runtime
        .block_on(docker.list_images(Some(ListImagesOptionsBuilder::default().filters(&filters).build())))
        .unwrap();
    for image in images {
        let options = RemoveImageOptionsBuilder::default().force(true).build();
        runtime.block_on(docker.remove_image(&image.id, Some(options), None)).unwrap();
    }
}

criterion_group!(benches, docker_against_wasi);
criterion_main!(benches);
