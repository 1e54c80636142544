//! The red-team corpus: every script in `tests/redteam/` is an attack of one class the
//! host must contain (links planted for the host to follow, deadlines switched off,
//! unbounded host memory, panics, SQL side effects and secrets, misuse of the host
//! interface).
//! Each runs through the real binary, as a user would run it, and must:
//!
//! - end with the outcome its header names (`ok` or an error kind), never a crash (exit
//!   101, 134, 139 or a signal) and never past its time bound;
//! - leave every file outside its results folder as it was (a decoy folder beside it is
//!   checksummed before and after, with the files the attacks aim at);
//! - leave the database as it was (the SQLite file's bytes; on PostgreSQL every table's
//!   rows, no replication slot, WAL growth under a bound, statistics not reset);
//! - keep the host's peak RSS under the bound the header names (the binary reports its
//!   own high-water mark from `/proc/self/status` when `METAEXEC_REPORT_PEAK_RSS` is set;
//!   `wait4`'s rusage would count this test process too, since a child's peak starts
//!   from its parent's at the fork).
//!
//! A script's header, in comment lines at its top:
//!
//! ```text
//! # redteam: <the class, and what it tries>
//! # command: exec|sweep [flags ...]     (repeatable: one run per line, same expectations)
//! # db: demo|postgres|none              (default demo: a copy of the demo SQLite file)
//! # expect: ok|<error kind>|any         (for a sweep report: a scenario's or instance's kind)
//! # sanitized: <path>                   (repeatable: must be listed in `sanitized`)
//! # rss-mib: <N>                        (default 1024)
//! # seconds: <N>                        (default 60)
//! # prelude: <path>                     (a helper file in tests/redteam, run before the script)
//! ```

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::{TestContext, metaexec_command};
use crate::pg;

/// Where the attacks aim: files beside the results folder.
const DECOYS: &[(&str, &str)] = &[
    ("decoy/target.txt", "precious\n"),
    ("decoy/.bashrc", "export PATH=/usr/bin\n"),
    ("decoy/nested/deep.txt", "deep\n"),
    ("outside.txt", "outside\n"),
];

#[derive(Debug)]
struct Case {
    name: String,
    path: PathBuf,
    commands: Vec<Vec<String>>,
    db: String,
    expect: String,
    sanitized: Vec<String>,
    rss_mib: u64,
    seconds: u64,
    prelude: Option<PathBuf>,
}

fn corpus() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/redteam");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "py"))
        .collect();
    paths.sort();
    paths.into_iter().map(|path| parse_case(&path)).collect()
}

fn parse_case(path: &Path) -> Case {
    let text = std::fs::read_to_string(path).unwrap();
    let mut case = Case {
        name: path.file_stem().unwrap().to_string_lossy().into_owned(),
        path: path.to_owned(),
        commands: Vec::new(),
        db: "demo".into(),
        expect: String::new(),
        sanitized: Vec::new(),
        rss_mib: 1024,
        seconds: 60,
        prelude: None,
    };
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        let Some((key, value)) = line.trim_start_matches('#').split_once(':') else { continue };
        let value = value.trim();
        match key.trim() {
            "command" => case.commands.push(value.split_whitespace().map(String::from).collect()),
            "db" => case.db = value.into(),
            "expect" => case.expect = value.into(),
            "sanitized" => case.sanitized.push(value.into()),
            "rss-mib" => case.rss_mib = value.parse().unwrap(),
            "seconds" => case.seconds = value.parse().unwrap(),
            "prelude" => case.prelude = Some(path.parent().unwrap().join(value)),
            _ => {}
        }
    }
    assert!(!case.commands.is_empty() && !case.expect.is_empty(), "{}: header needs command and expect", case.name);
    case
}

