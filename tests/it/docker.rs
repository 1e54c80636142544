//! The Docker backend against the real engine: scripts with packages the WASI runtime
//! lacks, tracebacks, every limit, the database over the socket, the generated package
//! built from its own folder, and nothing left behind. `.ci/run` starts an engine and
//! builds the base image; without an engine these tests fail and say how to get one,
//! unless `METAEXEC_SKIP_DOCKER=1`, which turns them into loud skips.
//!
//! The tests take turns (one container at a time), so that after each one "no container
//! carries the label" is a check of that test alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptionsBuilder, ListImagesOptionsBuilder};
use metaexec::db::Capability;
use metaexec::docker::{DockerBackend, DockerOptions, LABEL};
use metaexec::job::Job;
use metaexec::outcome::{ErrorKind, Outcome};

use crate::common::{TestContext, assert_kind, assert_ok, dedent, metaexec_command};
use crate::db_proxy::{proxy, sqlite_demo};

const SKIP_ENV: &str = "METAEXEC_SKIP_DOCKER";

/// The engine and a backend on the user cache, one test at a time; `None` (after a
/// SKIPPED line) when the Docker tests are skipped.
fn engine() -> Option<(MutexGuard<'static, ()>, &'static DockerBackend)> {
    static TURN: Mutex<()> = Mutex::new(());
    static BACKEND: OnceLock<DockerBackend> = OnceLock::new();
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: Docker backend test not run ({SKIP_ENV}=1)");
        return None;
    }
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let backend = BACKEND.get_or_init(|| {
        let mut options = DockerOptions::new(metaexec::cache::cache_dir());
        options.progress = Arc::new(|line| eprintln!("metaexec: {line}"));
        DockerBackend::new(options)
    });
    if let Err(e) = block_on(backend.client()) {
        panic!(
            "no Docker engine for the Docker backend tests: {} ({}); `.ci/run` starts one, or set {SKIP_ENV}=1 to skip them",
            e.message, e.hint
        );
    }
    Some((turn, backend))
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

fn run(backend: &DockerBackend, job: &Job) -> Outcome {
    let outcome = block_on(backend.run(job));
    assert_nothing_left(backend);
    outcome
}

/// No container carries the run label, and no untagged image does.
fn assert_nothing_left(backend: &DockerBackend) {
    let docker: Docker = block_on(backend.client()).unwrap().clone();
    let filters = HashMap::from([("label", vec![LABEL])]);
    let containers = block_on(
        docker.list_containers(Some(ListContainersOptionsBuilder::default().all(true).filters(&filters).build())),
    )
    .unwrap();
    assert!(containers.is_empty(), "containers left behind: {containers:#?}");
    let dangling = HashMap::from([("label", vec![LABEL]), ("dangling", vec!["true"])]);
    let images =
        block_on(docker.list_images(Some(ListImagesOptionsBuilder::default().filters(&dangling).build()))).unwrap();
    assert!(images.is_empty(), "untagged images left behind: {images:#?}");
}

/// The names `sql` selects, read from the demo file directly, not through the proxy.
fn names_read_directly(target: &crate::db_proxy::Target, sql: &str) -> Vec<String> {
    block_on(async {
        use sqlx::Connection;
        let path = target.url.sqlite_path().unwrap().display().to_string();
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}?mode=ro")).await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
    })
}

fn job(ctx: &TestContext, source: &str) -> Job {
    let mut job = Job::new("analysis.py", dedent(source), ctx.results());
    job.limits.timeout = Duration::from_secs(60);
    job
}

