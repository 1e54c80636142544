//! One run's channel state: it separates the guest's fd 1 into the script's own stdout
//! and protocol frames, applies the frames, queues replies for fd 0, and enforces the
//! output caps.
//!
//! All of it sits behind one mutex shared by the three WASI stream adapters
//! (`streams.rs`); the guest is single-threaded, so the lock is never contended.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde_json::{Map, Value};

use super::classify;
use crate::budget::{HostBudget, Reservation};
use crate::frame::marshal::MarshalError;
use crate::frame::{
    ExceptionReport, FRAME_MAGIC, FrameError, GuestMessage, PROTOCOL_VERSION, Reply, ReplyError, ScenarioEnd,
    decode_frame,
};
use crate::guest_db::{AuditEntry, DbFailure, DbFailureKind, DbHandle, DbRequest, DbResponse};
use crate::job::Limits;
use crate::outcome::{ErrorKind, OutcomeError};
use crate::scenario::{Scenario, ScenarioOutcome, ScenarioQueue, ScenarioStatus};

/// The longest frame header after the magic and nonce: a length in decimal and `\n`.
const MAX_HEADER_DIGITS: usize = 20;
/// What an audit entry costs the host besides its texts and parameters.
const AUDIT_ENTRY_BYTES: usize = std::mem::size_of::<AuditEntry>() + 64;

/// Which cap a run hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapturedStream {
    /// The script's stdout.
    Stdout,
    /// The script's stderr.
    Stderr,
    /// Results sent through the channel.
    Results,
}

impl CapturedStream {
    /// `stdout`, `stderr` or `results`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
            Self::Results => "results",
        }
    }
}

/// Why the channel stopped the instance: the guest will get a trap on its next write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A stream went past its cap.
    Cap(CapturedStream),
    /// The guest broke the protocol (see `ChannelState::protocol_error`).
    Protocol,
    /// The guest made the host hold more than the job's budget (see
    /// `ChannelState::budget_error`).
    HostMemory,
}

impl Stop {
    /// What the trap says.
    pub fn message(self) -> String {
        match self {
            Self::Cap(stream) => format!("the script's {} exceeded its cap", stream.as_str()),
            Self::Protocol => "the script broke the host protocol".into(),
            Self::HostMemory => "the script exceeded the host memory budget".into(),
        }
    }
}

/// A captured stream with a cap. Past the cap the stream keeps what fitted and notes
/// that it was cut.
#[derive(Debug, Default)]
pub struct Capture {
    /// What was captured, at most `cap` bytes.
    pub bytes: Vec<u8>,
    cap: usize,
    /// True once something did not fit.
    pub truncated: bool,
}

impl Capture {
    fn new(cap: usize) -> Self {
        Self { bytes: Vec::new(), cap, truncated: false }
    }

    /// Appends `data`; false when it did not all fit.
    fn push(&mut self, data: &[u8]) -> bool {
        let room = self.cap.saturating_sub(self.bytes.len());
        if data.len() <= room {
            self.bytes.extend_from_slice(data);
            true
        } else {
            self.bytes.extend_from_slice(&data[..room]);
            self.truncated = true;
            false
        }
    }
}

/// Receives `metaexec.log` lines as they arrive.
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

