//! The validator: every rule's fixtures (tests/fixtures/validate, see its README for the
//! `# expect:` markers), snapshots of the rendered diagnostics, the schema check against
//! the real demo database, syntax newer than the parser confirmed by the sandboxed
//! CPython, hostile inputs, and `metaexec check` as a command.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use metaexec::db::connect::Database;
use metaexec::db::{DbUrl, demo, inspect};
use metaexec::sandbox::CompileCheck;
use metaexec::validate::{self, Backend, BackendRequest, Options, Severity, Syntax, Tables, Verdict};

use crate::common::{TestContext, metaexec_command, sandbox};

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/validate")
}

/// The demo portfolio's tables, read by the real inspector from a real SQLite file.
fn demo_tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portfolio.db");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            demo::create_sqlite(&path).await.unwrap();
            let url = DbUrl::parse(&path.display().to_string()).unwrap();
            let database = Database::open(&url, false).await.unwrap();
            let schema = inspect::inspect(&database).await.unwrap();
            database.close().await;
            Tables::from(&schema)
        })
    })
}

fn oracle() -> &'static CompileCheck {
    static ORACLE: OnceLock<CompileCheck> = OnceLock::new();
    ORACLE.get_or_init(|| CompileCheck::new(sandbox().clone(), std::env::temp_dir().join("metaexec-tests")))
}

fn check(source: &str, file_name: &str) -> validate::Report {
    let options = Options { file_name, tables: Some(demo_tables()), oracle: Some(oracle()), ..Options::default() };
    validate::validate(source, &options)
}

/// Every fixture file, sorted, as (folder, path).
fn fixtures() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(fixtures_root()).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let folder = dir.file_name().unwrap().to_string_lossy().into_owned();
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "py") {
                out.push((folder.clone(), file));
            }
        }
    }
    out.sort();
    out
}

/// The (line, code) pairs a fixture's `# expect:` markers name.
fn markers(source: &str) -> BTreeSet<(u32, String)> {
    let mut out = BTreeSet::new();
    for (i, line) in source.lines().enumerate() {
        if let Some((_, codes)) = line.split_once("# expect:") {
            for code in codes.split([' ', ',']).filter(|c| c.starts_with("MX")) {
                out.insert((i as u32 + 1, code.to_string()));
            }
        }
    }
    out
}

/// The best-practice warnings are left out except in their own folders, where they are
/// the subject.
fn counted(code: &str, folder: &str) -> bool {
    !matches!(code, "MX010" | "MX011" | "MX015") || code == folder
}

#[test]
fn every_fixture_reports_exactly_its_marked_findings() {
    let fixtures = fixtures();
    assert!(fixtures.len() > 100, "fixtures missing: {}", fixtures.len());
    let mut mismatches = Vec::new();
    for (folder, path) in &fixtures {
        let source = std::fs::read_to_string(path).unwrap();
        let report = check(&source, &path.display().to_string());
        let expected: BTreeSet<_> = markers(&source).into_iter().filter(|(_, c)| counted(c, folder)).collect();
        let actual: BTreeSet<_> =
            report.findings.iter().filter(|f| counted(&f.code, folder)).map(|f| (f.line, f.code.clone())).collect();
        if expected != actual {
            mismatches.push(format!(
                "{}: missing {:?}, unexpected {:?}\n{}",
                path.display(),
                expected.difference(&actual).collect::<Vec<_>>(),
                actual.difference(&expected).collect::<Vec<_>>(),
                validate::render::text(&report, false)
            ));
        }
        let name = path.file_name().unwrap().to_string_lossy();
        // An ok file passes apart from the best-practice warnings; an err file is rejected
        // (MX010/MX011/MX014 findings are warnings and only warn).
        if name.starts_with("ok_") && report.errors().count() > 0 {
            mismatches.push(format!("{}: an ok fixture has errors", path.display()));
        }
        let warning_rule = matches!(folder.as_str(), "MX010" | "MX011" | "MX014");
        if name.starts_with("err_") && !warning_rule && report.verdict != Verdict::Reject {
            mismatches.push(format!("{}: an err fixture is not rejected", path.display()));
        }
    }
    assert!(mismatches.is_empty(), "{} fixture(s) differ:\n{}", mismatches.len(), mismatches.join("\n"));
}

