//! The run record: every stage's typed output, kept together so that a run can be shown,
//! stored, compared and replayed. `metaexec run --json` prints it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::llm::Message;
use crate::llm::fit::Fit;
use crate::llm::server::JsonMode;
use crate::llm::wire::{Usage, UsageSource};
use crate::outcome::{Outcome, OutcomeError};
pub use crate::sweep::record::{MATRIX_SCENARIOS, SweepRecord};

use crate::task::TaskSpec;
use crate::validate::Report;

/// Who planned and wrote the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Planner {
    /// The built-in planner for the guest library's request families.
    Offline,
    /// An OpenAI-compatible model.
    Model,
}

/// The pipeline's stages, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Reading the database's tables.
    Schema,
    /// Analyse and plan: the request to a `TaskSpec`.
    Plan,
    /// Writing the script.
    Generate,
    /// Checking the script.
    Validate,
    /// Running it in the sandbox.
    Execute,
    /// Asking the model to fix the script.
    Repair,
    /// Running the script over the request's scenarios.
    Sweep,
    /// Writing CSV and XLSX files.
    Export,
}

impl Stage {
    /// The stage's name, as progress shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schema => "schema",
            Self::Plan => "plan",
            Self::Generate => "generate",
            Self::Validate => "validate",
            Self::Execute => "execute",
            Self::Repair => "repair",
            Self::Sweep => "sweep",
            Self::Export => "export",
        }
    }
}

/// One call to the model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCall {
    /// The stage it served.
    pub stage: Stage,
    /// The conversation sent.
    pub messages: Vec<Message>,
    /// The answer's text.
    pub answer: String,
    /// The model that answered.
    pub model: String,
    /// Whether the answer came from the cache (no model time spent).
    pub cached: bool,
    /// Time spent waiting for it, in milliseconds (0 when cached).
    pub elapsed_ms: f64,
    /// Token counts (see `usage_source`).
    pub usage: Usage,
    /// Who counted `usage`: the server in its answer (left out), its tokenizer afterwards
    /// (`tokenized`), or metaexec (`estimated`).
    #[serde(default, skip_serializing_if = "UsageSource::is_reported")]
    pub usage_source: UsageSource,
    /// Why the answer ended (`stop`, `length`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// How prompt and answer were fitted into the model's context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit: Option<Fit>,
    /// The structured-output form the answer was asked in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_mode: Option<JsonMode>,
}

/// One script and what became of it: each repair round adds one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    /// 0 for the first script, then 1, 2, ... per repair.
    pub round: u32,
    /// The script.
    pub script: String,
    /// The validator's report.
    pub validation: Report,
    /// What became of it.
    #[serde(default)]
    pub status: AttemptStatus,
    /// Why running it failed, when it ran and failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_error: Option<OutcomeError>,
}

/// What became of one script.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    /// The validator rejected it.
    Rejected,
    /// It was not run (declined, or the run stopped first).
    #[default]
    NotRun,
    /// It ran and failed (`execution_error`).
    Failed,
    /// It ran to the end and reported nothing.
    NoResults,
    /// It ran and reported results.
    Ok,
}

/// Time per stage, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Reading the schema and the property names.
    pub schema_ms: f64,
    /// Analyse and plan (model time included).
    pub plan_ms: f64,
    /// Generating and repairing scripts (model time included).
    pub generate_ms: f64,
    /// Validating, over all attempts.
    pub validate_ms: f64,
    /// Running, over all attempts.
    pub execute_ms: f64,
    /// Running the scenarios, break-even bisection and the sweep's files included.
    pub sweep_ms: f64,
    /// Waiting for the model, over all calls.
    pub model_ms: f64,
    /// The whole run.
    pub total_ms: f64,
}

/// Everything about one run of a request.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// The run's id: its folder's name.
    pub id: String,
    /// The run folder.
    pub run_dir: PathBuf,
    /// The request as given.
    pub request: String,
    /// Who planned it.
    pub planner: Planner,
    /// The model's base URL, with a model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The database, its password masked.
    pub database: String,
    /// The plan.
    pub task: Option<TaskSpec>,
    /// The model calls, in order.
    pub model_calls: Vec<ModelCall>,
    /// The scripts tried, in order; the last is the one whose outcome this is.
    pub attempts: Vec<Attempt>,
    /// The final run's outcome, when a script ran (for a request with scenarios, the
    /// base scenario's).
    pub outcome: Option<Outcome>,
    /// The scenarios, when the request asked for some and the base scenario ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepRecord>,
    /// Why the run failed before or around running (unrecognised request, model down,
    /// script rejected); a failed script's error is in `outcome`.
    pub error: Option<OutcomeError>,
    /// The stage `error` came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_stage: Option<Stage>,
    /// Files written for the user besides the run's own records (CSV, XLSX).
    pub exports: Vec<PathBuf>,
    /// Things the user should know (a web interface asked for but not built, tables left out).
    pub notes: Vec<String>,
    /// Time per stage.
    pub timings: Timings,
    /// The run was stopped early (Ctrl-C): the stage it was in was dropped, or its sweep
    /// covers only the scenarios that finished (see the sweep's summary).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

impl RunRecord {
    /// Whether a script ran to completion (over every scenario, when there were some).
    pub fn is_ok(&self) -> bool {
        !self.interrupted
            && self.error.is_none()
            && self.outcome.as_ref().is_some_and(Outcome::is_ok)
            && self.sweep.as_ref().is_none_or(|s| s.summary.failed == 0)
    }

    /// The run's error, wherever it is.
    pub fn failure(&self) -> Option<&OutcomeError> {
        self.error.as_ref().or_else(|| self.outcome.as_ref().and_then(|o| o.error.as_ref()))
    }

    /// The process exit code: 0 ok, 1 the script failed or was rejected, 2 misuse or an
    /// unavailable model, 130 interrupted (128 + SIGINT, as shells report it).
    pub fn exit_code(&self) -> i32 {
        if self.interrupted {
            return 130;
        }
        match (&self.error, &self.outcome) {
            (Some(error), _) => error.kind.exit_code(),
            (None, Some(outcome)) if outcome.is_ok() && !self.is_ok() => 1,
            (None, Some(outcome)) => outcome.process_exit_code(),
            (None, None) => 2,
        }
    }

    /// The script that ran last.
    pub fn script(&self) -> Option<&str> {
        self.attempts.last().map(|a| a.script.as_str())
    }
}
