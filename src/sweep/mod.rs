//! Sweeps: one script over many scenarios.
//!
//! [`spec`] turns the user's spec into scenarios; [`run`] hands them to a small pool of
//! warm sandbox instances (one per core by default), each running scenario after scenario
//! in a fresh module namespace, so a scenario costs a fraction of a millisecond instead of
//! an interpreter start; [`summary`] adds the outcomes up. Database reads go through one
//! proxy for the whole sweep, whose snapshot answers repeated queries, so the database is
//! read once.
//!
//! A sweep can be told to stop ([`SweepOptions::cancel`], set on Ctrl-C): the queue hands
//! out nothing more, running scenarios stop at their next epoch check and are left out,
//! and the report covers what finished, marked [`summary::Interrupted`].

pub mod analysis;
pub mod bisect;
pub mod html;
pub mod output;
pub mod part;
pub mod plan;
pub mod ray;
pub mod record;
pub mod spec;
pub mod summary;
pub mod xlsx;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use crate::budget::Reservation;
use crate::cancel::Cancel;
use crate::job::Job;
use crate::outcome::{ErrorKind, Outcome, OutcomeError, ParamsRead, Sanitized, quoted};
use crate::sandbox::WasiSandbox;
use crate::scenario::{Scenario, ScenarioOutcome, ScenarioQueue, ScenarioStatus};
pub use record::SweepRecord;
pub use summary::Summary;

/// How scenarios are isolated from each other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Warm instances, a fresh module namespace per scenario (modules stay loaded).
    #[default]
    Namespace,
    /// A fresh interpreter per scenario: slower, nothing shared.
    Instance,
}

/// How a sweep runs.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Instances running at once.
    pub workers: usize,
    /// Scenario isolation.
    pub isolation: Isolation,
    /// Set to stop the sweep early; what finished is still reported.
    pub cancel: Cancel,
}

impl SweepOptions {
    /// `workers` instances with `isolation`, never cancelled unless `cancel` is set later.
    pub fn new(workers: usize, isolation: Isolation) -> Self {
        Self { workers, isolation, cancel: Cancel::new() }
    }
}

/// What a sweep cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SweepMetrics {
    /// Wall-clock time of the whole sweep.
    pub wall_ms: f64,
    /// Scenarios per second.
    pub scenarios_per_s: f64,
    /// Queries that reached the database (the rest came from the snapshot).
    pub db_queries: u64,
    /// Instances started.
    pub workers: usize,
    /// Scenarios run afterwards for the analysis: points its one-parameter slices lacked,
    /// and bisection of break-even points.
    pub bisection_runs: usize,
    /// The time they took, in milliseconds.
    pub bisection_ms: f64,
}

/// A finished sweep: `{"scenarios", "summary", "metrics"}` in JSON.
#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    /// Every scenario, in spec order.
    pub scenarios: Vec<ScenarioOutcome>,
    /// The totals.
    pub summary: Summary,
    /// What it cost.
    pub metrics: SweepMetrics,
    /// What the host removed from the results folder afterwards (links leading outside
    /// it, special files).
    #[serde(default)]
    pub sanitized: Vec<Sanitized>,
    /// Instances stopped outside any scenario (a protocol violation between scenarios)
    /// and replaced; the sweep went on, but the script misbehaved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instance_errors: Vec<OutcomeError>,
    /// What the script read of its parameters, over every scenario that finished.
    pub params_read: ParamsRead,
    /// The plan the sweep answers, as `(kind, text)` lines (`step`, `assumed`), when a
    /// request planned it; the report shows it before the figures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<(String, String)>,
}

/// The queue the instances share.
struct Queue {
    pending: Mutex<VecDeque<Scenario>>,
    /// The most scenarios one batch holds.
    max_batch: usize,
    workers: usize,
    done: Mutex<Vec<ScenarioOutcome>>,
    /// Host memory held for the outcomes in `done`.
    held: Mutex<Reservation>,
    instance_errors: Mutex<Vec<OutcomeError>>,
    /// What the finished scenarios read of their parameters, added up.
    params_read: Mutex<ParamsRead>,
    finished: AtomicUsize,
    progress: Box<dyn Fn(usize) + Send + Sync>,
    cancel: Cancel,
}

/// The largest batch handed to a warm instance: big enough that the hand-out round trip
/// is a small share of a scenario, small enough that an instance stopped mid-batch
/// leaves little to run again.
const MAX_BATCH: usize = 32;