/// The state of one run's channel.
pub struct ChannelState {
    prefix: Vec<u8>,
    /// Bytes from fd 1 not yet known to be text or a whole frame.
    pending: Vec<u8>,
    /// The script's stdout.
    pub stdout: Capture,
    /// The script's stderr.
    pub stderr: Capture,
    results_bytes: usize,
    results_cap: usize,
    /// Results so far (`result` under `"result"`, `emit` under its name).
    pub results: Map<String, Value>,
    /// `metaexec.log` lines so far.
    pub logs: Vec<String>,
    /// The uncaught exception, if the guest reported one.
    pub exception: Option<ExceptionReport>,
    /// The first cap hit, if any.
    pub limit_hit: Option<CapturedStream>,
    /// The first frame that broke the protocol, if any: it stopped the instance.
    pub protocol_error: Option<String>,
    /// What went past the host memory budget (or a frame's bound on values), if
    /// anything: it stopped the instance.
    pub budget_error: Option<String>,
    /// Host memory held for decoded frames (results, logs) until they are handed on.
    held: Reservation,
    /// Host memory held for replies queued for the guest.
    reply_held: Reservation,
    /// Host memory held for the audit trail, which lives as long as the instance.
    audit_held: Reservation,
    /// Every database request, in order.
    pub db_audit: Vec<AuditEntry>,
    /// The database failure kinds the host itself reported to the guest.
    pub db_failures: Vec<DbFailureKind>,
    replies: VecDeque<u8>,
    params: Map<String, Value>,
    on_log: Option<LogSink>,
    db: Option<DbHandle>,
    /// Database requests waiting for the guest's next read of fd 0.
    db_pending: VecDeque<(u64, DbRequest)>,
    sweep: Option<SweepState>,
}

/// Sweep mode: where scenarios come from and which one is running.
pub struct SweepState {
    queue: Arc<dyn ScenarioQueue>,
    limits: Limits,
    /// Handed out in the current batch and not started yet.
    batch: VecDeque<Scenario>,
    /// The running scenario; it started when the current stretch did.
    current: Option<Scenario>,
    /// When the current stretch of guest time began: the instance's start, a scenario's
    /// start, or the end of the last one. Every stretch is held to the job's limits, so
    /// the guest is under a deadline at every moment, not only inside scenarios.
    stretch: Instant,
    /// Counts stretches, so a watcher can tell a new one from a long one.
    generation: u64,
    /// Scenarios this instance settled.
    settled: usize,
}

impl SweepState {
    /// Sweep mode over `queue`, each scenario held to `limits`.
    pub fn new(queue: Arc<dyn ScenarioQueue>, limits: Limits) -> Self {
        Self {
            queue,
            limits,
            batch: VecDeque::new(),
            current: None,
            stretch: Instant::now(),
            generation: 0,
            settled: 0,
        }
    }

    /// Starts the batch's next scenario, if any, and a new stretch either way.
    fn start_next(&mut self) {
        self.stretch = Instant::now();
        self.generation += 1;
        self.current = self.batch.pop_front();
    }
}

/// Where a sweep instance is in its life, for the watchers that hold it to its limits.
#[derive(Debug, Clone, Copy)]
pub struct SweepClock {
    /// Counts stretches of guest time.
    pub generation: u64,
    /// When the current stretch began.
    pub since: Instant,
    /// Whether a scenario is running (otherwise the instance is starting, between
    /// scenarios, or past the last one).
    pub running: bool,
}

/// Caps and inputs of a channel.
pub struct ChannelConfig {
    /// The run's nonce (hex).
    pub nonce: String,
    /// The params the guest receives.
    pub params: Map<String, Value>,
    /// Cap on stdout bytes.
    pub stdout_cap: usize,
    /// Cap on stderr bytes.
    pub stderr_cap: usize,
    /// Cap on frame bytes in total (and so on any single frame).
    pub results_cap: usize,
    /// Where log lines go as they arrive.
    pub on_log: Option<LogSink>,
    /// The database `metaexec.db` reaches, if any.
    pub db: Option<DbHandle>,
    /// Sweep mode, if this instance runs scenarios.
    pub sweep: Option<SweepState>,
    /// The job's host memory budget.
    pub budget: HostBudget,
}

/// A shared handle on a run's channel state.
#[derive(Clone)]
pub struct Channel(Arc<Mutex<ChannelState>>);