#[test]
fn a_script_with_a_package_the_wasi_runtime_lacks_runs_in_a_container() {
    let Some((_turn, backend)) = engine() else { return };
    let ctx = TestContext::new();
    let mut job = job(
        &ctx,
        r#"
        import metaexec, sys
        from tabulate import tabulate
        rows = [{"property": "A", "dscr": 1.31}, {"property": "B", "dscr": 0.97}]
        print(tabulate(rows, headers="keys"))
        metaexec.result([dict(r, shock=metaexec.params["shock"]) for r in rows])
        metaexec.emit("python", sys.version_info[:2])
        metaexec.log("tabulated")
        with open("table.txt", "w") as f:
            f.write(tabulate(rows))
        "#,
    );
    job.params.insert("shock".into(), serde_json::json!(-0.1));
    let outcome = run(backend, &job);
    assert_ok(&outcome);
    assert_eq!(outcome.backend, "docker");
    assert_eq!(outcome.exit_code, 0);
    assert!(outcome.stdout.contains("property") && outcome.stdout.contains("0.97"), "{}", outcome.stdout);
    assert_eq!(outcome.results["result"][1]["dscr"], serde_json::json!(0.97));
    assert_eq!(outcome.results["result"][0]["shock"], serde_json::json!(-0.1));
    assert_eq!(outcome.logs, vec!["tabulated".to_owned()]);
    assert!(outcome.runtime.contains("docker"), "{}", outcome.runtime);
    assert_eq!(outcome.params_read.as_ref().unwrap().names.keys().collect::<Vec<_>>(), vec!["shock"]);
    let table = std::fs::read_to_string(ctx.results().join("table.txt")).unwrap();
    assert!(table.contains("1.31"), "{table}");
}

#[test]
fn a_failing_script_gives_its_own_traceback_and_exit_status() {
    let Some((_turn, backend)) = engine() else { return };
    let ctx = TestContext::new();
    let outcome = run(backend, &job(&ctx, "x = 1\n\ndef f():\n    raise ValueError('no NOI for West Oaks')\n\nf()\n"));
    assert_kind(&outcome, ErrorKind::GuestException);
    let error = outcome.error.as_ref().unwrap();
    assert_eq!(error.message, "ValueError: no NOI for West Oaks");
    assert_eq!(error.line, Some(4));
    let traceback = error.traceback.as_deref().unwrap();
    assert!(traceback.contains("File \"analysis.py\", line 6") && traceback.contains("line 4"), "{traceback}");
    assert!(!traceback.contains("_container") && !traceback.contains("runpy"), "{traceback}");
    assert_eq!(outcome.exit_code, 1);

    let outcome = run(backend, &job(&ctx, "import sys\nprint('partial')\nsys.exit(3)\n"));
    assert_kind(&outcome, ErrorKind::GuestException);
    assert_eq!(outcome.exit_code, 3);
    assert_eq!(outcome.stdout, "partial\n");
}

#[test]
fn the_memory_cap_holds_and_is_reported_as_memory_limit() {
    let Some((_turn, backend)) = engine() else { return };
    let ctx = TestContext::new();
    let mut job = job(&ctx, "blocks = []\nwhile True:\n    blocks.append(bytearray(16 * 1024 * 1024))\n");
    job.limits.memory_bytes = 96 * 1024 * 1024;
    let outcome = run(backend, &job);
    assert_kind(&outcome, ErrorKind::MemoryLimit);
    assert!(outcome.error.as_ref().unwrap().message.contains("96 MiB"), "{outcome:#?}");
}

#[test]
fn a_script_past_its_deadline_is_killed_and_removed() {
    let Some((_turn, backend)) = engine() else { return };
    let ctx = TestContext::new();
    let mut job = job(&ctx, "import time\nprint('started', flush=True)\ntime.sleep(120)\n");
    job.limits.timeout = Duration::from_secs(3);
    let started = std::time::Instant::now();
    let outcome = run(backend, &job);
    assert_kind(&outcome, ErrorKind::Timeout);
    assert_eq!(outcome.stdout, "started\n", "output before the deadline is kept");
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
}

