//! The request pipeline: request → analyse+plan (`TaskSpec`) → generate (script) →
//! validate (report) → execute (outcome), with repair rounds that send the validator's
//! findings or the script's traceback back to the model. Without a model, the offline
//! planner plans and writes the script, and the same validate and execute stages run it.
//! A request with scenarios gets a script for one scenario: execute runs it on the base
//! scenario, then the sweep stage runs it over all of them ([`scenarios`]).
//! Every stage's output is kept in the `RunRecord` and written to the run's folder as
//! soon as it is known (the request at once, the plan, then each script), so a run that
//! fails or is interrupted keeps what it got to. Once `PipelineOptions::cancel` is set
//! (Ctrl-C) the run stops at the stage it is in: a sweep winds down and writes what
//! finished, any other stage is dropped where it waits; the record says `interrupted`.

pub mod export;
mod model;
pub mod record;
pub mod scenarios;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Map, Value};

pub use record::{Attempt, AttemptStatus, ModelCall, Planner, RunRecord, Stage, SweepRecord, Timings};

use self::model::ModelStage;
use crate::cancel::Cancel;
use crate::db::{Capability, DbProxy, DbUrl, Schema};
use crate::guest_db::DbHandle;
use crate::job::{Job, Limits};
use crate::llm::fit::AnswerBudget;
use crate::llm::offline::{self, OfflineError};
use crate::llm::prompts::{self, ApiReference, SchemaText};
use crate::llm::{ChatRequest, Completion, LlmConfig, LlmError, Message, json_repair};
use crate::outcome::{ErrorKind, Outcome, OutcomeError, Status};
use crate::report::run_page::PageInputs;
use crate::sandbox::{CompileCheck, LogSink, SandboxOptions, WasiSandbox};
use crate::store::job_record::ModelSettings;
use crate::store::{self, Entry, JobRecord, RunDir, RunKind, RunStatus};
use crate::sweep::output::Keep;
use crate::sweep::plan::{Plan, Source};
use crate::sweep::{self, Isolation, SweepOptions};
use crate::task::{ExportFormat, TaskKind, TaskSpec};
use crate::validate::{self, Backend, BackendChoice, BackendRequest, Report, Severity, Tables, Verdict};

/// Repair rounds after the first script, unless told otherwise.
pub const DEFAULT_MAX_REPAIRS: u32 = 3;

/// What the pipeline reports as it goes, for a progress display.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A stage began; `round` counts repair rounds (0 for the first script).
    Started {
        /// The stage.
        stage: Stage,
        /// The repair round.
        round: u32,
    },
    /// Something happened within a stage (characters streamed, the runtime fetched).
    Progress {
        /// The stage.
        stage: Stage,
        /// What happened.
        detail: String,
    },
    /// The plan's steps, as soon as the plan is made.
    Plan(Vec<String>),
    /// Something the user should know, as soon as it is known (a capped request, a part
    /// of the plan left out); it is also in the record's notes.
    Note(String),
    /// A stage ended.
    Finished {
        /// The stage.
        stage: Stage,
        /// How long it took.
        ms: f64,
        /// A one-line result (`pass, score 0.95`, `10 rows`).
        detail: String,
        /// Whether it went well.
        ok: bool,
    },
}

/// A callback for progress events.
pub type ProgressSink = Arc<dyn Fn(&Event) + Send + Sync>;
/// Asked before a model's script runs: `false` stops the run. Gets the script and its report.
pub type Confirm = Arc<dyn Fn(&str, &Report) -> bool + Send + Sync>;

/// How to run requests.
#[derive(Clone)]
pub struct PipelineOptions {
    /// The cache root (runtime, compiled module, model answers).
    pub cache_root: PathBuf,
    /// The database scripts read.
    pub db: DbUrl,
    /// What scripts may do there.
    pub capability: Capability,
    /// The model; `None` for the offline planner.
    pub llm: Option<LlmConfig>,
    /// Use cached model answers.
    pub use_cache: bool,
    /// Repair rounds after the first script.
    pub max_repairs: u32,
    /// The sandbox's limits for each execution.
    pub limits: Limits,
    /// What a run's scripts may make the host hold, in bytes (see `crate::budget`).
    pub host_memory_bytes: usize,
    /// Where run folders are created.
    pub runs_dir: PathBuf,
    /// Download the runtime when it is missing.
    pub auto_fetch: bool,
    /// Export formats asked for on the command line, on top of the request's.
    pub exports: Vec<ExportFormat>,
    /// Progress events.
    pub progress: ProgressSink,
    /// The script's `metaexec.log` lines.
    pub on_log: Option<LogSink>,
    /// Asked before a model's script runs; `None` runs without asking.
    pub confirm: Option<Confirm>,
    /// Set to stop the run early (Ctrl-C); what it has by then is written.
    pub cancel: Cancel,
    /// Which of a sweep's files are written.
    pub keep: Keep,
    /// Where scripts run: `Auto` sends a script that needs packages to Docker instead of
    /// back to the model for a rewrite; `Wasi` insists on the sandbox.
    pub backend: BackendRequest,
    /// The Docker backend's base image.
    pub base_image: String,
    /// Parameters given on top of the plan's (`metaexec runs rerun --param`): the
    /// script's first run gets them over its base scenario's.
    pub params: Map<String, Value>,
    /// The run this one repeats (`metaexec runs rerun`), for its record.
    pub rerun_of: Option<String>,
}

