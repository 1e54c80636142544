//! What a backend needs to run one script over many scenarios: the scenarios it is handed
//! batch by batch, and what it reports for each.
//!
//! The sweep stage (specs, scheduling, aggregation) implements [`ScenarioQueue`]; a backend
//! only pulls scenarios from it and pushes outcomes back, so it never learns how scenarios
//! were made or how results are summarised.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::outcome::OutcomeError;

/// One parameter set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Stable across runs of the same spec.
    pub id: String,
    /// What the script reads as `metaexec.params`.
    pub params: Map<String, Value>,
}

/// Whether a scenario ran to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScenarioStatus {
    /// The script finished.
    Ok,
    /// The script raised, or hit a limit.
    Error,
}

/// What one scenario produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioOutcome {
    /// The scenario's id.
    pub id: String,
    /// Its parameters.
    pub params: Map<String, Value>,
    /// Finished or failed.
    pub status: ScenarioStatus,
    /// Why it failed.
    pub error: Option<OutcomeError>,
    /// What the script emitted (`result` under `"result"`, possibly kept by column).
    pub results: crate::result_table::Results,
    /// What it printed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stdout: String,
    /// Its `metaexec.log` lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
    /// Time from hand-out to the end, in milliseconds.
    pub wall_ms: f64,
    /// What the script read of its parameters (a finished scenario). The sweep adds these
    /// up as scenarios finish and keeps the sum only.
    #[serde(skip)]
    pub params_read: Option<crate::outcome::ParamsRead>,
}

/// Hands out scenarios to the instances of a sweep and collects their outcomes. Shared
/// by every instance, so it is `Sync`.
pub trait ScenarioQueue: Send + Sync {
    /// The next scenarios to run, in order; empty when there are no more. The queue
    /// chooses how many: batches save a backend round trips, small ones keep the
    /// instances evenly loaded to the end.
    fn next_batch(&self) -> Vec<Scenario>;
    /// Takes back scenarios handed out but never run (their instance stopped), to hand
    /// out again first.
    fn requeue(&self, scenarios: Vec<Scenario>);
    /// Records a scenario's outcome.
    fn finish(&self, outcome: ScenarioOutcome);
    /// Records an instance stopped outside any scenario (a protocol violation between
    /// scenarios) that the sweep recovered from with a fresh instance.
    fn instance_failed(&self, error: OutcomeError) {
        let _ = error;
    }
    /// Whether the sweep was told to stop (Ctrl-C): the queue hands out nothing more,
    /// and a backend stops its running scenarios at their next check and leaves them
    /// unrecorded, so that only finished scenarios are reported.
    fn cancelled(&self) -> bool {
        false
    }
}
