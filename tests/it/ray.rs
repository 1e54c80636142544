//! The Ray backend against a real Ray head, through its dashboard: shards that succeed, a
//! shard that fails once and recovers, one that always fails, and a run that is cancelled.
//!
//! The shards run a stand-in for metaexec (a shell script shipped as `metaexec`) that writes
//! its arguments into `--out`, so these tests check the transport (package, job, driver,
//! parts in the log, unpacking), not sweeps. The head's dashboard address comes from
//! `METAEXEC_RAY_ADDRESS` (`.ci/ray` starts one); without it the tests fail and say how to
//! start one, unless `METAEXEC_SKIP_RAY=1`, which turns them into loud skips.
//!
//! The tests take turns, so each job has the head's CPUs to itself and its timing printed
//! is its own.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use metaexec::cancel::Cancel;
use metaexec::sweep::ray::{self, RayError, RayEvent, RayJob};

use crate::common::TestContext;

const ADDRESS_ENV: &str = "METAEXEC_RAY_ADDRESS";
const SKIP_ENV: &str = "METAEXEC_SKIP_RAY";

/// Writes `part.json` (its shard, its other arguments, two variables and a shipped file)
/// and a nested file into `--out`. Shard `$EXIT_ONE` exits 1 after writing its part (some
/// scenarios failed: still a part); shard `$ALWAYS_FAIL` exits 4 without one; with
/// `$FAIL_ONCE_DIR`, shard 1's first attempt exits 3; `$SLEEP` delays every shard.
const STAND_IN: &str = r#"#!/bin/sh
set -eu
shard=""; out=""; rest=""
while [ $# -gt 0 ]; do
    case "$1" in
        --shard) shard="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) rest="$rest${rest:+ }$1"; shift ;;
    esac
done
index="${shard%/*}"
if [ -n "${SLEEP:-}" ]; then sleep "$SLEEP"; fi
if [ "${ALWAYS_FAIL:-}" = "$index" ]; then
    echo "shard $index always fails" >&2
    exit 4
fi
if [ -n "${FAIL_ONCE_DIR:-}" ] && [ "$index" = 1 ] && [ ! -e "$FAIL_ONCE_DIR/failed-1" ]; then
    touch "$FAIL_ONCE_DIR/failed-1"
    echo "the first attempt of shard 1 fails on purpose" >&2
    exit 3
fi
mkdir -p "$out/rows"
printf '{"shard": "%s", "args": "%s", "data": "%s", "plain": "%s", "input": "%s"}\n' \
    "$shard" "$rest" "$DATA" "$PLAIN" "$(cat "$DATA/sub/input.txt")" > "$out/part.json"
echo "rows of $shard" > "$out/rows/a.txt"
if [ "${EXIT_ONE:-}" = "$index" ]; then exit 1; fi
"#;

/// The dashboard address and this test's turn; `None` (after a SKIPPED line) when the Ray
/// tests are skipped.
pub(crate) fn head() -> Option<(String, MutexGuard<'static, ()>)> {
    static TURN: Mutex<()> = Mutex::new(());
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: Ray backend test not run ({SKIP_ENV}=1)");
        return None;
    }
    let Ok(address) = std::env::var(ADDRESS_ENV) else {
        panic!(
            "no Ray head for the Ray backend tests: set {ADDRESS_ENV} to a dashboard address. Start one with \
             `.ci/ray` (it prints the address), or by hand: `source <venv with ray[default]>/bin/activate && \
             ray start --head --num-cpus 2 --disable-usage-stats` and {ADDRESS_ENV}=http://127.0.0.1:8265; \
             or set {SKIP_ENV}=1 to skip them"
        )
    };
    Some((address, TURN.lock().unwrap_or_else(|e| e.into_inner())))
}

/// The stand-in and a data folder in `ctx`, and a job running them as 3 shards.
fn job(ctx: &TestContext, address: String, env: &[(&str, &str)]) -> RayJob {
    let stand_in = ctx.path().join("stand-in");
    // Not executable on purpose: the driver makes the shipped `metaexec` executable.
    std::fs::write(&stand_in, STAND_IN).unwrap();
    let data = ctx.path().join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("sub/input.txt"), "shipped").unwrap();
    let mut all_env = vec![("DATA".to_owned(), "inputs".to_owned()), ("PLAIN".to_owned(), "info".to_owned())];
    all_env.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    RayJob {
        address,
        files: vec![("metaexec".into(), stand_in), ("inputs".into(), data)],
        metaexec: None,
        args: vec!["sweep".into(), "inputs/model.py".into()],
        env: all_env,
        shards: 3,
        cpus_per_shard: 1.0,
        max_retries: 1,
    }
}