impl ScenarioQueue for Queue {
    fn next_batch(&self) -> Vec<Scenario> {
        if self.cancel.is_cancelled() {
            return Vec::new();
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        // A quarter of an even share per batch, so the instances finish close together.
        let size = (pending.len() / (self.workers * 4)).clamp(1, self.max_batch);
        let size = size.min(pending.len());
        pending.drain(..size).collect()
    }

    fn requeue(&self, scenarios: Vec<Scenario>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for scenario in scenarios.into_iter().rev() {
            pending.push_front(scenario);
        }
    }

    fn finish(&self, mut outcome: ScenarioOutcome) {
        if let Some(read) = outcome.params_read.take() {
            self.params_read.lock().unwrap_or_else(|e| e.into_inner()).merge(read);
        }
        // Every outcome is kept until the sweep ends: charge it to the budget, and keep
        // only its failure when it does not fit.
        let cost = outcome_cost(&outcome);
        if let Err(exceeded) = self.held.lock().unwrap_or_else(|e| e.into_inner()).grow(cost, "a scenario's outcome") {
            outcome.status = ScenarioStatus::Error;
            outcome.results.clear();
            outcome.stdout.clear();
            outcome.logs.clear();
            outcome.error = Some(
                OutcomeError::new(ErrorKind::HostMemory, format!("The scenario's results were dropped: {exceeded}"))
                    .with_hint(exceeded.hint()),
            );
        }
        self.done.lock().unwrap_or_else(|e| e.into_inner()).push(outcome);
        let finished = self.finished.fetch_add(1, Ordering::Relaxed) + 1;
        (self.progress)(finished);
    }

    fn instance_failed(&self, error: OutcomeError) {
        self.instance_errors.lock().unwrap_or_else(|e| e.into_inner()).push(error);
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// Runs `job`'s script over `scenarios`. `progress` is told how many have finished as they
/// finish. `Err` when the script cannot run at all (it does not compile, the runtime is
/// missing): the outcome says why. Once `options.cancel` is set, the report holds the
/// scenarios that finished by then and its summary says it was interrupted.
pub async fn run(
    sandbox: &WasiSandbox,
    job: &Job,
    scenarios: Vec<Scenario>,
    options: SweepOptions,
    progress: impl Fn(usize) + Send + Sync + 'static,
) -> Result<SweepReport, Box<Outcome>> {
    let started = Instant::now();
    let order: HashMap<String, usize> = scenarios.iter().enumerate().map(|(i, s)| (s.id.clone(), i)).collect();
    let total = scenarios.len();
    let workers = options.workers.clamp(1, total.max(1));
    let queue = Arc::new(Queue {
        pending: Mutex::new(scenarios.into()),
        max_batch: match options.isolation {
            Isolation::Namespace => MAX_BATCH,
            Isolation::Instance => 1,
        },
        workers,
        done: Mutex::new(Vec::with_capacity(total)),
        held: Mutex::new(job.budget.empty()),
        instance_errors: Mutex::new(Vec::new()),
        params_read: Mutex::default(),
        finished: AtomicUsize::new(0),
        progress: Box::new(progress),
        cancel: options.cancel.clone(),
    });
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (sandbox, job, queue, isolation) = (sandbox.clone(), job.clone(), queue.clone(), options.isolation);
        tasks.push(tokio::spawn(async move {
            match isolation {
                Isolation::Namespace => sandbox.run_sweep(&job, queue).await,
                Isolation::Instance => run_isolated(&sandbox, &job, &queue).await,
            }
        }));
    }
    let mut failure = None;
    for task in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(outcome)) => {
                failure.get_or_insert(outcome);
            }
            Err(e) => {
                failure.get_or_insert_with(|| {
                    Box::new(Outcome::failed_before_start(
                        crate::outcome::OutcomeError::new(
                            crate::outcome::ErrorKind::Internal,
                            format!("a sweep worker panicked: {e}"),
                        ),
                        "wasi",
                    ))
                });
            }
        }
    }
    let sanitized = crate::sandbox::sanitize_results(&job.results_dir);
    if let Some(mut outcome) = failure {
        outcome.sanitized = sanitized;
        return Err(outcome);
    }
    let mut outcomes = std::mem::take(&mut *queue.done.lock().unwrap_or_else(|e| e.into_inner()));
    outcomes.sort_by_key(|o| order.get(&o.id).copied().unwrap_or(usize::MAX));
    let params_read = std::mem::take(&mut *queue.params_read.lock().unwrap_or_else(|e| e.into_inner()));
    let wall = started.elapsed().as_secs_f64();
    let db_queries = job.db.as_ref().map_or(0, |db| db.0.queries_executed());
    let metrics = SweepMetrics {
        wall_ms: wall * 1000.0,
        scenarios_per_s: if wall > 0.0 { outcomes.len() as f64 / wall } else { 0.0 },
        db_queries,
        workers,
        bisection_runs: 0,
        bisection_ms: 0.0,
    };
    let instance_errors = std::mem::take(&mut *queue.instance_errors.lock().unwrap_or_else(|e| e.into_inner()));
    let finished = outcomes.len();
    let summarizing = Instant::now();
    let mut report = match assemble(outcomes, params_read, instance_errors, sanitized.clone(), metrics) {
        Ok(report) => report,
        Err(error) => {
            let mut outcome = Outcome::failed_before_start(error, "wasi");
            outcome.sanitized = sanitized;
            return Err(Box::new(outcome));
        }
    };
    tracing::debug!(
        scenarios_ms = wall * 1000.0,
        summary_ms = summarizing.elapsed().as_secs_f64() * 1000.0,
        "sweep finished"
    );
    if options.cancel.is_cancelled() && finished < total {
        report.summary.interrupted = Some(summary::Interrupted { finished, planned: total });
    }
    Ok(report)
}

