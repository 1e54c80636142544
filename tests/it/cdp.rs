//! A small client of the Chrome DevTools protocol for the browser tests: headless Chromium
//! on a throwaway profile, one websocket to its browser endpoint, and a page driven over a
//! flattened session (`Target.attachToTarget` with `flatten: true`), so every command
//! travels on that one socket and is matched to its answer by id.

use std::fs::File;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// The browser's executable: Debian's `chromium` package.
pub const CHROMIUM: &str = "chromium";

/// How long a command may go unanswered before the browser counts as hung. Generous: the
/// test machine has two cores and may be building at the same time.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How long Chromium may take to write its `DevToolsActivePort` file.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// `chromium` on `PATH`, if it is installed.
pub fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(CHROMIUM)).find(|candidate| candidate.is_file())
}

/// A headless Chromium on a throwaway profile. Chromium runs in a process group of its own,
/// led by the process started here; dropping the guard kills that group (the browser with
/// its renderer and utility processes) and reaps the browser.
pub struct Chromium {
    child: Child,
    /// Holds the profile (`profile/`) and Chromium's stderr (`stderr.log`); removed on drop.
    dir: tempfile::TempDir,
    /// The browser's DevTools websocket, `ws://127.0.0.1:PORT/devtools/browser/...`.
    ws_url: String,
    /// `child` has been waited for (it exited during start-up), so its id may be reused.
    reaped: bool,
}

