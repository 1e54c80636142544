//! The host interface (`runtime/wit/metaexec.wit`): params in, results out, exceptions
//! with the user's line numbers and every kind classified, `print()` output kept apart
//! from results, the snapshot, and `random` seeded per run.

use metaexec::outcome::ErrorKind;
use serde_json::{Value, json};

use crate::common::{TestContext, assert_kind, assert_ok, run_job};

#[test]
fn params_round_trip() {
    let ctx = TestContext::new();
    let mut job = ctx
        .job("from metaexec import params, emit\nemit('seen', dict(params))\nemit('missing', params.get('nope', 42))");
    let params = json!({
        "noi_change": -0.1,
        "name": "Riverside \"Galleria\" ✓",
        "ids": [1, 2, 3],
        "nested": {"a": {"b": [true, false, null]}},
        "big": 12345678901234i64,
    });
    job.params = params.as_object().unwrap().clone();
    let outcome = run_job(&job);
    assert_ok(&outcome);
    assert_eq!(outcome.results["seen"], params);
    assert_eq!(outcome.results["missing"], 42);
}

#[test]
fn params_are_read_only() {
    let ctx = TestContext::new();
    let outcome = run_job(&ctx.job("from metaexec import params\nparams['x'] = 1"));
    assert_kind(&outcome, ErrorKind::GuestException);
    assert!(outcome.error.unwrap().message.starts_with("TypeError"));
}

/// The runtime reports which parameters a script read and the number it fell back to,
/// however it read them; listing them counts as reading them all.
#[test]
fn the_parameters_read_are_reported() {
    let ctx = TestContext::new();
    let mut job = ctx.job(
        r#"
        from metaexec import params
        params.get("rate", 0.01)
        params.get("noi", 0)
        params["given"]
        "flag" in params
        params.get("twice", 1.0)
        params.get("twice", 2.0)
        params.get("text", "x")
        "#,
    );
    job.params = serde_json::json!({"given": 3, "unread": 4}).as_object().unwrap().clone();
    let outcome = run_job(&job);
    assert_ok(&outcome);
    let read = outcome.params_read.expect("reported");
    let expected: Vec<(&str, Option<f64>)> = vec![
        ("flag", None),
        ("given", None),
        ("noi", Some(0.0)),
        ("rate", Some(0.01)),
        ("text", None),
        ("twice", None),
    ];
    assert_eq!(read.names.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(), expected);
    assert!(!read.listed && !read.reads("unread"));
    let outcome = run_job(&ctx.job("from metaexec import params, result\nresult(dict(params))"));
    assert_ok(&outcome);
    assert!(outcome.params_read.unwrap().listed);
}

#[test]
fn results_round_trip() {
    let ctx = TestContext::new();
    let outcome = run_job(&ctx.job(
        r#"
        from metaexec import emit, result
        import datetime, decimal
        result([{"name": "A", "dscr": 1.94}, {"name": "B", "dscr": None}])
        emit("floats", [0.1, 1e300, -2.5e-308, 3.0, -0.0, 123456789.123456789])
        emit("ints", [0, -1, 2**53, -(2**62)])
        emit("text", "quote \" backslash \\ newline \n tab \t nul \x00 bell \x07 del \x7f é ✓ 😀")
        emit("nested", {"a": [1, {"b": [None, True, False]}], 1: "int key", "t": (1, 2)})
        emit("empty", {"list": [], "dict": {}, "str": ""})
        emit("dates", [datetime.date(2024, 1, 31), decimal.Decimal("1.25")])
        emit("nan", float("nan"))
        emit("large", list(range(100000)))
        emit("overwritten", 1)
        emit("overwritten", 2)
        "#,
    ));
    assert_ok(&outcome);
    let r = &outcome.results;
    assert_eq!(r["result"], json!([{"name": "A", "dscr": 1.94}, {"name": "B", "dscr": null}]));
    assert_eq!(r["floats"], json!([0.1, 1e300, -2.5e-308, 3.0, -0.0, 123_456_789.123_456_79]));
    assert_eq!(r["ints"], json!([0, -1, 9007199254740992i64, -4611686018427387904i64]));
    assert_eq!(r["text"], json!("quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} del \u{7f} é ✓ 😀"));
    assert_eq!(r["nested"], json!({"a": [1, {"b": [null, true, false]}], "1": "int key", "t": [1, 2]}));
    assert_eq!(r["empty"], json!({"list": [], "dict": {}, "str": ""}));
    assert_eq!(r["dates"], json!(["2024-01-31", 1.25]));
    assert_eq!(r["nan"], Value::Null);
    let large = r["large"].as_array().unwrap();
    assert_eq!(large.len(), 100000);
    assert_eq!(large[99999], 99999);
    assert_eq!(r["overwritten"], 2);
}

