//! `metaexec serve`: the router driven with `oneshot` for every endpoint (and its errors),
//! one test over a real listener, and a burst of 200 what-ifs. Runs are made by the real
//! binary on a fresh demo database, and what-if figures are checked against the annuity
//! formula over the same file, read directly.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use metaexec::serve::{self, AppState, ServeOptions};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::common::{TestContext, metaexec_command, sandbox};
use crate::db_proxy::{Target, sqlite_demo};
use crate::sweep::{annual_debt_service, demo_loans};

/// A runs folder with one request's run and one script's run, on a fresh demo file.
struct Fixture {
    ctx: TestContext,
    target: Target,
    /// The request's run ("calculate DSCR for every property").
    run_id: String,
}

impl Fixture {
    fn new() -> Self {
        let ctx = TestContext::new();
        let target = sqlite_demo();
        let record = metaexec_json(&ctx, &target, &["run", "calculate DSCR for every property", "--json"]);
        let run_id = record["id"].as_str().expect("the record has an id").to_owned();
        Self { ctx, target, run_id }
    }

    fn runs(&self) -> PathBuf {
        self.ctx.path().join("runs")
    }

    fn state(&self, token: Option<&str>, slots: usize) -> AppState {
        AppState::new(ServeOptions {
            runs: self.runs(),
            cache_root: metaexec::cache::cache_dir(),
            token: token.map(str::to_owned),
            default_db: self.target.url.clone(),
            database_url: None,
            llm: None,
            sandbox_slots: slots,
            pipeline_slots: 1,
            sandbox: sandbox().clone(),
        })
    }

    fn db_path(&self) -> String {
        self.target.url.sqlite_path().unwrap().display().to_string()
    }
}

