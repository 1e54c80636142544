//! The run store through the real binary: every command leaves a run that lists, shows,
//! re-runs (byte for byte when the script is deterministic) and goes away on request; the
//! index is rebuilt when deleted or corrupt; a process killed at any moment leaves no
//! record half-written.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::common::{TestContext, metaexec_command};
use crate::db_proxy::{Target, sqlite_demo};

fn metaexec(ctx: &TestContext, target: &Target, args: &[&str]) -> Output {
    let db = target.url.sqlite_path().unwrap().display().to_string();
    metaexec_command(ctx).args(args).args(["--runs", "runs", "--db", &db]).output().unwrap()
}

#[track_caller]
fn ok(output: &Output) -> &Output {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&ok(output).stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

/// The runs, newest first, from `runs list --json`.
fn list(ctx: &TestContext) -> Vec<Value> {
    let output = metaexec_command(ctx).args(["runs", "list", "--json", "--runs", "runs"]).output().unwrap();
    json(&output).as_array().unwrap().clone()
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name).display().to_string()
}

fn results_json(ctx: &TestContext, id: &str) -> Vec<u8> {
    std::fs::read(ctx.path().join("runs").join(id).join("results.json")).unwrap()
}

#[test]
fn every_command_leaves_a_run_that_reruns_byte_for_byte() {
    let ctx = TestContext::new();
    let target = sqlite_demo();
    let request = json(&metaexec(&ctx, &target, &["run", "calculate DSCR for every property", "--json"]));
    ok(&metaexec(&ctx, &target, &["exec", &example("dscr.py"), "--seed", "7", "--param", "noi_change=-0.1"]));
    ok(&metaexec(&ctx, &target, &["sweep", &example("dscr_stress.py"), "--grid", "noi_change=-0.3,-0.1,0"]));
    let runs = list(&ctx);
    let kinds: Vec<&str> = runs.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["sweep", "exec", "run"], "{runs:#?}");
    assert!(runs.iter().all(|r| r["status"] == "ok"), "{runs:#?}");
    assert!(runs[2]["headline"].as_str().unwrap().contains("DSCR"), "{runs:#?}");
    assert!(runs[0]["headline"].as_str().unwrap().starts_with("3 scenarios"), "{runs:#?}");
    let (sweep_id, exec_id, run_id) =
        (runs[0]["id"].as_str().unwrap(), runs[1]["id"].as_str().unwrap(), runs[2]["id"].as_str().unwrap());
    assert_eq!(run_id, request["id"]);
    for id in [sweep_id, exec_id, run_id] {
        let folder = ctx.path().join("runs").join(id);
        for name in ["job.json", "entry.json", "manifest.json", "report.html", "page.json", "script.py"] {
            assert!(folder.join(name).is_file(), "{name} in {id}");
        }
        let shown = json(
            &metaexec_command(&ctx)
                .args(["runs", "show", id, "--verify", "--json", "--runs", "runs"])
                .output()
                .unwrap(),
        );
        assert_eq!(shown["verified"], true, "{shown:#}");
    }

    // The request again: the same plan and script, the same results to the byte.
    let again = json(&metaexec(&ctx, &target, &["runs", "rerun", run_id, "--json"]));
    let again_id = again["id"].as_str().unwrap();
    assert_ne!(again_id, run_id);
    assert_eq!(results_json(&ctx, again_id), results_json(&ctx, run_id));
    assert_eq!(
        std::fs::read(ctx.path().join("runs").join(again_id).join("script.py")).unwrap(),
        std::fs::read(ctx.path().join("runs").join(run_id).join("script.py")).unwrap()
    );
    // The script again, with its stored parameters and seed.
    let rerun = metaexec(&ctx, &target, &["runs", "rerun", exec_id, "--json"]);
    ok(&rerun);
    let newest = &list(&ctx)[0];
    assert_eq!(newest["rerun_of"], exec_id, "{newest:#}");
    let rerun_id = newest["id"].as_str().unwrap();
    assert_eq!(results_json(&ctx, rerun_id), results_json(&ctx, exec_id));
    // A parameter over the stored ones changes the answer as it should: NOI -20% instead of -10%.
    let shocked = json(&metaexec(&ctx, &target, &["runs", "rerun", exec_id, "--param", "noi_change=-0.2", "--json"]));
    let first = serde_json::from_slice::<Value>(&results_json(&ctx, exec_id)).unwrap();
    let dscr = |v: &Value| v["result"][0]["dscr"].as_f64().unwrap();
    // The script rounds DSCR to two decimals.
    assert!((dscr(&shocked["results"]) - dscr(&first) * 0.8 / 0.9).abs() < 0.006, "{shocked:#}");
    // The sweep again: the same scenarios and the same figures.
    let sweep_again = metaexec(&ctx, &target, &["runs", "rerun", sweep_id, "--json"]);
    let sweep_again: Value = serde_json::from_slice(&ok(&sweep_again).stdout).unwrap();
    let first_sweep: Value =
        serde_json::from_slice(&std::fs::read(ctx.path().join("runs").join(sweep_id).join("sweep.json")).unwrap())
            .unwrap();
    assert_eq!(sweep_again["summary"]["properties"], first_sweep["summary"]["properties"]);
    assert_eq!(sweep_again["scenarios"].as_array().unwrap().len(), 3);
}

