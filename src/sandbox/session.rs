//! What one instance produced and may still produce: the script's captured output, its
//! results and log lines, the database audit, and (in a sweep) which scenario runs.
//!
//! Shared, behind one mutex, by the host functions the guest calls (`host.rs`) and the
//! WASI output streams (`streams.rs`); the guest is single-threaded, so the lock is never
//! contended. Every byte the guest makes the host keep is charged to the job's budget.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde_json::{Map, Value};

use super::bindings::{Column, ScriptError, Table};
use super::classify;
use crate::budget::{HostBudget, Reservation};
use crate::guest_db::{AuditEntry, DbFailureKind, DbHandle};
use crate::guest_value::{DecodeError, ENTRY_BYTES, VALUE_BYTES};
use crate::job::Limits;
use crate::outcome::{OutcomeError, ParamsRead};
use crate::result_table::{self, ResultTable, Results};
use crate::scenario::{Scenario, ScenarioOutcome, ScenarioQueue, ScenarioStatus};

/// What an audit entry costs the host besides its texts and parameters.
const AUDIT_ENTRY_BYTES: usize = std::mem::size_of::<AuditEntry>() + 64;

/// Which cap a run hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapturedStream {
    /// The script's stdout.
    Stdout,
    /// The script's stderr.
    Stderr,
    /// Results sent through the host interface.
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

/// Why the host stopped the instance: the call that found it traps, and so does any later
/// one, whatever the guest catches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A stream went past its cap.
    Cap(CapturedStream),
    /// The guest called the host interface with something no guest library sends (see
    /// `SessionState::protocol_error`).
    Protocol,
    /// The guest made the host hold more than the job's budget (see
    /// `SessionState::budget_error`).
    HostMemory,
}

impl Stop {
    /// What the trap says.
    pub fn message(self) -> String {
        match self {
            Self::Cap(stream) => format!("the script's {} exceeded its cap", stream.as_str()),
            Self::Protocol => "the script misused the host interface".into(),
            Self::HostMemory => "the script exceeded the host memory budget".into(),
        }
    }
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Stop {}

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

/// The state of one instance.
pub struct SessionState {
    /// The script's stdout.
    pub stdout: Capture,
    /// The script's stderr.
    pub stderr: Capture,
    results_bytes: usize,
    results_cap: usize,
    /// Results so far (`result` under `"result"`, `emit` under its name).
    pub results: Map<String, Value>,
    /// A sweep scenario's main result when it came as a table: kept by column, with a
    /// null in its place in `results` (see [`crate::result_table`]).
    main_table: Option<ResultTable>,
    /// The column names of the last table kept, shared with the next one that has the
    /// same names (a sweep's scenarios all send the same).
    table_names: Option<Arc<[String]>>,
    /// `metaexec.log` lines so far.
    pub logs: Vec<String>,
    /// The exception the script did not catch, if any.
    pub exception: Option<ScriptError>,
    /// What a single run's script read of its parameters (a sweep's scenarios carry
    /// their own).
    pub params_read: Option<ParamsRead>,
    /// The first cap hit, if any.
    pub limit_hit: Option<CapturedStream>,
    /// The first misuse of the host interface, if any: it stopped the instance.
    pub protocol_error: Option<String>,
    /// What went past the host memory budget (or a value's bound on items), if anything:
    /// it stopped the instance.
    pub budget_error: Option<String>,
    /// Host memory held for decoded results until they are handed on.
    held: Reservation,
    /// Host memory held for the audit trail, which lives as long as the instance.
    audit_held: Reservation,
    /// The job's budget, for the host functions' own short-lived charges.
    pub budget: HostBudget,
    /// Every database request, in order.
    pub db_audit: Vec<AuditEntry>,
    /// The database failure kinds the host itself reported to the guest.
    pub db_failures: Vec<DbFailureKind>,
    on_log: Option<LogSink>,
    /// The database `metaexec.db` reaches, if any.
    pub db: Option<DbHandle>,
    sweep: Option<SweepState>,
}

/// Sweep mode: which scenarios this instance holds and which one runs.
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
    /// Scenarios this instance settled.
    settled: usize,
}

