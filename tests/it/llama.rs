//! Real OpenAI-compatible model servers for the tests: llama.cpp's `llama-server` and
//! llama-cpp-python's `llama_cpp.server`, both serving SmolLM2-135M-Instruct (Q4_1) on the
//! CPU, so the LLM client meets the quirks of real servers and not only those of the scripted
//! one in `llm_server`.
//!
//! `.ci/llm-servers` builds both servers and fetches the model into
//! `$METAEXEC_LLM_DIR` (default `~/.cache/metaexec-llm`). When they are missing the tests fail
//! and say so, unless `METAEXEC_SKIP_LLAMA=1`, which turns them into loud skips.
//!
//! A server keeps a core busy while it answers and the machine has two, so only one runs at
//! a time in the test process: each handle holds a process-wide lock until it is dropped. The server is killed
//! when its handle is dropped, and by the kernel when the thread that started it ends, so a
//! test process killed outright leaves no server behind.

// Tests use only part of this helper, and pub items a test binary leaves unused would
// otherwise warn.
#![allow(dead_code)]

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Set to `1` to skip the model-server tests on a machine where `.ci/llm-servers` has not run.
const SKIP_ENV: &str = "METAEXEC_SKIP_LLAMA";
/// Where `.ci/llm-servers` puts the servers and the model (read by the script too).
const DIR_ENV: &str = "METAEXEC_LLM_DIR";
const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// One thread: ggml's threads spin at every barrier, so when the other core is busy (the rest
/// of the test suite, a build) two threads wait on each other and answer four times slower
/// than one (measured: 300 prompt + 64 generated tokens in ~5 s with one thread, ~19 s with two).
const THREADS: u32 = 1;
/// Loading the model takes a second or two; importing llama-cpp-python's server stack takes
/// longer, and much longer on a machine busy compiling.
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How much of the log a failure quotes.
const LOG_TAIL_LINES: usize = 40;

/// Which real server to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// llama.cpp's own C++ server, `llama-server`.
    LlamaServer,
    /// The Python bindings' FastAPI server, `python -m llama_cpp.server`.
    LlamaCppPython,
}

/// A running server on a loopback port; killed when dropped.
pub struct RealServer {
    child: Child,
    port: u16,
    model: String,
    log_path: PathBuf,
    // Dropped after the child is reaped (fields drop in order, after `Drop::drop`): the log
    // folder outlives the server, and the next server waits until this one is gone.
    _log_dir: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

/// The folder `.ci/llm-servers` fills.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os(DIR_ENV).filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/metaexec-llm"),
    }
}

/// Starts `server` with a context of `context` tokens and waits until it lists its model;
/// `None` (after printing a SKIPPED line) when the model-server tests are skipped. Panics
/// when the server or the model is missing, or the server does not come up.
pub fn start(server: Server, context: u32) -> Option<RealServer> {
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: real model server test not run ({SKIP_ENV}=1): {server:?} was not started");
        return None;
    }
    let dir = cache_dir();
    let program = match server {
        Server::LlamaServer => dir.join("llama-server"),
        Server::LlamaCppPython => dir.join("venv/bin/python"),
    };
    let model = dir.join("models").join(MODEL_FILE);
    let python_ready = server != Server::LlamaCppPython || dir.join("stamps/venv").is_file();
    if !program.is_file() || !model.is_file() || !python_ready {
        panic!(
            "{server:?} or its model is missing from {} (looked for {} and {}): run `.ci/llm-servers` once \
             (it builds both servers and fetches the model), or set {SKIP_ENV}=1 to skip the model-server tests",
            dir.display(),
            program.display(),
            model.display()
        );
    }

    static TURN: Mutex<()> = Mutex::new(());
    // A test that panicked while holding a server poisons the lock; that server is gone all the same.
    let turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
    let log_dir = tempfile::Builder::new().prefix("metaexec-llama-").tempdir().expect("a temporary folder");
    let log_path = log_dir.path().join("server.log");

    // A port found free may be taken before the server binds it: try a few.
    let mut last_failure = String::new();
    for _ in 0..3 {
        let port = free_port();
        let mut child = spawn(server_command(server, &program, &model, context, port), &log_path);
        match wait_until_ready(&mut child, port) {
            Ok(model) => {
                return Some(RealServer { child, port, model, log_path, _log_dir: log_dir, _turn: turn });
            }
            Err(failure) => {
                stop(&mut child);
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                last_failure = format!("{server:?} did not come up on port {port}: {failure}\n{}", tail(&log));
                // llama-server says "couldn't bind", uvicorn "address already in use".
                if !(log.contains("in use") || log.contains("couldn't bind")) {
                    break;
                }
            }
        }
    }
    panic!("{last_failure}")
}

