use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::json;

use super::*;
use crate::guest_db::AuditEntry;
use crate::outcome::{ErrorKind, Status};
use crate::scenario::{ScenarioOutcome, ScenarioStatus};
use crate::sweep::{SweepMetrics, SweepRecord, SweepReport, summary};
use crate::task::TaskSpec;
use crate::validate::{Backend, BackendChoice, Finding, Report, Severity, Syntax, Verdict};

const SCRIPT: &str = "import metaexec\nrows = [r for r in metaexec.db.query(\"SELECT * FROM loans\") if r['n'] < 3 & 1]\nmetaexec.result(rows)\n";
const ID: &str = "20261202-164001-ab12";

fn task() -> TaskSpec {
    TaskSpec {
        goal: "DSCR per property".into(),
        steps: vec!["Read each property's NOI and debt service".into(), "Divide NOI by debt service".into()],
        assumptions: vec!["Debt service is annual".into()],
        ..Default::default()
    }
}

fn validation() -> Report {
    Report {
        file: "script.py".into(),
        verdict: Verdict::Warn,
        score: 0.85,
        threshold: 0.7,
        syntax: Syntax::Ok,
        backend: BackendChoice {
            backend: Backend::Wasi,
            reason: "standard library only".into(),
            packages: Vec::new(),
            serves_web: false,
        },
        findings: vec![Finding {
            code: "MX007".into(),
            name: "broad-except".into(),
            severity: Severity::Warning,
            message: "a bare `except` hides <errors>".into(),
            hint: Some("catch the exceptions you expect".into()),
            line: 2,
            column: 1,
            end_line: 2,
            end_column: 5,
            source_line: "x".into(),
        }],
    }
}

fn outcome() -> Outcome {
    let mut outcome = Outcome::failed_before_start(OutcomeError::new(ErrorKind::Internal, "placeholder"), "wasi");
    outcome.status = Status::Ok;
    outcome.error = None;
    outcome.exit_code = 0;
    outcome.results = json!({
        "result": [
            {"property_name": "Harbor Point", "noi": 1_400_000.0, "annual_debt_service": 1_000_000.0, "dscr": 1.40},
            {"property_name": "Maple Court", "noi": 1_100_000.0, "annual_debt_service": 1_000_000.0, "dscr": 1.10},
            {"property_name": "Riverside <Galleria>", "noi": 900_000.0, "annual_debt_service": 1_000_000.0, "dscr": 0.90},
        ],
        "summary": {"properties": 3, "portfolio_dscr": 1.1333, "total_noi": 3_400_000.0},
        "nested": {"by_year": {"2026": [1, 2]}},
    })
    .as_object()
    .unwrap()
    .clone();
    outcome.stdout = "checked 3 properties\n\u{1b}[2Jdone & dusted\n".into();
    outcome.logs = vec!["query 1 of 1".into()];
    outcome.metrics.wall_ms = 41.5;
    outcome.metrics.peak_memory_bytes = 24 << 20;
    outcome.metrics.db_queries = 1;
    outcome.runtime = "CPython 3.14 (wasm32-wasip2)".into();
    outcome.db_audit = vec![AuditEntry {
        op: "query".into(),
        sql: "SELECT *\n  FROM loans".into(),
        params: vec![json!(3)],
        allowed: true,
        status: "ok".into(),
        reason: None,
        rows: 3,
        bytes: 420,
        duration_ms: 0.8,
        cached: false,
    }];
    outcome.params_read = Some(crate::outcome::ParamsRead {
        names: BTreeMap::from([("noi_change".to_owned(), Some(0.0))]),
        listed: false,
    });
    outcome
}

fn header<'a>(id: &'a str, title: &'a str, kind: &'a str, created: &'a str, status: &'a str) -> PageInputs<'a> {
    PageInputs { id, title, kind, created, status, ..PageInputs::empty() }
}

fn build(title: &str, outcome: Option<&Outcome>, script: Option<&str>) -> RunPage {
    let task = task();
    let validation = validation();
    let limits = crate::job::Limits::default();
    let params = json!({"noi_change": -0.1}).as_object().unwrap().clone();
    let notes = vec!["planned offline".to_owned()];
    RunPage::build(&PageInputs {
        request: Some("calculate DSCR for every property"),
        task: Some(&task),
        validation: Some(&validation),
        outcome,
        script,
        limits: Some(&limits),
        params: Some(&params),
        notes: &notes,
        ..header(ID, title, "run", "2026-12-02 16:40:01 UTC", "ok")
    })
}

