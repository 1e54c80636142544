//! Sweeps split into shards and merged: the real binary, the real sandbox, a real SQLite
//! file; the workers read no database, only the snapshot `--prepare` recorded.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

use crate::common::{TestContext, metaexec_command};
use crate::db_proxy::sqlite_demo;

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/dscr_stress.py").display().to_string()
}

fn ok(output: Output, what: &str) -> Output {
    assert!(
        output.status.code() == Some(0),
        "{what}: exit {:?}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

/// Every scenario row without its timing, and every summary figure.
fn content(report: &Value) -> (Vec<Value>, Value) {
    let rows = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| json!([s["id"], s["params"], s["status"], s["error"], s["results"], s["stdout"], s["logs"]]))
        .collect();
    (rows, report["summary"].clone())
}

/// A database URL that cannot be opened: a worker that tried to read one would fail.
const NO_DATABASE: &str = "sqlite:///nonexistent/metaexec-no-such.db";

/// `metaexec sweep` of shard `shard` of the prepared folder `job` into `out`, on a worker
/// without a database.
fn worker(ctx: &TestContext, job: &Path, script: &str, shard: &str, out: &Path) -> std::process::Command {
    let mut command = metaexec_command(ctx);
    command
        .env("DATABASE_URL", NO_DATABASE)
        .arg("sweep")
        .arg(job.join(script))
        .arg("--plan")
        .arg(job.join("plan.json"));
    command.arg("--snapshot").arg(job.join("snapshot.json")).args(["--shard", shard, "--out"]).arg(out);
    command
}

struct Sweep<'a> {
    ctx: &'a TestContext,
    name: &'a str,
    spec: Vec<&'a str>,
}

impl Sweep<'_> {
    fn local(&self, db: &str) -> Value {
        let results = self.ctx.path().join(format!("{}-local", self.name));
        let output = metaexec_command(self.ctx)
            .args(["sweep", &example(), "--db", db, "--json", "--results"])
            .arg(&results)
            .args(&self.spec)
            .output()
            .unwrap();
        json_of(&ok(output, "local sweep"))
    }

    fn prepare(&self, db: &str) -> PathBuf {
        let dir = self.ctx.path().join(format!("{}-job", self.name));
        let output = metaexec_command(self.ctx)
            .args(["sweep", &example(), "--db", db, "--prepare"])
            .arg(&dir)
            .args(&self.spec)
            .output()
            .unwrap();
        ok(output, "prepare");
        dir
    }

    /// Shard `index` of `count` from the prepared folder, on a worker without a database.
    fn shard(&self, job: &Path, index: usize, count: usize) -> PathBuf {
        let out = self.ctx.path().join(format!("{}-{count}/part-{index}", self.name));
        let output = worker(self.ctx, job, "dscr_stress.py", &format!("{index}/{count}"), &out).output().unwrap();
        ok(output, &format!("shard {index}/{count}"));
        out
    }

    fn merge(&self, parts: &[PathBuf], out: &str) -> Output {
        metaexec_command(self.ctx)
            .env("DATABASE_URL", NO_DATABASE)
            .args(["sweep", "merge"])
            .args(parts)
            .arg("--out")
            .arg(self.ctx.path().join(out))
            .arg("--json")
            .output()
            .unwrap()
    }
}