impl PipelineOptions {
    /// Options with the defaults: the offline planner, the cache on, no progress output.
    pub fn new(cache_root: PathBuf, db: DbUrl, runs_dir: PathBuf) -> Self {
        Self {
            cache_root,
            db,
            capability: Capability::read_only(),
            llm: None,
            use_cache: true,
            max_repairs: DEFAULT_MAX_REPAIRS,
            limits: Limits::default(),
            host_memory_bytes: crate::budget::DEFAULT_HOST_MEMORY_BYTES,
            runs_dir,
            auto_fetch: true,
            exports: Vec::new(),
            progress: Arc::new(|_| {}),
            on_log: None,
            confirm: None,
            cancel: Cancel::new(),
            keep: Keep::Auto,
            backend: BackendRequest::Auto,
            base_image: crate::docker::DEFAULT_BASE_IMAGE.into(),
            params: Map::new(),
            rerun_of: None,
        }
    }
}

/// Runs `request` through every stage. Never fails: whatever goes wrong is in the record's
/// `error` or its outcome, and the record is written to the run folder in any case, stage
/// by stage as it grows.
pub async fn run(request: &str, options: &PipelineOptions) -> RunRecord {
    match RunDir::create(&options.runs_dir, request) {
        Ok(dir) => run_in(dir, request, options).await,
        Err(e) => {
            let error = OutcomeError::new(
                ErrorKind::Usage,
                format!("Failed to create a run folder in `{}`: {e}", options.runs_dir.display()),
            )
            .with_hint("pass --runs DIR with a folder you can write to");
            let mut record = empty_record(request, options, String::new(), options.runs_dir.clone());
            record.error = Some(error);
            record
        }
    }
}

/// [`run`] in a run folder the caller created (a server that answers with the run's id
/// before the run ends).
pub async fn run_in(run_dir: RunDir, request: &str, options: &PipelineOptions) -> RunRecord {
    let started = Instant::now();
    let mut record = empty_record(request, options, run_dir.id.clone(), run_dir.path.clone());
    let mut entry = Entry::started(&run_dir.id, RunKind::Run, request);
    entry.rerun_of = options.rerun_of.clone();
    if let Err(e) = store::finish::start(&run_dir, &entry, &job_record(request, options)) {
        tracing::warn!("the run record could not be started in {}: {e}", run_dir.path.display());
    }
    save(&record, &run_dir);
    // Set while the sweep stage runs: that stage winds down by itself on the cancellation
    // and writes what finished, so it must not be dropped from outside.
    let sweeping = AtomicBool::new(false);
    let mut driver = Driver {
        options,
        run_dir: &run_dir,
        record: &mut record,
        base_params: Map::new(),
        sweeping: &sweeping,
        stage: Mutex::new(None),
        last_stage: None,
        compact_api: false,
    };
    let stopped = async {
        options.cancel.cancelled().await;
        if sweeping.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    };
    let result = tokio::select! {
        result = driver.drive(request) => Some(result),
        () = stopped => None,
    };
    let stage = driver.stage.lock().unwrap_or_else(|e| e.into_inner()).take();
    let last_stage = driver.last_stage;
    let dropped = result.is_none();
    match result {
        Some(Err(mut error)) => {
            // Which stage failed, in the message too: what came before it is in the record.
            if let Some(stage) = last_stage.filter(|_| record.planner == Planner::Model) {
                error.message = format!("{} (in the {} stage)", error.message, stage.as_str());
            }
            record.failed_stage = last_stage;
            record.error = Some(error);
        }
        Some(Ok(())) => {}
        None => {
            // The stage that was running is gone; the stages before it are in the record.
            if let Some(stage) = stage {
                let detail = "interrupted".to_owned();
                (options.progress)(&Event::Finished { stage, ms: 0.0, detail, ok: false });
            }
            let during = stage.map(|s| format!(" during the {} stage", s.as_str())).unwrap_or_default();
            let note = format!("interrupted{during}: the run folder keeps what was done before");
            (options.progress)(&Event::Note(note.clone()));
            record.notes.push(note);
        }
    }
    record.interrupted = dropped || record.sweep.as_ref().is_some_and(|s| s.summary.interrupted.is_some());
    record.timings.total_ms = ms_since(started);
    save(&record, &run_dir);
    entry.status = if record.interrupted {
        RunStatus::Interrupted
    } else if record.is_ok() {
        RunStatus::Ok
    } else {
        RunStatus::Failed
    };
    entry.error_kind = record.failure().map(|e| e.kind.as_str().to_owned());
    entry.headline = match &record.sweep {
        Some(sweep) => Some(store::entry::sweep_headline(&sweep.summary)),
        None => record.outcome.as_ref().and_then(|o| store::entry::headline(&o.results)),
    };
    store::finish::finish_or_warn(&run_dir, &entry, &page_inputs(&record, &entry, options));
    record
}

/// What a request's run page is made of.
fn page_inputs<'a>(record: &'a RunRecord, entry: &'a Entry, options: &'a PipelineOptions) -> PageInputs<'a> {
    let attempt = record.attempts.last();
    PageInputs {
        id: &entry.id,
        title: &entry.title,
        kind: entry.kind.as_str(),
        created: &entry.created,
        status: entry.status.as_str(),
        request: Some(&record.request),
        task: record.task.as_ref(),
        validation: attempt.map(|a| &a.validation),
        outcome: record.outcome.as_ref(),
        sweep: record.sweep.as_ref(),
        script: attempt.map(|a| a.script.as_str()),
        limits: Some(&options.limits),
        params: None,
        notes: &record.notes,
        error: record.error.as_ref(),
    }
}