fn page() -> RunPage {
    build("calculate DSCR for every property", Some(&outcome()), Some(SCRIPT))
}

/// The markup after the doctype, parsed as XML.
fn parse(html: &str) -> roxmltree::Document<'_> {
    let body = html.strip_prefix("<!DOCTYPE html>\n").expect("a doctype");
    roxmltree::Document::parse(body).unwrap_or_else(|e| panic!("well-formed markup: {e}\n{html}"))
}

fn by_id<'a>(doc: &'a roxmltree::Document<'a>, id: &str) -> Option<roxmltree::Node<'a, 'a>> {
    doc.descendants().find(|n| n.attribute("id") == Some(id))
}

#[test]
fn dscr_cells_carry_their_band_on_the_right_rows() {
    let html = render(&page(), &Mode::Standalone).unwrap();
    let doc = parse(&html);
    let table = doc
        .descendants()
        .find(|n| n.has_tag_name("table") && n.attribute("data-result-key") == Some("result"))
        .expect("the main result's table");
    let bands: Vec<(String, Option<&str>)> = table
        .descendants()
        .filter(|n| n.has_tag_name("tr"))
        .skip(1)
        .map(|tr| {
            let cell = |column: &str| {
                tr.children().find(|td| td.attribute("data-column") == Some(column)).expect("a cell per column")
            };
            (cell("property_name").text().unwrap_or_default().to_owned(), cell("dscr").attribute("data-band"))
        })
        .collect();
    assert_eq!(
        bands,
        [
            ("Harbor Point".to_owned(), Some("green")),
            ("Maple Court".to_owned(), Some("yellow")),
            ("Riverside <Galleria>".to_owned(), Some("red"))
        ]
    );
    // Money reads as money, and a column that is not a DSCR has no band.
    assert!(html.contains("<td data-column=\"noi\" class=\"num\">1,400,000.00</td>"), "{html}");
    // The summary is a key/value table whose DSCR row is banded by its own key.
    let summary =
        doc.descendants().find(|n| n.attribute("data-result-key") == Some("summary")).expect("the summary's table");
    assert_eq!(summary.attribute("data-shape"), Some("pairs"));
    let banded: Vec<_> = summary.descendants().filter_map(|n| n.attribute("data-band")).collect();
    assert_eq!(banded, ["yellow"]);
    // Not a table: pretty JSON.
    let nested = doc.descendants().find(|n| n.attribute("data-result-key") == Some("nested")).unwrap();
    assert!(nested.has_tag_name("pre") && nested.text().unwrap().contains("\"by_year\""));
}

