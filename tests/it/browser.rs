//! The dashboard's what-if panel in a real browser: headless Chromium, driven over the
//! DevTools protocol (`cdp`), opens a run's page served by `metaexec serve`, changes NOI
//! by −20 % and checks the table the page's own script rebuilds from `/api/simulate`.
//!
//! `.ci/run` installs Debian's `chromium`; without it these tests fail and say how to get
//! it, unless `METAEXEC_SKIP_BROWSER=1`, which turns them into loud skips.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde_json::Value;

use crate::cdp::{CHROMIUM, Chromium, Page, find_chromium};
use crate::common::{TestContext, metaexec_command};

const SKIP_ENV: &str = "METAEXEC_SKIP_BROWSER";

/// How long the what-if round trip may take before the test gives up. It is not a
/// performance bound (the time is printed, not checked): only a hang fails.
const WHAT_IF_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a page may take to load.
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// A started Chromium, or `None` (after a SKIPPED line) when the browser tests are skipped.
fn chromium() -> Option<Chromium> {
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: browser test not run ({SKIP_ENV}=1)");
        return None;
    }
    let Some(binary) = find_chromium() else {
        panic!(
            "no `{CHROMIUM}` on PATH for the browser tests: install Debian's `chromium` package \
             (`apt-get install chromium`; `.ci/run` does), or set {SKIP_ENV}=1 to skip them"
        );
    };
    Some(Chromium::start(&binary).unwrap_or_else(|e| panic!("{e:#}")))
}

#[test]
fn what_if_updates_the_table_in_a_real_browser() {
    let Some(browser) = chromium() else { return };
    let ctx = TestContext::new();
    let runs = ctx.path().join("runs");
    let id = make_run(&ctx, &runs);
    let server = Server::start(&ctx, &runs);
    server.wait_healthy();

    let mut page = browser.connect().and_then(|cdp| cdp.new_page()).unwrap_or_else(|e| panic!("{e:#}"));
    let url = format!("{}/runs/{id}", server.url);
    let ms = check_what_if(&mut page, &url).unwrap_or_else(|e| panic!("{e:#}\n{}", page_state(&mut page)));
    eprintln!("what-if round trip in the browser: {ms} ms");

    let png = page.screenshot_full_page().unwrap_or_else(|e| panic!("{e:#}"));
    let folder = target_dir().join("browser");
    std::fs::create_dir_all(&folder).unwrap();
    let path = folder.join("what-if.png");
    std::fs::write(&path, &png).unwrap();
    eprintln!("screenshot: {}", path.display());
    let written = std::fs::read(&path).unwrap();
    assert!(written.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is not a PNG", path.display());
    assert!(written.len() > 1024, "{} has only {} bytes", path.display(), written.len());
}

/// The same checks on a static page whose script keeps the panel's contract, so that a
/// failure of the test above can be told apart from a failure of the browser harness.
#[test]
fn the_browser_checks_pass_on_a_page_that_keeps_the_contract() {
    let Some(browser) = chromium() else { return };
    let mut page = browser.connect().and_then(|cdp| cdp.new_page()).unwrap_or_else(|e| panic!("{e:#}"));
    let url = format!("data:text/html;base64,{}", base64::engine::general_purpose::STANDARD.encode(CONTRACT_PAGE));
    let ms = check_what_if(&mut page, &url).unwrap_or_else(|e| panic!("{e:#}\n{}", page_state(&mut page)));
    assert!(ms.parse::<f64>().is_ok(), "data-ms is a number: {ms:?}");
}

/// A page with the panel's contract and nothing else: four properties, a form whose
/// `input` event (debounced) rescales every DSCR by the NOI change.
const CONTRACT_PAGE: &str = r#"<!doctype html><title>what-if contract</title>
<form id="whatif" data-run="static" data-state="idle">
  <input type="number" id="whatif-noi_change" value="0">
  <span id="whatif-status"></span>
</form>
<table data-result-key="result"><thead><tr><th>property</th><th>dscr</th></tr></thead><tbody></tbody></table>
<script>
const base = [["Alpha", 1.94], ["Beta", 1.40], ["Gamma", 1.10], ["Delta", 0.90]];
const form = document.getElementById("whatif");
const band = (v) => (v >= 1.25 ? "green" : v >= 1.0 ? "yellow" : "red");
function render(factor) {
  const body = document.querySelector("tbody");
  body.replaceChildren();
  for (const [name, dscr] of base) {
    const v = dscr * factor;
    const row = body.insertRow();
    const n = row.insertCell();
    n.dataset.column = "property_name";
    n.textContent = name;
    const d = row.insertCell();
    d.dataset.column = "dscr";
    d.dataset.band = band(v);
    d.textContent = v.toFixed(2);
  }
}
render(1);
let timer;
form.addEventListener("input", () => {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    form.dataset.state = "busy";
    const start = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 20));
    render(1 + Number(document.getElementById("whatif-noi_change").value) / 100);
    form.dataset.ms = Math.round(performance.now() - start);
    form.dataset.state = "done";
  }, 50);
});
</script>"#;