impl RealServer {
    /// The OpenAI-compatible API root, `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The server's root, for its own endpoints beside the OpenAI ones (`/props`, `/tokenize`,
    /// `/extras/tokenize`).
    pub fn root_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The id of the one model the server lists under `GET /v1/models`.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Everything the server has logged so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

fn server_command(server: Server, program: &Path, model: &Path, context: u32, port: u16) -> Command {
    let mut command = Command::new(program);
    let (context, port, threads) = (context.to_string(), port.to_string(), THREADS.to_string());
    match server {
        // One slot, so the whole context is one request's; no web UI.
        Server::LlamaServer => {
            command.arg("--model").arg(model).args(["--ctx-size", &context, "--parallel", "1"]);
            command.args(["--threads", &threads, "--threads-batch", &threads, "--no-webui"]);
            command.args(["--host", "127.0.0.1", "--port", &port]);
        }
        Server::LlamaCppPython => {
            command.args(["-m", "llama_cpp.server", "--model"]).arg(model).args(["--n_ctx", &context]);
            command.args(["--n_threads", &threads, "--n_threads_batch", &threads]);
            command.args(["--host", "127.0.0.1", "--port", &port]);
            // The log shows what the server printed up to a failure, not what a buffer held back.
            command.env("PYTHONUNBUFFERED", "1");
        }
    }
    command
}

fn spawn(mut command: Command, log_path: &Path) -> Child {
    let log = File::create(log_path).expect("create the server log");
    command.stdin(Stdio::null()).stdout(log.try_clone().expect("clone the log handle")).stderr(log);
    // SAFETY: the closure runs in the forked child before exec and only calls prctl, which is
    // async-signal-safe and touches no memory shared with the parent.
    unsafe {
        command.pre_exec(|| {
            // The server dies with the thread that started it, even when the test process is
            // killed and no destructor runs.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn().unwrap_or_else(|e| panic!("starting {:?}: {e}", command.get_program()))
}

fn stop(child: &mut Child) {
    // Killed by its own PID (Child::kill); a server that already exited is simply reaped.
    let _ = child.kill();
    let _ = child.wait();
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("finding a free port");
    listener.local_addr().expect("the port's address").port()
}

/// Polls `GET /v1/models` until it answers 200 with a model, and returns the model's id.
fn wait_until_ready(child: &mut Child, port: u16) -> Result<String, String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("an HTTP client: {e}"))?;
    let url = format!("http://127.0.0.1:{port}/v1/models");
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last = String::from("no answer yet");
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("the server exited ({status}); last answer: {last}"));
        }
        match client.get(&url).send().and_then(|r| Ok((r.status().as_u16(), r.text()?))) {
            Ok((200, body)) => {
                let models: Value =
                    serde_json::from_str(&body).map_err(|e| format!("{url} is not JSON ({e}): {body}"))?;
                return models["data"][0]["id"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{url} lists no model: {body}"));
            }
            // llama-server answers 503 while it loads the model.
            Ok((status, body)) => last = format!("{status} {body}"),
            Err(e) => last = e.to_string(),
        }
        if Instant::now() > deadline {
            return Err(format!("no model listed within {READY_TIMEOUT:?}; last answer: {last}"));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let start = lines.len().saturating_sub(LOG_TAIL_LINES);
    format!("server log (last {} lines):\n{}", lines.len() - start, lines[start..].join("\n"))
}

/// Status and body text of a JSON POST (reqwest is built without its `json` feature).
fn post(url: &str, body: &Value) -> (u16, String) {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
    let response =
        client.post(url).header("content-type", "application/json").body(body.to_string()).send().expect("POST");
    (response.status().as_u16(), response.text().expect("read the body"))
}

/// The context size the server says it runs with: llama-server in `GET /props`,
/// llama-cpp-python (which has no such endpoint) in llama.cpp's start-up log line
/// `llama_context: n_ctx = N`.
fn served_context(real: &RealServer, server: Server) -> Option<u64> {
    match server {
        Server::LlamaServer => {
            let props = reqwest::blocking::get(format!("{}/props", real.root_url())).ok()?.text().ok()?;
            serde_json::from_str::<Value>(&props).ok()?["default_generation_settings"]["n_ctx"].as_u64()
        }
        Server::LlamaCppPython => real.log().lines().find_map(|line| {
            let value = line.strip_prefix("llama_context:")?.trim().strip_prefix("n_ctx")?.trim().strip_prefix('=')?;
            value.trim().parse().ok()
        }),
    }
}

fn lists_its_model_and_answers(server: Server) {
    // Not the usual 4096, to see that the size asked for is the size served.
    let Some(real) = start(server, 2048) else { return };
    assert_eq!(served_context(&real, server), Some(2048), "{}", tail(&real.log()));
    let models: Value =
        serde_json::from_str(&reqwest::blocking::get(format!("{}/models", real.base_url())).unwrap().text().unwrap())
            .unwrap();
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, [real.model()], "{models}");

    let request = json!({
        "model": real.model(),
        "messages": [{"role": "user", "content": "Say hello in one word."}],
        "max_tokens": 8,
        "temperature": 0,
    });
    let (status, body) = post(&format!("{}/chat/completions", real.base_url()), &request);
    assert_eq!(status, 200, "{body}\n{}", tail(&real.log()));
    let answer: Value = serde_json::from_str(&body).unwrap();
    let choice = &answer["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant", "{answer}");
    assert!(choice["message"]["content"].is_string(), "{answer}");
    assert!(["stop", "length"].contains(&choice["finish_reason"].as_str().unwrap_or_default()), "{answer}");
    let generated = answer["usage"]["completion_tokens"].as_u64().unwrap_or_default();
    assert!((1..=8).contains(&generated), "{answer}");
}

#[test]
fn llama_server_lists_its_model_and_answers() {
    lists_its_model_and_answers(Server::LlamaServer);
}

#[test]
fn llama_cpp_python_lists_its_model_and_answers() {
    lists_its_model_and_answers(Server::LlamaCppPython);
}