#[test]
fn every_text_is_escaped() {
    let mut outcome = outcome();
    outcome.error = Some(OutcomeError {
        traceback: Some("Traceback (most recent call last):\n  File \"<script>\", line 2\nValueError: <b>".into()),
        ..OutcomeError::new(ErrorKind::GuestException, "ValueError: <img src=x onerror=alert(1)>")
    });
    outcome.status = Status::Error;
    let page = build("<script>alert(1)</script>", Some(&outcome), Some(SCRIPT));
    for mode in [Mode::Standalone, Mode::Served { whatif: true }] {
        let html = render(&page, &mode).unwrap();
        assert!(!html.contains("<script>alert(1)"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("ValueError: &lt;b&gt;") && !html.contains("<b>&lt;"), "{html}");
        assert!(html.contains("Riverside &lt;Galleria&gt;"), "{html}");
        // The guest's escape sequence is shown, not obeyed, and the page stays XML.
        assert!(html.contains("\\x1b[2Jdone &amp; dusted"), "{html}");
        parse(&html);
    }
}

#[test]
fn the_script_is_listed_with_line_numbers() {
    let html = render(&page(), &Mode::Standalone).unwrap();
    let doc = parse(&html);
    let line = by_id(&doc, "L2").expect("line 2");
    let cells: Vec<_> = line.children().filter(|n| n.is_element()).collect();
    assert_eq!(cells[0].text(), Some("2"));
    assert!(cells[1].text().unwrap().contains("r['n'] < 3 & 1"));
    assert!(html.contains("r[&#x27;n&#x27;] &lt; 3 &amp; 1"), "escaped in the markup");
    assert!(by_id(&doc, "L3").is_some() && by_id(&doc, "L4").is_none());
    // The finding links to its line.
    assert!(html.contains("<a href=\"#L2\">2</a>"), "{html}");
}

#[test]
fn the_standalone_page_is_well_formed_and_self_contained() {
    let html = render(&page(), &Mode::Standalone).unwrap();
    let doc = parse(&html);
    assert!(!html.contains("<script"), "no script");
    // The only URLs are the namespaces of XHTML and SVG, which nothing fetches.
    let unnamespaced =
        html.replace("xmlns=\"http://www.w3.org/1999/xhtml\"", "").replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!unnamespaced.contains("http://") && !unnamespaced.contains("https://"), "{html}");
    assert_eq!(doc.descendants().filter(|n| n.attribute("src").is_some()).count(), 0);
    for node in doc.descendants().filter(|n| n.attribute("href").is_some()) {
        assert!(node.attribute("href").unwrap().starts_with('#'), "in-page links only");
    }
    assert!(by_id(&doc, "whatif").is_none() && by_id(&doc, "whatif-off").is_none());
    // The sections, in order.
    let sections: Vec<&str> =
        doc.descendants().filter(|n| n.has_tag_name("section")).filter_map(|n| n.attribute("id")).collect();
    assert_eq!(
        sections,
        ["request", "verdict", "results", "charts", "script", "params", "cost", "output", "audit", "notes"]
    );
    let chart = by_id(&doc, "dscr-chart").expect("the DSCR chart");
    assert_eq!(chart.descendants().filter(|n| n.has_tag_name("rect")).count(), 3);
    assert!(html.contains("<span class=\"tag\">assumed</span>Debt service is annual"), "{html}");
    assert!(html.contains("score 0.85 (rejected under 0.70)"), "{html}");
    assert!(html.contains("<td data-column=\"sql\">SELECT * FROM loans</td>"), "the statement on one line: {html}");
}

#[test]
fn the_served_page_carries_the_whatif_contract() {
    let page = page();
    assert_eq!(page.what_if_unavailable(), None);
    let html = render(&page, &Mode::Served { whatif: true }).unwrap();
    let doc = parse(&html);
    let form = by_id(&doc, "whatif").expect("the what-if form");
    assert!(form.has_tag_name("form"));
    assert_eq!(form.attribute("data-run"), Some(ID));
    assert_eq!(form.attribute("data-state"), Some("idle"));
    for key in ["noi_change", "revenue_change", "expense_change", "vacancy_change", "rate_change"] {
        let input = by_id(&doc, &format!("whatif-{key}")).unwrap_or_else(|| panic!("the input of {key}"));
        assert_eq!((input.attribute("type"), input.attribute("value")), (Some("number"), Some("0")));
        assert!(by_id(&doc, &format!("whatif-{key}-range")).is_some());
    }
    assert_eq!(by_id(&doc, "whatif-rate_change").unwrap().attribute("step"), Some("0.25"));
    assert!(by_id(&doc, "whatif-status").is_some_and(|n| n.has_tag_name("p")));
    assert!(by_id(&doc, "whatif-reset").is_some());
    assert!(html.contains("fetch('/api/simulate'") && html.contains("AbortController"), "the panel's script");
    let nav = doc.descendants().find(|n| n.has_tag_name("nav")).expect("links to the other pages");
    let links: Vec<_> = nav.children().filter_map(|n| n.attribute("href")).collect();
    assert_eq!(links, [RUNS_PATH, "/new"]);
}

#[test]
fn a_served_page_without_what_if_says_why() {
    let page = build("script.py", Some(&outcome()), None);
    assert!(page.what_if_unavailable().is_some());
    let html = render(&page, &Mode::Served { whatif: false }).unwrap();
    let doc = parse(&html);
    assert!(by_id(&doc, "whatif").is_none() && !html.contains("<script"));
    let why = by_id(&doc, "whatif-off").expect("a line saying why");
    assert!(why.text().unwrap().contains("no script"), "{html}");

    let mut bare = outcome();
    bare.results = json!({"result": [{"name": "a"}]}).as_object().unwrap().clone();
    let page = build("script.py", Some(&bare), Some(SCRIPT));
    assert_eq!(page.what_if_unavailable(), Some("the run has no numeric results a shock could move"));
}

