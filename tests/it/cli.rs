//! The real `metaexec` binary: exit codes, `--json`, human output, usage errors.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use metaexec::db::demo::DEMO_DSCR;

use crate::common::{TestContext, metaexec_command};

fn metaexec(ctx: &TestContext, args: &[&str]) -> Output {
    metaexec_command(ctx)
        .args(args)
        .env("AWS_SECRET_ACCESS_KEY", "host-secret-value")
        .output()
        .expect("running metaexec")
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name).display().to_string()
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[test]
fn exec_dscr_example_json() {
    let ctx = TestContext::new();
    let output = metaexec(&ctx, &["exec", &example("dscr.py"), "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let outcome = json_of(&output);
    assert_eq!(outcome["status"], "ok");
    assert_eq!(outcome["backend"], "wasi");
    assert_eq!(outcome["error"], Value::Null);
    for key in ["wall_ms", "fuel_used", "peak_memory_bytes", "db_queries"] {
        assert!(outcome["metrics"].get(key).is_some(), "metrics.{key}");
    }
    let rows = outcome["results"]["result"].as_array().unwrap();
    assert_eq!(rows.len(), 10);
    for (row, (name, dscr)) in rows.iter().zip(DEMO_DSCR) {
        assert_eq!(row["property"], name);
        assert_eq!(row["dscr"].as_f64().unwrap(), dscr, "{name}");
        let computed = row["noi"].as_f64().unwrap() / row["annual_debt_service"].as_f64().unwrap();
        assert_eq!((computed * 100.0).round() / 100.0, dscr, "{name}: NOI / debt service");
    }
    let summary = &outcome["results"]["summary"];
    assert_eq!(summary["approve"], 5);
    assert_eq!(summary["review"], 3);
    assert_eq!(summary["reject"], 2);
    assert!(ctx.path().join("results").is_dir(), "default results folder is ./results");
}

#[test]
fn exec_with_a_param_stresses_noi() {
    let ctx = TestContext::new();
    let output = metaexec(&ctx, &["exec", &example("dscr.py"), "--param", "noi_change=-0.2", "--json"]);
    assert_eq!(output.status.code(), Some(0));
    let outcome = json_of(&output);
    let first = &outcome["results"]["result"][0];
    assert_eq!(first["dscr"].as_f64().unwrap(), ((7_616_500.0 * 0.8 / 3_926_027.2) * 100.0f64).round() / 100.0);
}

#[test]
fn exec_human_output_shows_tables_and_metrics() {
    let ctx = TestContext::new();
    let output = metaexec(&ctx, &["exec", &example("dscr.py")]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stdout.contains("Riverside Galleria") && stdout.contains("0.89"), "{stdout}");
    assert!(stdout.contains("portfolio DSCR"), "{stdout}");
    assert!(stderr.contains("[log] computing DSCR"), "{stderr}");
    assert!(stderr.contains("ok in") && stderr.contains("CPython 3.14"), "{stderr}");
}

#[test]
fn failing_script_exits_1_with_kind() {
    let ctx = TestContext::new();
    std::fs::write(ctx.path().join("bad.py"), "x = 1\nraise ValueError('bad input')\n").unwrap();
    let output = metaexec(&ctx, &["exec", "bad.py", "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let outcome = json_of(&output);
    assert_eq!(outcome["status"], "error");
    assert_eq!(outcome["error"]["kind"], "guest_exception");
    assert_eq!(outcome["error"]["line"], 2);
    assert!(outcome["error"]["traceback"].as_str().unwrap().contains("bad.py"));

    let output = metaexec(&ctx, &["exec", "bad.py"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("error[guest_exception]: ValueError: bad input (line 2)"), "{stderr}");
}

#[test]
fn limits_from_flags() {
    let ctx = TestContext::new();
    std::fs::write(ctx.path().join("spin.py"), "while True:\n    pass\n").unwrap();
    let output = metaexec(&ctx, &["exec", "spin.py", "--timeout", "0.3", "--json"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(json_of(&output)["error"]["kind"], "timeout");
    let output = metaexec(&ctx, &["exec", "spin.py", "--fuel", "300000000", "--json"]);
    assert_eq!(json_of(&output)["error"]["kind"], "fuel_exhausted");
    std::fs::write(ctx.path().join("big.py"), "b = bytearray(300 * 1024 * 1024)\n").unwrap();
    let output = metaexec(&ctx, &["exec", "big.py", "--memory", "64", "--json"]);
    assert_eq!(json_of(&output)["error"]["kind"], "memory_limit");
    std::fs::write(ctx.path().join("loud.py"), "print('x' * 5000)\n").unwrap();
    let output = metaexec(&ctx, &["exec", "loud.py", "--max-output", "1000", "--json"]);
    let outcome = json_of(&output);
    assert_eq!(outcome["error"]["kind"], "output_limit");
    assert_eq!(outcome["truncated"]["stdout"], true);
}

#[test]
fn usage_errors_exit_2() {
    let ctx = TestContext::new();
    let output = metaexec(&ctx, &["exec", "does-not-exist.py", "--json"]);
    assert_eq!(output.status.code(), Some(2));
    let outcome = json_of(&output);
    assert_eq!(outcome["error"]["kind"], "usage");
    assert!(outcome["error"]["message"].as_str().unwrap().contains("does-not-exist.py"));

    std::fs::write(ctx.path().join("ok.py"), "print(1)\n").unwrap();
    let output = metaexec(&ctx, &["exec", "ok.py", "--param", "novalue"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("KEY=VALUE"));

    std::fs::write(ctx.path().join("params.json"), "[1, 2]").unwrap();
    let output = metaexec(&ctx, &["exec", "ok.py", "--params-file", "params.json", "--json"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(json_of(&output)["error"]["message"].as_str().unwrap().contains("JSON object"));

    let output = metaexec(&ctx, &["exec", "ok.py", "--timeout", "-1"]);
    assert_eq!(output.status.code(), Some(2));

    let output = metaexec(&ctx, &["exec"]);
    assert_eq!(output.status.code(), Some(2), "clap usage errors are exit 2 too");
}

#[test]
fn params_file_and_flags_combine() {
    let ctx = TestContext::new();
    std::fs::write(ctx.path().join("p.py"), "from metaexec import params, emit\nemit('p', dict(params))\n").unwrap();
    std::fs::write(ctx.path().join("params.json"), r#"{"a": 1, "b": "file"}"#).unwrap();
    let output = metaexec(&ctx, &["exec", "p.py", "--params-file", "params.json", "-p", "b=flag", "--json"]);
    assert_eq!(json_of(&output)["results"]["p"], serde_json::json!({"a": 1, "b": "flag"}));
}

#[test]
fn host_secrets_do_not_reach_the_guest() {
    let ctx = TestContext::new();
    std::fs::write(
        ctx.path().join("env.py"),
        "import os\nprint(sorted(os.environ))\nprint(os.environ.get('AWS_SECRET_ACCESS_KEY'))\n",
    )
    .unwrap();
    let output = metaexec(&ctx, &["exec", "env.py", "--json"]);
    let outcome = json_of(&output);
    let stdout = outcome["stdout"].as_str().unwrap();
    assert!(!stdout.contains("host-secret-value"), "{stdout}");
    assert!(stdout.ends_with("None\n"), "{stdout}");
}

#[test]
fn runtime_info_reports_a_verified_runtime() {
    let ctx = TestContext::new();
    let output = metaexec(&ctx, &["runtime", "info", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stdout));
    let info = json_of(&output);
    assert_eq!(info["verified"], true);
    assert_eq!(info["tool_sha256"], "8623cd8cab8453cb0cd8bf03f3c7103420d06f2f3d360186a280a70a1ca5e89f");
    let component = info["component_sha256"].as_str().unwrap();
    assert_eq!(component.len(), 64);
    let path = std::path::Path::new(info["component"].as_str().unwrap());
    assert_eq!(
        metaexec::cache::sha256_hex(&std::fs::read(path).unwrap()),
        component,
        "the recorded hash is the file's"
    );
    assert!(info["compiled"].as_array().unwrap().iter().any(|c| c.as_str().unwrap().contains(&component[..16])));
}

#[test]
fn runtime_info_on_an_empty_cache_says_how_to_fetch() {
    let ctx = TestContext::new();
    let output = metaexec(&ctx, &["--cache-dir", ctx.path().join("empty").to_str().unwrap(), "runtime", "info"]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("not built yet") && stdout.contains("metaexec runtime fetch"), "{stdout}");
}

#[test]
fn help_teaches() {
    let ctx = TestContext::new();
    let output = metaexec(&ctx, &["exec", "--help"]);
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in ["--param", "--fuel", "--timeout", "--memory", "--results", "--json", "metaexec exec examples/dscr.py"]
    {
        assert!(help.contains(flag), "help mentions {flag}:\n{help}");
    }
}

/// What a guest writes to fool the person reading its output: clear the screen and forge
/// a status line, overwrite with `\r`, ring the bell, CSI as one C1 character, an OSC
/// title, and bidi overrides and isolates.
const HOSTILE: &str =
    "\u{1b}[2J\u{1b}[Hstatus: ok\rforged\u{7}|\u{9b}31m|\u{1b}]0;title\u{7}|\u{202e}exe.txt\u{2066}x\u{2069}";

/// A script that puts `HOSTILE` everywhere the guest reaches the terminal: logs, stdout,
/// stderr, result names, table columns and cells, and (with `-p fail=true`) an error.
const HOSTILE_SCRIPT: &str = r#"
import sys
from metaexec import emit, log, params, result
text = params["text"]
log(text)
log("two\nlines " + text)
print(text)
print(text, file=sys.stderr)
emit("cells", [{"name": text, text: text + "\tcell\nbreak"}, {"name": "plain", text: 1.5}])
emit(text, {"k": text})
emit("scalar", text)
result({"status": text})
if params.get("fail"):
    raise ValueError(text)
"#;

/// The characters no human output may carry raw: controls but `\n`, DEL, C1, bidi.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c)
        })
        .collect()
}

#[test]
fn guest_text_is_escaped_for_people_and_exact_in_json() {
    let ctx = TestContext::new();
    std::fs::write(ctx.path().join("hostile.py"), HOSTILE_SCRIPT).unwrap();
    let text_param = format!("text={}", serde_json::to_string(HOSTILE).unwrap());
    for fail in [false, true] {
        let mut args = vec!["exec", "hostile.py", "-p", &text_param];
        if fail {
            args.extend(["-p", "fail=true"]);
        }
        let human = metaexec(&ctx, &args);
        assert_eq!(human.status.code(), Some(i32::from(fail)), "{}", String::from_utf8_lossy(&human.stderr));
        let stdout = String::from_utf8(human.stdout.clone()).expect("UTF-8 stdout");
        let stderr = String::from_utf8(human.stderr.clone()).expect("UTF-8 stderr");
        for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
            assert_eq!(raw_controls(text), Vec::<char>::new(), "raw controls on {name}:\n{text}");
        }
        let visible = "\\x1b[2J\\x1b[Hstatus: ok\\rforged\\x07|\\u{009b}31m|\\x1b]0;title\\x07|\\u{202e}exe.txt";
        assert!(stderr.contains(&format!("[log] {visible}")), "log line escaped:\n{stderr}");
        assert!(stdout.contains(visible), "stdout excerpt and cells escaped:\n{stdout}");
        assert!(stderr.contains("── stderr ──") && stderr.contains(visible), "{stderr}");
        assert!(stdout.contains("\\tcell\\nbreak"), "a cell stays on one line:\n{stdout}");
        if fail {
            assert!(stderr.contains(&format!("error[guest_exception]: ValueError: {visible}")), "{stderr}");
        }

        args.push("--json");
        let json = metaexec(&ctx, &args);
        let raw = String::from_utf8(json.stdout.clone()).expect("UTF-8 JSON");
        assert!(!raw.chars().any(|c| c < ' ' && c != '\n'), "serde_json escapes C0 controls: {raw}");
        let outcome = json_of(&json);
        assert_eq!(outcome["results"]["cells"][0]["name"], HOSTILE);
        assert_eq!(outcome["results"]["cells"][0][HOSTILE], format!("{HOSTILE}\tcell\nbreak"));
        assert_eq!(outcome["results"][HOSTILE]["k"], HOSTILE);
        assert_eq!(outcome["results"]["result"]["status"], HOSTILE);
        assert_eq!(outcome["stdout"], format!("{HOSTILE}\n"));
        let stderr = outcome["stderr"].as_str().unwrap();
        assert!(stderr.starts_with(&format!("{HOSTILE}\n")), "{stderr:?}");
        if fail {
            assert_eq!(outcome["error"]["message"], format!("ValueError: {HOSTILE}"));
            assert!(outcome["error"]["traceback"].as_str().unwrap().contains(HOSTILE), "{outcome}");
        }
    }
}

#[test]
fn exec_seed_repeats_a_run_exactly() {
    let ctx = TestContext::new();
    std::fs::write(ctx.path().join("draw.py"), "import random\nprint(random.random())\n").unwrap();
    let draw = |seed: &str| {
        let output = metaexec(&ctx, &["exec", "draw.py", "--json", "--fuel", "1000000000", "--seed", seed]);
        assert_eq!(output.status.code(), Some(0));
        let outcome = json_of(&output);
        (outcome["stdout"].as_str().unwrap().to_owned(), outcome["metrics"]["fuel_used"].as_u64().unwrap())
    };
    assert_eq!(draw("3"), draw("3"), "the same draw and the same fuel");
    assert_ne!(draw("3").0, draw("4").0);
}