/// What a request's run was asked to do, for `job.json`.
fn job_record(request: &str, options: &PipelineOptions) -> JobRecord {
    JobRecord {
        kind: RunKind::Run,
        request: Some(request.to_owned()),
        script_name: "script.py".into(),
        params: options.params.clone(),
        limits: options.limits.clone(),
        host_memory_bytes: options.host_memory_bytes,
        capability: options.capability.clone(),
        database: options.db.masked(),
        backend: options.backend,
        runtime: crate::python_wasm::installed(&options.cache_root).ok().map(|i| i.sha256),
        seed: None,
        results_dir: None,
        model: options.llm.as_ref().map(|c| ModelSettings {
            endpoint: c.base_url.clone(),
            model: c.model.clone(),
            temperature: c.temperature,
            max_tokens: c.max_tokens,
            context: c.context,
        }),
        sweep: None,
        rerun_of: options.rerun_of.clone(),
    }
}

fn empty_record(request: &str, options: &PipelineOptions, id: String, run_dir: PathBuf) -> RunRecord {
    RunRecord {
        id,
        run_dir,
        request: request.to_owned(),
        planner: if options.llm.is_some() { Planner::Model } else { Planner::Offline },
        endpoint: options.llm.as_ref().map(|c| c.base_url.clone()),
        database: options.db.masked(),
        task: None,
        model_calls: Vec::new(),
        attempts: Vec::new(),
        outcome: None,
        error: None,
        failed_stage: None,
        exports: Vec::new(),
        notes: Vec::new(),
        timings: Timings::default(),
        sweep: None,
        interrupted: false,
    }
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// Kinds of failure a model can fix by changing the script.
fn repairable(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Syntax
            | ErrorKind::Validation
            | ErrorKind::GuestException
            | ErrorKind::FuelExhausted
            | ErrorKind::Timeout
            | ErrorKind::MemoryLimit
            | ErrorKind::OutputLimit
            | ErrorKind::DbDenied
            | ErrorKind::DbError
    )
}

struct Driver<'a> {
    options: &'a PipelineOptions,
    run_dir: &'a RunDir,
    record: &'a mut RunRecord,
    /// The params of the script's first run: the base scenario when the request has
    /// scenarios, none otherwise.
    base_params: Map<String, Value>,
    /// Set while the sweep stage runs (see [`run`]).
    sweeping: &'a AtomicBool,
    /// The stage running, for the note of an interrupted run.
    stage: Mutex<Option<Stage>>,
    /// The last stage started: the one a run's error came from.
    last_stage: Option<Stage>,
    /// The compact API reference was sent (and said so).
    compact_api: bool,
}

/// What a script is written from: what a repair round needs to write the prompt again.
struct Draft<'a> {
    request: &'a str,
    spec: &'a TaskSpec,
    db: &'a Database,
}

/// What the schema stage found.
struct Database {
    proxy: Arc<DbProxy>,
    schema: Schema,
    text: String,
    /// The offline planner's per-property query, or why there is none.
    query: Result<offline::PortfolioQuery, offline::QueryError>,
    names: Vec<String>,
}