#[test]
fn diagnostics_match_their_snapshots() {
    let mut by_folder: std::collections::BTreeMap<String, String> = Default::default();
    for (folder, path) in fixtures() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("ok_") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let report = check(&source, &format!("{folder}/{name}"));
        by_folder.entry(folder).or_default().push_str(&validate::render::text(&report, false));
    }
    for (folder, text) in by_folder {
        insta::assert_snapshot!(format!("validate_{folder}"), text);
    }
}

#[test]
fn the_schema_check_names_the_closest_real_column() {
    let source = "from metaexec import db\nrows = db.query('SELECT property_id, net_income FROM financial_metrics')\n";
    let report = check(source, "script.py");
    let finding = report.findings.iter().find(|f| f.code == "MX013").expect("MX013");
    assert_eq!(finding.message, "`net_income` does not exist in `financial_metrics`; did you mean `noi`?");
    assert_eq!((finding.line, finding.column), (2, 8));

    let source = "from metaexec import db\nrows = db.query('SELECT p.name FROM properties p JOIN loan l ON l.property_id = p.property_id')\n";
    let report = check(source, "script.py");
    let messages: Vec<_> =
        report.findings.iter().filter(|f| f.severity == Severity::Error).map(|f| &f.message).collect();
    assert!(messages.iter().any(|m| m.contains("table `loan` does not exist; did you mean `loans`?")), "{messages:?}");
    assert!(
        messages.iter().any(|m| *m == "`name` does not exist in `properties`; did you mean `property_name`?"),
        "{messages:?}"
    );
}

#[test]
fn newer_syntax_is_confirmed_by_cpython_and_the_rest_is_still_checked() {
    let source = "rows = [{'noi': 1.0}]\nlines = [f\"{r[\"noi\"]:.2f}\" for r in rows]\nvalue = eval('1 + 1')\n";
    let report = check(source, "script.py");
    assert_eq!(report.syntax, Syntax::NewerThanParser);
    let syntax = report.findings.iter().find(|f| f.code == "MX000").expect("MX000");
    assert_eq!((syntax.severity, syntax.line), (Severity::Warning, 2));
    assert!(syntax.message.contains("line 2 was not checked"), "{}", syntax.message);
    // The line after the one set aside is still checked.
    assert!(report.findings.iter().any(|f| f.code == "MX001" && f.line == 3), "{report:#?}");

    // A real syntax error is CPython's: its line and message.
    let report = check("total = 0\nfor x in range(3)\n    total += x\n", "script.py");
    assert_eq!(report.syntax, Syntax::Invalid);
    assert_eq!(report.verdict, Verdict::Reject);
    let syntax = &report.findings[0];
    assert_eq!((syntax.code.as_str(), syntax.line, syntax.severity), ("MX000", 2, Severity::Error));
    assert!(syntax.message.contains("expected ':'"), "{}", syntax.message);
}

#[test]
fn hostile_inputs_never_panic() {
    let nested_brackets = format!("x = {}1{}\n", "(".repeat(50_000), ")".repeat(50_000));
    let long_chain = format!("x = {}1\n", "1 + ".repeat(100_000));
    let unary_chain = format!("x = {}1\n", "-".repeat(200_000));
    let deep_blocks: String =
        (0..120).map(|i| format!("{}if x:\n", " ".repeat(i))).collect::<String>() + &" ".repeat(120) + "pass\n";
    let huge = "x = 1\n".repeat(200_000);
    let inputs = [
        "".to_string(),
        "\u{feff}# bom\n".into(),
        "\0\0\0".into(),
        "x = '\\N{NOT A NAME}'\n".into(),
        "def f(:\n".into(),
        "\r\r\n\t\x0c".into(),
        "f'{'\n".into(),
        "'''".into(),
        "lambda: (yield)\n".into(),
        nested_brackets,
        long_chain,
        unary_chain,
        deep_blocks,
        huge,
    ];
    for input in &inputs {
        let options = Options { tables: Some(demo_tables()), ..Options::default() };
        let report = validate::validate(input, &options);
        assert!((0.0..=1.0).contains(&report.score));
    }
}