#[test]
fn processes_root_file_system_and_network_are_closed() {
    let Some((_turn, backend)) = engine() else { return };
    let ctx = TestContext::new();
    let outcome = run(
        backend,
        &job(
            &ctx,
            r#"
            import metaexec, os, socket, threading, time
            found = {}
            try:
                open("/usr/lib/planted.txt", "w")
                found["root"] = "writable"
            except OSError as e:
                found["root"] = type(e).__name__
            with open("/tmp/scratch", "w") as f:
                found["tmp"] = f.write("ok")
            try:
                socket.create_connection(("1.1.1.1", 53), timeout=2)
                found["network"] = "reached"
            except OSError as e:
                found["network"] = type(e).__name__
            found["interfaces"] = sorted(os.listdir("/sys/class/net"))
            started = 0
            stop = threading.Event()
            try:
                for _ in range(1000):
                    threading.Thread(target=stop.wait, daemon=True).start()
                    started += 1
            except RuntimeError:
                pass
            stop.set()
            found["threads"] = started
            found["uid"] = os.getuid()
            metaexec.result(found)
            "#,
        ),
    );
    assert_ok(&outcome);
    let found = &outcome.results["result"];
    assert_eq!(found["root"], "OSError", "{found}");
    assert_eq!(found["tmp"], 2);
    assert_ne!(found["network"], "reached", "{found}");
    assert_eq!(found["interfaces"], serde_json::json!(["lo"]), "{found}");
    let threads = found["threads"].as_u64().unwrap();
    assert!(threads < 128, "the pids limit stops thread creation: {threads}");
    assert_ne!(found["uid"], 0, "never root in the container");
}

#[test]
fn output_past_its_cap_stops_the_container() {
    let Some((_turn, backend)) = engine() else { return };
    let ctx = TestContext::new();
    let mut job = job(&ctx, "while True:\n    print('x' * 1000)\n");
    job.limits.stdout_bytes = 64 * 1024;
    let outcome = run(backend, &job);
    assert_kind(&outcome, ErrorKind::OutputLimit);
    assert!(outcome.truncated.stdout && outcome.stdout.len() == 64 * 1024, "{}", outcome.stdout.len());

    // Results past the results cap: the socket answers `stop` and nothing the script
    // catches lets it go on.
    let mut job = job_with_results_cap(&ctx, 4096);
    job.limits.timeout = Duration::from_secs(60);
    let outcome = run(backend, &job);
    assert_kind(&outcome, ErrorKind::OutputLimit);
    assert!(!outcome.stdout.contains("went on"), "{}", outcome.stdout);
}

fn job_with_results_cap(ctx: &TestContext, cap: usize) -> Job {
    let mut job = job(
        ctx,
        r#"
        import metaexec
        for i in range(100):
            try:
                metaexec.emit("part%d" % i, "y" * 1000)
            except BaseException:
                pass
        print("went on")
        "#,
    );
    job.limits.results_bytes = cap;
    job
}

#[test]
fn the_database_is_reached_over_the_socket_with_writes_refused_and_audited() {
    let Some((_turn, backend)) = engine() else { return };
    let ctx = TestContext::new();
    let target = sqlite_demo();
    let mut job = job(
        &ctx,
        r#"
        import metaexec
        from metaexec import db
        rows = db.query("SELECT property_name FROM properties WHERE property_id > ? ORDER BY property_name", [0])
        try:
            db.query("DELETE FROM properties")
            refused = None
        except db.DenyError as e:
            refused = str(e)
        metaexec.result({"count": len(rows), "first": rows[0]["property_name"], "refused": refused,
                         "tables": sorted(t["name"] for t in db.schema()["tables"])})
        "#,
    );
    job.db = Some(proxy(&target, Capability::read_only()));
    let outcome = run(backend, &job);
    assert_ok(&outcome);
    let result = &outcome.results["result"];
    // The same query, asked of the database directly.
    let expected = names_read_directly(
        &target,
        "SELECT property_name FROM properties WHERE property_id > 0 ORDER BY property_name",
    );
    assert_eq!(result["count"], expected.len());
    assert_eq!(result["first"], expected[0].as_str());
    assert!(result["refused"].as_str().is_some_and(|m| !m.is_empty()), "{result}");
    assert!(result["tables"].as_array().unwrap().iter().any(|t| t == "properties"), "{result}");
    let audit = &outcome.db_audit;
    assert_eq!(audit.len(), 3, "{audit:#?}");
    assert!(audit[0].allowed && audit[0].rows == expected.len() as u64);
    assert!(!audit[1].allowed && audit[1].sql == "DELETE FROM properties", "{:#?}", audit[1]);
    assert_eq!(outcome.metrics.db_queries, 3);
}