impl Driver<'_> {
    fn emit(&self, event: Event) {
        (self.options.progress)(&event);
    }

    fn started(&mut self, stage: Stage, round: u32) -> Instant {
        *self.stage.lock().unwrap_or_else(|e| e.into_inner()) = Some(stage);
        self.last_stage = Some(stage);
        self.emit(Event::Started { stage, round });
        Instant::now()
    }

    fn finished(&self, stage: Stage, since: Instant, ok: bool, detail: impl Into<String>) -> f64 {
        *self.stage.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let ms = ms_since(since);
        self.emit(Event::Finished { stage, ms, detail: detail.into(), ok });
        ms
    }

    /// Records a note and shows it at once: a capped request or a part of the plan left
    /// out is said before the work starts, not after it.
    fn note(&mut self, text: String) {
        self.emit(Event::Note(text.clone()));
        self.record.notes.push(text);
    }

    /// Writes the record as it stands to the run folder, so that a run stopped in a later
    /// stage keeps this one's output.
    fn checkpoint(&self) {
        save(&*self.record, self.run_dir);
    }

    async fn drive(&mut self, request: &str) -> Result<(), OutcomeError> {
        if request.trim().is_empty() {
            return Err(OutcomeError::new(ErrorKind::Usage, "The request is empty")
                .with_hint("say what you want, e.g. metaexec run \"calculate DSCR for every property\""));
        }
        let db = self.schema().await?;
        let model = match &self.options.llm {
            Some(config) => Some(ModelStage::new(config.clone(), self.options)?),
            None => None,
        };
        let (spec, script) = match &model {
            None => self.plan_offline(request, &db)?,
            Some(model) => {
                let spec = self.plan_with_model(model, request, &db).await?;
                // The plan is the run's from here on, whatever the later stages do.
                self.record.task = Some(spec.clone());
                self.checkpoint();
                let script = self.generate(model, request, &spec, &db).await?;
                (spec, script)
            }
        };
        self.emit(Event::Plan(spec.steps.clone()));
        for assumption in &spec.assumptions {
            self.note(format!("assumed {assumption}"));
        }
        if spec.wants_web && self.options.backend == BackendRequest::Wasi {
            self.note(
                "A web interface was asked for, and --backend wasi: the answer stays in the terminal and the run \
                 folder; serving a web application needs the Docker backend."
                    .into(),
            );
        }
        let exports: Vec<ExportFormat> = {
            let mut all: Vec<ExportFormat> = spec.exports.iter().chain(&self.options.exports).copied().collect();
            all.sort();
            all.dedup();
            all
        };
        let sweep = if spec.runs_scenarios() {
            let (sweep, note) = scenarios::sweep_plan(&spec).map_err(|e| {
                OutcomeError::new(ErrorKind::Usage, format!("The plan's scenarios cannot be run: {e}"))
                    .with_hint("ask for the scenarios again in other words, or run the script with `metaexec sweep`")
            })?;
            if let Some(note) = note {
                self.note(note);
            }
            self.base_params = scenarios::base_params(&sweep);
            Some(sweep)
        } else {
            None
        };
        self.record.task = Some(spec.clone());
        self.checkpoint();
        let sandbox = self.sandbox();
        let draft = Draft { request, spec: &spec, db: &db };
        let outcome = self.validate_and_execute(&draft, model.as_ref(), &sandbox, script).await?;
        let ok = outcome.is_ok();
        self.record.outcome = Some(outcome);
        self.checkpoint();
        if ok && let Some(sweep) = sweep {
            let script = self.record.script().unwrap_or_default().to_owned();
            self.sweeping.store(true, Ordering::SeqCst);
            let swept = self.sweep(&db, &sandbox, script, sweep, exports.contains(&ExportFormat::Xlsx)).await;
            self.sweeping.store(false, Ordering::SeqCst);
            swept?;
        }
        if self.options.cancel.is_cancelled() {
            return Ok(());
        }
        if ok && !exports.is_empty() {
            self.export(&exports)?;
        }
        Ok(())
    }

    async fn schema(&mut self) -> Result<Database, OutcomeError> {
        let since = self.started(Stage::Schema, 0);
        let budget = crate::budget::HostBudget::new(self.options.host_memory_bytes);
        let proxy =
            Arc::new(DbProxy::new(self.options.db.clone(), self.options.capability.clone()).with_budget(budget));
        let schema = proxy.schema().await.map_err(|e| {
            let mut error = OutcomeError::new(ErrorKind::DbError, format!("Failed to read the database's tables: {e}"));
            error.hint = e.hint();
            self.finished(Stage::Schema, since, false, "failed");
            error
        })?;
        // The property names let the plan name properties as the database does; a schema
        // without a recognisable property table simply has none.
        let query = offline::portfolio_query(&schema);
        let names = match query.as_ref().ok().and_then(offline::names_sql) {
            Some(sql) => match proxy.query(&sql, &[], false).await {
                Ok((result, _)) => result
                    .rows
                    .column_values(0)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                Err(e) => {
                    tracing::debug!("property names not read: {e}");
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        let text = schema.compact_text();
        let ms = self.finished(
            Stage::Schema,
            since,
            true,
            format!("{} tables, {} properties", schema.tables.len(), names.len()),
        );
        self.record.timings.schema_ms = ms;
        Ok(Database { proxy, schema, text, query, names })
    }

    fn plan_offline(&mut self, request: &str, db: &Database) -> Result<(TaskSpec, String), OutcomeError> {
        let since = self.started(Stage::Plan, 0);
        let web = self.options.backend != BackendRequest::Wasi;
        let planned = offline::plan_for(request, db.query.clone(), &db.names, &db.schema, web);
        let plan = planned.map_err(|e| {
            self.finished(Stage::Plan, since, false, "not understood");
            let kind = match e {
                OfflineError::Unrecognised | OfflineError::NotUnderstood { .. } | OfflineError::Unsupported(_) => {
                    ErrorKind::NotUnderstood
                }
                OfflineError::Schema(_) => ErrorKind::DbError,
            };
            OutcomeError::new(kind, e.to_string()).with_hint(e.hint())
        })?;
        for note in &plan.query.notes {
            tracing::debug!("offline query: {note}");
        }
        let detail = format!("{} (offline planner)", plan.spec.task_kind.as_str());
        self.record.timings.plan_ms = self.finished(Stage::Plan, since, true, detail);
        Ok((plan.spec, plan.script))
    }

    fn schema_text<'b>(&self, db: &'b Database) -> SchemaText<'b> {
        SchemaText { dialect: db.schema.dialect.name(), tables: &db.text, properties: &db.names }
    }

    async fn plan_with_model(
        &mut self,
        model: &ModelStage,
        request: &str,
        db: &Database,
    ) -> Result<TaskSpec, OutcomeError> {
        let since = self.started(Stage::Plan, 0);
        let failed = |driver: &Self, detail: &str| {
            driver.finished(Stage::Plan, since, false, detail);
        };
        let mut messages = prompts::plan(request, self.schema_text(db));
        let schema = Some(("task_spec".to_owned(), crate::task::json_schema()));
        let mut spec = None;
        let mut cut = 0;
        for _ in 0..3 {
            let ask = ChatRequest { messages: messages.clone(), schema: schema.clone(), budget: AnswerBudget::PLAN };
            let answer = model.ask(self, Stage::Plan, ask).await.inspect_err(|e| failed(self, e.kind.as_str()))?;
            if answer.finish_reason.as_deref() == Some("length") {
                // A plan cut short is not a plan, however well its JSON can be patched up:
                // once more with a tighter instruction, then a clear failure.
                cut += 1;
                if cut == 2 {
                    failed(self, "cut at its token limit");
                    return Err(OutcomeError::new(
                        ErrorKind::LlmAnswer,
                        format!(
                            "The model's plan was cut at its token limit twice ({} tokens): it did not write a \
                             complete plan",
                            answer.fit.map_or(0, |f| f.max_tokens)
                        ),
                    )
                    .with_hint("use a larger model, or a larger context (--llm-context, the server's -c / n_ctx)"));
                }
                // The cut answer is left out: it is long, and the point is a shorter one.
                messages.push(prompts::plan_too_long());
                continue;
            }
            match json_repair::extract_json(&answer.content)
                .map_err(|e| e.to_string())
                .and_then(|v| serde_json::from_value::<TaskSpec>(v).map_err(|e| e.to_string()))
                .and_then(|spec| match scenarios::sweep_plan(&spec) {
                    Ok(_) => Ok(spec),
                    Err(e) => Err(format!("its sweep cannot be run: {e}")),
                }) {
                Ok(parsed) => {
                    spec = Some(parsed);
                    break;
                }
                Err(why) => {
                    messages.push(Message::assistant(answer.content));
                    messages.push(Message::user(format!(
                        "That is not a valid plan: {why}. Reply with the JSON object only."
                    )));
                }
            }
        }
        let spec = spec.unwrap_or_else(|| {
            self.note(
                "The model's plan could not be read twice; the script was written from the request alone.".into(),
            );
            TaskSpec { goal: request.trim().to_owned(), task_kind: TaskKind::Other, ..TaskSpec::default() }
        });
        self.record.timings.plan_ms = self.finished(Stage::Plan, since, true, spec.task_kind.as_str());
        Ok(spec)
    }

    /// The generate conversation that fits the model's context: with the full API
    /// reference, else the compact one (said in a note), else an `llm_context` error.
    async fn fitted_generate(
        &mut self,
        model: &ModelStage,
        request: &str,
        spec: &TaskSpec,
        db: &Database,
        latest: Option<(&str, &Message)>,
    ) -> Result<Vec<Message>, OutcomeError> {
        let mut too_long = None;
        for api in [ApiReference::Full, ApiReference::Compact] {
            let base = prompts::generate(request, spec, self.schema_text(db), api);
            let messages = match latest {
                Some((script, feedback)) => prompts::repair(&base, script, feedback.clone()),
                None => base,
            };
            match model.fit(&ChatRequest::new(messages.clone())).await {
                Ok(_) => {
                    if api == ApiReference::Compact && !self.compact_api {
                        self.compact_api = true;
                        self.note(
                            "The model's context cannot hold the full API reference beside a script: the compact \
                             one was sent."
                                .into(),
                        );
                    }
                    return Ok(messages);
                }
                Err(error @ LlmError::Context { .. }) => too_long = Some(error),
                Err(error) => return Err(model::model_error(error)),
            }
        }
        Err(model::model_error(too_long.expect("both references were tried")))
    }

    async fn generate(
        &mut self,
        model: &ModelStage,
        request: &str,
        spec: &TaskSpec,
        db: &Database,
    ) -> Result<String, OutcomeError> {
        let since = self.started(Stage::Generate, 0);
        let fitted = self.fitted_generate(model, request, spec, db, None).await;
        let messages = fitted.inspect_err(|e| {
            self.finished(Stage::Generate, since, false, e.kind.as_str());
        })?;
        let answer = model.ask(self, Stage::Generate, ChatRequest::new(messages)).await.inspect_err(|e| {
            self.finished(Stage::Generate, since, false, e.kind.as_str());
        })?;
        self.cut_note(Stage::Generate, &answer);
        let script = json_repair::extract_code(&answer.content);
        let ms = self.finished(Stage::Generate, since, true, format!("{} lines", script.lines().count()));
        self.record.timings.generate_ms += ms;
        Ok(script)
    }

    /// Says so when a script was cut at its token limit: it will fail to check or run, and
    /// the user should know why.
    fn cut_note(&mut self, stage: Stage, answer: &Completion) {
        if answer.finish_reason.as_deref() == Some("length") {
            let limit = answer.fit.map_or(0, |f| f.max_tokens);
            self.note(format!(
                "The model's {} answer was cut at its token limit ({limit} tokens); the script is likely incomplete.",
                stage.as_str()
            ));
        }
    }

    /// Validates and runs `script`, and with a model repairs it until it runs or the rounds
    /// are used up. Returns the last execution's outcome; one that ran but reported nothing
    /// is a `no_results` failure.
    async fn validate_and_execute(
        &mut self,
        draft: &Draft<'_>,
        model: Option<&ModelStage>,
        sandbox: &WasiSandbox,
        mut script: String,
    ) -> Result<Outcome, OutcomeError> {
        let db = draft.db;
        let tables = Tables::from(&db.schema);
        let oracle = CompileCheck::new(sandbox.clone(), crate::cache::scratch_dir(&self.options.cache_root));
        for round in 0.. {
            let can_repair = model.is_some() && round < self.options.max_repairs;
            let since = self.started(Stage::Validate, round);
            let options = validate::Options {
                file_name: "script.py",
                tables: Some(&tables),
                backend: self.options.backend,
                oracle: Some(&oracle),
                ..validate::Options::default()
            };
            let report = validate::validate(&script, &options);
            let rejected = report.verdict == Verdict::Reject;
            let detail = format!("{}, score {:.2}", report.verdict, report.score);
            self.record.timings.validate_ms += self.finished(Stage::Validate, since, !rejected, detail);
            self.record.attempts.push(Attempt {
                round,
                script: script.clone(),
                validation: report,
                status: if rejected { AttemptStatus::Rejected } else { AttemptStatus::NotRun },
                execution_error: None,
            });
            self.checkpoint();
            let report = &self.record.attempts.last().expect("just pushed").validation;
            if rejected {
                let Some(model) = model.filter(|_| can_repair) else { return Err(rejection(report)) };
                // The errors, or every finding when only the score rejected the script.
                let errors: Vec<_> =
                    report.findings.iter().filter(|f| f.severity == Severity::Error).cloned().collect();
                let feedback = prompts::repair_validation(if errors.is_empty() { &report.findings } else { &errors });
                script = self.repair(model, draft, &script, feedback, round + 1).await?;
                continue;
            }
            if let (Some(confirm), Some(_)) = (&self.options.confirm, model)
                && !confirm(&script, report)
            {
                return Err(OutcomeError::new(ErrorKind::Usage, "The script was not run: declined")
                    .with_hint(format!("the script is in {}", self.run_dir.path.join("script.py").display())));
            }
            let choice = report.backend.clone();
            if choice.backend == Backend::Docker {
                self.note(format!("backend: docker ({})", choice.reason));
            }
            let mut outcome = self.execute(db, &script, sandbox, &choice, round).await;
            if outcome.is_ok() && outcome.results.is_empty() {
                // A script that ran but answered nothing has not done what was asked.
                outcome.status = Status::Error;
                outcome.error = Some(
                    OutcomeError::new(ErrorKind::NoResults, "The script ran to the end but reported no results")
                        .with_hint("report the answer with metaexec.result(rows) or metaexec.emit(name, value)"),
                );
            }
            if let Some(last) = self.record.attempts.last_mut() {
                last.status = match &outcome.error {
                    None => AttemptStatus::Ok,
                    Some(e) if e.kind == ErrorKind::NoResults => AttemptStatus::NoResults,
                    Some(_) => AttemptStatus::Failed,
                };
                last.execution_error = outcome.error.clone();
            }
            self.checkpoint();
            let failure = outcome.error.clone().filter(|e| repairable(e.kind) || e.kind == ErrorKind::NoResults);
            match (failure, model) {
                (Some(error), Some(model)) if can_repair => {
                    let line =
                        error.line.and_then(|l| script.lines().nth(l.saturating_sub(1) as usize)).map(str::to_owned);
                    let feedback = prompts::repair_execution(&error, line.as_deref());
                    script = self.repair(model, draft, &script, feedback, round + 1).await?;
                }
                _ => return Ok(outcome),
            }
        }
        unreachable!("the loop returns")
    }

    async fn repair(
        &mut self,
        model: &ModelStage,
        draft: &Draft<'_>,
        script: &str,
        feedback: Message,
        round: u32,
    ) -> Result<String, OutcomeError> {
        let since = self.started(Stage::Repair, round);
        let fitted = self.fitted_generate(model, draft.request, draft.spec, draft.db, Some((script, &feedback))).await;
        let messages = fitted.inspect_err(|e| {
            self.finished(Stage::Repair, since, false, e.kind.as_str());
        })?;
        let answer = model.ask(self, Stage::Repair, ChatRequest::new(messages)).await.inspect_err(|e| {
            self.finished(Stage::Repair, since, false, e.kind.as_str());
        })?;
        self.cut_note(Stage::Repair, &answer);
        let script = json_repair::extract_code(&answer.content);
        self.record.timings.generate_ms += self.finished(Stage::Repair, since, true, format!("round {round}"));
        Ok(script)
    }

    fn sandbox(&self) -> WasiSandbox {
        let mut options = SandboxOptions::new(self.options.cache_root.clone());
        options.auto_fetch = self.options.auto_fetch;
        let progress = self.options.progress.clone();
        options.progress =
            Arc::new(move |line| progress(&Event::Progress { stage: Stage::Execute, detail: line.to_owned() }));
        options.on_log = self.options.on_log.clone();
        WasiSandbox::new(options)
    }

    /// Runs the script where the validator chose: the sandbox, or a Docker container.
    async fn execute(
        &mut self,
        db: &Database,
        script: &str,
        sandbox: &WasiSandbox,
        choice: &BackendChoice,
        round: u32,
    ) -> Outcome {
        let since = self.started(Stage::Execute, round);
        let mut job = self.job(db, script);
        job.params = self.base_params.clone();
        job.params.extend(self.options.params.clone());
        let docker = choice.backend == Backend::Docker;
        let outcome = if docker { self.execute_in_docker(db, job, choice).await } else { sandbox.run(&job).await };
        let detail = match &outcome.error {
            None => format!("{} results{}", outcome.results.len(), if docker { ", in docker" } else { "" }),
            Some(e) => e.kind.as_str().to_owned(),
        };
        self.record.timings.execute_ms += self.finished(Stage::Execute, since, outcome.is_ok(), detail);
        outcome
    }

    /// Runs the job in a Docker container (a web app: left serving), and writes the
    /// package to run it by hand (Dockerfile, compose file, deploy.sh ...) into the run
    /// folder beside it.
    async fn execute_in_docker(&mut self, db: &Database, job: Job, choice: &BackendChoice) -> Outcome {
        let spec = crate::docker::package::PackageSpec::new(&job, choice, &self.options.base_image);
        if let Err(e) = crate::docker::package::write(&self.run_dir.path.join("package"), &spec) {
            self.note(format!("could not write the Docker package into the run folder: {e}"));
        }
        let mut options = crate::docker::DockerOptions::new(self.options.cache_root.clone());
        options.base_image = self.options.base_image.clone();
        let progress = self.options.progress.clone();
        options.progress =
            Arc::new(move |line| progress(&Event::Progress { stage: Stage::Execute, detail: line.to_owned() }));
        options.on_log = self.options.on_log.clone();
        options.cancel = Some(self.options.cancel.clone());
        if choice.serves_web {
            self.launch_app(db, job, &options.progress).await
        } else {
            crate::docker::DockerBackend::new(options).run(&job).await
        }
    }

    /// Starts the script as a web app left serving after this command ends (`metaexec
    /// runs stop ID` stops it); the outcome says where it is served.
    async fn launch_app(&mut self, db: &Database, job: Job, progress: &crate::docker::Progress) -> Outcome {
        let dir = self.run_dir.path.join("app");
        let launch = crate::docker::Launch {
            job,
            capability: self.options.capability.clone(),
            host_memory_bytes: self.options.host_memory_bytes,
            base_image: self.options.base_image.clone(),
        };
        let address = db.proxy.url().full_address();
        match crate::docker::launch_detached(&dir, &launch, Some(&address), progress).await {
            Ok(record) if record.status == "serving" => {
                let url = record.url.unwrap_or_default();
                self.note(format!(
                    "the web app serves on {url} (output in {}); stop it with `metaexec runs stop {}`",
                    dir.join("app.log").display(),
                    self.run_dir.id
                ));
                let mut results = serde_json::Map::new();
                results.insert("url".into(), url.into());
                results.insert("container".into(), record.container.unwrap_or_default().into());
                // An app that serves has no outcome yet: the run's says where it is.
                let placeholder = OutcomeError::new(ErrorKind::Internal, "");
                Outcome {
                    status: Status::Ok,
                    error: None,
                    exit_code: 0,
                    results,
                    ..Outcome::failed_before_start(placeholder, "docker")
                }
            }
            Ok(record) => record.outcome.map(|o| *o).unwrap_or_else(|| {
                Outcome::failed_before_start(
                    OutcomeError::new(ErrorKind::BackendUnavailable, format!("The web app {}", record.status)),
                    "docker",
                )
            }),
            Err(e) => Outcome::failed_before_start(
                OutcomeError::new(ErrorKind::BackendUnavailable, format!("The web app could not be started: {e:#}"))
                    .with_hint(crate::docker::ENGINE_HINT),
                "docker",
            ),
        }
    }

    fn job(&self, db: &Database, script: &str) -> Job {
        let mut job = Job::new("script.py", script, self.run_dir.results());
        job.limits = self.options.limits.clone();
        job.db = Some(DbHandle(db.proxy.clone()));
        // One budget for what the script makes the host hold, rows included.
        job.budget = db.proxy.budget().clone();
        job
    }

    /// Runs the script over the request's scenarios on warm instances, narrows the
    /// break-even points, and writes the sweep's files to `sweep/` in the run folder.
    async fn sweep(
        &mut self,
        db: &Database,
        sandbox: &WasiSandbox,
        script: String,
        plan: Plan,
        xlsx: bool,
    ) -> Result<(), OutcomeError> {
        let since = self.started(Stage::Sweep, 0);
        // Checked when the plan was made: computed once, here.
        let scenarios = plan.enumerate(Source::Request).map(|s| s.all()).map_err(|e| {
            self.finished(Stage::Sweep, since, false, "no scenarios");
            OutcomeError::new(ErrorKind::Usage, format!("The plan's scenarios cannot be run: {e}"))
        })?;
        let total = scenarios.len();
        // The plan as `metaexec sweep --plan` reads it: the same sweep again, or in shards.
        if let Err(e) = self.run_dir.write_text("plan.json", &plan.to_json()) {
            self.note(format!("plan.json was not written: {e}"));
        }
        let mut job = self.job(db, &script);
        // Scenarios seed `random` from the draws' seed and their ids: a sweep repeats exactly.
        job.seed = plan.monte_carlo.as_ref().map(|_| plan.seed);
        let options = SweepOptions {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            isolation: Isolation::Namespace,
            cancel: self.options.cancel.clone(),
        };
        // Progress in whole percents: a sweep finishes thousands of scenarios a second.
        let progress = self.options.progress.clone();
        let shown = Arc::new(AtomicUsize::new(usize::MAX));
        let report = sweep::run(sandbox, &job, scenarios, options.clone(), move |done| {
            let percent = done * 100 / total.max(1);
            if shown.swap(percent, Ordering::Relaxed) != percent {
                let rate = done as f64 / since.elapsed().as_secs_f64().max(1e-3);
                let eta = (total - done.min(total)) as f64 / rate.max(1e-3);
                let detail = format!("{done}/{total} scenarios · {rate:.0}/s · ETA {eta:.0} s");
                progress(&Event::Progress { stage: Stage::Sweep, detail });
            }
        })
        .await;
        let mut report = report.map_err(|outcome| {
            self.finished(Stage::Sweep, since, false, "failed");
            outcome.error.unwrap_or_else(|| OutcomeError::new(ErrorKind::Internal, "The sweep failed"))
        })?;
        if !options.cancel.is_cancelled() {
            self.emit(Event::Progress { stage: Stage::Sweep, detail: "narrowing break-even points".into() });
        }
        sweep::bisect::refine(sandbox, &job, &mut report, &options).await;
        report.plan =
            self.record.task.iter().flat_map(TaskSpec::plan_lines).map(|(k, t)| (k.to_owned(), t.to_owned())).collect();
        let dir = self.run_dir.path.join("sweep");
        let mut files = Vec::new();
        let written =
            sweep::output::write_files(&report, &dir, &self.record.request, self.options.keep).and_then(|written| {
                files = written.files;
                if xlsx {
                    files.push(sweep::output::write_xlsx(&report, &dir)?);
                }
                Ok(written.compacted)
            });
        match written {
            Ok(Some(bytes)) => self.note(format!(
                "the sweep's per-scenario files would take about {} MiB: sweep/ holds summary.json and \
                 scenarios.csv.gz (one line per scenario) instead",
                bytes >> 20
            )),
            Ok(None) => {}
            Err(e) => self.note(format!("the sweep's files were not all written: {e}")),
        }
        if let Some(interrupted) = &report.summary.interrupted {
            self.note(format!(
                "interrupted: {} of {} scenarios finished; the sweep's summary covers those only",
                interrupted.finished, interrupted.planned
            ));
        }
        let (failed, rate, interrupted) =
            (report.summary.failed, report.metrics.scenarios_per_s, report.summary.interrupted);
        self.record.sweep = Some(SweepRecord::new(&report, files));
        let detail = match interrupted {
            Some(i) => format!("interrupted: {} of {total} scenarios, {failed} failed, {rate:.0}/s", i.finished),
            None => format!("{total} scenarios, {failed} failed, {rate:.0}/s"),
        };
        self.record.timings.sweep_ms = self.finished(Stage::Sweep, since, failed == 0 && interrupted.is_none(), detail);
        Ok(())
    }

    fn export(&mut self, formats: &[ExportFormat]) -> Result<(), OutcomeError> {
        let since = self.started(Stage::Export, 0);
        let results = self.record.outcome.as_ref().map(|o| o.results.clone()).unwrap_or_default();
        let failed = |e: String| OutcomeError::new(ErrorKind::Internal, format!("Failed to write the exports: {e}"));
        for format in formats {
            match format {
                ExportFormat::Csv => {
                    let paths = export::write_csv(&results, &self.run_dir.path).map_err(|e| failed(e.to_string()))?;
                    self.record.exports.extend(paths);
                }
                ExportFormat::Xlsx => {
                    let plan: Vec<(&str, &str)> = self.record.task.iter().flat_map(TaskSpec::plan_lines).collect();
                    let path = export::write_xlsx(&results, &plan, &self.run_dir.path, "results.xlsx")
                        .map_err(|e| failed(e.to_string()))?;
                    self.record.exports.push(path);
                }
            }
        }
        self.finished(Stage::Export, since, true, format!("{} files", self.record.exports.len()));
        Ok(())
    }
}