/// Every file under `root` (not following links) with its checksum; links by target.
/// A file in the run records that metaexec does not write there (something a script
/// planted through them), or a link.
fn stray_record_file(runs: &Path) -> Option<String> {
    const RECORD: [&str; 10] = [
        "entry.json",
        "plan.json",
        "job.json",
        "manifest.json",
        "page.json",
        "report.html",
        "script.py",
        "outcome.json",
        "results.json",
        "sweep.json",
    ];
    for run in std::fs::read_dir(runs).ok()?.map(|e| e.unwrap().path()) {
        let name = run.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with(".index.sqlite") {
            continue;
        }
        for file in std::fs::read_dir(&run).unwrap().map(|e| e.unwrap()) {
            let file_name = file.file_name().to_string_lossy().into_owned();
            if !file.file_type().unwrap().is_file() || !RECORD.contains(&file_name.as_str()) {
                return Some(file.path().display().to_string());
            }
        }
    }
    None
}

fn snapshot(root: &Path, skip: &[&Path]) -> BTreeMap<PathBuf, String> {
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if skip.iter().any(|s| path == *s) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let digest = if meta.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                stack.push(path.clone());
                "dir".into()
            } else {
                let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
                format!("{:x} {mode:o}", Sha256::digest(std::fs::read(&path).unwrap()))
            };
            files.insert(path.strip_prefix(root).unwrap().to_owned(), digest);
        }
    }
    files
}

/// A run of the binary: its exit status, stdout, stderr and elapsed time.
struct Ran {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Ran {
    /// The peak RSS the binary reported as it exited, in MiB.
    fn peak_rss_mib(&self) -> Option<i64> {
        let line = self.stderr.lines().rev().find_map(|l| l.strip_prefix("metaexec: peak RSS "))?;
        Some(line.trim_end_matches(" KiB").parse::<i64>().ok()? / 1024)
    }
}

/// Runs `command` to its end, killing it past `limit`. The exit status comes from
/// `wait4`, so a signal is seen even when stdout is still held open.
fn run_measured(mut command: Command, limit: Duration) -> Ran {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().expect("spawn metaexec");
    let pid = child.id() as libc::pid_t;
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(limit).is_err() {
            // SAFETY: signalling our own child, which has not been reaped yet.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let mut status = 0;
    // SAFETY: waits for our own child; `child.wait()` is never called, so it is reaped once.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, std::ptr::null_mut()) };
    assert_eq!(waited, pid, "wait4 failed");
    let elapsed = started.elapsed();
    let _ = done_tx.send(());
    watchdog.join().unwrap();
    std::mem::forget(child);
    Ran {
        status: std::process::ExitStatus::from_raw(status),
        stdout: out_thread.join().unwrap(),
        stderr: err_thread.join().unwrap(),
        elapsed,
    }
}

/// The error kinds an output names: the outcome's, or a sweep report's scenarios' and
/// replaced instances'.
fn kinds(json: &Value) -> Vec<String> {
    let mut kinds = Vec::new();
    if let Some(kind) = json.pointer("/error/kind").and_then(Value::as_str) {
        kinds.push(kind.to_owned());
    }
    for scenario in json.get("scenarios").and_then(Value::as_array).into_iter().flatten() {
        if let Some(kind) = scenario.pointer("/error/kind").and_then(Value::as_str) {
            kinds.push(kind.to_owned());
        }
    }
    for error in json.get("instance_errors").and_then(Value::as_array).into_iter().flatten() {
        if let Some(kind) = error.get("kind").and_then(Value::as_str) {
            kinds.push(kind.to_owned());
        }
    }
    kinds
}

/// The database a case runs against, and how to tell that it did not change.
enum Db {
    None,
    Sqlite(PathBuf),
    Postgres(String),
}

impl Db {
    fn prepare(kind: &str, ctx: &TestContext) -> Option<Self> {
        match kind {
            "none" => Some(Self::None),
            "demo" => {
                let path = ctx.path().join("demo.db");
                let status = metaexec_command(ctx).args(["db", "demo", "--out"]).arg(&path).status().unwrap();
                assert!(status.success(), "metaexec db demo failed");
                Some(Self::Sqlite(path))
            }
            "postgres" => {
                let url = pg::fresh_database()?;
                let status = metaexec_command(ctx).args(["db", "demo", "--postgres", &url]).status().unwrap();
                assert!(status.success(), "metaexec db demo --postgres failed");
                Some(Self::Postgres(url))
            }
            other => panic!("unknown db `{other}`"),
        }
    }

    fn flag(&self) -> Vec<String> {
        match self {
            Self::None => Vec::new(),
            Self::Sqlite(path) => vec!["--db".into(), format!("sqlite://{}", path.display())],
            Self::Postgres(url) => vec!["--db".into(), url.clone()],
        }
    }

    /// What must not change: the file's bytes, or the rows of every table and the
    /// server's side-effect counters.
    fn state(&self) -> Value {
        match self {
            Self::None => Value::Null,
            Self::Sqlite(path) => Value::String(format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))),
            Self::Postgres(url) => postgres_state(url),
        }
    }
}