#[test]
fn the_generated_package_builds_and_runs_from_its_own_folder() {
    let Some((_turn, backend)) = engine() else { return };
    let ctx = TestContext::new();
    let package = ctx.path().join("package");
    let script = ctx.path().join("stress.py");
    std::fs::write(
        &script,
        "import metaexec, os\nshock = metaexec.params.get('noi_change', 0.0)\nkey = os.environ.get('REPORT_TITLE')\n\
         metaexec.result([{'noi': 1000000 * (1 + shock)}])\n",
    )
    .unwrap();
    let status = metaexec_command(&ctx)
        .args(["exec", "stress.py", "--backend", "docker", "--package", "package", "--json"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    for file in metaexec::docker::package::FILES.iter().chain(&["stress.py", "metaexec/__init__.py"]) {
        assert!(package.join(file).is_file(), "{file} missing");
    }
    let env = std::fs::read_to_string(package.join(".env.example")).unwrap();
    assert!(env.contains("REPORT_TITLE=\n"), "{env}");
    use std::os::unix::fs::PermissionsExt;
    assert_ne!(std::fs::metadata(package.join("deploy.sh")).unwrap().permissions().mode() & 0o111, 0);

    // Built as `docker build` would from the folder, then run as compose would.
    let docker = block_on(backend.client()).unwrap().clone();
    let tag = format!("metaexec-package-test:{}", std::process::id());
    let mut context = tar::Builder::new(Vec::new());
    context.append_dir_all(".", &package).unwrap();
    let labels = HashMap::from([(LABEL, "package-test")]);
    block_on(metaexec::docker::build_image(&docker, &tag, &labels, context.into_inner().unwrap()))
        .expect("docker build");
    let results = ctx.path().join("package-results");
    std::fs::create_dir_all(&results).unwrap();
    std::fs::set_permissions(&results, std::fs::Permissions::from_mode(0o777)).unwrap();
    let exit = block_on(run_as_compose_would(&docker, &tag, "METAEXEC_PARAMS={\"noi_change\": -0.2}", &results));
    let _ = block_on(docker.remove_image(&tag, None::<bollard::query_parameters::RemoveImageOptions>, None));
    assert_eq!(exit, 0);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("results.json")).unwrap()).unwrap();
    assert_eq!(written["result"][0]["noi"], serde_json::json!(800000.0));
    assert_nothing_left(backend);
}

#[test]
fn without_an_engine_a_docker_script_fails_with_backend_unavailable_and_a_hint() {
    let ctx = TestContext::new();
    std::fs::write(ctx.path().join("pd.py"), "import pandas\nprint(pandas.__version__)\n").unwrap();
    let output = metaexec_command(&ctx)
        .args(["exec", "pd.py", "--json"])
        .env("DOCKER_HOST", format!("unix://{}/no-engine.sock", ctx.path().display()))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let outcome: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(outcome["error"]["kind"], "backend_unavailable", "{outcome}");
    assert_eq!(outcome["backend"], "docker");
    let hint = outcome["error"]["hint"].as_str().unwrap();
    assert!(hint.contains("dockerd") && hint.contains("--backend wasi"), "{hint}");
}