impl Chromium {
    /// Starts `binary` headless on an empty page and waits for its DevTools endpoint.
    pub fn start(binary: &Path) -> Result<Self> {
        let dir = tempfile::tempdir().context("Failed to create the browser's temporary folder")?;
        let profile = dir.path().join("profile");
        std::fs::create_dir(&profile)?;
        // Chromium's stderr goes to a file: a pipe nobody reads could fill up and stall it,
        // and the file is there to show when start-up fails.
        let stderr = File::create(dir.path().join("stderr.log"))?;
        let child = Command::new(binary)
            .args([
                "--headless",
                // The tests run as root in a container, where Chromium's sandbox cannot start.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                "--no-default-browser-check",
                "--window-size=1280,1000",
                // Port 0: Chromium picks a free port and writes it to DevToolsActivePort, so
                // parallel tests and other browsers on the machine cannot collide.
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .with_context(|| format!("Failed to start `{}`", binary.display()))?;
        // The guard exists from here on, so any failure below still stops the browser.
        let mut chromium = Self { child, dir, ws_url: String::new(), reaped: false };

        let port_file = profile.join("DevToolsActivePort");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            // Line 1 is the port, line 2 the browser endpoint's path; the file may be caught
            // half-written, so both lines must be there.
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next())
                    && port.trim().parse::<u16>().is_ok()
                    && path.starts_with("/devtools/browser/")
                {
                    chromium.ws_url = format!("ws://127.0.0.1:{}{}", port.trim(), path.trim());
                    return Ok(chromium);
                }
            }
            if let Some(status) = chromium.child.try_wait()? {
                chromium.reaped = true;
                bail!("Chromium exited during start-up ({status}); its stderr:\n{}", chromium.stderr_tail());
            }
            if Instant::now() > deadline {
                bail!(
                    "Chromium wrote no DevToolsActivePort within {START_TIMEOUT:?}; its stderr:\n{}",
                    chromium.stderr_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Connects to the browser endpoint.
    pub fn connect(&self) -> Result<Cdp> {
        Cdp::connect(&self.ws_url)
    }

    /// The last lines Chromium wrote to stderr, for failure messages.
    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        // The group is signalled before the leader is reaped: while the leader is unreaped
        // its id cannot be reused, so the signal can only reach this browser's processes.
        let group = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) takes plain integers and touches no memory of this process.
        if unsafe { libc::kill(-group, libc::SIGKILL) } != 0 {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// One websocket to the browser endpoint. Commands are answered in any order, with events
/// in between; [`Cdp::call`] reads until the answer with its id and drops the rest.
pub struct Cdp {
    socket: WebSocket<TcpStream>,
    next_id: u64,
}

impl Cdp {
    /// Opens the websocket at `ws_url` (`ws://HOST:PORT/PATH`).
    pub fn connect(ws_url: &str) -> Result<Self> {
        let authority = ws_url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .ok_or_else(|| anyhow!("Failed to parse the DevTools URL `{ws_url}`"))?;
        let stream = TcpStream::connect(authority).with_context(|| format!("Failed to connect to `{authority}`"))?;
        // A read timeout turns a hung browser into an error instead of a hung test.
        stream.set_read_timeout(Some(COMMAND_TIMEOUT))?;
        let (socket, _) =
            tungstenite::client(ws_url, stream).map_err(|e| anyhow!("Failed to open the websocket `{ws_url}`: {e}"))?;
        Ok(Self { socket, next_id: 1 })
    }

    /// Sends `method` with `params` (to the page of `session`, if given) and returns the
    /// answer's `result`, or its `error` as an error.
    pub fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.socket.send(Message::text(message.to_string())).map_err(|e| anyhow!("Failed to send `{method}`: {e}"))?;
        loop {
            let text = match self.socket.read().map_err(|e| anyhow!("Failed to read the answer to `{method}`: {e}"))? {
                Message::Text(text) => text,
                Message::Close(frame) => bail!("the browser closed the DevTools socket during `{method}`: {frame:?}"),
                _ => continue,
            };
            let answer: Value =
                serde_json::from_str(&text).with_context(|| format!("Failed to parse a DevTools message: {text}"))?;
            if answer.get("id").and_then(Value::as_u64) != Some(id) {
                continue;
            }
            if let Some(error) = answer.get("error") {
                bail!("`{method}` failed: {error}");
            }
            return Ok(answer.get("result").cloned().unwrap_or(Value::Null));
        }
    }

    /// Opens a new blank tab and attaches to it.
    pub fn new_page(mut self) -> Result<Page> {
        let target = self.call(None, "Target.createTarget", json!({ "url": "about:blank" }))?;
        let target_id = target["targetId"].as_str().ok_or_else(|| anyhow!("no targetId in {target}"))?.to_owned();
        let attached = self.call(None, "Target.attachToTarget", json!({ "targetId": target_id, "flatten": true }))?;
        let session = attached["sessionId"].as_str().ok_or_else(|| anyhow!("no sessionId in {attached}"))?.to_owned();
        Ok(Page { cdp: self, session })
    }
}

/// A tab, driven through its flattened session.
pub struct Page {
    cdp: Cdp,
    session: String,
}

impl Page {
    /// Sends a command to this page.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        self.cdp.call(Some(&self.session), method, params)
    }

    /// Navigates to `url` and waits until that document has loaded (`readyState` is
    /// `complete`). The URL is compared as the page itself normalises it, so the blank page
    /// the tab started on, complete already, is not mistaken for the new one.
    pub fn navigate(&mut self, url: &str, timeout: Duration) -> Result<()> {
        let navigated = self.call("Page.navigate", json!({ "url": url }))?;
        if let Some(error) = navigated.get("errorText").and_then(Value::as_str) {
            bail!("Failed to navigate to `{url}`: {error}");
        }
        let url = json!(url);
        let loaded = format!("location.href === new URL({url}).href && document.readyState === 'complete'");
        self.wait_for(&loaded, timeout).with_context(|| format!("Failed to load `{url}`"))?;
        Ok(())
    }

    /// Evaluates `expression` in the page (awaiting it if it is a promise) and returns its
    /// value as JSON; `undefined` is `null`. A thrown exception is an error.
    pub fn evaluate(&mut self, expression: &str) -> Result<Value> {
        let answer = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
        )?;
        if let Some(details) = answer.get("exceptionDetails") {
            let description =
                details["exception"]["description"].as_str().map_or_else(|| details.to_string(), str::to_owned);
            bail!("Failed to evaluate `{expression}`: {description}");
        }
        Ok(answer["result"].get("value").cloned().unwrap_or(Value::Null))
    }

    /// Evaluates `expression` every 50 ms until it is truthy, and returns that value.
    pub fn wait_for(&mut self, expression: &str, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.evaluate(expression)?;
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return Ok(value);
            }
            if Instant::now() > deadline {
                bail!("`{expression}` was still {value} after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A PNG screenshot of the whole page, beyond the viewport (up to 10,000 pixels tall).
    pub fn screenshot_full_page(&mut self) -> Result<Vec<u8>> {
        let metrics = self.call("Page.getLayoutMetrics", json!({}))?;
        let size = &metrics["cssContentSize"];
        let (width, height) = (size["width"].as_f64().unwrap_or(1280.0), size["height"].as_f64().unwrap_or(1000.0));
        let clip = json!({ "x": 0, "y": 0, "width": width, "height": height.min(10_000.0), "scale": 1 });
        let shot = self
            .call("Page.captureScreenshot", json!({ "format": "png", "captureBeyondViewport": true, "clip": clip }))?;
        let data = shot["data"].as_str().ok_or_else(|| anyhow!("no data in the screenshot answer"))?;
        base64::engine::general_purpose::STANDARD.decode(data).context("Failed to decode the screenshot")
    }
}