#[test]
fn an_error_is_shown_once_with_its_traceback() {
    let error = OutcomeError {
        traceback: Some("Traceback:\n  line 3\nZeroDivisionError".into()),
        line: Some(3),
        ..OutcomeError::new(ErrorKind::GuestException, "ZeroDivisionError: division by zero")
            .with_hint("check the loans")
    };
    let failed = Outcome::failed_before_start(error.clone(), "wasi");
    let inputs = PageInputs {
        outcome: Some(&failed),
        error: Some(&error),
        script: Some(SCRIPT),
        ..header(ID, "script.py", "exec", "now", "failed")
    };
    let page = RunPage::build(&inputs);
    assert_eq!(page.errors.len(), 1);
    assert_eq!(page.headline.as_deref(), Some("guest_exception: ZeroDivisionError: division by zero"));
    let html = render(&page, &Mode::Standalone).unwrap();
    let doc = parse(&html);
    let pre = doc.descendants().find(|n| n.attribute("class") == Some("traceback")).expect("the traceback");
    assert_eq!(pre.text(), Some("Traceback:\n  line 3\nZeroDivisionError"));
    assert!(html.contains("hint: check the loans"));
}

#[test]
fn a_page_round_trips_through_json() {
    let page = page();
    let json = serde_json::to_string(&page).unwrap();
    let back: RunPage = serde_json::from_str(&json).unwrap();
    assert_eq!(back, page);
    assert_eq!(render(&back, &Mode::Standalone).unwrap(), render(&page, &Mode::Standalone).unwrap());
    assert_eq!(page.headline.as_deref(), Some("3 properties · lowest DSCR 0.90 (Riverside <Galleria>)"));
}

fn scenario(id: &str, noi_change: f64, rows: Value) -> ScenarioOutcome {
    ScenarioOutcome {
        id: id.into(),
        params: json!({"noi_change": noi_change}).as_object().unwrap().clone(),
        status: ScenarioStatus::Ok,
        error: None,
        results: json!({ "result": rows }).as_object().unwrap().clone().into(),
        stdout: String::new(),
        logs: Vec::new(),
        wall_ms: 1.0,
        params_read: None,
    }
}

fn sweep_record() -> SweepRecord {
    let outcomes: Vec<ScenarioOutcome> = [0.0, -0.1, -0.2]
        .into_iter()
        .map(|shock| {
            let id = format!("noi_change={shock}");
            let rows = json!([
                {"property_name": "Harbor Point", "dscr": 1.4 * (1.0 + shock)},
                {"property_name": "Maple Court", "dscr": 1.1 * (1.0 + shock)},
            ]);
            scenario(&id, shock, rows)
        })
        .collect();
    let summary = summary::summarize(&outcomes, &BTreeMap::new());
    let report = SweepReport {
        scenarios: outcomes,
        summary,
        metrics: SweepMetrics {
            wall_ms: 12.0,
            scenarios_per_s: 250.0,
            db_queries: 1,
            workers: 2,
            bisection_runs: 0,
            bisection_ms: 0.0,
        },
        sanitized: Vec::new(),
        instance_errors: Vec::new(),
        params_read: Default::default(),
        plan: Vec::new(),
    };
    SweepRecord::new(&report, vec![PathBuf::from("sweep/results.json")])
}