/// One row of the results table as the page shows it.
#[derive(Debug)]
struct Row {
    name: String,
    /// The DSCR cell's text, as shown.
    text: String,
    dscr: f64,
    band: String,
}

/// Reads every row of the results table that has a DSCR cell.
const ROWS_JS: &str = r#"Array.from(document.querySelectorAll('table[data-result-key="result"] tr'))
  .filter((tr) => tr.querySelector('td[data-column="dscr"]'))
  .map((tr) => {
    const name = tr.querySelector('td[data-column="property_name"]');
    const dscr = tr.querySelector('td[data-column="dscr"]');
    return { name: name ? name.textContent.trim() : null, dscr: dscr.textContent.trim(), band: dscr.dataset.band ?? null };
  })"#;

/// The form's `data-state`, `null` without the form.
const STATE_JS: &str = "document.querySelector('form#whatif')?.dataset.state ?? null";

/// Opens `url`, sets NOI −20 % in the what-if form and checks the rebuilt table; returns
/// the form's `data-ms`.
fn check_what_if(page: &mut Page, url: &str) -> Result<String> {
    page.navigate(url, LOAD_TIMEOUT)?;
    let before = rows(page).context("the table before the what-if")?;
    if before.is_empty() {
        bail!("no rows with a `td[data-column=\"dscr\"]` in `table[data-result-key=\"result\"]`");
    }
    for row in &before {
        check_band(row).context("before the what-if")?;
    }
    let state = page.evaluate(STATE_JS)?;
    if state != "idle" {
        bail!("form#whatif's data-state is {state} on a fresh page, not \"idle\"");
    }

    page.evaluate(
        "(() => {
            const input = document.querySelector('#whatif-noi_change');
            input.value = '-20';
            input.dispatchEvent(new Event('input', { bubbles: true }));
        })()",
    )?;
    let deadline = Instant::now() + WHAT_IF_TIMEOUT;
    loop {
        let state = page.evaluate(STATE_JS)?;
        if state == "done" {
            break;
        }
        if state == "error" || Instant::now() > deadline {
            let status = page.evaluate("document.querySelector('#whatif-status')?.textContent ?? null")?;
            bail!("form#whatif's data-state is {state} (waited up to {WHAT_IF_TIMEOUT:?}); #whatif-status: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let after = rows(page).context("the table after the what-if")?;
    let names = |rows: &[Row]| rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
    if names(&before) != names(&after) {
        bail!("the properties changed: before {:?}, after {:?}", names(&before), names(&after));
    }
    for (old, new) in before.iter().zip(&after) {
        // NOI −20 % with the debt service unchanged scales DSCR by 0.8. Both figures are
        // shown rounded, to two decimals at the coarsest, so they may differ by
        // 0.8 × 0.005 + 0.005 = 0.009.
        let expected = old.dscr * 0.8;
        if (new.dscr - expected).abs() > 0.011 {
            bail!("{}: DSCR {} after NOI −20 %, expected 0.8 × {} = {expected:.4}", new.name, new.text, old.text);
        }
        check_band(new).context("after the what-if")?;
    }
    let changed: Vec<String> = before
        .iter()
        .zip(&after)
        .filter(|(old, new)| old.band != new.band)
        .map(|(old, new)| format!("{}: {} {} → {} {}", old.name, old.text, old.band, new.text, new.band))
        .collect();
    if changed.is_empty() {
        bail!("no property changed band after NOI −20 %: {after:?}");
    }
    eprintln!("bands changed by NOI −20 %: {}", changed.join("; "));

    let ms = page.evaluate("document.querySelector('form#whatif').dataset.ms ?? null")?;
    match ms {
        Value::String(ms) => Ok(ms),
        other => bail!("form#whatif has no data-ms after `done`: {other}"),
    }
}

fn rows(page: &mut Page) -> Result<Vec<Row>> {
    let value = page.evaluate(ROWS_JS)?;
    let Value::Array(rows) = value else { bail!("the rows are not a list: {value}") };
    rows.into_iter()
        .map(|row| {
            let name = row["name"].as_str().with_context(|| format!("a row without a property_name cell: {row}"))?;
            let text = row["dscr"].as_str().unwrap_or_default();
            let dscr = text.parse().with_context(|| format!("{name}: DSCR cell `{text}` is not a number"))?;
            let band = row["band"].as_str().with_context(|| format!("{name}: DSCR cell without data-band"))?;
            Ok(Row { name: name.to_owned(), text: text.to_owned(), dscr, band: band.to_owned() })
        })
        .collect()
}

/// Checks the row's band against its shown DSCR: green from 1.25, yellow from 1.0, red
/// below. A value shown as exactly 1.25 or 1 may have been just under it before rounding,
/// so there either neighbouring band is right.
fn check_band(row: &Row) -> Result<()> {
    let allowed: &[&str] = match row.dscr {
        1.25 => &["green", "yellow"],
        1.0 => &["yellow", "red"],
        _ if row.dscr >= 1.25 => &["green"],
        _ if row.dscr >= 1.0 => &["yellow"],
        _ => &["red"],
    };
    if !allowed.contains(&row.band.as_str()) {
        bail!("{}: DSCR {} has band `{}`, expected {}", row.name, row.text, row.band, allowed.join(" or "));
    }
    Ok(())
}

/// The form and the table as the page shows them, for failure messages.
fn page_state(page: &mut Page) -> String {
    let js = r#"(() => {
        const cut = (s) => (s && s.length > 3000 ? s.slice(0, 3000) + '…' : s);
        const form = document.querySelector('form#whatif');
        const table = document.querySelector('table[data-result-key="result"]');
        return [
            'url: ' + location.href,
            'form#whatif: ' + (form ? cut(form.outerHTML) : '(none)'),
            'table: ' + (table ? cut(table.outerHTML) : '(none)'),
            table ? '' : 'body: ' + cut(document.body ? document.body.outerHTML : '(none)'),
        ].join('\n');
    })()"#;
    match page.evaluate(js) {
        Ok(Value::String(state)) => state,
        Ok(other) => other.to_string(),
        Err(e) => format!("(could not read the page: {e:#})"),
    }
}