impl Channel {
    /// A fresh channel.
    pub fn new(config: ChannelConfig) -> Self {
        let mut prefix = FRAME_MAGIC.to_vec();
        prefix.extend_from_slice(config.nonce.as_bytes());
        prefix.push(b' ');
        Self(Arc::new(Mutex::new(ChannelState {
            prefix,
            pending: Vec::new(),
            stdout: Capture::new(config.stdout_cap),
            stderr: Capture::new(config.stderr_cap),
            results_bytes: 0,
            results_cap: config.results_cap,
            results: Map::new(),
            logs: Vec::new(),
            exception: None,
            limit_hit: None,
            protocol_error: None,
            budget_error: None,
            held: config.budget.empty(),
            reply_held: config.budget.empty(),
            audit_held: config.budget.empty(),
            db_audit: Vec::new(),
            db_failures: Vec::new(),
            replies: VecDeque::new(),
            params: config.params,
            on_log: config.on_log,
            db: config.db,
            db_pending: VecDeque::new(),
            sweep: config.sweep,
        })))
    }

    /// Locks the state. A poisoned lock (a panic while holding it) still yields the data:
    /// the run is over by then and its partial results are worth keeping.
    pub fn lock(&self) -> MutexGuard<'_, ChannelState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ChannelState {
    fn hit(&mut self, stream: CapturedStream) -> Stop {
        self.limit_hit.get_or_insert(stream);
        Stop::Cap(stream)
    }

    /// Records a protocol violation; the instance stops.
    fn violation(&mut self, problem: impl Into<String>) -> Stop {
        self.protocol_error.get_or_insert_with(|| problem.into());
        Stop::Protocol
    }

    /// Records a budget refusal; the instance stops.
    fn over_budget(&mut self, problem: String) -> Stop {
        self.budget_error.get_or_insert(problem);
        Stop::HostMemory
    }

    /// Why the instance was stopped, if it was.
    pub fn stopped(&self) -> Option<Stop> {
        if let Some(stream) = self.limit_hit {
            Some(Stop::Cap(stream))
        } else if self.protocol_error.is_some() {
            Some(Stop::Protocol)
        } else if self.budget_error.is_some() {
            Some(Stop::HostMemory)
        } else {
            None
        }
    }

    fn text(&mut self, start: usize, end: usize) -> Result<(), Stop> {
        if start == end {
            return Ok(());
        }
        let fits = {
            let (pending, stdout) = (&self.pending, &mut self.stdout);
            stdout.push(&pending[start..end])
        };
        if fits { Ok(()) } else { Err(self.hit(CapturedStream::Stdout)) }
    }

    /// Takes bytes the guest wrote to fd 1.
    pub fn write_stdout(&mut self, data: &[u8]) -> Result<(), Stop> {
        if let Some(stop) = self.stopped() {
            return Err(stop);
        }
        self.pending.extend_from_slice(data);
        self.demux()
    }

    /// Splits `pending` into text and frames, leaving only an unfinished frame (or what
    /// may be the start of one) behind.
    fn demux(&mut self) -> Result<(), Stop> {
        let mut pos = 0;
        let outcome = loop {
            let Some(offset) = self.pending[pos..].iter().position(|&b| b == FRAME_MAGIC[0]) else {
                let end = self.pending.len();
                break self.text(pos, end).map(|()| end);
            };
            let start = pos + offset;
            if let Err(e) = self.text(pos, start) {
                break Err(e);
            }
            match self.frame_at(start) {
                FrameScan::NotAFrame => {
                    if let Err(e) = self.text(start, start + 1) {
                        break Err(e);
                    }
                    pos = start + 1;
                }
                FrameScan::Incomplete => break Ok(start),
                FrameScan::Frame { payload, end } => {
                    if let Err(e) = self.frame(payload) {
                        break Err(e);
                    }
                    pos = end;
                }
                FrameScan::TooLarge => break Err(self.hit(CapturedStream::Results)),
            }
        };
        match outcome {
            Ok(consumed) => {
                self.pending.drain(..consumed);
                Ok(())
            }
            Err(stream) => {
                self.pending.clear();
                Err(stream)
            }
        }
    }

