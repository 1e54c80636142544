//! Every limit in pairs: a script that stays within it succeeds, one that breaks it is
//! stopped and the outcome names the limit. Classification is asserted, not timings.

use std::time::Duration;

use metaexec::outcome::ErrorKind;

use crate::common::{TestContext, assert_kind, assert_ok, run_job};

const SPIN: &str = "while True:\n    pass\n";

#[test]
fn fuel_obeyed_and_exhausted() {
    let ctx = TestContext::new();
    // Measure what a small script costs, then give ten times that.
    let mut job = ctx.job("total = sum(range(10000))\nprint(total)");
    job.limits.fuel = Some(u64::MAX / 2);
    let baseline = run_job(&job);
    assert_ok(&baseline);
    let used = baseline.metrics.fuel_used.expect("metered run reports fuel");
    assert!(used > 0);
    job.limits.fuel = Some(used * 10);
    let obeyed = run_job(&job);
    assert_ok(&obeyed);
    assert_eq!(obeyed.stdout, "49995000\n");

    let mut spin = ctx.job(SPIN);
    spin.limits.fuel = Some(used * 10);
    let outcome = run_job(&spin);
    assert_kind(&outcome, ErrorKind::FuelExhausted);
    assert_eq!(outcome.metrics.fuel_used, Some(used * 10));
    assert_eq!(outcome.process_exit_code(), 1);
}

#[test]
fn fuel_is_deterministic() {
    let ctx = TestContext::new();
    let mut job = ctx.job("print(sum(i * i for i in range(5000)))");
    job.limits.fuel = Some(u64::MAX / 2);
    job.seed = Some(1);
    // The first run of a script in a process compiles it; later ones load the compiled
    // code. Compiling leaves the interpreter's memory in another state, which can move the
    // fuel of the run after it by a few hundred units. Every run of a separate `metaexec
    // exec` takes the same path (see `exec_seed_repeats_a_run_exactly`).
    run_job(&job);
    let a = run_job(&job).metrics.fuel_used;
    let b = run_job(&job).metrics.fuel_used;
    assert!(a.is_some());
    assert_eq!(a, b);
}

#[test]
fn busy_loop_hits_wall_clock_limit() {
    let ctx = TestContext::new();
    let mut job = ctx.job(SPIN);
    job.limits.timeout = Duration::from_millis(400);
    let outcome = run_job(&job);
    assert_kind(&outcome, ErrorKind::Timeout);

    let mut obeyed = ctx.job("x = 0\nfor i in range(100000):\n    x += i\nprint(x)");
    obeyed.limits.timeout = Duration::from_secs(20);
    assert_ok(&run_job(&obeyed));
}

#[test]
fn sleeping_guest_hits_wall_clock_limit() {
    // Epoch interruption cannot stop a guest blocked in a host call; the outer deadline
    // must. Without it this test would take 30 s and succeed.
    let ctx = TestContext::new();
    let mut job = ctx.job("import time\ntime.sleep(30)\nprint('woke')");
    job.limits.timeout = Duration::from_millis(400);
    let outcome = run_job(&job);
    assert_kind(&outcome, ErrorKind::Timeout);
    assert!(!outcome.stdout.contains("woke"));
    assert!(outcome.metrics.wall_ms < 10_000.0, "the sleep was not cut short: {outcome:#?}");

    let mut obeyed = ctx.job("import time\ntime.sleep(0.05)\nprint('woke')");
    obeyed.limits.timeout = Duration::from_secs(20);
    let outcome = run_job(&obeyed);
    assert_ok(&outcome);
    assert_eq!(outcome.stdout, "woke\n");
}

#[test]
fn memory_cap_obeyed_exceeded_and_recoverable() {
    let ctx = TestContext::new();
    let cap = 96 * 1024 * 1024;

    let mut obeyed = ctx.job("data = bytearray(16 * 1024 * 1024)\nprint(len(data))");
    obeyed.limits.memory_bytes = cap;
    let outcome = run_job(&obeyed);
    assert_ok(&outcome);
    assert!(outcome.metrics.peak_memory_bytes >= 16 * 1024 * 1024);
    assert!(outcome.metrics.peak_memory_bytes <= cap);

    let mut exceeded = ctx.job("data = bytearray(512 * 1024 * 1024)\nprint('allocated')");
    exceeded.limits.memory_bytes = cap;
    let outcome = run_job(&exceeded);
    assert_kind(&outcome, ErrorKind::MemoryLimit);
    assert!(!outcome.stdout.contains("allocated"));
    assert_eq!(outcome.error.as_ref().unwrap().line, Some(1));

    // CPython turns the refused growth into a MemoryError the script can handle.
    let mut recovered = ctx.job(
        "
        try:
            data = bytearray(512 * 1024 * 1024)
        except MemoryError:
            print('recovered')
        ",
    );
    recovered.limits.memory_bytes = cap;
    let outcome = run_job(&recovered);
    assert_ok(&outcome);
    assert_eq!(outcome.stdout, "recovered\n");
}

#[test]
fn stdout_cap_obeyed_and_exceeded() {
    let ctx = TestContext::new();
    let mut job = ctx.job("import sys\nsys.stdout.write('x' * 50_000)\n");
    job.limits.stdout_bytes = 64 * 1024;
    let outcome = run_job(&job);
    assert_ok(&outcome);
    assert_eq!(outcome.stdout.len(), 50_000);
    assert!(!outcome.truncated.stdout);

    let mut job = ctx.job("for i in range(100000):\n    print('line', i)\nprint('END')");
    job.limits.stdout_bytes = 64 * 1024;
    let outcome = run_job(&job);
    assert_kind(&outcome, ErrorKind::OutputLimit);
    assert!(outcome.truncated.stdout);
    assert!(!outcome.truncated.stderr);
    assert_eq!(outcome.stdout.len(), 64 * 1024);
    assert!(outcome.error.as_ref().unwrap().message.contains("stdout"));
}

#[test]
fn stderr_cap_obeyed_and_exceeded() {
    let ctx = TestContext::new();
    let mut job = ctx.job("import sys\nsys.stderr.write('e' * 1000)\n");
    job.limits.stderr_bytes = 4096;
    assert_ok(&run_job(&job));

    let mut job = ctx.job("import sys\nfor i in range(10000):\n    sys.stderr.write('error line %d\\n' % i)\n");
    job.limits.stderr_bytes = 4096;
    let outcome = run_job(&job);
    assert_kind(&outcome, ErrorKind::OutputLimit);
    assert!(outcome.truncated.stderr);
    assert!(!outcome.truncated.stdout);
    assert!(outcome.error.as_ref().unwrap().message.contains("stderr"));
}

#[test]
fn results_cap_obeyed_and_exceeded() {
    let ctx = TestContext::new();
    let mut job = ctx.job("from metaexec import emit\nemit('small', 'x' * 1000)");
    job.limits.results_bytes = 64 * 1024;
    assert_ok(&run_job(&job));

    let mut job = ctx.job("from metaexec import emit\nfor i in range(1000):\n    emit('part%d' % i, 'x' * 1000)");
    job.limits.results_bytes = 64 * 1024;
    let outcome = run_job(&job);
    assert_kind(&outcome, ErrorKind::OutputLimit);
    assert!(outcome.error.as_ref().unwrap().message.contains("results"));
    // What arrived before the cap is kept.
    assert!(outcome.results.contains_key("part0"));
}