impl SweepState {
    /// Sweep mode over `queue`, each scenario held to `limits`.
    pub fn new(queue: Arc<dyn ScenarioQueue>, limits: Limits) -> Self {
        Self { queue, limits, batch: VecDeque::new(), current: None, stretch: Instant::now(), settled: 0 }
    }

    fn new_stretch(&mut self) {
        self.stretch = Instant::now();
    }
}

/// Where a sweep instance is in its life, for the watchers that hold it to its limits.
#[derive(Debug, Clone, Copy)]
pub struct SweepClock {
    /// When the current stretch began.
    pub since: Instant,
    /// Whether a scenario is running (otherwise the instance is starting, between
    /// scenarios, or past the last one).
    pub running: bool,
}

/// Caps and inputs of a session.
pub struct SessionConfig {
    /// Cap on stdout bytes.
    pub stdout_cap: usize,
    /// Cap on stderr bytes.
    pub stderr_cap: usize,
    /// Cap on result bytes in total (per scenario in a sweep).
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

/// A shared handle on an instance's session state.
#[derive(Clone)]
pub struct Session(Arc<Mutex<SessionState>>);

impl Session {
    /// A fresh session.
    pub fn new(config: SessionConfig) -> Self {
        Self(Arc::new(Mutex::new(SessionState {
            stdout: Capture::new(config.stdout_cap),
            stderr: Capture::new(config.stderr_cap),
            results_bytes: 0,
            results_cap: config.results_cap,
            results: Map::new(),
            main_table: None,
            table_names: None,
            logs: Vec::new(),
            exception: None,
            params_read: None,
            limit_hit: None,
            protocol_error: None,
            budget_error: None,
            held: config.budget.empty(),
            audit_held: config.budget.empty(),
            budget: config.budget,
            db_audit: Vec::new(),
            db_failures: Vec::new(),
            on_log: config.on_log,
            db: config.db,
            sweep: config.sweep,
        })))
    }

    /// Locks the state. A poisoned lock (a panic while holding it) still yields the data:
    /// the run is over by then and its partial results are worth keeping.
    pub fn lock(&self) -> MutexGuard<'_, SessionState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SessionState {
    fn hit(&mut self, stream: CapturedStream) -> Stop {
        self.limit_hit.get_or_insert(stream);
        Stop::Cap(stream)
    }

    /// Records that the script sent more through the host interface than its results cap
    /// allows (a transport that meets it before any one result is decoded); it stops.
    pub fn results_cap_hit(&mut self) -> Stop {
        self.hit(CapturedStream::Results)
    }

    /// Records a misuse of the host interface; the instance stops.
    pub fn violation(&mut self, problem: impl Into<String>) -> Stop {
        self.protocol_error.get_or_insert_with(|| problem.into());
        Stop::Protocol
    }