fn postgres_state(url: &str) -> Value {
    use sqlx::{Connection, Row};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT quote_ident(table_name) FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let mut state = serde_json::Map::new();
        for table in tables {
            let sql = format!("SELECT coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {table} t");
            let digest: String = sqlx::query_scalar(&sql).fetch_one(&mut conn).await.unwrap();
            state.insert(format!("table {table}"), digest.into());
        }
        let slots: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_replication_slots").fetch_one(&mut conn).await.unwrap();
        state.insert("replication slots".into(), slots.into());
        let row = sqlx::query(
            "SELECT coalesce(stats_reset::text, ''), (SELECT coalesce(stats_reset::text, '') FROM pg_stat_bgwriter) \
             FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        state.insert("stats reset".into(), format!("{}/{}", row.get::<String, _>(0), row.get::<String, _>(1)).into());
        let functions: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        state.insert("functions".into(), functions.into());
        Value::Object(state)
    })
}

/// The server's WAL position in bytes, to bound what a case wrote.
fn wal_bytes(url: &str) -> i64 {
    use sqlx::Connection;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar("SELECT (pg_current_wal_lsn() - '0/0')::bigint").fetch_one(&mut conn).await.unwrap()
    })
}

/// WAL a case may cause on PostgreSQL: a few transactions' worth, far below what one
/// `pg_logical_emit_message` of 50 MB writes.
const WAL_BOUND: i64 = 4 << 20;