/// Runs the binary with `--db` on the fixture's file and `--runs` in its folder; the
/// parsed JSON on stdout, after checking it exited 0.
fn metaexec_json(ctx: &TestContext, target: &Target, args: &[&str]) -> Value {
    let db = target.url.sqlite_path().unwrap().display().to_string();
    let output = metaexec_command(ctx).args(args).args(["--db", &db, "--runs", "runs"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// One request through the router: status, headers, body.
async fn call(state: &AppState, request: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let response = serve::router(state.clone()).oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes().to_vec())
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn post_json(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri).header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_owned())).unwrap()
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

/// An error answer: its status and JSON `{kind, message}`.
#[track_caller]
fn assert_error(answer: &(StatusCode, HeaderMap, Vec<u8>), status: StatusCode, kind: &str, says: &str) {
    let body = json_of(&answer.2);
    assert_eq!(answer.0, status, "{body}");
    assert_eq!(body["kind"], kind, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(says), "`{says}` in `{message}`");
}

/// The DSCR column of a simulated scenario, by property.
fn dscrs(scenario: &Value) -> Vec<(String, f64)> {
    scenario["results"]["result"]
        .as_array()
        .expect("a result table")
        .iter()
        .map(|r| (r["property_name"].as_str().unwrap().to_owned(), r["dscr"].as_f64().unwrap()))
        .collect()
}

#[test]
fn every_endpoint_answers_through_the_router() {
    let fx = Fixture::new();
    let exec = metaexec_command(&fx.ctx)
        .args(["exec", "--runs", "runs", "--db", &fx.db_path()])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/dscr.py"))
        .output()
        .unwrap();
    assert_eq!(exec.status.code(), Some(0), "{}", String::from_utf8_lossy(&exec.stderr));
    // A link planted in the run folder is neither listed nor zipped.
    std::os::unix::fs::symlink("/etc/passwd", fx.runs().join(&fx.run_id).join("results/passwd")).unwrap();
    let state = fx.state(None, 2);
    let id = &fx.run_id;
    let properties = demo_loans(&fx.target).len();
    runtime().block_on(async {
        let health = call(&state, get("/health")).await;
        assert_eq!((health.0, json_of(&health.2)["status"].clone()), (StatusCode::OK, json!("ok")));

        let list = call(&state, get("/api/runs")).await;
        let runs = json_of(&list.2);
        let kinds: Vec<&str> = runs.as_array().unwrap().iter().map(|r| r["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["exec", "run"], "newest first: {runs:#}");
        assert_eq!(runs[1]["id"], json!(id));
        assert_eq!(runs[1]["status"], "ok");

        let shown = json_of(&call(&state, get(&format!("/api/runs/{id}"))).await.2);
        assert_eq!(shown["title"], "calculate DSCR for every property");
        assert_eq!(shown["job"]["limits"]["memory_bytes"].as_u64().unwrap() % (1024 * 1024), 0, "{shown:#}");
        assert!(shown["job"]["runtime"].as_str().is_some_and(|h| h.len() == 64), "the runtime's hash: {shown:#}");
        let files: Vec<&str> = shown["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
        for name in ["job.json", "entry.json", "manifest.json", "report.html", "script.py", "results.json"] {
            assert!(files.contains(&name), "{name} in {files:?}");
        }
        assert!(!files.contains(&"results/passwd"), "{files:?}");

        let results = call(&state, get(&format!("/api/runs/{id}/results"))).await;
        let on_disk = std::fs::read(fx.runs().join(id).join("results.json")).unwrap();
        assert_eq!((results.0, &results.2), (StatusCode::OK, &on_disk));
        assert_eq!(json_of(&results.2)["result"].as_array().unwrap().len(), properties);

        let zipped = call(&state, get(&format!("/api/runs/{id}/download"))).await;
        assert_eq!(zipped.0, StatusCode::OK);
        assert_eq!(zipped.1[header::CONTENT_TYPE], "application/zip");
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zipped.2)).unwrap();
        let names: Vec<String> = zip.file_names().map(str::to_owned).collect();
        assert!(names.contains(&format!("{id}/script.py")), "{names:?}");
        assert!(!names.iter().any(|n| n.ends_with("passwd")), "the link stays out: {names:?}");
        let mut script = String::new();
        zip.by_name(&format!("{id}/script.py")).unwrap().read_to_string(&mut script).unwrap();
        assert_eq!(script, std::fs::read_to_string(fx.runs().join(id).join("script.py")).unwrap());

        // The pages escape `/` in attributes as `&#x2f;`, which a browser reads back.
        let list_page = String::from_utf8(call(&state, get("/")).await.2).unwrap().replace("&#x2f;", "/");
        assert!(list_page.contains(&format!("href=\"/runs/{id}\"")), "{list_page}");
        let page = call(&state, get(&format!("/runs/{id}"))).await;
        let page = String::from_utf8(page.2).unwrap();
        assert!(page.contains("id=\"whatif\"") && page.contains(&format!("data-run=\"{id}\"")), "{page}");
        assert!(page.contains("data-band=\"red\""), "Riverside Galleria is under 1.0: {page}");
        // Progress streams are kept for the runs this server started, not the command line's.
        let events = call(&state, get(&format!("/api/runs/{id}/events"))).await;
        assert_error(&events, StatusCode::NOT_FOUND, "not_found", "started by this server");
        let new = call(&state, get("/new")).await;
        assert_eq!(new.0, StatusCode::OK);
        let spec = String::from_utf8(call(&state, get("/api/openapi.yaml")).await.2).unwrap();
        for path in [
            "/health",
            "/api/runs",
            "/api/runs/{id}",
            "/api/runs/{id}/results",
            "/api/simulate",
            "/api/runs/{id}/download",
        ] {
            assert!(spec.contains(&format!("  {path}:")), "{path} documented");
        }
    });
}

#[test]
fn bad_requests_get_a_json_error_that_says_what_was_wrong() {
    let fx = Fixture::new();
    let state = fx.state(None, 2);
    let id = &fx.run_id;
    runtime().block_on(async {
        // Each bad body is refused with 400 and a message that names what was wrong.
        let bad_bodies = [
            ("{not json".to_owned(), ""),
            (format!(r#"{{"run_id": "{id}", "scenarios": [{{"noi_chnge": -0.1}}]}}"#), "noi_chnge"),
            (format!(r#"{{"run_id": "{id}", "scenarios": [{{"noi_change": 1e9}}]}}"#), "noi_change"),
            (format!(r#"{{"run_id": "{id}", "scenarios": []}}"#), "empty"),
            (format!(r#"{{"run_id": "{id}", "scenarios": [{{"rate_change": "high"}}]}}"#), "rate_change"),
            (r#"{"scenarios": [{}]}"#.to_owned(), "run_id"),
        ];
        for (body, says) in &bad_bodies {
            let answer = call(&state, post_json("/api/simulate", body)).await;
            assert_error(&answer, StatusCode::BAD_REQUEST, "bad_request", says);
        }
        let plain = Request::post("/api/simulate").body(Body::from("{}")).unwrap();
        assert_eq!(call(&state, plain).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let unknown = r#"{"run_id": "20990101-000000-nothing", "scenarios": [{}]}"#;
        assert_error(
            &call(&state, post_json("/api/simulate", unknown)).await,
            StatusCode::NOT_FOUND,
            "not_found",
            "20990101-000000-nothing",
        );
        assert_error(
            &call(&state, get("/api/runs/20990101-000000-nothing")).await,
            StatusCode::NOT_FOUND,
            "not_found",
            "no run",
        );
        assert_error(
            &call(&state, get("/api/runs/.index.sqlite/results")).await,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "not a run id",
        );
        assert_error(
            &call(&state, get("/runs/20990101-000000-nothing")).await,
            StatusCode::NOT_FOUND,
            "not_found",
            "no run",
        );
        assert_error(&call(&state, get("/nowhere")).await, StatusCode::NOT_FOUND, "not_found", "openapi");
        let huge = format!(r#"{{"run_id": "{id}", "scenarios": [{{"name": "{}"}}]}}"#, "x".repeat(300 * 1024));
        assert_error(
            &call(&state, post_json("/api/simulate", &huge)).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "",
        );
        assert_error(
            &call(&state, post_json("/api/runs", r#"{"request": "  "}"#)).await,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "empty",
        );
        assert_error(
            &call(&state, post_json("/api/runs", r#"{"request": "x", "options": {"timeout": -1}}"#)).await,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "timeout",
        );
        assert_error(
            &call(&state, post_json("/api/runs", r#"{"request": "x", "options": {"max_repairs": 9}}"#)).await,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "max_repairs",
        );
        // A page elsewhere whose name was rebound to 127.0.0.1 still sends its own name.
        let rebound =
            Request::get("/api/runs").header(header::HOST, "attacker.example:8080").body(Body::empty()).unwrap();
        assert_error(&call(&state, rebound).await, StatusCode::FORBIDDEN, "forbidden", "localhost");
        for host in ["localhost:8080", "127.0.0.1:9", "[::1]:8080", "LOCALHOST"] {
            let local = Request::get("/health").header(header::HOST, host).body(Body::empty()).unwrap();
            assert_eq!(call(&state, local).await.0, StatusCode::OK, "{host}");
        }
        // Nothing of the refused requests reached the runs folder.
        assert_eq!(json_of(&call(&state, get("/api/runs")).await.2).as_array().unwrap().len(), 1);
    });
}

#[test]
fn a_token_is_required_when_one_is_set() {
    let fx = Fixture::new();
    let token = "0123456789abcdef0123";
    let state = fx.state(Some(token), 2);
    runtime().block_on(async {
        assert_error(&call(&state, get("/api/runs")).await, StatusCode::UNAUTHORIZED, "unauthorized", "Bearer");
        assert_error(
            &call(&state, get(&format!("/runs/{}", fx.run_id))).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "token",
        );
        let wrong = Request::get("/api/runs")
            .header(header::AUTHORIZATION, "Bearer 0123456789abcdef0124")
            .body(Body::empty())
            .unwrap();
        assert_eq!(call(&state, wrong).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(call(&state, get("/health")).await.0, StatusCode::OK, "health needs no token");
        let bearer = Request::get("/api/runs")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        assert_eq!(call(&state, bearer).await.0, StatusCode::OK);
        // A browser: the token once in the address, then the cookie it was given.
        let (status, headers, _) = call(&state, get(&format!("/?token={token}"))).await;
        assert_eq!(status, StatusCode::OK);
        let cookie = headers[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
        assert!(headers[header::SET_COOKIE].to_str().unwrap().contains("HttpOnly"));
        let with_cookie = Request::get("/api/runs").header(header::COOKIE, cookie).body(Body::empty()).unwrap();
        assert_eq!(call(&state, with_cookie).await.0, StatusCode::OK);
    });
}

#[test]
fn what_ifs_match_the_annuity_formula_on_the_same_data() {
    let fx = Fixture::new();
    let state = fx.state(None, 2);
    let loans = demo_loans(&fx.target);
    let body = json!({"run_id": fx.run_id, "scenarios": [
        {"name": "base"},
        {"name": "stress", "noi_change": -0.2},
        {"name": "rates", "rate_change": 0.01},
        {"name": "both", "noi_change": -0.1, "rate_change": 0.02},
    ]});
    let answer = runtime().block_on(call(&state, post_json("/api/simulate", &body.to_string())));
    assert_eq!(answer.0, StatusCode::OK, "{}", String::from_utf8_lossy(&answer.2));
    let answer = json_of(&answer.2);
    let scenarios = answer["scenarios"].as_array().unwrap();
    let names: Vec<&str> = scenarios.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["base", "stress", "rates", "both"]);
    for (scenario, (noi_factor, rate_up)) in scenarios.iter().zip([(1.0, 0.0), (0.8, 0.0), (1.0, 0.01), (0.9, 0.02)]) {
        assert_eq!(scenario["status"], "ok", "{scenario:#}");
        assert_eq!(scenario["unread"], json!([]), "the offline script reads its shocks: {scenario:#}");
        let got = dscrs(scenario);
        assert_eq!(got.len(), loans.len());
        for ((name, dscr), (loan_name, noi, principal, rate, years)) in got.iter().zip(&loans) {
            assert_eq!(name, loan_name);
            // Debt service is recomputed from the loan terms only when the rate moves;
            // otherwise it is the recorded one, which the annuity matches to the cent.
            let expected = noi * noi_factor / annual_debt_service(*principal, rate + rate_up, *years);
            assert!((dscr - expected).abs() < 1e-3, "{}: {name} {dscr} vs {expected}", scenario["name"]);
        }
    }
    // A what-if never writes into the run's folder.
    let verify =
        metaexec_command(&fx.ctx).args(["runs", "show", &fx.run_id, "--verify", "--runs", "runs"]).output().unwrap();
    assert_eq!(verify.status.code(), Some(0), "{}", String::from_utf8_lossy(&verify.stdout));
}

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn two_hundred_concurrent_what_ifs_are_all_answered_in_bounded_memory() {
    let fx = Fixture::new();
    let slots = 4;
    let state = fx.state(None, slots);
    let base: Vec<f64> =
        demo_loans(&fx.target).iter().map(|(_, noi, p, r, y)| noi / annual_debt_service(*p, *r, *y)).collect();
    let runtime = runtime();
    // One first, so the memory baseline includes a loaded runtime and an open database.
    let warm = json!({"run_id": fx.run_id, "scenarios": [{"noi_change": 0.0}]}).to_string();
    assert_eq!(runtime.block_on(call(&state, post_json("/api/simulate", &warm))).0, StatusCode::OK);
    let before = rss();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let least_free = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(slots));
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak, least_free, sampling, state) = (peak.clone(), least_free.clone(), sampling.clone(), state.clone());
        std::thread::spawn(move || {
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(rss(), std::sync::atomic::Ordering::Relaxed);
                least_free.fetch_min(state.free_sandbox_slots(), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };
    let changes: Vec<f64> = (0..200).map(|i| -0.5 + f64::from(i) * 0.005).collect();
    let answers = runtime.block_on(async {
        let calls = changes.iter().map(|x| {
            let body = json!({"run_id": fx.run_id, "scenarios": [{"name": format!("{x}"), "noi_change": x}]});
            let state = state.clone();
            tokio::spawn(async move { call(&state, post_json("/api/simulate", &body.to_string())).await })
        });
        futures_util::future::join_all(calls).await
    });
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    for (answer, x) in answers.into_iter().zip(&changes) {
        let (status, _, body) = answer.unwrap();
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let scenario = &json_of(&body)["scenarios"][0];
        for ((name, dscr), expected) in dscrs(scenario).iter().zip(&base) {
            let expected = expected * (1.0 + x);
            assert!((dscr - expected).abs() < 1e-3, "noi_change {x}: {name} {dscr} vs {expected}");
        }
    }
    let grew = peak.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(before);
    eprintln!("200 concurrent what-ifs: resident memory grew by {} MiB at most", grew >> 20);
    assert_eq!(least_free.load(std::sync::atomic::Ordering::Relaxed), 0, "the burst filled every slot");
    assert_eq!(state.free_sandbox_slots(), slots, "every slot came back");
    // Four instances at a time (about 40 MiB measured here): 200 at once would be
    // gigabytes.
    assert!(grew < 384 << 20, "resident memory grew by {} MiB", grew >> 20);
}

#[test]
fn a_request_started_over_a_real_listener_streams_its_stages_and_lists() {
    let fx = Fixture::new();
    let state = fx.state(None, 2);
    let runtime = runtime();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let address = listener.local_addr().unwrap();
    runtime.spawn(async move { axum::serve(listener, serve::router(state)).await });
    let client = reqwest::blocking::Client::new();
    let base = format!("http://{address}");
    assert_eq!(client.get(format!("{base}/health")).send().unwrap().status(), 200);
    let started = client
        .post(format!("{base}/api/runs"))
        .header("content-type", "application/json")
        .body(json!({"request": "which properties have DSCR below 1.2?"}).to_string())
        .send()
        .unwrap();
    assert_eq!(started.status(), 202);
    let started = json_of(&started.bytes().unwrap());
    let id = started["id"].as_str().unwrap().to_owned();
    // The events from the first, however late the subscriber; the stream ends after `done`.
    let events = client.get(format!("{base}{}", started["events"].as_str().unwrap())).send().unwrap().text().unwrap();
    let names: Vec<&str> = events.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(names.first(), Some(&"started"), "{events}");
    assert_eq!(names.last(), Some(&"done"), "{events}");
    for stage in ["schema", "plan", "validate", "execute"] {
        assert!(events.contains(&format!("\"stage\":\"{stage}\"")), "{stage} in {events}");
    }
    assert!(events.contains("\"status\":\"ok\""), "{events}");
    let runs = json_of(&client.get(format!("{base}/api/runs")).send().unwrap().bytes().unwrap());
    assert_eq!(runs[0]["id"], json!(id), "the new run lists first: {runs:#}");
    assert_eq!(runs[0]["status"], "ok");
    let results = json_of(&client.get(format!("{base}/api/runs/{id}/results")).send().unwrap().bytes().unwrap());
    let at_risk: Vec<&str> =
        results["at_risk"].as_array().unwrap().iter().map(|r| r["property_name"].as_str().unwrap()).collect();
    let expected: Vec<String> = demo_loans(&fx.target)
        .into_iter()
        .filter(|(_, noi, p, r, y)| noi / annual_debt_service(*p, *r, *y) < 1.2)
        .map(|(name, ..)| name)
        .collect();
    let mut sorted = at_risk.clone();
    sorted.sort_unstable();
    let mut expected_sorted: Vec<&str> = expected.iter().map(String::as_str).collect();
    expected_sorted.sort_unstable();
    assert_eq!(sorted, expected_sorted, "{results:#}");
    let page = client.get(format!("{base}/runs/{id}")).send().unwrap();
    assert_eq!(page.status(), 200);
}