    fn frame_at(&self, start: usize) -> FrameScan {
        let rest = &self.pending[start..];
        let prefix = &self.prefix;
        if rest.len() < prefix.len() {
            return if prefix.starts_with(rest) { FrameScan::Incomplete } else { FrameScan::NotAFrame };
        }
        if !rest.starts_with(prefix) {
            return FrameScan::NotAFrame;
        }
        let header = &rest[prefix.len()..];
        let Some(newline) = header.iter().take(MAX_HEADER_DIGITS + 1).position(|&b| b == b'\n') else {
            return if header.len() > MAX_HEADER_DIGITS { FrameScan::NotAFrame } else { FrameScan::Incomplete };
        };
        let Some(len) = std::str::from_utf8(&header[..newline]).ok().and_then(|s| s.parse::<usize>().ok()) else {
            return FrameScan::NotAFrame;
        };
        if len > self.results_cap.saturating_sub(self.results_bytes) {
            return FrameScan::TooLarge;
        }
        let body = start + prefix.len() + newline + 1;
        if self.pending.len() < body + len {
            return FrameScan::Incomplete;
        }
        FrameScan::Frame { payload: (body, body + len), end: body + len }
    }

    fn frame(&mut self, (start, end): (usize, usize)) -> Result<(), Stop> {
        self.results_bytes += end - start;
        let frame = match decode_frame(&self.pending[start..end], &mut self.held) {
            Ok(frame) => frame,
            Err(FrameError::Budget(e)) => return Err(self.over_budget(e.to_string())),
            Err(e @ FrameError::Marshal(MarshalError::TooManyValues)) => return Err(self.over_budget(e.to_string())),
            Err(e) => return Err(self.violation(format!("a malformed frame: {e}"))),
        };
        let id = frame.id;
        // One request in flight at a time: the guest library always reads a reply before
        // it asks again, so a second request means replies would pile up in the host.
        if frame.message.expects_reply() && (!self.replies.is_empty() || !self.db_pending.is_empty()) {
            return Err(self.violation("a request sent before the reply to the last one was read"));
        }
        if let Some(problem) = self.sweep.as_ref().and_then(|sweep| out_of_turn(sweep, &frame.message)) {
            return Err(self.violation(problem));
        }
        match frame.message {
            GuestMessage::Hello { v } => {
                let reply = if v == PROTOCOL_VERSION {
                    let params = Value::Object(self.params.clone());
                    let value = serde_json::json!({ "v": PROTOCOL_VERSION, "params": params });
                    Reply::ok(id, serde_json::value::to_raw_value(&value).expect("params are plain JSON"))
                } else {
                    Reply::error(
                        id,
                        "protocol",
                        format!("the guest library speaks protocol {v}, the host speaks {PROTOCOL_VERSION}"),
                    )
                };
                self.replies.extend(reply.encode());
            }
            GuestMessage::Emit { name, value } => {
                self.results.insert(name, value);
            }
            GuestMessage::Result { value } => {
                self.results.insert("result".into(), value);
            }
            GuestMessage::Log { message } => {
                if let Some(sink) = &self.on_log {
                    sink(&message);
                }
                self.logs.push(message);
            }
            GuestMessage::Exception(report) => self.exception = Some(report),
            GuestMessage::DbQuery { sql, params, exact_decimals } => {
                self.db_request(id, DbRequest::Query { sql, params, exact_decimals });
            }
            GuestMessage::DbSchema {} => self.db_request(id, DbRequest::Schema),
            GuestMessage::SweepNext {} => self.sweep_next(id),
            GuestMessage::SweepEnd(end) => self.sweep_end(end),
        }
        self.reserve_replies()
    }

    /// Charges queued replies to the budget (and gives back what the guest has read).
    fn reserve_replies(&mut self) -> Result<(), Stop> {
        let queued = self.replies.len();
        let held = self.reply_held.bytes();
        if queued <= held {
            self.reply_held.shrink_to(queued);
            return Ok(());
        }
        match self.reply_held.grow(queued - held, "a reply to the guest") {
            Ok(()) => Ok(()),
            Err(e) => {
                self.replies.clear();
                self.reply_held.shrink_to(0);
                Err(self.over_budget(e.to_string()))
            }
        }
    }