/// Runs one case; the problems found, empty when it held.
fn check(case: &Case) -> Vec<String> {
    let ctx = TestContext::new();
    let root = ctx.path();
    for (path, contents) in DECOYS {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    let Some(db) = Db::prepare(&case.db, &ctx) else {
        eprintln!("SKIPPED: red-team case {} needs PostgreSQL", case.name);
        return Vec::new();
    };
    let results = root.join("results");
    // The script as it runs: the prelude first, when there is one.
    let script = match &case.prelude {
        Some(prelude) => {
            let script = root.join(format!("{}.py", case.name));
            let text = std::fs::read_to_string(prelude).unwrap() + "\n" + &std::fs::read_to_string(&case.path).unwrap();
            std::fs::write(&script, text).unwrap();
            script
        }
        None => case.path.clone(),
    };
    let db_file = match &db {
        Db::Sqlite(path) => Some(path.clone()),
        _ => None,
    };
    // The run records metaexec keeps of each command: the host's own files, checked below.
    let runs = root.join("runs");
    let skip: Vec<&Path> =
        [Some(results.as_path()), Some(runs.as_path()), db_file.as_deref()].into_iter().flatten().collect();
    let mut problems = Vec::new();
    for args in &case.commands {
        let _ = std::fs::remove_dir_all(&results);
        let files_before = snapshot(root, &skip);
        let db_before = db.state();
        let wal_before = match &db {
            Db::Postgres(url) => Some(wal_bytes(url)),
            _ => None,
        };
        let mut command = metaexec_command(&ctx);
        command.env("METAEXEC_REPORT_PEAK_RSS", "1").arg(&args[0]).arg(&script).args(&args[1..]);
        command.args(["--json", "--results"]).arg(&results).args(db.flag()).arg("--runs").arg(&runs);
        let shown = format!("{} {}", case.name, args.join(" "));
        let ran = run_measured(command, Duration::from_secs(case.seconds + 30));
        let code = ran.status.code();
        if let Some(signal) = ran.status.signal() {
            problems.push(format!("{shown}: killed by signal {signal}\nstderr: {}", ran.stderr));
            continue;
        }
        if matches!(code, Some(101 | 134 | 139)) {
            problems.push(format!("{shown}: the host crashed (exit {code:?})\nstderr: {}", ran.stderr));
            continue;
        }
        if ran.elapsed > Duration::from_secs(case.seconds) {
            problems.push(format!("{shown}: took {:?}, over its bound of {} s", ran.elapsed, case.seconds));
        }
        let Some(rss_mib) = ran.peak_rss_mib() else {
            problems.push(format!("{shown}: no peak RSS reported\nstderr: {}", ran.stderr));
            continue;
        };
        eprintln!("red-team {shown}: exit {code:?}, {:.1} s, peak RSS {rss_mib} MiB", ran.elapsed.as_secs_f64());
        if rss_mib > case.rss_mib as i64 {
            problems.push(format!("{shown}: peak RSS {rss_mib} MiB, over its bound of {} MiB", case.rss_mib));
        }
        if let Some(stray) = stray_record_file(&runs) {
            problems.push(format!("{shown}: the run record holds a file metaexec does not write: {stray}"));
        }
        let json: Value = match serde_json::from_str(ran.stdout.trim()) {
            Ok(json) => json,
            Err(e) => {
                problems.push(format!("{shown}: no JSON on stdout ({e}): {}\nstderr: {}", ran.stdout, ran.stderr));
                continue;
            }
        };
        let found = kinds(&json);
        let held = match case.expect.as_str() {
            "any" => true,
            "ok" => found.is_empty() && code == Some(0),
            kind => found.iter().any(|k| k == kind) && code == Some(1),
        };
        if !held {
            problems.push(format!("{shown}: expected {}, got exit {code:?} and kinds {found:?}", case.expect));
        }
        let sanitized: Vec<&str> = json
            .get("sanitized")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s.get("path").and_then(Value::as_str))
            .collect();
        for path in &case.sanitized {
            if !sanitized.contains(&path.as_str()) {
                problems.push(format!("{shown}: `{path}` not in sanitized {sanitized:?}"));
            }
        }
        let files_after = snapshot(root, &skip);
        if files_after != files_before {
            problems.push(format!(
                "{shown}: files outside the results folder changed:\n{files_before:#?}\n{files_after:#?}"
            ));
        }
        if db.state() != db_before {
            problems.push(format!("{shown}: the database changed: {db_before} -> {}", db.state()));
        }
        if let (Db::Postgres(url), Some(before)) = (&db, wal_before) {
            let grew = wal_bytes(url) - before;
            if grew > WAL_BOUND {
                problems.push(format!("{shown}: the WAL grew by {grew} bytes"));
            }
        }
        // Nothing the guest left may lead the user's own tools outside the folder.
        if results.exists() {
            for (path, digest) in snapshot(&results, &[]) {
                if let Some(target) = digest.strip_prefix("link ") {
                    let resolved = std::fs::canonicalize(results.join(&path));
                    let inside = resolved.as_ref().is_ok_and(|r| r.starts_with(results.canonicalize().unwrap()));
                    if !inside {
                        problems.push(format!("{shown}: a link leaving the folder was left: {path:?} -> {target}"));
                    }
                }
            }
        }
    }
    problems
}

#[test]
fn every_red_team_attack_fails_closed() {
    let corpus = corpus();
    assert!(corpus.len() >= 8, "the corpus has {} cases", corpus.len());
    let mut failures = Vec::new();
    for case in &corpus {
        failures.extend(check(case));
    }
    assert!(failures.is_empty(), "{} problems:\n\n{}", failures.len(), failures.join("\n\n"));
}
