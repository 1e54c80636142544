//! A throwaway PostgreSQL cluster for the tests: one per test process, started on first
//! use, each test getting its own fresh database on it.
//!
//! The cluster lives in a temporary folder, listens on a free loopback port (and a unix
//! socket inside that folder), trusts every local connection and is stopped by a small
//! detached watchdog once the test process has gone, however it ended: a `static` is never
//! dropped, so no destructor could do it. initdb refuses to run as root, so under root the
//! server runs as `nobody`.
//!
//! The server binaries (`initdb`, `pg_ctl`) are looked up on PATH, then under
//! `/usr/lib/postgresql/*/bin` (Debian's layout). When they are missing the tests fail and
//! say how to install them, unless `METAEXEC_SKIP_PG=1`, which turns them into loud skips.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor};

/// Set to `1` to skip the PostgreSQL tests on a machine without the server binaries.
const SKIP_ENV: &str = "METAEXEC_SKIP_PG";
/// The unprivileged account the server runs as when the tests run as root.
const SERVER_USER: &str = "nobody";

/// A running cluster.
pub struct Cluster {
    port: u16,
}

enum State {
    Running(Cluster),
    Skipped(String),
    Failed(String),
}

fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| match bin_dir() {
        None => {
            let why = "the PostgreSQL server binaries (initdb, pg_ctl) are neither on PATH nor under \
                       /usr/lib/postgresql/*/bin";
            if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
                State::Skipped(why.to_owned())
            } else {
                State::Failed(format!(
                    "{why}: install them (Debian/Ubuntu: `apt-get install postgresql`; .ci/run does), \
                     or set {SKIP_ENV}=1 to skip the PostgreSQL tests"
                ))
            }
        }
        Some(bin) => match start(&bin) {
            Ok(cluster) => State::Running(cluster),
            Err(e) => {
                State::Failed(format!("Failed to start a throwaway PostgreSQL cluster with {}: {e}", bin.display()))
            }
        },
    })
}

/// The shared cluster, or `None` (after printing a SKIPPED line) when the tests are to be
/// skipped; panics when it cannot be started.
pub fn cluster() -> Option<&'static Cluster> {
    match state() {
        State::Running(cluster) => Some(cluster),
        State::Skipped(why) => {
            eprintln!("SKIPPED: PostgreSQL test not run ({SKIP_ENV}=1): {why}");
            None
        }
        State::Failed(why) => panic!("{why}"),
    }
}

/// A new, empty database on the shared cluster, as a `postgres://` URL; `None` when the
/// PostgreSQL tests are skipped.
pub fn fresh_database() -> Option<String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let cluster = cluster()?;
    let name = format!("metaexec_test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    block_on(async {
        let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres")).await.expect("connect to the cluster");
        admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("CREATE DATABASE");
        admin.close().await.ok();
    });
    Some(cluster.url(&name))
}

impl Cluster {
    /// The URL of `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime").block_on(future)
}

