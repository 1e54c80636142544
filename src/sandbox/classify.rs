//! Turns how a run ended, plus what the session and the limiter saw, into an `Outcome`.
//!
//! Limits are decided from the host's own records (the session's cap flag, the limiter's
//! flag, wasmtime's trap codes, our deadline), never from the guest's text: a script
//! cannot make a limit look like success or the other way round.

use std::time::Duration;

use wasmtime::Trap;
use wasmtime_wasi::I32Exit;

use super::bindings::ScriptError;
use super::session::{CapturedStream, SessionState};
use crate::guest_db::DbFailureKind;
use crate::job::{Job, Limits};
use crate::outcome::{ErrorKind, Metrics, Outcome, OutcomeError, Status, Truncated};

/// How the guest's calls ended.
#[derive(Debug)]
pub enum Ending {
    /// Every call returned (a script's exception is a return, recorded in the session).
    Returned,
    /// The guest called `proc_exit`.
    Exited(i32),
    /// A wasm trap.
    Trap(Trap),
    /// The outer deadline dropped the run while it was blocked in a host call.
    Deadline,
    /// wasmtime refused to copy more than the store's hostcall fuel from the guest in
    /// one call.
    HostcallLimit,
    /// Anything else wasmtime reported (a trap raised by a stream, an instantiation
    /// failure).
    Host(String),
}

impl Ending {
    /// Classifies an error from instantiating or calling the guest.
    pub fn from_error(error: &wasmtime::Error) -> Self {
        if let Some(exit) = error.downcast_ref::<I32Exit>() {
            return if exit.0 == 0 { Self::Returned } else { Self::Exited(exit.0) };
        }
        if let Some(trap) = error.downcast_ref::<Trap>() {
            return Self::Trap(*trap);
        }
        let message = format!("{error:#}");
        // wasmtime's own error type for it is private; its text is fixed for the pinned
        // version (and checked by the red-team corpus).
        if message.contains("fuel allocated for hostcalls has been exhausted") {
            return Self::HostcallLimit;
        }
        Self::Host(message)
    }
}

/// Everything known at the end of a run.
pub struct RunReport<'a> {
    pub ending: Ending,
    pub state: &'a mut SessionState,
    pub memory_hit: bool,
    pub peak_memory: u64,
    pub fuel_used: Option<u64>,
    pub job: &'a Job,
    pub wall: Duration,
    pub runtime: String,
}

fn mib(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib >= 1.0 { format!("{mib:.0} MiB") } else { format!("{bytes} bytes") }
}

pub fn error(report: &RunReport<'_>) -> Option<(OutcomeError, i32)> {
    let limits = &report.job.limits;
    if let Some(stream) = report.state.limit_hit {
        let (cap, flag) = match stream {
            CapturedStream::Stdout => (limits.stdout_bytes, "--max-output"),
            CapturedStream::Stderr => (limits.stderr_bytes, "--max-output"),
            CapturedStream::Results => (limits.results_bytes, "--max-results"),
        };
        let error = OutcomeError::new(
            ErrorKind::OutputLimit,
            format!("The script's {} exceeded its cap of {}; the run was stopped", stream.as_str(), mib(cap as u64)),
        )
        .with_hint(format!("write large output to a file in the results folder, or raise {flag}"));
        return Some((error, 1));
    }
    if let Some(problem) = &report.state.protocol_error {
        let error = OutcomeError::new(
            ErrorKind::Protocol,
            format!("The script misused the host interface ({problem}); its instance was stopped"),
        )
        .with_hint("reach the host only through the metaexec library (result, emit, log, db)");
        return Some((error, 1));
    }
    if let Some(exceeded) = &report.state.budget_error {
        let error =
            OutcomeError::new(ErrorKind::HostMemory, format!("The run was stopped: {exceeded} (--host-memory)"))
                .with_hint(crate::budget::BUDGET_HINT);
        return Some((error, 1));
    }
    match &report.ending {
        Ending::Deadline | Ending::Trap(Trap::Interrupt) => {
            let error = OutcomeError::new(
                ErrorKind::Timeout,
                format!(
                    "The script ran past its wall-clock limit of {:.1} s and was stopped",
                    limits.timeout.as_secs_f64()
                ),
            )
            .with_hint("raise --timeout if the work really needs longer");
            return Some((error, 1));
        }
        Ending::HostcallLimit => {
            let error = OutcomeError::new(
                ErrorKind::HostMemory,
                format!(
                    "The run was stopped: the script handed the host more than {} in one call",
                    mib(super::hostcall_fuel(limits) as u64)
                ),
            )
            .with_hint(crate::budget::BUDGET_HINT);
            return Some((error, 1));
        }
        Ending::Trap(Trap::OutOfFuel) => {
            let error = OutcomeError::new(
                ErrorKind::FuelExhausted,
                format!("The script used up its CPU budget of {} fuel units and was stopped", limits.fuel.unwrap_or(0)),
            )
            .with_hint("raise --fuel, or look for a loop that does not end");
            return Some((error, 1));
        }
        _ => {}
    }
    if let Some(exception) = &report.state.exception {
        let error = exception_error(exception, &report.state.db_failures, limits);
        return Some((error, exit_status(exception).unwrap_or(1)));
    }
    match &report.ending {
        Ending::Returned => None,
        Ending::Exited(_) | Ending::Trap(_) | Ending::Host(_) if report.memory_hit => {
            Some((memory_error(limits, None, None), 1))
        }
        Ending::Exited(code) => {
            Some((OutcomeError::new(ErrorKind::GuestException, format!("The script exited with status {code}")), *code))
        }
        Ending::Trap(trap) => Some((
            OutcomeError::new(
                ErrorKind::GuestException,
                format!("The interpreter stopped on a wasm trap ({trap}); deep recursion in C code is the usual cause"),
            ),
            1,
        )),
        Ending::Host(message) => {
            Some((OutcomeError::new(ErrorKind::Internal, format!("The sandbox failed: {message}")), 2))
        }
        Ending::Deadline | Ending::HostcallLimit => unreachable!("handled above"),
    }
}