    /// Hands out the next batch of scenarios and starts the first.
    fn sweep_next(&mut self, id: u64) {
        let reply = match self.sweep.as_mut() {
            None => Reply::error(id, "protocol", "sweep.next outside a sweep"),
            Some(sweep) => {
                sweep.batch = sweep.queue.next_batch().into();
                let params: Vec<&Map<String, Value>> = sweep.batch.iter().map(|s| &s.params).collect();
                let value = serde_json::value::to_raw_value(&params).expect("params are plain JSON");
                sweep.start_next();
                Reply::ok(id, value)
            }
        };
        self.replies.extend(reply.encode());
    }

    /// Closes the running scenario with the guest's report and starts the next.
    fn sweep_end(&mut self, end: ScenarioEnd) {
        let Some(mut sweep) = self.sweep.take() else { return };
        if let Some(current) = sweep.current.take() {
            let (status, error) = match (end.status.as_str(), end.error) {
                ("ok", _) => (ScenarioStatus::Ok, None),
                (_, Some(report)) => {
                    (ScenarioStatus::Error, Some(classify::exception_error(&report, &self.db_failures, &sweep.limits)))
                }
                (_, None) => (
                    ScenarioStatus::Error,
                    Some(OutcomeError::new(ErrorKind::Internal, "the scenario ended without saying how")),
                ),
            };
            let outcome = self.scenario_outcome(current, sweep.stretch, status, error);
            sweep.queue.finish(outcome);
            sweep.settled += 1;
            sweep.start_next();
        }
        self.sweep = Some(sweep);
    }

    /// Collects what the guest produced since the scenario started, and resets the
    /// per-scenario caps.
    fn scenario_outcome(
        &mut self,
        scenario: Scenario,
        started: Instant,
        status: ScenarioStatus,
        error: Option<OutcomeError>,
    ) -> ScenarioOutcome {
        self.results_bytes = 0;
        self.db_failures.clear();
        // The results move into the outcome; the queue charges what it keeps.
        self.held.shrink_to(0);
        let fresh = Capture::new(self.stdout.cap);
        let stdout = std::mem::replace(&mut self.stdout, fresh);
        self.stderr = Capture::new(self.stderr.cap);
        ScenarioOutcome {
            id: scenario.id,
            params: scenario.params,
            status,
            error,
            results: std::mem::take(&mut self.results),
            stdout: String::from_utf8_lossy(&stdout.bytes).into_owned(),
            logs: std::mem::take(&mut self.logs),
            wall_ms: started.elapsed().as_secs_f64() * 1000.0,
        }
    }

    /// Sweep mode: records the running scenario as failed with `error` (the instance
    /// stopped under it) and puts the rest of its batch back in the queue for another
    /// instance. False when no scenario was running.
    pub fn fail_current_scenario(&mut self, error: OutcomeError) -> bool {
        let Some(mut sweep) = self.sweep.take() else { return false };
        let failed = match sweep.current.take() {
            Some(current) => {
                let outcome = self.scenario_outcome(current, sweep.stretch, ScenarioStatus::Error, Some(error));
                sweep.queue.finish(outcome);
                sweep.settled += 1;
                true
            }
            None => false,
        };
        if !sweep.batch.is_empty() {
            sweep.queue.requeue(sweep.batch.drain(..).collect());
        }
        self.sweep = Some(sweep);
        failed
    }

    /// Sweep mode: the count of stretches of guest time so far and when the current one
    /// began (see `SweepState::stretch`).
    pub fn sweep_clock(&self) -> Option<SweepClock> {
        self.sweep.as_ref().map(|s| SweepClock {
            generation: s.generation,
            since: s.stretch,
            running: s.current.is_some(),
        })
    }