/// Runs `job`, collecting its events; with `cancel_when_running`, cancels once the job has
/// run for a second.
fn run(job: &RayJob, parts: &Path, cancel_when_running: bool) -> (Result<Vec<PathBuf>, RayError>, Vec<RayEvent>) {
    let events = Mutex::new(Vec::new());
    let cancel = Cancel::new();
    let started = Instant::now();
    let progress = |event: RayEvent| {
        eprintln!("{:>6.2} s  {event:?}", started.elapsed().as_secs_f64());
        if cancel_when_running && event == RayEvent::Status("RUNNING".into()) {
            let cancel = cancel.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_secs(1));
                cancel.cancel();
            });
        }
        events.lock().unwrap().push(event);
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let result = runtime.block_on(ray::run(job, parts, &progress, &cancel));
    eprintln!("ray::run took {:.2} s (package, submit, shards, parts unpacked)", started.elapsed().as_secs_f64());
    (result, events.into_inner().unwrap())
}

/// Part `index`'s `part.json`.
fn part_json(folder: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(folder.join("part.json")).unwrap()).unwrap()
}

#[test]
fn ray_client_three_shards_come_back_as_parts() {
    let Some((address, _turn)) = head() else { return };
    let ctx = TestContext::new();
    let parts = ctx.path().join("parts");
    let (result, events) = run(&job(&ctx, address, &[("EXIT_ONE", "2")]), &parts, false);
    let folders = result.unwrap();
    assert_eq!(folders, (0..3).map(|i| parts.join(format!("part-{i}"))).collect::<Vec<_>>());
    for (index, folder) in folders.iter().enumerate() {
        let part = part_json(folder);
        assert_eq!(part["shard"], format!("{index}/3"));
        assert_eq!(part["args"], "sweep inputs/model.py");
        assert_eq!(part["plain"], "info", "a value naming nothing shipped is passed as it is");
        let data = part["data"].as_str().unwrap();
        assert!(data.starts_with('/') && data.ends_with("/inputs"), "made absolute: {data}");
        assert_eq!(part["input"], "shipped");
        assert_eq!(std::fs::read_to_string(folder.join("rows/a.txt")).unwrap(), format!("rows of {index}/3\n"));
    }
    assert!(events.iter().any(|e| matches!(e, RayEvent::Submitted { .. })));
    for index in 0..3 {
        assert!(events.contains(&RayEvent::ShardDone { index, attempt: 1 }), "{events:?}");
    }
    assert!(events.contains(&RayEvent::Status("SUCCEEDED".into())), "{events:?}");
}

#[test]
fn ray_client_a_shard_that_fails_once_is_retried() {
    let Some((address, _turn)) = head() else { return };
    let ctx = TestContext::new();
    let markers = ctx.path().join("markers");
    std::fs::create_dir_all(&markers).unwrap();
    let parts = ctx.path().join("parts");
    let (result, events) = run(&job(&ctx, address, &[("FAIL_ONCE_DIR", markers.to_str().unwrap())]), &parts, false);
    let folders = result.unwrap();
    assert_eq!(folders.len(), 3);
    assert_eq!(part_json(&folders[1])["shard"], "1/3");
    let retry = events.iter().find_map(|e| match e {
        RayEvent::ShardRetry { index: 1, attempt: 1, message } => Some(message.clone()),
        _ => None,
    });
    let retry = retry.unwrap_or_else(|| panic!("no retry of shard 1: {events:?}"));
    assert!(retry.contains("exited with code 3") && retry.contains("fails on purpose"), "{retry}");
    assert!(events.contains(&RayEvent::ShardDone { index: 1, attempt: 2 }), "{events:?}");
}

#[test]
fn ray_client_a_shard_that_always_fails_is_named() {
    let Some((address, _turn)) = head() else { return };
    let ctx = TestContext::new();
    let parts = ctx.path().join("parts");
    let (result, events) = run(&job(&ctx, address, &[("ALWAYS_FAIL", "2")]), &parts, false);
    let error = result.unwrap_err();
    let RayError::ShardsFailed { failures, .. } = &error else { panic!("{error:?}") };
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!((failures[0].index, failures[0].attempts), (2, 2));
    assert!(failures[0].message.contains("exited with code 4"), "{}", failures[0].message);
    assert!(failures[0].message.contains("shard 2 always fails"), "{}", failures[0].message);
    let message = error.to_string();
    assert!(message.contains("shard 2 (after 2 attempt(s))") && message.contains("hint:"), "{message}");
    assert!(events.iter().any(|e| matches!(e, RayEvent::ShardRetry { index: 2, attempt: 1, .. })));
    // The other shards' parts are there.
    assert_eq!(part_json(&parts.join("part-0"))["shard"], "0/3");
    assert_eq!(part_json(&parts.join("part-1"))["shard"], "1/3");
    assert!(!parts.join("part-2").exists());
}

#[test]
fn ray_client_cancel_stops_the_job() {
    let Some((address, _turn)) = head() else { return };
    let ctx = TestContext::new();
    let parts = ctx.path().join("parts");
    let started = Instant::now();
    let (result, _) = run(&job(&ctx, address, &[("SLEEP", "120")]), &parts, true);
    let error = result.unwrap_err();
    assert!(matches!(&error, RayError::Stopped { job_id: Some(_), still_running: false }), "{error:?}");
    assert!(started.elapsed().as_secs() < 60, "the shards were not left to finish");
    assert!(!parts.exists() || std::fs::read_dir(&parts).unwrap().next().is_none());
}