/// The report of scenarios that finished, in plan order: the same check of unread
/// parameters and the same summary whether they ran here ([`run`]) or as the shards of
/// a sweep on other machines, merged. Percentiles and probabilities come from every
/// scenario's own figures.
pub fn assemble(
    scenarios: Vec<ScenarioOutcome>,
    params_read: ParamsRead,
    instance_errors: Vec<OutcomeError>,
    sanitized: Vec<Sanitized>,
    metrics: SweepMetrics,
) -> Result<SweepReport, OutcomeError> {
    if let Some(error) = unread_params(&scenarios, &params_read) {
        return Err(error);
    }
    let summary = summary::summarize(&scenarios, &params_read.defaults());
    Ok(SweepReport { scenarios, summary, metrics, sanitized, instance_errors, params_read, plan: Vec::new() })
}

/// The usage error for a sweep over parameters the script never read, in any scenario
/// that finished: a parameter that varies between scenarios but is never read makes them
/// all answer the same question, not the one asked. `None` when it read them all, listed
/// them, or a scenario failed: what a failed scenario would have read is not known (it
/// may read a parameter only on the path that failed), and the failures are the answer.
fn unread_params(outcomes: &[ScenarioOutcome], read: &ParamsRead) -> Option<OutcomeError> {
    if read.listed || outcomes.iter().any(|o| o.status != ScenarioStatus::Ok) {
        return None;
    }
    let mut unread = read.unread(outcomes.iter().flat_map(|o| o.params.keys().map(String::as_str)));
    // A parameter every scenario gives the same value (or leaves out) asks nothing of the
    // script: one pass per unread name, against the first scenario.
    let reference = &outcomes.first()?.params;
    unread.retain(|name| outcomes.iter().any(|o| o.params.get(*name) != reference.get(*name)));
    let first = *unread.first()?;
    let noun = if unread.len() == 1 { "parameter" } else { "parameters" };
    let mut message = format!("the script never reads the {noun} {}", quoted(unread.iter().copied()));
    message.push_str(&if read.names.is_empty() {
        "; it reads no parameters at all, so every scenario gives the same answer".to_owned()
    } else {
        format!("; it reads {}", read.shown())
    });
    let hint = match crate::validate::suggest::closest(first, read.names.keys().map(String::as_str)) {
        Some(name) => format!("did you mean `{name}`? Sweep over the names the script passes to `params.get`"),
        None => "sweep over the names the script passes to `params.get`, or make the script read this one".to_owned(),
    };
    Some(OutcomeError::new(ErrorKind::Usage, message).with_hint(hint))
}

/// About what an outcome costs the host while it is kept.
fn outcome_cost(outcome: &ScenarioOutcome) -> usize {
    let texts = outcome.id.len() + outcome.stdout.len() + outcome.logs.iter().map(String::len).sum::<usize>();
    let values = outcome.params.values().map(crate::guest_value::value_cost).sum::<usize>() + outcome.results.cost();
    std::mem::size_of::<ScenarioOutcome>() + texts + values
}

/// `--isolation instance`: a fresh interpreter per scenario.
async fn run_isolated(sandbox: &WasiSandbox, job: &Job, queue: &Queue) -> Result<(), Box<Outcome>> {
    while let Some(scenario) = queue.next_batch().pop() {
        let mut job = job.clone();
        job.params = scenario.params.clone();
        // The seed a warm instance would give the scenario: the same draws either way.
        job.seed = Some(crate::sandbox::scenario_seed(job.seed.unwrap_or(0), &scenario.id));
        // The sweep cleans the shared results folder once, at its end. Told to stop, the
        // run is dropped where it is (its instance with it) and left out of the results.
        let outcome = tokio::select! {
            outcome = sandbox.run_uncleaned(&job) => outcome,
            () = queue.cancel.cancelled() => break,
        };
        queue.finish(ScenarioOutcome {
            id: scenario.id,
            params: scenario.params,
            status: if outcome.is_ok() { ScenarioStatus::Ok } else { ScenarioStatus::Error },
            error: outcome.error,
            results: outcome.results.into(),
            stdout: outcome.stdout,
            logs: outcome.logs,
            wall_ms: outcome.metrics.wall_ms,
            params_read: outcome.params_read,
        });
        // A scenario rarely waits on anything, so without this the worker that runs this
        // loop would never let another take over the sweep's other loops queued behind it.
        tokio::task::yield_now().await;
    }
    Ok(())
}