    /// Sweep mode: how many scenarios this instance settled (0 outside a sweep).
    pub fn sweep_settled(&self) -> usize {
        self.sweep.as_ref().map_or(0, |s| s.settled)
    }

    /// Queues a database request for the guest's next read, or refuses it at once when
    /// the run has no database.
    fn db_request(&mut self, id: u64, request: DbRequest) {
        if self.db.is_some() {
            self.db_pending.push_back((id, request));
            return;
        }
        let failure = DbFailure {
            kind: DbFailureKind::Error,
            message: "this run has no database attached".into(),
            hint: Some("run the script with `--db URL` (or set DATABASE_URL)".into()),
        };
        let mut audit = AuditEntry::for_request(&request);
        audit.allowed = false;
        audit.status = failure.kind.as_str().into();
        audit.reason = Some(failure.message.clone());
        self.answer_db(id, DbResponse { result: Err(failure), audit });
    }

    /// The next database request to answer, with the database to answer it from.
    pub fn take_db_request(&mut self) -> Option<(u64, DbRequest, DbHandle)> {
        let db = self.db.clone()?;
        self.db_pending.pop_front().map(|(id, request)| (id, request, db))
    }

    /// Queues the answer to database request `id` and records it.
    pub fn answer_db(&mut self, id: u64, response: DbResponse) {
        let reply = match response.result {
            Ok(value) => Reply::ok(id, value),
            Err(failure) => {
                self.db_failures.push(failure.kind);
                let error =
                    ReplyError { kind: failure.kind.as_str().into(), message: failure.message, hint: failure.hint };
                Reply { id, ok: false, value: None, error: Some(error) }
            }
        };
        // A sweep instance keeps its audit for all its scenarios: each entry is charged.
        let cost = AUDIT_ENTRY_BYTES
            + response.audit.sql.len()
            + response.audit.reason.as_ref().map_or(0, String::len)
            + response.audit.params.iter().map(crate::frame::value_cost).sum::<usize>();
        if let Err(e) = self.audit_held.grow(cost, "the database audit trail") {
            self.over_budget(e.to_string());
            return;
        }
        self.db_audit.push(response.audit);
        self.replies.extend(reply.encode());
        // A reply past the budget is dropped and the instance stopped; the stop is
        // recorded and the guest traps on its next write or read.
        let _ = self.reserve_replies();
    }

    /// Takes bytes the guest wrote to fd 2.
    pub fn write_stderr(&mut self, data: &[u8]) -> Result<(), Stop> {
        if let Some(stop) = self.stopped() {
            return Err(stop);
        }
        if self.stderr.push(data) { Ok(()) } else { Err(self.hit(CapturedStream::Stderr)) }
    }

    /// Gives the guest up to `max` bytes of queued replies from fd 0; empty at the end.
    pub fn read_reply(&mut self, max: usize) -> Vec<u8> {
        let n = max.min(self.replies.len());
        let bytes = self.replies.drain(..n).collect();
        self.reply_held.shrink_to(self.replies.len());
        bytes
    }

    /// Ends the run: whatever is still pending on fd 1 was text after all.
    pub fn finish(&mut self) {
        if self.stopped().is_none() {
            let end = self.pending.len();
            if self.text(0, end).is_err() {
                // The cap is recorded in `limit_hit`; nothing more to do.
            }
        }
        self.pending.clear();
    }
}

/// Why `message` may not come now in a sweep instance, if it may not: the host, not the
/// guest, decides which scenario is running.
fn out_of_turn(sweep: &SweepState, message: &GuestMessage) -> Option<&'static str> {
    let outside = sweep.current.is_none();
    match message {
        GuestMessage::Result { .. } | GuestMessage::Emit { .. } if outside => {
            Some("results sent outside any scenario the host handed out")
        }
        GuestMessage::SweepEnd(_) if outside => Some("the end of a scenario that was not running"),
        GuestMessage::SweepNext {} if !outside || !sweep.batch.is_empty() => {
            Some("a request for scenarios before the last batch ended")
        }
        _ => None,
    }
}