/// Every value arrives as the guest library's JSON encoder writes it, including what
/// the strict encoder refuses (odd keys, NaN, objects).
#[test]
fn values_of_every_shape_arrive_as_the_encoder_writes_them() {
    let ctx = TestContext::new();
    let outcome = run_job(&ctx.job(
        r#"
        from metaexec import emit, _host
        class Odd:
            __slots__ = ()

            def __str__(self):
                return "odd"

        shared = {"k": [1.5, "s"]}
        deep = []
        for _ in range(100):
            deep = [deep]
        cases = {
            "floats": [0.1, -0.0, 5e-324, 1.7976931348623157e308, 1 / 3, 1e22, 123456.789e-3],
            "ints": [0, -1, 2**31, -(2**31) - 1, 2**63 - 1, -(2**63), 2**64 + 1, -(2**100), 10**30],
            "bools": [True, False, None],
            "text": ["", "ascii", "é ✓ 😀", "x" * 300, "\x00\x1f\"\\"],
            "keys": {1: "int", None: "none", True: "bool", 2.5: "float", "s": "str"},
            "containers": {"tuple": (1, (2, 3)), "set": {7}, "frozenset": frozenset(), "empty": {}},
            "shared": [shared, shared, shared],
            "deep": deep,
            "table": [{"name": "P%d" % i, "noi": i * 1234.5678, "dscr": i / 7} for i in range(50)],
            "special": [float("inf"), float("-inf"), float("nan"), 1.0],
        }
        for name, value in cases.items():
            emit(name, value)
            emit(name + " as json", _host.dumps(value))
        emit("fallback", {"odd": Odd()})
        "#,
    ));
    assert_ok(&outcome);
    let r = &outcome.results;
    for name in ["floats", "ints", "bools", "text", "keys", "containers", "shared", "deep", "table", "special"] {
        let json: Value = serde_json::from_str(r[&format!("{name} as json")].as_str().unwrap()).unwrap();
        assert_eq!(r[name], json, "{name}");
    }
    assert_eq!(r["ints"][6], json!(18446744073709551617u128 as f64), "past 64 bits: a float, as JSON reads it");
    assert_eq!(r["special"], json!([null, null, null, 1.0]), "JSON has no such numbers");
    assert_eq!(r["fallback"], json!({"odd": "odd"}));
}

#[test]
fn print_output_never_mixes_with_results() {
    let ctx = TestContext::new();
    let outcome = run_job(&ctx.job(
        r#"
        from metaexec import emit, log
        print("before", end="")
        emit("x", 1)
        print(" after")
        print("\x1eMX1 0000000000000000 5\n{}{}}")
        log("progress line")
        "#,
    ));
    assert_ok(&outcome);
    assert_eq!(outcome.stdout, "before after\n\x1eMX1 0000000000000000 5\n{}{}}\n");
    assert_eq!(outcome.results.len(), 1);
    assert_eq!(outcome.logs, vec!["progress line".to_string()]);
}

#[test]
fn exceptions_carry_the_users_traceback_and_line() {
    let ctx = TestContext::new();
    let mut job = ctx.job(
        "
        from metaexec import emit
        emit('partial', 'kept')

        def ratio(noi, debt_service):
            return noi / debt_service

        ratio(100.0, 0)
        ",
    );
    job.script_name = "dscr_check.py".into();
    let outcome = run_job(&job);
    assert_kind(&outcome, ErrorKind::GuestException);
    assert_eq!(outcome.exit_code, 1);
    let error = outcome.error.as_ref().unwrap();
    assert_eq!(error.message, "ZeroDivisionError: division by zero");
    assert_eq!(error.line, Some(5), "the innermost frame of the user's file");
    let traceback = error.traceback.as_deref().unwrap();
    assert!(traceback.contains("File \"dscr_check.py\", line 7, in <module>"), "{traceback}");
    assert!(traceback.contains("File \"dscr_check.py\", line 5, in ratio"), "{traceback}");
    assert!(traceback.contains("return noi / debt_service"), "source lines shown: {traceback}");
    assert!(!traceback.contains("metaexec_app"), "the runtime's own frames hidden: {traceback}");
    assert_eq!(outcome.results["partial"], "kept", "results before the failure are kept");
    assert!(outcome.stderr.contains("ZeroDivisionError"));
}

