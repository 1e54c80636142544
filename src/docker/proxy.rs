//! The host interface over a unix socket, for a script in a container: the operations of
//! `runtime/wit/metaexec.wit` (results, log lines, the database) as one line of JSON per
//! request and per answer (`runtime/metaexec/_socket.py` is the other end). Every request
//! lands in the same [`Session`] the WASI sandbox uses, so it meets the same caps, the
//! same capability checks, the same audit and the same host memory budget; the container
//! never sees a database credential and keeps no network.
//!
//! A request the session refuses for good (a cap, a misuse, the budget) is answered with
//! `{"stop": ...}` and the run's [`Proxy::stopped`] fires, so that the container is
//! killed: nothing the script catches gets past it.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde::ser::{SerializeSeq, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::guest_db::{Column, DbAnswer, DbFailure, DbRequest, Rows, json_float};
use crate::sandbox::bindings::{GuestParamsRead, ScriptError};
use crate::sandbox::host::{db_request, query_request};
use crate::sandbox::session::{Session, Stop};

/// The protocol version `hello` must name.
const VERSION: u32 = 1;

/// What a line may hold besides a result: room for a statement and its parameters.
const LINE_SLACK: usize = 1 << 20;

/// One request, as the guest library sends it.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request {
    Hello { version: u32 },
    Emit { name: String, value: String },
    Log { message: String },
    DbQuery { sql: String, params: String, exact_decimals: bool },
    DbSchema,
    Finish { error: Option<FinishError>, params_read: FinishParams },
}

/// An exception the script did not catch (the interface's `script-error`).
#[derive(Debug, Deserialize)]
struct FinishError {
    type_name: String,
    message: String,
    traceback: String,
    line: Option<u32>,
    kind: Option<String>,
}

/// What the script read of its parameters (the interface's `params-read`).
#[derive(Debug, Deserialize)]
struct FinishParams {
    names: Vec<(String, Option<f64>)>,
    listed: bool,
}

/// What a container's script is started with.
#[derive(Debug, Clone)]
pub struct Hello {
    /// `metaexec.params`.
    pub params: Map<String, Value>,
    /// The seed of `random`.
    pub seed: Option<u64>,
}

/// A running proxy: it serves until dropped.
pub struct Proxy {
    task: JoinHandle<()>,
    /// Fires when a request stopped the run.
    pub stopped: Arc<Notify>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the host interface for `session` on a new socket at `path`, readable and
/// writable by whichever user the container runs as (its folder is the guard).
pub fn serve(path: &Path, session: Session, hello: Hello, max_line: usize) -> std::io::Result<Proxy> {
    let listener = UnixListener::bind(path)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    }
    let stopped = Arc::new(Notify::new());
    let hello = Arc::new(hello);
    let max_line = max_line.saturating_add(LINE_SLACK);
    let notify = stopped.clone();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            // A script may open more than one connection (threads, a web app's workers);
            // they share the session, as threads of a WASI guest would.
            connections.spawn(connection(stream, session.clone(), hello.clone(), notify.clone(), max_line));
        }
    });
    Ok(Proxy { task, stopped })
}

async fn connection(stream: UnixStream, session: Session, hello: Arc<Hello>, stopped: Arc<Notify>, max_line: usize) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = u64::try_from(max_line).unwrap_or(u64::MAX);
        let read = (&mut reader).take(limit.saturating_add(1)).read_until(b'\n', &mut line).await;
        let answer = match read {
            Ok(0) | Err(_) => return,
            Ok(_) if line.last() != Some(&b'\n') => {
                if line.len() > max_line {
                    Err(session.lock().results_cap_hit())
                } else {
                    // The connection ended inside a line.
                    return;
                }
            }
            Ok(_) => answer(&session, &hello, &line).await,
        };
        let (text, stop) = match answer {
            Ok(text) => (text, false),
            Err(stop) => (stop_answer(stop), true),
        };
        if write.write_all(text.as_bytes()).await.is_err() || write.write_all(b"\n").await.is_err() {
            return;
        }
        if stop {
            stopped.notify_one();
            return;
        }
    }
}

fn stop_answer(stop: Stop) -> String {
    serde_json::json!({ "stop": stop.message() }).to_string()
}