fn merge_error(output: Output) -> String {
    assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stdout));
    // With --json the error is on stdout, as JSON.
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn merged_shards_equal_the_single_machine_sweep_and_strays_are_refused() {
    let target = sqlite_demo();
    let db = target.url.sqlite_path().unwrap().display().to_string();
    let ctx = TestContext::new();
    let grid = Sweep {
        ctx: &ctx,
        name: "grid",
        spec: vec!["--grid", "noi_change=-0.3..0.1:0.05", "--grid", "rate_change=0,0.01,0.02"],
    };
    let monte_carlo = Sweep {
        ctx: &ctx,
        name: "mc",
        spec: vec![
            "--monte-carlo",
            "40",
            "--seed",
            "11",
            "--dist",
            "noi_change=normal(0,0.08)",
            "--dist",
            "rate_change=uniform(0,0.02)",
        ],
    };
    let mut kept = Vec::new();
    for sweep in [&grid, &monte_carlo] {
        let local = sweep.local(&db);
        let job = sweep.prepare(&db);
        for count in [1, 2, 3, 7] {
            let parts: Vec<PathBuf> = (0..count).map(|i| sweep.shard(&job, i, count)).collect();
            let out = format!("{}-merged-{count}", sweep.name);
            let merged = json_of(&ok(sweep.merge(&parts, &out), "merge"));
            let (rows, summary) = content(&merged);
            let (local_rows, local_summary) = content(&local);
            assert_eq!(rows.len(), local_rows.len());
            for (i, (a, b)) in rows.iter().zip(&local_rows).enumerate() {
                assert_eq!(a, b, "{} scenario {i} of {count} shards", sweep.name);
            }
            assert_eq!(summary, local_summary, "{} summary, {count} shards", sweep.name);
            assert_eq!(merged["metrics"]["bisection_runs"], local["metrics"]["bisection_runs"]);
            // The same files as a single-machine sweep.
            for file in ["results.json", "summary.json", "scenarios.csv", "report.html"] {
                assert!(ctx.path().join(&out).join(file).is_file(), "{out}/{file}");
            }
            let csv = |dir: &str| std::fs::read_to_string(ctx.path().join(dir).join("scenarios.csv")).unwrap();
            assert_eq!(csv(&out), csv(&format!("{}-local", sweep.name)));
            if count == 3 {
                kept.push(parts);
            }
        }
    }
    assert!(!content(&grid.local(&db)).1["break_even"].as_array().unwrap().is_empty(), "the grid has break-evens");

    // Parts that do not belong together are refused, each naming the problem.
    let (grid_parts, mc_parts) = (&kept[0], &kept[1]);
    let e = merge_error(grid.merge(&[grid_parts[0].clone(), grid_parts[2].clone()], "bad-1"));
    assert!(e.contains("shard 1/3") && e.contains("is missing"), "{e}");
    let e =
        merge_error(grid.merge(
            &[grid_parts[0].clone(), grid_parts[1].clone(), grid_parts[1].clone(), grid_parts[2].clone()],
            "bad-2",
        ));
    assert!(e.contains("shard 1/3 is given twice"), "{e}");
    let e = merge_error(grid.merge(&[grid_parts[0].clone(), mc_parts[1].clone(), grid_parts[2].clone()], "bad-3"));
    assert!(e.contains("another plan") && e.contains("mc-3/part-1"), "{e}");
    std::fs::remove_file(grid_parts[2].join("part.json")).unwrap();
    let e = merge_error(grid.merge(grid_parts, "bad-4"));
    assert!(e.contains("did not finish"), "{e}");
    for bad in 1..=4 {
        assert!(!ctx.path().join(format!("bad-{bad}")).exists(), "a refused merge leaves no folder behind");
    }
    // Nor into a folder that holds something: the user's file stays as it was.
    let theirs = ctx.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("results.json"), "mine").unwrap();
    let e = merge_error(grid.merge(&mc_parts[..], "theirs"));
    assert!(e.contains("is not empty"), "{e}");
    assert_eq!(std::fs::read_to_string(theirs.join("results.json")).unwrap(), "mine");
    // A snapshot changed after the shards answered from it would narrow the break-even
    // points on other data: refused.
    let snapshot = mc_parts[0].join("snapshot.json");
    let mut text = std::fs::read_to_string(&snapshot).unwrap();
    text.push(' ');
    std::fs::write(&snapshot, text).unwrap();
    let e = merge_error(monte_carlo.merge(&mc_parts[..], "bad-5"));
    assert!(e.contains("is not the snapshot its part.json names"), "{e}");
}