/// A run of the DSCR review by the offline planner, in `runs`; returns its id.
fn make_run(ctx: &TestContext, runs: &Path) -> String {
    let output = offline(ctx)
        .arg("run")
        .arg("calculate DSCR for every property")
        .arg("--runs")
        .arg(runs)
        .arg("--json")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "metaexec run failed:\n{stderr}\n{stdout}");
    let record: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    record["id"].as_str().unwrap_or_else(|| panic!("no id in the run record: {stdout}")).to_owned()
}

/// `metaexec` with no model and no configuration, so the offline planner answers.
fn offline(ctx: &TestContext) -> std::process::Command {
    let config = ctx.path().join("empty-config.toml");
    std::fs::write(&config, "").unwrap();
    let mut command = metaexec_command(ctx);
    for var in ["METAEXEC_LLM_URL", "OPENAI_BASE_URL", "METAEXEC_MODEL", "OPENAI_API_KEY"] {
        command.env_remove(var);
    }
    command.env("METAEXEC_CONFIG", &config);
    command
}

/// `metaexec serve` on a free port; killed and reaped on drop.
struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`, as the server printed it.
    url: String,
}

impl Server {
    fn start(ctx: &TestContext, runs: &Path) -> Self {
        let mut child = offline(ctx)
            // A token from the environment would guard the pages the browser opens.
            .env_remove("METAEXEC_TOKEN")
            .args(["serve", "--port", "0", "--runs"])
            .arg(runs)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start metaexec serve");
        let stdout = child.stdout.take().unwrap();
        let mut server = Self { child, url: String::new() };
        // The server's stdout is read to its end, so a chatty server cannot fill the pipe
        // and stall; the first URL on it is the one to use.
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                eprintln!("serve: {line}");
                if let Some(start) = line.find("http://") {
                    let url = line[start..].split_whitespace().next().unwrap_or_default();
                    let _ = sender.send(url.trim_end_matches(['/', '.', ',', ')']).to_owned());
                }
            }
        });
        server.url = match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = server.child.wait().unwrap();
                panic!("metaexec serve exited ({status}) without printing its URL")
            }
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("metaexec serve printed no http:// URL within 60 s"),
        };
        server
    }

    /// Waits until `GET /health` answers 200.
    fn wait_healthy(&self) {
        let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        let health = format!("{}/health", self.url);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = client.get(&health).send().map(|r| r.status());
            if answer.as_ref().is_ok_and(|status| status.is_success()) {
                return;
            }
            assert!(Instant::now() < deadline, "`GET {health}` never answered 200: last {answer:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where build output goes: `CARGO_TARGET_DIR`, or the package's `target/`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}
