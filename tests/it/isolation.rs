//! What a guest must not be able to do: read host files, list `/`, write outside its
//! results folder (directly, through `..`, or through symlinks), open sockets, start
//! processes, or see the host's environment.

use metaexec::outcome::ErrorKind;
use serde_json::Value;

use crate::common::{TestContext, assert_ok, run_job};

/// Runs `attempt` in the guest and returns what happened: `"ALLOWED ..."` or the
/// exception's class name.
fn attempt(ctx: &TestContext, setup: &str, attempt: &str) -> String {
    let source = format!(
        "import os\nfrom metaexec import emit\n{setup}\ntry:\n    r = {attempt}\n    emit('r', 'ALLOWED %r' % (r,))\nexcept BaseException as e:\n    emit('r', type(e).__name__)\n"
    );
    let outcome = run_job(&ctx.job(&source));
    assert_ok(&outcome);
    outcome.results["r"].as_str().unwrap().to_owned()
}

#[test]
fn host_files_are_invisible() {
    let ctx = TestContext::new();
    assert_eq!(attempt(&ctx, "", "open('/etc/passwd').read()"), "FileNotFoundError");
    assert_eq!(attempt(&ctx, "", "os.listdir('/')"), "FileNotFoundError");
    assert_eq!(attempt(&ctx, "", "open('/proc/self/environ').read()"), "FileNotFoundError");
    assert_eq!(attempt(&ctx, "", "open('../../etc/passwd').read()"), "PermissionError");
}

#[test]
fn writes_outside_results_fail() {
    let ctx = TestContext::new();
    assert_eq!(attempt(&ctx, "", "open('../escape.txt', 'w').write('x')"), "PermissionError");
    assert_eq!(attempt(&ctx, "", "open('/results/../escape.txt', 'w').write('x')"), "PermissionError");
    assert_eq!(attempt(&ctx, "", "open('/tmp/escape.txt', 'w').write('x')"), "FileNotFoundError");
    assert_eq!(attempt(&ctx, "", "open('/python/os.py', 'w').write('x')"), "PermissionError");
    assert_eq!(attempt(&ctx, "", "open('/python/evil.py', 'w').write('x')"), "PermissionError");
    assert!(!ctx.path().join("escape.txt").exists());
}

#[test]
fn symlinks_cannot_escape() {
    let ctx = TestContext::new();
    // A link the guest tries to make.
    assert_eq!(attempt(&ctx, "", "os.symlink('/etc', '/results/etc')"), "PermissionError");
    // A link already in the results folder, made on the host, pointing outside. Each run
    // removes it afterwards (see `sanitized`), so it is planted again before each.
    std::fs::create_dir_all(ctx.results()).unwrap();
    let plant = || std::os::unix::fs::symlink("/etc", ctx.results().join("host_link")).unwrap();
    plant();
    assert_eq!(attempt(&ctx, "", "open('/results/host_link/passwd').read()"), "PermissionError");
    assert!(std::fs::symlink_metadata(ctx.results().join("host_link")).is_err(), "the link was removed");
    plant();
    assert_eq!(attempt(&ctx, "", "open('host_link/evil', 'w').write('x')"), "PermissionError");
    // A relative link the guest makes, leaving the folder: allowed by WASI, removed and
    // reported by the host.
    let outcome =
        run_job(&ctx.job("import os\nos.symlink('../../x', 'rel')\nos.mkdir('d')\nos.symlink('../rel', 'd/r')"));
    assert_ok(&outcome);
    let mut removed: Vec<&str> = outcome.sanitized.iter().map(|s| s.path.as_str()).collect();
    removed.sort();
    assert_eq!(removed, ["d/r", "rel"], "{:?}", outcome.sanitized);
    assert!(std::fs::symlink_metadata(ctx.results().join("rel")).is_err());
}

#[test]
fn writes_inside_results_land_on_the_host() {
    let ctx = TestContext::new();
    let outcome = run_job(&ctx.job("open('report.csv', 'w').write('a,b\\n1,2\\n')\nimport os\nprint(os.getcwd())"));
    assert_ok(&outcome);
    assert_eq!(outcome.stdout, "/results\n");
    assert_eq!(std::fs::read_to_string(ctx.results().join("report.csv")).unwrap(), "a,b\n1,2\n");
}

#[test]
fn no_sockets_and_no_processes() {
    let ctx = TestContext::new();
    let socket = attempt(&ctx, "import socket", "socket.socket()");
    assert!(matches!(socket.as_str(), "OSError" | "PermissionError"), "{socket}");
    // The WASI build lacks most of the socket API; any refusal will do, success will not.
    let connect = attempt(&ctx, "import socket", "socket.create_connection(('127.0.0.1', 22), 1)");
    assert!(matches!(connect.as_str(), "OSError" | "PermissionError" | "gaierror" | "AttributeError"), "{connect}");
    assert_eq!(attempt(&ctx, "", "os.system('ls')"), "AttributeError");
    assert_eq!(attempt(&ctx, "import subprocess", "subprocess.run(['ls'])"), "OSError");
    assert_eq!(attempt(&ctx, "", "os.fork()"), "AttributeError");
}

#[test]
fn environment_holds_no_host_variables() {
    let ctx = TestContext::new();
    let outcome = run_job(&ctx.job("import os\nfrom metaexec import emit\nemit('env', dict(os.environ))"));
    assert_ok(&outcome);
    let Value::Object(env) = &outcome.results["env"] else { panic!("{outcome:#?}") };
    let mut keys: Vec<&str> = env.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert!(keys.is_empty(), "the host's PATH/HOME/... must not leak: {keys:?}");
}

#[test]
fn a_crashing_guest_leaves_the_host_standing() {
    let ctx = TestContext::new();
    // Deep C recursion: repr of a deeply nested list. Whatever the interpreter does, the
    // host classifies it and the next run works.
    let outcome = run_job(&ctx.job(
        "import sys\nsys.setrecursionlimit(10**6)\nx = []\nfor _ in range(10**6):\n    x = [x]\nprint(len(repr(x)))",
    ));
    assert!(!outcome.is_ok());
    assert!(matches!(outcome.error_kind(), Some(ErrorKind::GuestException | ErrorKind::MemoryLimit)), "{outcome:#?}");
    assert_ok(&run_job(&ctx.job("print('still here')")));
}