#[test]
fn exec_json_gives_the_same_outcome_contract_in_both_backends() {
    let Some((_turn, backend)) = engine() else { return };
    let ctx = TestContext::new();
    std::fs::write(ctx.path().join("same.py"), "import metaexec\nprint('hi')\nmetaexec.result({'x': 1})\n").unwrap();
    let mut keys = Vec::new();
    for name in ["wasi", "docker"] {
        let output = metaexec_command(&ctx).args(["exec", "same.py", "--json", "--backend", name]).output().unwrap();
        assert!(output.status.success(), "{name}: {}", String::from_utf8_lossy(&output.stderr));
        let outcome: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(outcome["backend"], name);
        assert_eq!(outcome["results"]["result"]["x"], 1);
        assert_eq!(outcome["stdout"], "hi\n");
        let mut names: Vec<String> = outcome.as_object().unwrap().keys().cloned().collect();
        names.sort();
        keys.push(names);
    }
    assert_eq!(keys[0], keys[1]);
    assert_nothing_left(backend);
}

/// Runs a packaged image as its compose file says (read-only root, `/tmp` in memory, no
/// network, no capabilities, `./results` mounted), removes the container, and returns
/// its exit status.
async fn run_as_compose_would(docker: &Docker, tag: &str, env: &str, results: &std::path::Path) -> i64 {
    use bollard::models::{ContainerCreateBody, HostConfig};
    use bollard::query_parameters::RemoveContainerOptionsBuilder;
    use futures_util::StreamExt;
    let body = ContainerCreateBody {
        image: Some(tag.to_owned()),
        env: Some(vec![env.to_owned()]),
        labels: Some(HashMap::from([(LABEL.to_owned(), "package-test".to_owned())])),
        host_config: Some(HostConfig {
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([("/tmp".to_owned(), "size=64m".to_owned())])),
            network_mode: Some("none".into()),
            cap_drop: Some(vec!["ALL".into()]),
            binds: Some(vec![format!("{}:/results:rw", results.display())]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = docker.create_container(None, body).await.unwrap().id;
    docker.start_container(&id, None).await.unwrap();
    let mut wait = docker.wait_container(&id, None);
    let code = match wait.next().await {
        Some(Ok(response)) => response.status_code,
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
        other => panic!("waiting for the package's container: {other:?}"),
    };
    docker.remove_container(&id, Some(RemoveContainerOptionsBuilder::default().force(true).build())).await.unwrap();
    code
}

/// A model's script that imports a package goes to Docker (not back to the model for a
/// rewrite), with the choice and its reason in the record and the package in the run
/// folder; with `--backend wasi` the same script is sent back instead.
#[test]
fn a_models_script_that_needs_a_package_runs_in_docker_unless_wasi_is_asked_for() {
    use crate::llm_server::{MockLlm, Reply};
    use crate::run::{DOCUMENTS_DSCR, PORTFOLIO_REQUEST, dscr_by_name};
    use crate::run_model::{GOOD, PLAN, answer, run_model};
    let Some((_turn, backend)) = engine() else { return };
    let script = format!("from tabulate import tabulate\n{GOOD}print(tabulate(rows[:2], headers='keys'))\n");
    let server = MockLlm::start(&["test-model"], vec![Reply::Content(PLAN.into()), Reply::Content(answer(&script))]);
    let ctx = TestContext::new();
    let (code, record) = run_model(&ctx, &server, &[PORTFOLIO_REQUEST, "--no-cache"]);
    assert_eq!(code, Some(0), "{record:#}");
    assert_eq!(server.requests().len(), 2, "no rewrite was asked for");
    let attempt = &record["attempts"][0];
    assert_eq!(attempt["validation"]["backend"]["backend"], "docker");
    assert!(attempt["validation"]["backend"]["reason"].as_str().unwrap().contains("tabulate"), "{attempt:#}");
    assert_eq!(record["outcome"]["backend"], "docker");
    assert!(record["outcome"]["stdout"].as_str().unwrap().contains("property_name"), "{record:#}");
    let got: Vec<(String, f64)> =
        dscr_by_name(&record).into_iter().map(|(n, d)| (n, (d * 100.0).round() / 100.0)).collect();
    assert_eq!(got, DOCUMENTS_DSCR.iter().map(|(n, d)| ((*n).to_owned(), *d)).collect::<Vec<_>>());
    let folder = ctx.path().join(record["run_dir"].as_str().expect("the record names its folder"));
    for file in ["Dockerfile", "docker-compose.yml", "deploy.sh", "requirements.txt", "script.py"] {
        assert!(folder.join("package").join(file).is_file(), "{file} in {}", folder.display());
    }
    assert_eq!(std::fs::read_to_string(folder.join("package/requirements.txt")).unwrap(), "tabulate\n");
    assert_nothing_left(backend);

    let server = MockLlm::start(
        &["test-model"],
        vec![Reply::Content(PLAN.into()), Reply::Content(answer(&script)), Reply::Content(answer(GOOD))],
    );
    let (code, record) = run_model(&ctx, &server, &[PORTFOLIO_REQUEST, "--no-cache", "--backend", "wasi"]);
    assert_eq!(code, Some(0), "{record:#}");
    assert_eq!(server.requests().len(), 3, "the script went back for a rewrite");
    assert_eq!(record["attempts"][0]["validation"]["verdict"], "reject");
    assert_eq!(record["outcome"]["backend"], "wasi");
}

/// A sweep of a script that needs Docker says so before running any scenario, instead of
/// failing every scenario on its import.
#[test]
fn a_sweep_of_a_script_that_needs_docker_is_refused_with_the_reason() {
    let ctx = TestContext::new();
    std::fs::write(ctx.path().join("pd.py"), "import pandas\nimport metaexec\nmetaexec.result({'x': 1})\n").unwrap();
    let output =
        metaexec_command(&ctx).args(["sweep", "pd.py", "--grid", "noi_change=-0.1,0", "--json"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let outcome: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(outcome["error"]["kind"], "backend_unavailable", "{outcome}");
    assert!(outcome["error"]["message"].as_str().unwrap().contains("pandas"), "{outcome}");
}

/// Fetches `url` with a plain HTTP/1.0 request; the status line and the body.
fn http(url: &str, post: Option<&str>) -> (String, String) {
    use std::io::{Read, Write};
    let address = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let request = match post {
        Some(body) => format!(
            "POST / HTTP/1.0\r\nHost: {address}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
        None => format!("GET / HTTP/1.0\r\nHost: {address}\r\n\r\n"),
    };
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

/// A Flask app (a package the WASI runtime lacks) served on a loopback port, fetched over
/// HTTP, reading the database through the socket, then stopped and removed.
#[test]
fn a_flask_app_is_served_on_loopback_and_stopped() {
    let Some((_turn, backend)) = engine() else { return };
    let ctx = TestContext::new();
    let target = sqlite_demo();
    let mut job = job(
        &ctx,
        r#"
        from flask import Flask
        from metaexec import db
        app = Flask(__name__)

        @app.route("/")
        def index():
            rows = db.query("SELECT property_name FROM properties ORDER BY property_id")
            return "<ul>" + "".join("<li>%s</li>" % r["property_name"] for r in rows) + "</ul>"

        app.run()
        "#,
    );
    job.db = Some(proxy(&target, Capability::read_only()));
    let log = ctx.path().join("app.log");
    // The app's socket and log are served by tasks of the runtime that started it, which
    // must keep running while the test fetches pages.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let app = runtime.block_on(backend.serve(&job, &log)).unwrap_or_else(|outcome| panic!("{outcome:#?}"));
    assert!(app.url.starts_with("http://127.0.0.1:"), "{}", app.url);
    let (status, body) = http(&app.url, None);
    assert!(status.contains("200"), "{status}: {body}\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    let names = names_read_directly(&target, "SELECT property_name FROM properties ORDER BY property_id");
    assert_eq!(body.matches("<li>").count(), names.len(), "{body}");
    assert!(body.contains(&names[0]), "{body}");
    let outcome = runtime.block_on(app.stop());
    assert_ok(&outcome);
    // The health checks read the data too: at least theirs and ours.
    assert!(outcome.db_audit.len() >= 2 && outcome.db_audit.iter().all(|e| e.allowed), "{:#?}", outcome.db_audit);
    assert!(std::fs::read_to_string(&log).unwrap().contains("GET / HTTP"), "the app's output went to its log");
    assert_nothing_left(backend);
}

/// "Create a dashboard" without a model: a web app left serving on a printed URL, with
/// the DSCR table in colour bands and a what-if form that posts to the app itself, until
/// `metaexec runs stop ID`.
#[test]
fn a_dashboard_request_leaves_a_web_app_serving_until_runs_stop() {
    let Some((_turn, backend)) = engine() else { return };
    let ctx = TestContext::new();
    let output = metaexec_command(&ctx)
        .args(["run", "create a dashboard of the DSCR of every property", "--json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let record: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(record["outcome"]["backend"], "docker", "{record:#}");
    let url = record["outcome"]["results"]["url"].as_str().expect("the outcome names the URL").to_owned();
    let id = record["id"].as_str().expect("the record's id").to_owned();
    let stopped = || {
        let out = metaexec_command(&ctx).args(["runs", "stop", &id, "--json"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let (status, page) = http(&url, None);
    let (_, what_if) = http(&url, Some("noi_change=-20&rate_change=1"));
    let app = stopped();
    assert!(status.contains("200"), "{status}: {page}");
    // Every property of the demo, each in its verdict's colour.
    let target = sqlite_demo();
    let loans = crate::sweep::demo_loans(&target);
    assert_eq!(page.matches("<tr style=\"background:").count(), loans.len(), "{page}");
    for band in ["#d4edda", "#f8d7da"] {
        assert!(page.contains(band), "{band} in {page}");
    }
    // The what-if page: DSCR under NOI -20% and rate +1 pt, against the annuity formula.
    let (name, noi, principal, rate, years) = &loans[0];
    let shocked = noi * 0.8 / crate::sweep::annual_debt_service(*principal, rate + 0.01, *years);
    assert!(what_if.contains("NOI -20.0%, rate +1.00 pt"), "{what_if}");
    let row = what_if.split("</tr>").find(|r| r.contains(name.as_str())).expect("the first property's row");
    assert!(row.contains(&format!("<td>{shocked:.2}</td>")), "{shocked:.2} in {row}");
    assert_eq!(app["status"], "stopped", "{app:#}");
    assert_eq!(app["outcome"]["status"], "ok", "{app:#}");
    assert!(app["outcome"]["db_audit"].as_array().unwrap().len() >= 2, "each page read the data: {app:#}");
    assert!(std::net::TcpStream::connect(url.trim_start_matches("http://").trim_end_matches('/')).is_err());
    assert_nothing_left(backend);
}

/// `metaexec docker prune` removes a container a run left behind (here one made to look
/// like it), by its label.
#[test]
fn prune_removes_what_runs_left_behind() {
    use bollard::models::ContainerCreateBody;
    let Some((_turn, backend)) = engine() else { return };
    let docker = block_on(backend.client()).unwrap().clone();
    let body = ContainerCreateBody {
        image: Some(metaexec::docker::DEFAULT_BASE_IMAGE.to_owned()),
        cmd: Some(vec!["sleep".into(), "300".into()]),
        labels: Some(HashMap::from([(LABEL.to_owned(), "left-behind".to_owned())])),
        ..Default::default()
    };
    let id = block_on(docker.create_container(None, body)).unwrap().id;
    block_on(docker.start_container(&id, None)).unwrap();
    let ctx = TestContext::new();
    let output = metaexec_command(&ctx).args(["docker", "prune", "--json"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["containers"].as_array().unwrap().len(), 1, "{report}");
    assert_nothing_left(backend);
}