fn memory_error(limits: &Limits, line: Option<u32>, traceback: Option<String>) -> OutcomeError {
    let mut error = OutcomeError::new(
        ErrorKind::MemoryLimit,
        format!("The script needed more than its memory cap of {}", mib(limits.memory_bytes)),
    )
    .with_hint("raise --memory, or process the data in smaller pieces");
    error.line = line;
    error.traceback = traceback;
    error
}

/// The exit status a `SystemExit` asked for (`sys.exit(3)`; 1 for `sys.exit("text")`).
fn exit_status(exception: &ScriptError) -> Option<i32> {
    (exception.type_name == "SystemExit").then(|| exception.message.trim().parse().unwrap_or(1))
}

/// The error for an exception the script did not catch. `db_failures` are the database
/// refusals and failures the host reported to the guest in the same run (or scenario).
pub fn exception_error(exception: &ScriptError, db_failures: &[DbFailureKind], limits: &Limits) -> OutcomeError {
    if let Some(status) = exit_status(exception) {
        let mut message = format!("The script exited with status {status}");
        if exception.message.trim().parse::<i32>().is_err() {
            message.push_str(&format!(": {}", exception.message));
        }
        return OutcomeError::new(ErrorKind::GuestException, message);
    }
    let kind = match exception.type_name.as_str() {
        "SyntaxError" | "IndentationError" | "TabError" => ErrorKind::Syntax,
        "MemoryError" => return memory_error(limits, exception.line, Some(exception.traceback.clone())),
        _ => db_error_kind(exception.kind.as_deref(), db_failures).unwrap_or(ErrorKind::GuestException),
    };
    let message = if exception.message.is_empty() {
        exception.type_name.clone()
    } else {
        format!("{}: {}", exception.type_name, exception.message)
    };
    let mut error = OutcomeError::new(kind, message);
    error.traceback = Some(exception.traceback.clone());
    error.line = exception.line;
    error
}

/// The database kind an uncaught guest-library error stands for, if the host really
/// refused or failed a request of that kind in this run: a script raising `DenyError`
/// itself is an ordinary exception.
fn db_error_kind(claimed: Option<&str>, reported: &[DbFailureKind]) -> Option<ErrorKind> {
    let claimed = reported.iter().find(|kind| Some(kind.as_str()) == claimed)?;
    Some(match claimed {
        DbFailureKind::Denied => ErrorKind::DbDenied,
        DbFailureKind::Error => ErrorKind::DbError,
    })
}

/// Builds the outcome of a finished run.
pub fn outcome(report: RunReport<'_>) -> Outcome {
    let classified = error(&report);
    let state = report.state;
    let stderr = String::from_utf8_lossy(&state.stderr.bytes).into_owned();
    let db_queries = state.db_audit.len();
    let (status, error, exit_code) = match classified {
        None => (Status::Ok, None, 0),
        Some((error, code)) => (Status::Error, Some(error), code),
    };
    Outcome {
        status,
        error,
        exit_code,
        results: state.take_results(),
        stdout: String::from_utf8_lossy(&state.stdout.bytes).into_owned(),
        stderr,
        truncated: Truncated { stdout: state.stdout.truncated, stderr: state.stderr.truncated },
        logs: std::mem::take(&mut state.logs),
        db_audit: std::mem::take(&mut state.db_audit),
        metrics: Metrics {
            wall_ms: report.wall.as_secs_f64() * 1000.0,
            fuel_used: report.fuel_used,
            peak_memory_bytes: report.peak_memory,
            db_queries: db_queries as u64,
        },
        sanitized: Vec::new(),
        backend: "wasi".into(),
        runtime: report.runtime,
        params_read: state.params_read.take(),
    }
}