enum FrameScan {
    NotAFrame,
    Incomplete,
    TooLarge,
    Frame { payload: (usize, usize), end: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel() -> Channel {
        Channel::new(ChannelConfig {
            nonce: "abc".into(),
            params: Map::new(),
            stdout_cap: 64,
            stderr_cap: 8,
            results_cap: 1024,
            on_log: None,
            db: None,
            sweep: None,
            budget: HostBudget::default(),
        })
    }

    fn frame(payload: &str) -> Vec<u8> {
        let mut out = b"\x1eMX1 abc ".to_vec();
        out.extend_from_slice(format!("{}\n{payload}", payload.len()).as_bytes());
        out
    }

    #[test]
    fn separates_text_and_frames_across_arbitrary_splits() {
        let mut stream = b"hello \x1e not a frame\n".to_vec();
        stream.extend(frame(r#"{"id":1,"op":"emit","name":"x","value":[1,2.5,null]}"#));
        stream.extend_from_slice(b"bye\n");
        stream.extend(frame(r#"{"id":2,"op":"log","message":"half"}"#));
        for split in 1..stream.len() {
            let ch = channel();
            let mut state = ch.lock();
            for piece in stream.chunks(split) {
                state.write_stdout(piece).unwrap();
            }
            state.finish();
            assert_eq!(String::from_utf8_lossy(&state.stdout.bytes), "hello \x1e not a frame\nbye\n", "split {split}");
            assert_eq!(state.results["x"], serde_json::json!([1, 2.5, null]));
            assert_eq!(state.logs, vec!["half".to_string()]);
        }
    }

    #[test]
    fn a_frame_with_another_nonce_is_text() {
        let ch = channel();
        let mut state = ch.lock();
        let forged = b"\x1eMX1 xyz 2\n{}".to_vec();
        state.write_stdout(&forged).unwrap();
        state.finish();
        assert_eq!(state.stdout.bytes, forged);
        assert!(state.results.is_empty());
    }

    #[test]
    fn caps_are_enforced_and_named() {
        let ch = channel();
        let mut state = ch.lock();
        assert_eq!(state.write_stdout(&[b'a'; 65]), Err(Stop::Cap(CapturedStream::Stdout)));
        assert!(state.stdout.truncated);
        assert_eq!(state.stdout.bytes.len(), 64);

        let ch = channel();
        let mut state = ch.lock();
        assert_eq!(state.write_stderr(b"123456789"), Err(Stop::Cap(CapturedStream::Stderr)));

        let ch = channel();
        let mut state = ch.lock();
        let big = format!(r#"{{"id":1,"op":"result","value":"{}"}}"#, "x".repeat(2000));
        assert_eq!(state.write_stdout(&frame(&big)), Err(Stop::Cap(CapturedStream::Results)));
    }

    #[test]
    fn hello_is_answered_with_params() {
        let mut params = Map::new();
        params.insert("rate".into(), serde_json::json!(0.05));
        let ch = Channel::new(ChannelConfig {
            nonce: "abc".into(),
            params,
            stdout_cap: 64,
            stderr_cap: 64,
            results_cap: 1024,
            on_log: None,
            db: None,
            sweep: None,
            budget: HostBudget::default(),
        });
        let mut state = ch.lock();
        state.write_stdout(&frame(r#"{"id":7,"op":"hello","v":1}"#)).unwrap();
        let reply = state.read_reply(usize::MAX);
        let (header, body) = reply.split_at(11);
        assert_eq!(std::str::from_utf8(header).unwrap().trim().parse::<usize>().unwrap(), body.len());
        let reply: Reply = serde_json::from_slice(body).unwrap();
        assert_eq!(reply.id, 7);
        let value: Value = serde_json::from_str(reply.value.unwrap().get()).unwrap();
        assert_eq!(value["params"]["rate"], 0.05);
        assert!(state.read_reply(10).is_empty());
    }
}