/// The error of a rejected script: its first error findings, one per line.
fn rejection(report: &Report) -> OutcomeError {
    let lines: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .take(5)
        .map(|f| format!("line {}: {} {}", f.line, f.code, f.message))
        .collect();
    let why = if lines.is_empty() {
        format!("score {:.2} under {:.2}", report.score, report.threshold)
    } else {
        lines.join("; ")
    };
    OutcomeError::new(ErrorKind::Validation, format!("The validator rejected the script: {why}"))
        .with_hint("see validation.json in the run folder, or run `metaexec check` on its script.py")
}

/// Writes the record's parts to the run folder. A record that cannot be written is
/// reported on the log, not raised: the run itself already happened.
fn save(record: &RunRecord, dir: &RunDir) {
    let result = (|| -> std::io::Result<()> {
        dir.write_text("request.txt", &format!("{}\n", record.request.trim_end()))?;
        if let Some(task) = &record.task {
            dir.write_json("task.json", task)?;
        }
        for attempt in &record.attempts {
            if record.attempts.len() > 1 {
                dir.write_text(&format!("attempts/{}/script.py", attempt.round), &attempt.script)?;
                dir.write_json(&format!("attempts/{}/validation.json", attempt.round), &attempt.validation)?;
            }
        }
        if let Some(attempt) = record.attempts.last() {
            dir.write_text("script.py", &attempt.script)?;
            dir.write_json("validation.json", &attempt.validation)?;
        }
        if !record.model_calls.is_empty() {
            dir.write_json("model_calls.json", &record.model_calls)?;
        }
        if let Some(outcome) = &record.outcome {
            dir.write_json("outcome.json", outcome)?;
            dir.write_json("results.json", &outcome.results)?;
        }
        if let Some(sweep) = &record.sweep {
            dir.write_json("sweep.json", sweep)?;
        }
        dir.write_json("run.json", record)?;
        Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!("the run record could not be written to {}: {e}", dir.path.display());
    }
}