#[test]
fn a_sweep_shows_the_scenario_comparison() {
    let record = sweep_record();
    let inputs = PageInputs { sweep: Some(&record), ..header(ID, "stress", "sweep", "now", "ok") };
    let page = RunPage::build(&inputs);
    let html = render(&page, &Mode::Standalone).unwrap();
    let doc = parse(&html);
    let comparison = by_id(&doc, "comparison").expect("the comparison");
    let header: Vec<&str> = comparison
        .descendants()
        .find(|n| n.has_tag_name("thead"))
        .unwrap()
        .descendants()
        .filter(|n| n.has_tag_name("th"))
        .filter_map(|n| n.text())
        .collect();
    assert_eq!(header, ["property", "NOI ±0%", "NOI −10%", "NOI −20%"], "the matrix first");
    // Maple Court at NOI -20%: 1.1 * 0.8 = 0.88, red.
    let cell = comparison
        .descendants()
        .find(|n| n.attribute("data-column") == Some("noi_change=-0.2") && n.text() == Some("0.88"))
        .expect("Maple Court's worst DSCR");
    assert_eq!(cell.attribute("data-band"), Some("red"));
    assert!(html.contains("P(DSCR&lt;1.25)"), "the per-property summary");
    let charts: Vec<_> =
        comparison.descendants().filter(|n| n.has_tag_name("figure")).filter_map(|n| n.attribute("id")).collect();
    assert_eq!(charts, ["scenario-bars", "distribution", "tornado"]);
    assert!(page.headline.as_deref().unwrap().starts_with("3 scenarios · lowest DSCR 0.88 (Maple Court"));
    assert!(html.contains("Files: results.json"));
}

#[test]
fn the_list_of_runs_links_each_run() {
    let runs = vec![
        RunLine {
            id: "b2".into(),
            created: "2026-12-02 16:41:00 UTC".into(),
            kind: "sweep".into(),
            title: "<stress> & test".into(),
            status: "ok".into(),
            headline: Some("3 scenarios".into()),
        },
        RunLine::from(&page()),
    ];
    let html = render_runs(&runs).unwrap();
    let doc = parse(&html);
    let links: Vec<&str> = by_id(&doc, "runs").unwrap().descendants().filter_map(|n| n.attribute("href")).collect();
    assert_eq!(links, ["/runs/b2", &format!("/runs/{ID}")]);
    assert!(html.contains("&lt;stress&gt; &amp; test") && html.contains("href=\"/new\""));

    let empty = render_runs(&[]).unwrap();
    assert!(empty.contains("<code>metaexec run \"calculate DSCR for every property\"</code>"), "{empty}");
    parse(&empty);
    assert_eq!(run_href("a b/c"), "/runs/a%20b%2Fc");
}

#[test]
fn the_new_request_page_posts_and_follows_events() {
    let html = render_new_run().unwrap();
    let doc = parse(&html);
    assert!(by_id(&doc, "new-run").is_some_and(|n| n.has_tag_name("form")));
    assert!(by_id(&doc, "new-run-request").is_some_and(|n| n.has_tag_name("textarea")));
    assert!(by_id(&doc, "new-run-db").is_some() && by_id(&doc, "progress").is_some_and(|n| n.has_tag_name("ol")));
    assert!(html.contains("fetch('/api/runs'") && html.contains("new EventSource(events)"));
    for event in ["started", "finished", "progress", "note", "done"] {
        assert!(html.contains(&format!("addEventListener('{event}'")), "{event}");
    }
}

#[test]
fn the_scripts_fit_in_a_page() {
    for (name, script) in [("whatif.js", WHATIF_JS), ("new_run.js", NEW_RUN_JS)] {
        // Either would end the CDATA section or the script element early.
        assert!(!script.contains("]]>") && !script.to_ascii_lowercase().contains("</script"), "{name}");
    }
    // Less-than signs and ampersands would make the inline style sheet break the XML.
    assert!(!STYLE.contains('<') && !STYLE.contains('&'));
    for band in [1.3, 1.1, 0.9] {
        let rule = format!("[data-band={}]{{background:{}", report::dscr_band(band), dscr_colour(band));
        assert!(STYLE.contains(&rule), "the style sheet colours {band} as the charts do");
    }
}

#[test]
fn the_script_formats_as_the_host_does() {
    // whatif.js rebuilds tables by the rules of cells.rs: these are the ones it mirrors.
    for (needle, why) in [
        ("var MAX_ROWS = 500;", "the row cap"),
        ("dscr >= 1.25 ? 'green' : (dscr >= 1.0 ? 'yellow' : 'red')", "the bands"),
        ("case 'money': return thousands(x, 2);", "money"),
        ("case 'percent': return trimTo(x * 100, 2) + '%';", "percent"),
        ("var WIDTH = 760, LEFT = 230, RIGHT = 40, ROW = 22;", "the chart's geometry (svg.rs)"),
    ] {
        assert!(WHATIF_JS.contains(needle), "whatif.js lost {why}");
    }
    assert_eq!(MAX_ROWS, 500);
}