#[test]
fn the_index_is_rebuilt_when_deleted_or_corrupt_and_follows_the_folders() {
    let ctx = TestContext::new();
    let target = sqlite_demo();
    for _ in 0..3 {
        ok(&metaexec(&ctx, &target, &["exec", &example("dscr.py")]));
    }
    let first = list(&ctx);
    assert_eq!(first.len(), 3);
    let index = ctx.path().join("runs/.index.sqlite");
    assert!(index.is_file());
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", index.display()));
    }
    assert_eq!(list(&ctx), first, "rebuilt from the folders");
    std::fs::write(&index, b"this is not a database").unwrap();
    let _ = std::fs::remove_file(format!("{}-wal", index.display()));
    assert_eq!(list(&ctx), first, "a corrupt index is rebuilt");
    // A run removed by hand drops out; a run's entry changed by hand is read again.
    let gone = first[0]["id"].as_str().unwrap();
    std::fs::remove_dir_all(ctx.path().join("runs").join(gone)).unwrap();
    let old = first[1]["id"].as_str().unwrap();
    let entry_path = ctx.path().join("runs").join(old).join("entry.json");
    let mut entry: Value = serde_json::from_slice(&std::fs::read(&entry_path).unwrap()).unwrap();
    entry["created"] = "2020-01-01T00:00:00Z".into();
    std::fs::write(&entry_path, serde_json::to_vec(&entry).unwrap()).unwrap();
    let now = list(&ctx);
    let ids: Vec<&str> = now.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [first[2]["id"].as_str().unwrap(), old], "newest first, the stale one updated");
    // gc removes what is older than asked, and only that; rm refuses a typo whole.
    let gc = metaexec_command(&ctx).args(["runs", "gc", "--older-than", "30d", "--runs", "runs"]).output().unwrap();
    assert!(String::from_utf8_lossy(&ok(&gc).stdout).contains(old));
    assert_eq!(list(&ctx).len(), 1);
    let last = first[2]["id"].as_str().unwrap();
    let rm = metaexec_command(&ctx).args(["runs", "rm", last, "no-such-run", "--runs", "runs"]).output().unwrap();
    assert_eq!(rm.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&rm.stderr).contains("no-such-run"));
    assert_eq!(list(&ctx).len(), 1, "nothing removed");
    ok(&metaexec_command(&ctx).args(["runs", "rm", last, "--runs", "runs"]).output().unwrap());
    assert!(list(&ctx).is_empty());
}

#[test]
fn show_verify_finds_a_changed_file() {
    let ctx = TestContext::new();
    let target = sqlite_demo();
    ok(&metaexec(&ctx, &target, &["exec", &example("dscr.py")]));
    let id = list(&ctx)[0]["id"].as_str().unwrap().to_owned();
    std::fs::write(ctx.path().join("runs").join(&id).join("results.json"), "{}").unwrap();
    let shown = metaexec_command(&ctx).args(["runs", "show", &id, "--verify", "--runs", "runs"]).output().unwrap();
    assert_eq!(shown.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("results.json"),
        "{}",
        String::from_utf8_lossy(&shown.stdout)
    );
}

/// Processes killed at every stage of their run: every record file left behind parses,
/// every folder lists, and nothing half-written is taken for a record.
#[test]
fn a_process_killed_mid_write_leaves_no_corrupt_record() {
    let ctx = TestContext::new();
    let target = sqlite_demo();
    // Large results, so the records take a while to write.
    let script = ctx.path().join("big.py");
    std::fs::write(&script, "import metaexec\nmetaexec.result([{'i': i, 'text': 'x' * 200} for i in range(20000)])\n")
        .unwrap();
    let db = target.url.sqlite_path().unwrap().display().to_string();
    let start = || {
        metaexec_command(&ctx)
            .args(["exec", script.to_str().unwrap(), "--runs", "runs", "--db", &db, "--json"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // The quickest of three whole runs sets the pace (a loaded machine slows some); the
    // others are killed at 30 points across it.
    let whole = (0..3)
        .map(|_| {
            let timed = std::time::Instant::now();
            assert!(start().wait().unwrap().success());
            timed.elapsed()
        })
        .min()
        .unwrap();
    let mut killed = 0;
    for step in 0..30 {
        let mut child = start();
        std::thread::sleep(whole * step / 30);
        // SIGKILL: no handler runs, nothing is tidied up.
        if child.try_wait().unwrap().is_none() {
            unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGKILL) };
            killed += 1;
        }
        child.wait().unwrap();
    }
    eprintln!("{killed} of 30 processes killed before they ended (a whole run: {whole:?})");
    assert!(killed >= 10, "only {killed} of 30 processes were killed before they ended");
    let runs = ctx.path().join("runs");
    let mut folders = 0;
    for folder in std::fs::read_dir(&runs).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()) {
        folders += 1;
        for file in std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().path()) {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".json") && !name.starts_with('.') {
                let bytes = std::fs::read(&file).unwrap();
                assert!(serde_json::from_slice::<Value>(&bytes).is_ok(), "{} is not whole", file.display());
            }
        }
    }
    let listed = list(&ctx);
    // A process killed before its folder had an entry leaves a folder that does not list.
    assert!(listed.len() <= folders && !listed.is_empty(), "{} of {folders}", listed.len());
    let running = listed.iter().filter(|r| r["status"] == "running").count();
    eprintln!("{} folders, {} listed, {running} of them killed mid-run", folders, listed.len());
    assert!(running > 0, "some process was killed between its first record and its last");
    for run in &listed {
        let status = run["status"].as_str().unwrap();
        assert!(status == "running" || status == "ok", "{run:#}");
        if status == "ok" {
            let id = run["id"].as_str().unwrap();
            let shown = metaexec_command(&ctx)
                .args(["runs", "show", id, "--verify", "--json", "--runs", "runs"])
                .output()
                .unwrap();
            assert_eq!(json(&shown)["verified"], true, "a finished run is whole: {id}");
        }
    }
}