    /// Records a budget refusal; the instance stops.
    pub fn over_budget(&mut self, problem: String) -> Stop {
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

    /// Fails with the stop already recorded, if there is one: a stopped instance goes no
    /// further, whatever the guest caught.
    pub fn check(&self) -> Result<(), Stop> {
        self.stopped().map_or(Ok(()), Err)
    }

    /// Takes bytes the guest wrote to stdout.
    pub fn write_stdout(&mut self, data: &[u8]) -> Result<(), Stop> {
        self.check()?;
        if self.stdout.push(data) { Ok(()) } else { Err(self.hit(CapturedStream::Stdout)) }
    }

    /// Takes bytes the guest wrote to stderr.
    pub fn write_stderr(&mut self, data: &[u8]) -> Result<(), Stop> {
        self.check()?;
        if self.stderr.push(data) { Ok(()) } else { Err(self.hit(CapturedStream::Stderr)) }
    }

    /// Checks that a result named `name` of `size` bytes may be taken now, and counts it
    /// against the results cap.
    fn accept_result(&mut self, name: &str, size: usize) -> Result<(), Stop> {
        self.check()?;
        if name.is_empty() {
            return Err(self.violation("a result with an empty name"));
        }
        if self.sweep.as_ref().is_some_and(|sweep| sweep.current.is_none()) {
            return Err(self.violation("results sent outside any scenario the host handed out"));
        }
        let size = name.len().saturating_add(size);
        if size > self.results_cap.saturating_sub(self.results_bytes) {
            return Err(self.hit(CapturedStream::Results));
        }
        self.results_bytes += size;
        Ok(())
    }

    /// Decodes a JSON text from the guest under the budget.
    fn decode(&mut self, text: &str, what: &str) -> Result<Value, Stop> {
        match crate::guest_value::decode(text, &mut self.held) {
            Ok(value) => Ok(value),
            Err(e @ (DecodeError::Budget(_) | DecodeError::TooManyValues)) => Err(self.over_budget(e.to_string())),
            Err(e @ DecodeError::Json(_)) => Err(self.violation(format!("{what} that is not JSON ({e})"))),
        }
    }

    /// Records a named result from its JSON text.
    pub fn emit(&mut self, name: &str, text: &str) -> Result<(), Stop> {
        self.accept_result(name, text.len())?;
        let value = self.decode(text, "a result")?;
        if name == result_table::MAIN {
            self.main_table = None;
        }
        self.results.insert(name.to_owned(), value);
        Ok(())
    }

    /// Records a named result sent as a table: rebuilt as the list of row objects it
    /// stands for, charged to the budget before it is built.
    pub fn emit_table(&mut self, name: &str, table: Table) -> Result<(), Stop> {
        let Table { names, columns } = table;
        let text_bytes = |texts: &[String]| texts.iter().map(String::len).sum::<usize>();
        let size = names.iter().map(String::len).sum::<usize>()
            + columns
                .iter()
                .map(|column| match column {
                    Column::Floats(values) => values.len() * 8,
                    Column::Integers(values) => values.len() * 8,
                    Column::Texts(values) => text_bytes(values) + values.len(),
                    Column::MaybeFloats(values) => values.len() * 8,
                    Column::MaybeIntegers(values) => values.len() * 8,
                    Column::MaybeTexts(values) => {
                        values.iter().map(|v| v.as_ref().map_or(4, |s| s.len() + 1)).sum::<usize>()
                    }
                    Column::Values(text) => text.len(),
                })
                .sum::<usize>();
        self.accept_result(name, size)?;
        if names.len() != columns.len() {
            return Err(self.violation(format!("a table of {} names and {} columns", names.len(), columns.len())));
        }
        let float = crate::guest_db::json_float;
        let mut decoded = Vec::with_capacity(columns.len());
        for column in columns {
            decoded.push(match column {
                Column::Floats(values) => values.into_iter().map(float).collect(),
                Column::Integers(values) => values.into_iter().map(Value::from).collect(),
                Column::Texts(values) => values.into_iter().map(Value::String).collect(),
                Column::MaybeFloats(values) => values.into_iter().map(|x| x.map_or(Value::Null, float)).collect(),
                Column::MaybeIntegers(values) => {
                    values.into_iter().map(|x| x.map_or(Value::Null, Value::from)).collect()
                }
                Column::MaybeTexts(values) => {
                    values.into_iter().map(|x| x.map_or(Value::Null, Value::String)).collect()
                }
                Column::Values(text) => match self.decode(&text, "a table column")? {
                    Value::Array(values) => values,
                    _ => return Err(self.violation("a table column that is not a list")),
                },
            });
        }
        let rows = decoded.first().map_or(0, Vec::len);
        let names: Arc<[String]> = match &self.table_names {
            Some(shared) if shared[..] == names[..] => shared.clone(),
            _ => names.into(),
        };
        let Some(table) = ResultTable::new(names.clone(), decoded, rows) else {
            return Err(self.violation("a table whose columns differ in length"));
        };
        // Charged as the row objects, one entry per cell with its own copy of the key,
        // however it is kept: a single run's result becomes those objects.
        let per_row = VALUE_BYTES + names.iter().map(|n| ENTRY_BYTES + VALUE_BYTES + n.len()).sum::<usize>();
        if let Err(e) = self.held.grow(rows.saturating_mul(per_row).saturating_add(size), "a table from the script") {
            return Err(self.over_budget(e.to_string()));
        }
        if self.sweep.is_some() && name == result_table::MAIN {
            // A sweep keeps every scenario's rows to its end: by column, they cost a
            // fraction of the row objects (see `crate::result_table`).
            self.table_names = Some(names);
            self.results.insert(name.to_owned(), Value::Null);
            self.main_table = Some(table);
        } else {
            // Outside a sweep no table is kept by column, so none is left to drop.
            self.results.insert(name.to_owned(), table.into_value());
        }
        Ok(())
    }

    /// The results so far, every one as a JSON value, leaving none.
    pub fn take_results(&mut self) -> Map<String, Value> {
        Results::new(std::mem::take(&mut self.results), self.main_table.take()).into_map()
    }

    /// Records a `metaexec.log` line.
    pub fn log(&mut self, message: &str) -> Result<(), Stop> {
        self.check()?;
        if message.len() > self.results_cap.saturating_sub(self.results_bytes) {
            return Err(self.hit(CapturedStream::Results));
        }
        self.results_bytes += message.len();
        if let Err(e) = self.held.grow(message.len() + 24, "a log line") {
            return Err(self.over_budget(e.to_string()));
        }
        if let Some(sink) = &self.on_log {
            sink(message);
        }
        self.logs.push(message.to_owned());
        Ok(())
    }

    /// Records a database request's audit entry (charged to the budget) and, for a
    /// failure the host reported, its kind.
    pub fn record_db(&mut self, audit: AuditEntry, failure: Option<DbFailureKind>) -> Result<(), Stop> {
        // A sweep instance keeps its audit for all its scenarios: each entry is charged.
        let cost = AUDIT_ENTRY_BYTES
            + audit.sql.len()
            + audit.reason.as_ref().map_or(0, String::len)
            + audit.params.iter().map(crate::guest_value::value_cost).sum::<usize>();
        if let Err(e) = self.audit_held.grow(cost, "the database audit trail") {
            return Err(self.over_budget(e.to_string()));
        }
        self.db_audit.push(audit);
        if let Some(kind) = failure {
            self.db_failures.push(kind);
        }
        Ok(())
    }

    /// Sweep mode: takes the next batch from the queue; false when there are no more.
    pub fn next_batch(&mut self) -> bool {
        let Some(sweep) = self.sweep.as_mut() else { return false };
        sweep.batch = sweep.queue.next_batch().into();
        sweep.new_stretch();
        !sweep.batch.is_empty()
    }

    /// Sweep mode: starts the batch's next scenario, returning its params and id; `None`
    /// when the batch is done.
    pub fn start_next(&mut self) -> Option<(Map<String, Value>, String)> {
        let sweep = self.sweep.as_mut()?;
        sweep.new_stretch();
        sweep.current = sweep.batch.pop_front();
        sweep.current.as_ref().map(|s| (s.params.clone(), s.id.clone()))
    }

    /// Sweep mode: closes the running scenario, well (with what it read of its
    /// parameters) or with the script's exception.
    pub fn settle(&mut self, ended: Result<ParamsRead, ScriptError>) {
        let Some(mut sweep) = self.sweep.take() else { return };
        if let Some(current) = sweep.current.take() {
            let (status, error, params_read) = match ended {
                Ok(read) => (ScenarioStatus::Ok, None, Some(read)),
                Err(report) => (
                    ScenarioStatus::Error,
                    Some(classify::exception_error(&report, &self.db_failures, &sweep.limits)),
                    None,
                ),
            };
            let mut outcome = self.scenario_outcome(current, sweep.stretch, status, error);
            outcome.params_read = params_read;
            sweep.queue.finish(outcome);
            sweep.settled += 1;
            sweep.new_stretch();
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
            results: Results::new(std::mem::take(&mut self.results), self.main_table.take()),
            stdout: String::from_utf8_lossy(&stdout.bytes).into_owned(),
            logs: std::mem::take(&mut self.logs),
            wall_ms: started.elapsed().as_secs_f64() * 1000.0,
            params_read: None,
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

    /// Sweep mode: drops the running scenario without an outcome (the sweep was told to
    /// stop, so it neither finished nor failed) and hands the rest of its batch back.
    pub fn abandon_current_scenario(&mut self) {
        let Some(sweep) = self.sweep.as_mut() else { return };
        sweep.current = None;
        if !sweep.batch.is_empty() {
            sweep.queue.requeue(sweep.batch.drain(..).collect());
        }
    }

    /// Sweep mode: whether the sweep was told to stop (false outside a sweep).
    pub fn sweep_cancelled(&self) -> bool {
        self.sweep.as_ref().is_some_and(|s| s.queue.cancelled())
    }

    /// Sweep mode: when the current stretch of guest time began, and whether a scenario
    /// runs (see `SweepState::stretch`).
    pub fn sweep_clock(&self) -> Option<SweepClock> {
        self.sweep.as_ref().map(|s| SweepClock { since: s.stretch, running: s.current.is_some() })
    }

    /// Sweep mode: how many scenarios this instance settled (0 outside a sweep).
    pub fn sweep_settled(&self) -> usize {
        self.sweep.as_ref().map_or(0, |s| s.settled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session::new(SessionConfig {
            stdout_cap: 64,
            stderr_cap: 8,
            results_cap: 1024,
            on_log: None,
            db: None,
            sweep: None,
            budget: HostBudget::default(),
        })
    }

    #[test]
    fn caps_are_enforced_and_named() {
        let s = session();
        let mut state = s.lock();
        assert_eq!(state.write_stdout(&[b'a'; 65]), Err(Stop::Cap(CapturedStream::Stdout)));
        assert!(state.stdout.truncated);
        assert_eq!(state.stdout.bytes.len(), 64);
        assert_eq!(state.write_stderr(b"x"), Err(Stop::Cap(CapturedStream::Stdout)), "a stopped session stays stopped");

        let s = session();
        let mut state = s.lock();
        assert_eq!(state.write_stderr(b"123456789"), Err(Stop::Cap(CapturedStream::Stderr)));

        let s = session();
        let mut state = s.lock();
        let big = format!("\"{}\"", "x".repeat(2000));
        assert_eq!(state.emit("result", &big), Err(Stop::Cap(CapturedStream::Results)));
    }

    #[test]
    fn results_are_decoded_and_misuse_stops_the_instance() {
        let s = session();
        let mut state = s.lock();
        state.emit("x", "[1,2.5,null]").unwrap();
        assert_eq!(state.results["x"], serde_json::json!([1, 2.5, null]));
        assert_eq!(state.emit("y", "{not json"), Err(Stop::Protocol));
        assert_eq!(state.log("after"), Err(Stop::Protocol));
        assert!(state.protocol_error.as_deref().unwrap().contains("not JSON"));
    }

    #[test]
    fn tables_are_rebuilt_as_rows_and_malformed_ones_stop_the_instance() {
        let s = session();
        let mut state = s.lock();
        let table = Table {
            names: ["name", "dscr", "n", "note", "mf", "mi", "mt"].map(String::from).to_vec(),
            columns: vec![
                Column::Texts(vec!["A".into(), "B".into()]),
                Column::Floats(vec![1.5, f64::NAN]),
                Column::Integers(vec![1, -2]),
                Column::Values(r#"[null, {"x": true}]"#.into()),
                Column::MaybeFloats(vec![None, Some(2.5)]),
                Column::MaybeIntegers(vec![Some(3), None]),
                Column::MaybeTexts(vec![None, Some("t".into())]),
            ],
        };
        state.emit_table("rows", table).unwrap();
        assert_eq!(
            state.results["rows"],
            serde_json::json!([
                {"name": "A", "dscr": 1.5, "n": 1, "note": null, "mf": null, "mi": 3, "mt": null},
                {"name": "B", "dscr": null, "n": -2, "note": {"x": true}, "mf": 2.5, "mi": null, "mt": "t"},
            ])
        );
        let ragged = Table {
            names: vec!["a".into(), "b".into()],
            columns: vec![Column::Integers(vec![1]), Column::Integers(vec![])],
        };
        assert_eq!(state.emit_table("bad", ragged), Err(Stop::Protocol));

        let s = session();
        let mut state = s.lock();
        let unnamed = Table { names: vec![], columns: vec![Column::Integers(vec![1])] };
        assert_eq!(state.emit_table("bad", unnamed), Err(Stop::Protocol));
    }

    #[test]
    fn a_value_past_the_budget_stops_the_instance() {
        let s = Session::new(SessionConfig {
            stdout_cap: 64,
            stderr_cap: 64,
            results_cap: 64 << 20,
            on_log: None,
            db: None,
            sweep: None,
            budget: HostBudget::new(1 << 20),
        });
        let mut state = s.lock();
        let text = format!("[{}0]", "0,".repeat(200_000));
        assert_eq!(state.emit("big", &text), Err(Stop::HostMemory));
        assert!(state.results.is_empty());
    }
}