#[test]
fn a_worker_without_a_database_answers_from_the_snapshot_and_refuses_other_reads() {
    let target = sqlite_demo();
    let db = target.url.sqlite_path().unwrap().display().to_string();
    let ctx = TestContext::new();
    // Reads once whatever the scenario, then one read that depends on it.
    let script = ctx.path().join("depends.py");
    std::fs::write(
        &script,
        "from metaexec import db, params, result\n\
         rows = db.query('SELECT property_name, total_gla_sqft FROM properties ORDER BY property_name')\n\
         cut = params.get('cut', 0)\n\
         if cut:\n    db.query('SELECT property_name FROM properties WHERE total_gla_sqft > ?', [cut])\n\
         result([{'property_name': r['property_name'], 'gla': r['total_gla_sqft'] * (1 + params.get('x', 0))} for r in rows])\n",
    )
    .unwrap();
    let job = ctx.path().join("job");
    let prepare = metaexec_command(&ctx)
        .arg("sweep")
        .arg(&script)
        .args(["--db", &db, "--grid", "x=0,0.1", "--grid", "cut=0,1000", "--prepare"])
        .arg(&job)
        .output()
        .unwrap();
    ok(prepare, "prepare");
    let snapshot: Value = serde_json::from_slice(&std::fs::read(job.join("snapshot.json")).unwrap()).unwrap();
    assert_eq!(snapshot["queries"].as_array().unwrap().len(), 1, "the first scenario (cut=0) made one read");
    let out = ctx.path().join("part");
    let output = worker(&ctx, &job, "depends.py", "0/1", &out).arg("--json").output().unwrap();
    assert_eq!(output.status.code(), Some(1), "some scenarios failed: {}", String::from_utf8_lossy(&output.stderr));
    let part = json_of(&output);
    assert_eq!(part["ok"], 2, "{part}");
    let failures = part["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 2);
    for failure in failures {
        assert!(failure["id"].as_str().unwrap().contains("cut=1000"), "{failure}");
        assert_eq!(failure["kind"], "db_denied");
        let message = failure["message"].as_str().unwrap();
        assert!(message.contains("must not depend on the scenario"), "{message}");
    }
    // The scenarios that did run read the rows the database holds.
    let merged = metaexec_command(&ctx)
        .env("DATABASE_URL", NO_DATABASE)
        .args(["sweep", "merge"])
        .arg(&out)
        .arg("--out")
        .arg(ctx.path().join("merged"))
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(merged.status.code(), Some(1), "{}", String::from_utf8_lossy(&merged.stderr));
    let report = json_of(&merged);
    let conn = rusqlite_like_rows(&db);
    let scenario = report["scenarios"].as_array().unwrap().iter().find(|s| s["id"] == "x=0.1;cut=0").unwrap();
    let rows = scenario["results"]["result"].as_array().unwrap();
    assert_eq!(rows.len(), conn.len());
    for (row, (name, gla)) in rows.iter().zip(&conn) {
        assert_eq!(row["property_name"], name.as_str());
        assert!((row["gla"].as_f64().unwrap() - gla * 1.1).abs() < 1e-6, "{row}");
    }
}

/// The properties' names and floor areas, read from the SQLite file with the sqlite3 command
/// line's library through Python (independent of metaexec's database layer).
fn rusqlite_like_rows(db: &str) -> Vec<(String, f64)> {
    let output = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys, json\n\
             c = sqlite3.connect(sys.argv[1])\n\
             print(json.dumps(c.execute('SELECT property_name, total_gla_sqft FROM properties ORDER BY property_name').fetchall()))",
            db,
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A 20,000-scenario Monte Carlo sweep run as 3 shards on a real local Ray head (this
/// binary and its runtime shipped with the job, no database on the workers) gives what
/// the same sweep gives on this machine.
#[test]
fn a_sweep_on_ray_equals_the_local_sweep() {
    let Some((address, _turn)) = crate::ray::head() else { return };
    let target = sqlite_demo();
    let db = target.url.sqlite_path().unwrap().display().to_string();
    let ctx = TestContext::new();
    let sweep = Sweep {
        ctx: &ctx,
        name: "ray",
        spec: vec![
            "--monte-carlo",
            "20000",
            "--seed",
            "3",
            "--dist",
            "noi_change=normal(0,0.08)",
            "--dist",
            "rate_change=uniform(0,0.02)",
        ],
    };
    let local = sweep.local(&db);
    let parts = ctx.path().join("ray-parts");
    let output = metaexec_command(&ctx)
        .args(["sweep", &example(), "--db", &db, "--json", "--results"])
        .arg(ctx.path().join("ray-results"))
        .args(&sweep.spec)
        .args(["--ray", &address, "--shards", "3", "--parts"])
        .arg(&parts)
        .output()
        .unwrap();
    let on_ray = json_of(&ok(output, "sweep on Ray"));
    let (rows, summary) = content(&on_ray);
    let (local_rows, local_summary) = content(&local);
    assert_eq!(rows.len(), 20_000);
    assert!(rows == local_rows, "every scenario row equals the local one");
    assert_eq!(summary, local_summary);
    // Three parts came back, each from a worker that read no database.
    for index in 0..3 {
        let part: Value =
            serde_json::from_slice(&std::fs::read(parts.join(format!("part-{index}/part.json"))).unwrap()).unwrap();
        assert_eq!(part["shard"], json!({"index": index, "count": 3}));
        assert_eq!(part["data"]["kind"], "snapshot", "{part}");
        assert_eq!(part["metrics"]["db_queries"], 0);
    }
}

/// The Ray jobs the head knows, as (submission id, status).
fn ray_jobs(address: &str) -> Vec<(String, String)> {
    let text = reqwest::blocking::get(format!("{address}/api/jobs/")).unwrap().text().unwrap();
    let jobs: Vec<Value> = serde_json::from_str(&text).unwrap();
    jobs.iter()
        .map(|j| (j["submission_id"].as_str().unwrap_or_default().to_owned(), j["status"].as_str().unwrap().to_owned()))
        .collect()
}

/// Ctrl-C on `metaexec sweep --ray` stops the job on the cluster and exits 130.
#[test]
fn ctrl_c_stops_the_ray_job() {
    let Some((address, _turn)) = crate::ray::head() else { return };
    let ctx = TestContext::new();
    // About two minutes of work: far longer than the test waits.
    std::fs::write(
        ctx.path().join("slow.py"),
        "import time\nfrom metaexec import params, result\ntime.sleep(0.05)\nresult([{'x': params.get('x')}])\n",
    )
    .unwrap();
    let before: Vec<String> = ray_jobs(&address).into_iter().map(|(id, _)| id).collect();
    let mut child = metaexec_command(&ctx)
        .args(["sweep", "slow.py", "--grid", "x=1..5000:1", "--ray", &address, "--shards", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let job = loop {
        if let Some((id, _)) =
            ray_jobs(&address).into_iter().find(|(id, status)| !before.contains(id) && status == "RUNNING")
        {
            break id;
        }
        assert!(child.try_wait().unwrap().is_none(), "metaexec ended before its job ran");
        assert!(started.elapsed() < std::time::Duration::from_secs(120), "the job never ran");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    // The shards are under way.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: `kill` has no memory effects; the pid is our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("stopping the Ray job"), "{stderr}");
    let status = ray_jobs(&address).into_iter().find(|(id, _)| *id == job).map(|(_, status)| status);
    assert_eq!(status.as_deref(), Some("STOPPED"), "{stderr}");
}