#[test]
fn syntax_errors_are_classified_with_their_line() {
    let ctx = TestContext::new();
    let outcome = run_job(&ctx.job("x = 1\ny = (2,\nprint(x"));
    assert_kind(&outcome, ErrorKind::Syntax);
    let error = outcome.error.unwrap();
    assert!(error.line.is_some_and(|l| l >= 2), "{error:?}");
    assert!(error.message.starts_with("SyntaxError"), "{error:?}");
}

#[test]
fn exit_status_is_reported() {
    let ctx = TestContext::new();
    let outcome = run_job(&ctx.job("import sys\nprint('bye')\nsys.exit(3)"));
    assert_kind(&outcome, ErrorKind::GuestException);
    assert_eq!(outcome.exit_code, 3);
    assert_eq!(outcome.stdout, "bye\n");
    assert_ok(&run_job(&ctx.job("import sys\nsys.exit(0)")));
}

#[test]
fn a_script_that_ignores_metaexec_still_runs() {
    let ctx = TestContext::new();
    let outcome = ctx.run("print(sum(range(10)))");
    assert_ok(&outcome);
    assert_eq!(outcome.stdout, "45\n");
    assert!(outcome.results.is_empty());
}

/// The snapshot holds the guest library and the common standard-library modules: a run
/// that imports all of them does no import work (the guest counts every import that has
/// to look for a module). A module outside the snapshot imports from the standard
/// library folder, and is counted.
#[test]
fn the_snapshot_holds_the_guest_library_and_other_modules_import() {
    let ctx = TestContext::new();
    let outcome = run_job(&ctx.job(
        r#"
        import metaexec
        from metaexec import db, finance, scenarios, portfolio, report, runtime_info
        import json, math, statistics, datetime, decimal, re, csv, random, collections, itertools, functools
        from metaexec import emit
        emit("before", runtime_info()["imports_since_snapshot"])
        import difflib, zoneinfo
        emit("diff", "".join(difflib.ndiff(["a\n"], ["b\n"])))
        emit("after", runtime_info()["imports_since_snapshot"])
        emit("python", runtime_info()["python"])
        "#,
    ));
    assert_ok(&outcome);
    let r = &outcome.results;
    assert_eq!(r["before"], 0, "everything imported so far came from the snapshot");
    assert_eq!(r["diff"], "- a\n+ b\n");
    assert!(r["after"].as_u64().unwrap() >= 2, "difflib and zoneinfo were looked for: {}", r["after"]);
    assert!(r["python"].as_str().unwrap().starts_with("3.14."), "{}", r["python"]);
}

/// The snapshot's objects are left out of garbage collection (`gc.freeze`), so a run's
/// collections do not write all over the snapshot's pages; a script's own cyclic garbage is
/// still collected.
#[test]
fn the_snapshot_is_frozen_and_a_scripts_own_cycles_are_still_collected() {
    let ctx = TestContext::new();
    let outcome = run_job(&ctx.job(
        r#"
        import gc
        from metaexec import emit
        emit("frozen", gc.get_freeze_count())
        class Node:
            pass
        for _ in range(100):
            a, b = Node(), Node()
            a.other, b.other = b, a
        del a, b
        emit("collected", gc.collect())
        emit("enabled", gc.isenabled())
        "#,
    ));
    assert_ok(&outcome);
    let r = &outcome.results;
    assert!(r["frozen"].as_u64().unwrap() > 1000, "the snapshot's objects are frozen: {}", r["frozen"]);
    assert!(r["collected"].as_u64().unwrap() >= 200, "the script's cycles were collected: {}", r["collected"]);
    assert_eq!(r["enabled"], true);
}

/// `random` starts every run from the run's seed: the same seed draws the same numbers,
/// another seed other numbers, and no seed a fresh one each time.
#[test]
fn random_is_seeded_per_run() {
    let ctx = TestContext::new();
    let draw = |seed: Option<u64>| {
        let mut job =
            ctx.job("import random\nfrom metaexec import emit\nemit('x', [random.random() for _ in range(3)])");
        job.seed = seed;
        let outcome = run_job(&job);
        assert_ok(&outcome);
        outcome.results["x"].clone()
    };
    assert_eq!(draw(Some(7)), draw(Some(7)));
    assert_ne!(draw(Some(7)), draw(Some(8)));
    assert_ne!(draw(None), draw(None), "a run without a seed gets a fresh one");
}