#[test]
fn the_backend_follows_the_imports() {
    let options = |backend| Options { backend, ..Options::default() };
    let source = "import pandas as pd\nfrom sklearn.linear_model import LinearRegression\nimport json\n";
    let report = validate::validate(source, &options(BackendRequest::Auto));
    assert_eq!(report.backend.backend, Backend::Docker);
    assert_eq!(report.backend.packages, ["pandas", "scikit-learn"]);
    assert!(!report.findings.iter().any(|f| f.code == "MX009"));

    let report = validate::validate(source, &options(BackendRequest::Wasi));
    let lines: Vec<_> = report.findings.iter().filter(|f| f.code == "MX009").map(|f| f.line).collect();
    assert_eq!(lines, [1, 2]);
    assert_eq!(report.verdict, Verdict::Reject);

    let report = validate::validate(
        "from flask import Flask\napp = Flask(__name__)\napp.run()\n",
        &options(BackendRequest::Auto),
    );
    assert!(report.backend.serves_web && report.backend.backend == Backend::Docker);

    let report =
        validate::validate("import json, statistics\nfrom metaexec import db\n", &options(BackendRequest::Auto));
    assert_eq!(report.backend.backend, Backend::Wasi);
}

#[test]
fn the_score_and_threshold_decide_the_verdict() {
    // Two warnings (no try/except, no logging): 0.90, so it warns at 0.7 and is rejected
    // at 0.95.
    let source = "import metaexec\nmetaexec.result({'x': 1})\n";
    let report = validate::validate(source, &Options::default());
    assert_eq!((report.verdict, report.score), (Verdict::Warn, 0.9));
    let strict = Options { threshold: 0.95, ..Options::default() };
    assert_eq!(validate::validate(source, &strict).verdict, Verdict::Reject);
    let clean = "import metaexec\ntry:\n    metaexec.log('start')\n    metaexec.result({'x': 1})\nexcept Exception as e:\n    metaexec.log(str(e))\n";
    let report = validate::validate(clean, &Options::default());
    assert_eq!((report.verdict, report.score), (Verdict::Pass, 1.0), "{report:#?}");
}

#[test]
fn check_prints_findings_like_a_linter_and_exits_1_on_reject() {
    let ctx = TestContext::new();
    let script = ctx.path().join("bad.py");
    std::fs::write(&script, "import os\nimport metaexec\nos.system('id')\nmetaexec.result({})\n").unwrap();
    let output = metaexec_command(&ctx).args(["check", "bad.py"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("bad.py:3:1: MX002 [error] `os.system` starts other programs"), "{stdout}");
    assert!(stdout.contains("3 | os.system('id')"), "{stdout}");
    assert!(stdout.contains("bad.py: reject"), "{stdout}");

    let output = metaexec_command(&ctx).args(["check", "bad.py", "--json"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["verdict"], "reject");
    let codes: Vec<_> = report["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["MX010", "MX011", "MX002"]);
    assert_eq!(report["findings"][2]["line"], 3);
    assert_eq!(report["backend"]["backend"], "wasi");

    // The shipped example passes through the command as well.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/portfolio.py");
    let output = metaexec_command(&ctx).arg("check").arg(&example).arg("--json").output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(report["verdict"], "pass");

    let output = metaexec_command(&ctx).args(["check", "missing.py"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Failed to read the script `missing.py`"));

    let output = metaexec_command(&ctx).args(["check", "--rules"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("MX001") && stdout.contains("MX014"), "{stdout}");
}

#[test]
fn check_reads_the_schema_of_the_database_it_is_given() {
    let ctx = TestContext::new();
    std::fs::write(
        ctx.path().join("q.py"),
        "from metaexec import db\ndb.query('SELECT net_income FROM financial_metrics')\n",
    )
    .unwrap();
    // The default database is the demo (created in the cache on first use).
    let output = metaexec_command(&ctx).args(["check", "q.py"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("did you mean `noi`?"), "{stdout}");
    // A database without that table: the table is reported instead.
    let other = ctx.path().join("other.db");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        use sqlx::Connection;
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", other.display())).await.unwrap();
        sqlx::query("CREATE TABLE t (a INTEGER)").execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    });
    let output = metaexec_command(&ctx).args(["check", "q.py", "--db"]).arg(&other).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("table `financial_metrics` does not exist"), "{stdout}");
}

/// The shipped examples are what people copy: each passes the validator without a finding,
/// as the demo database sees it.
#[test]
fn the_shipped_examples_are_clean() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "py") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let report = check(&std::fs::read_to_string(&path).unwrap(), &name);
        assert_eq!(report.verdict, Verdict::Pass, "{name}: {:?}", report.findings);
        assert!(report.findings.is_empty(), "{name}: {:?}", report.findings);
        seen += 1;
    }
    assert!(seen >= 3, "the examples are found: {seen}");
}