/// The folder holding `initdb` and `pg_ctl`.
fn bin_dir() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("PATH").iter().flat_map(std::env::split_paths).find(|d| has_tools(d)) {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| has_tools(bin))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program` run as the server's user: `nobody` under root, else the current user.
fn server_command(bin: &Path, program: &str, as_nobody: bool) -> Command {
    let program = bin.join(program);
    let mut command = if as_nobody {
        let mut c = Command::new("runuser");
        c.args(["-u", SERVER_USER, "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    command.env("LC_ALL", "C").stdin(Stdio::null());
    command
}

fn run(mut command: Command, what: &str) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{what}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

fn start(bin: &Path) -> Result<Cluster, String> {
    let as_nobody = is_root();
    let root = tempfile::Builder::new().prefix("metaexec-pg-").tempdir().map_err(|e| e.to_string())?.keep();
    if as_nobody {
        run(
            {
                let mut c = Command::new("chown");
                c.arg(format!("{SERVER_USER}:")).arg(&root);
                c
            },
            "chown of the cluster folder",
        )?;
    }
    let data = root.join("data");
    let mut initdb = server_command(bin, "initdb", as_nobody);
    initdb.arg("-D").arg(&data).args(["--auth=trust", "-U", "postgres", "--encoding=UTF8", "--locale=C", "--no-sync"]);
    run(initdb, "initdb")?;

    // The watchdog is detached (own session) so that it outlives a test process killed with
    // its whole process group, and stops the server once the test process is gone.
    let stop = server_command(bin, "pg_ctl", as_nobody);
    let stop_line = format!(
        "{} -D '{}' -m immediate stop",
        std::iter::once(stop.get_program())
            .chain(stop.get_args())
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" "),
        data.display()
    );
    let watchdog = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; LC_ALL=C {stop_line} >/dev/null 2>&1; rm -rf '{root}'",
        pid = std::process::id(),
        root = root.display(),
    );
    Command::new("setsid")
        .args(["sh", "-c", &watchdog])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the watchdog: {e}"))?;

    let mut last_error = String::new();
    // A port found free may be taken before the server binds it: try a few.
    for _ in 0..3 {
        let port = free_port()?;
        let mut pg_ctl = server_command(bin, "pg_ctl", as_nobody);
        pg_ctl
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(root.join("server.log"))
            .args(["-w", "-t", "60", "-o"])
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
                 -c full_page_writes=off -c max_connections=100",
                root.display()
            ))
            .arg("start");
        match run(pg_ctl, "pg_ctl start") {
            Ok(()) => {
                let cluster = Cluster { port };
                wait_until_ready(&cluster)?;
                return Ok(cluster);
            }
            Err(e) => {
                let log = std::fs::read_to_string(root.join("server.log")).unwrap_or_default();
                last_error = format!("{e}\nserver log:\n{log}");
            }
        }
    }
    Err(last_error)
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn wait_until_ready(cluster: &Cluster) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    block_on(async {
        loop {
            match sqlx::PgConnection::connect(&cluster.url("postgres")).await {
                Ok(connection) => {
                    connection.close().await.ok();
                    return Ok(());
                }
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("the server does not accept connections: {e}"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    })
}

/// The SQL hardening on a real server: admin, replication and settings functions and the
/// catalogs are refused by the policy before they run, and a row over the byte cap is
/// refused by the server before it is sent.
mod hardening {
    use metaexec::budget::HostBudget;
    use metaexec::db::{Capability, DbProxy, Denial};
    use serde_json::json;
    use sqlx::Connection;

    use crate::db_proxy::{block_on, denied, postgres_demo};

    fn slots(url: &str) -> i64 {
        block_on(async {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query_scalar("SELECT count(*) FROM pg_replication_slots").fetch_one(&mut conn).await.unwrap()
        })
    }

    #[test]
    fn admin_functions_and_catalogs_are_refused() {
        let Some(target) = postgres_demo() else { return };
        let proxy = DbProxy::new(target.url.clone(), Capability::default());
        let url = target.url.to_string();
        for sql in [
            "SELECT pg_create_physical_replication_slot('metaexec_test')",
            "SELECT * FROM pg_catalog.pg_create_logical_replication_slot('metaexec_test', 'test_decoding')",
            "SELECT pg_logical_emit_message(false, 'metaexec', 'x')",
            "SELECT pg_stat_reset()",
            "SELECT pg_log_backend_memory_contexts(1)",
            "SELECT 1 ORDER BY pg_stat_reset()",
        ] {
            assert!(matches!(denied(&proxy, sql, &[]), Denial::Function { .. }), "{sql}");
        }
        for sql in [
            "SELECT current_setting('data_directory')",
            "SELECT property_name FROM properties ORDER BY current_setting('hba_file')",
            "SELECT sum(property_id) OVER (PARTITION BY current_setting('config_file')) FROM properties",
            "SELECT version()",
        ] {
            let denial = denied(&proxy, sql, &[]);
            assert!(matches!(denial, Denial::UnlistedFunction { .. }), "{sql}: {denial:?}");
            assert!(denial.hint().unwrap().contains("--db-allow-function"), "{sql}");
        }
        for sql in [
            "SELECT rolname, rolpassword FROM pg_authid",
            "SELECT * FROM \"pg_catalog\".\"pg_authid\"",
            "SELECT * FROM pg_file_settings",
            "SELECT name, setting FROM pg_settings",
            "SELECT * FROM information_schema.tables",
        ] {
            assert!(matches!(denied(&proxy, sql, &[]), Denial::Catalog { .. }), "{sql}");
        }
        assert_eq!(slots(&url), 0);
        // The flag opens one function, on a real server.
        let capability = Capability { allowed_functions: vec!["version".into()], ..Capability::default() };
        let open = DbProxy::new(target.url.clone(), capability);
        let (rows, _) = block_on(open.query("SELECT version() AS v", &[], false)).unwrap();
        assert!(rows.records()[0]["v"].as_str().unwrap().starts_with("PostgreSQL"));
    }

    #[test]
    fn a_row_over_the_byte_cap_is_refused_by_the_server() {
        let Some(target) = postgres_demo() else { return };
        let budget = HostBudget::default();
        let capability = Capability { max_bytes: 1 << 20, ..Capability::default() };
        let proxy = DbProxy::new(target.url.clone(), capability).with_budget(budget.clone());
        for sql in [
            "SELECT repeat('x', 50000000) AS s",
            "SELECT 1 AS a, repeat('x', 2000000) AS s",
            "SELECT array_fill(1, ARRAY[1000000]) AS a",
        ] {
            assert_eq!(denied(&proxy, sql, &[]), Denial::ValueCap { max: 1 << 20 }, "{sql}");
        }
        assert!(budget.peak() <= 1 << 21, "peak {}", budget.peak());
        // The wrapper keeps order, names, duplicate names, parameters and types.
        let (rows, _) = block_on(proxy.query(
            "SELECT property_id AS a, property_id AS a, ? AS p FROM properties ORDER BY property_id DESC",
            &[json!("x")],
            false,
        ))
        .unwrap();
        assert_eq!(rows.columns(), ["a", "a", "p"]);
        let first = rows.rows.records().remove(0);
        assert_eq!(first, vec![json!(10), json!(10), json!("x")]);
        let (rows, _) = block_on(proxy.query("VALUES (1, 'a'), (2, 'b')", &[], false)).unwrap();
        assert_eq!(rows.rows.count, 2);
        let (rows, _) = block_on(proxy.query("WITH t AS (SELECT 1 AS x) SELECT x FROM t", &[], false)).unwrap();
        assert_eq!(rows.records()[0]["x"], 1);
    }
}