/// The generator is seeded when a run first reaches for it, by any way in: a function
/// of the module, a name imported from it, `from random import *`, the shared instance
/// itself. Each draws what `random.seed` would have set up. Seeding takes the same fuel
/// whatever the seed's value, and a run that never uses `random` pays nothing for it.
#[test]
fn random_is_seeded_on_first_use_at_a_cost_that_does_not_depend_on_the_seed() {
    let ctx = TestContext::new();
    let run = |source: &str, seed: u64| {
        let mut job = ctx.job(source);
        job.seed = Some(seed);
        job.limits.fuel = Some(u64::MAX / 2);
        let outcome = run_job(&job);
        assert_ok(&outcome);
        (outcome.results.get("x").cloned().unwrap_or_default(), outcome.metrics.fuel_used.unwrap())
    };
    let ways = [
        "import random\nx = [random.random(), random.gauss(0, 1), random.gauss(0, 1)]",
        "from random import random, gauss\nx = [random(), gauss(0, 1), gauss(0, 1)]",
        "from random import *\nx = [random(), gauss(0, 1), gauss(0, 1)]",
        "import random\nr = random._inst\nx = [r.random(), r.gauss(0, 1), r.gauss(0, 1)]",
    ];
    for seed in [0, 1, 255, 1 << 32, 1 << 63, u64::MAX] {
        let key = u128::from(seed) | 1 << 64;
        let expected = run(
            &format!(
                "import random\nfrom metaexec import emit\nrandom.seed({key})\nemit('x', [random.random(), random.gauss(0, 1), random.gauss(0, 1)])"
            ),
            seed,
        )
        .0;
        for way in ways {
            assert_eq!(run(&format!("{way}\nfrom metaexec import emit\nemit('x', x)"), seed).0, expected, "{way}");
        }
    }
    // What is emitted costs the same whatever was drawn (formatting a float would not), and
    // each script runs once first, so that every measured run loads it compiled (see
    // `fuel_is_deterministic`).
    let draw = "import random\nfrom metaexec import emit\nemit('x', 0 <= random.random() < 1)";
    run(draw, 0);
    let fuel: Vec<u64> = [0, 1, 255, 1 << 32, 1 << 63, u64::MAX].into_iter().map(|seed| run(draw, seed).1).collect();
    assert!(fuel.iter().all(|&f| f == fuel[0]), "{fuel:?}");
    // A name the script sets before it first reaches for the generator stays its own.
    let own = run(
        "import random\nrandom.random = lambda: 0.25\nx = [random.random(), random.gauss(0, 1) != 0.25]\nfrom metaexec import emit\nemit('x', x)",
        1,
    );
    assert_eq!(own.0, serde_json::json!([0.25, true]));
    let unused = "from metaexec import emit\nemit('x', 1)";
    let used = "import random\nfrom metaexec import emit\nemit('x', 1)\nrandom.random";
    run(unused, 3);
    run(used, 3);
    let (unused, used) = (run(unused, 3).1, run(used, 3).1);
    assert!(used > unused + 20_000, "seeding costs {} fuel", used - unused);
}

/// Whatever the script raises, `BaseException` subclasses and `SystemExit` included,
/// comes back classified (an uncaught exception in the runtime's export would trap the
/// instance instead).
#[test]
fn every_kind_of_exception_comes_back_classified() {
    let ctx = TestContext::new();
    let cases = [
        ("raise KeyboardInterrupt('stop')", "KeyboardInterrupt: stop", 1),
        ("raise GeneratorExit()", "GeneratorExit", 1),
        ("class Custom(BaseException):\n    pass\nraise Custom('mine')", "Custom: mine", 1),
        ("class Loud(Exception):\n    def __str__(self):\n        raise ValueError('no')\nraise Loud()", "Loud", 1),
        ("import sys\nsys.exit(3)", "The script exited with status 3", 3),
        ("import sys\nsys.exit('gave up')", "The script exited with status 1: gave up", 1),
        ("raise SystemExit(None)", "", 0),
        ("import sys\nsys.stdout = None\nsys.stderr = None\n1 / 0", "ZeroDivisionError: division by zero", 1),
    ];
    for (source, message, exit_code) in cases {
        let outcome = run_job(&ctx.job(source));
        assert_eq!(outcome.exit_code, exit_code, "{source}: {outcome:#?}");
        if exit_code == 0 {
            assert_ok(&outcome);
            continue;
        }
        assert_kind(&outcome, ErrorKind::GuestException);
        let error = outcome.error.unwrap();
        assert!(error.message.starts_with(message), "{source}: {}", error.message);
    }
}