/// The answer to one request line, or the stop it caused.
async fn answer(session: &Session, hello: &Hello, line: &[u8]) -> Result<String, Stop> {
    session.lock().check()?;
    let request: Request = match serde_json::from_slice(line) {
        Ok(request) => request,
        Err(e) => return Err(session.lock().violation(format!("a request that is not one of the protocol's ({e})"))),
    };
    const OK: &str = r#"{"ok":null}"#;
    match request {
        Request::Hello { version } if version == VERSION => {
            Ok(serde_json::json!({ "ok": { "params": hello.params, "seed": hello.seed } }).to_string())
        }
        Request::Hello { version } => {
            Err(session.lock().violation(format!("protocol version {version} (the host speaks {VERSION})")))
        }
        Request::Emit { name, value } => session.lock().emit(&name, &value).map(|()| OK.into()),
        Request::Log { message } => session.lock().log(&message).map(|()| OK.into()),
        Request::DbQuery { sql, params, exact_decimals } => {
            let request = query_request(session, &sql, &params, exact_decimals)?;
            Ok(match db_request(session, request).await? {
                Ok(DbAnswer::Rows(rows)) => ok_rows(&rows),
                Ok(DbAnswer::Schema(_)) => failure(&wrong_answer()),
                Err(e) => failure(&e),
            })
        }
        Request::DbSchema => Ok(match db_request(session, DbRequest::Schema).await? {
            Ok(DbAnswer::Schema(json)) => serde_json::json!({ "ok": json.get() }).to_string(),
            Ok(DbAnswer::Rows(_)) => failure(&wrong_answer()),
            Err(e) => failure(&e),
        }),
        Request::Finish { error, params_read } => {
            let mut state = session.lock();
            state.exception = error.map(|e| ScriptError {
                type_name: e.type_name,
                message: e.message,
                traceback: e.traceback,
                line: e.line,
                kind: e.kind,
            });
            state.params_read = Some(GuestParamsRead { names: params_read.names, listed: params_read.listed }.into());
            Ok(OK.into())
        }
    }
}

fn wrong_answer() -> DbFailure {
    DbFailure {
        kind: crate::guest_db::DbFailureKind::Error,
        message: "the database answered with the wrong kind of value".into(),
        hint: None,
    }
}

fn failure(failure: &DbFailure) -> String {
    serde_json::json!({ "err": { "kind": failure.kind.as_str(), "message": failure.message, "hint": failure.hint } })
        .to_string()
}

/// A query's rows: `{"ok": {"names", "columns", "count", "read", "decimals"}}`, each
/// column a JSON array.
fn ok_rows(rows: &Rows) -> String {
    #[derive(serde::Serialize)]
    struct Answer<'a> {
        ok: RowsOut<'a>,
    }
    #[derive(serde::Serialize)]
    struct RowsOut<'a> {
        names: &'a [String],
        columns: Vec<ColumnOut<'a>>,
        count: usize,
        read: bool,
        decimals: bool,
    }
    let answer = Answer {
        ok: RowsOut {
            names: &rows.names,
            columns: rows.columns.iter().map(ColumnOut).collect(),
            count: rows.count,
            read: rows.read,
            decimals: rows.decimals,
        },
    };
    serde_json::to_string(&answer).unwrap_or_else(|e| {
        failure(&DbFailure {
            kind: crate::guest_db::DbFailureKind::Error,
            message: format!("the rows could not be encoded: {e}"),
            hint: None,
        })
    })
}

/// One column as a JSON array, written from the proxy's shared copy.
struct ColumnOut<'a>(&'a Column);

impl serde::Serialize for ColumnOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fn seq<S: Serializer, T>(serializer: S, values: &[T], each: impl Fn(&T) -> Value) -> Result<S::Ok, S::Error> {
            let mut seq = serializer.serialize_seq(Some(values.len()))?;
            for value in values {
                seq.serialize_element(&each(value))?;
            }
            seq.end()
        }
        let text = |s: &str| Value::String(s.to_owned());
        match self.0 {
            Column::Floats(v) => seq(serializer, v, |x| json_float(*x)),
            Column::Integers(v) => seq(serializer, v, |x| Value::from(*x)),
            Column::Texts(v) => seq(serializer, v, |s| text(s)),
            Column::MaybeFloats(v) => seq(serializer, v, |x| x.map_or(Value::Null, json_float)),
            Column::MaybeIntegers(v) => seq(serializer, v, |x| x.map_or(Value::Null, Value::from)),
            Column::MaybeTexts(v) => seq(serializer, v, |s| s.as_deref().map_or(Value::Null, text)),
            Column::Values(json) => match RawValue::from_string(json.to_string()) {
                Ok(raw) => raw.serialize(serializer),
                Err(e) => Err(serde::ser::Error::custom(e)),
            },
        }
    }
}
