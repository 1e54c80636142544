//! `POST /api/simulate`: a run's script again over what-if scenarios, in the sandbox.
//! Each scenario is the run's parameters with its shocks on top; the answers come back
//! per scenario. Scenarios run at once up to the server's bound on sandbox runs, so a
//! burst of what-ifs queues instead of exhausting the host.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::AppState;
use super::error::ApiError;
use super::json::ApiJson;
use crate::db::DbProxy;
use crate::guest_db::DbHandle;
use crate::job::Job;
use crate::outcome::OutcomeError;
use crate::store::{JobRecord, RunDir};

/// The most scenarios one request may ask for.
pub const MAX_SCENARIOS: usize = 64;
/// The longest a what-if scenario may run, whatever the run's own limit was.
const MAX_TIMEOUT: Duration = Duration::from_secs(30);
/// The shocks the form and the API know, as the guest library's scenarios read them.
pub const SHOCKS: [&str; 5] = ["noi_change", "revenue_change", "expense_change", "vacancy_change", "rate_change"];

/// The request body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    /// The run whose script runs.
    pub run_id: String,
    /// The scenarios, at least one.
    pub scenarios: Vec<ScenarioRequest>,
}

/// One what-if scenario: shocks (fractions: `-0.1` is 10 % lower; rate and vacancy in
/// absolute points, `0.01` = +1 pt) and any other parameters.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioRequest {
    /// Its name in the answer.
    #[serde(default)]
    pub name: Option<String>,
    /// Relative NOI change.
    pub noi_change: Option<f64>,
    /// Relative revenue change.
    pub revenue_change: Option<f64>,
    /// Relative operating-expense change.
    pub expense_change: Option<f64>,
    /// Vacancy change in absolute points.
    pub vacancy_change: Option<f64>,
    /// Interest-rate change in absolute points.
    pub rate_change: Option<f64>,
    /// Other parameters for the script, over the run's.
    #[serde(default)]
    pub params: Map<String, Value>,
}

/// The answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimulateResponse {
    /// The run.
    pub run_id: String,
    /// Time for the whole request, in milliseconds.
    pub elapsed_ms: f64,
    /// One per scenario asked, in order.
    pub scenarios: Vec<ScenarioResult>,
}

/// What one scenario gave.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// Its name.
    pub name: String,
    /// The parameters the script got.
    pub params: Map<String, Value>,
    /// `ok` or `error`.
    pub status: String,
    /// What it reported.
    pub results: Map<String, Value>,
    /// Why it failed.
    pub error: Option<OutcomeError>,
    /// Parameters given that the script never read: they cannot have changed its answer.
    pub unread: Vec<String>,
    /// Its run time, in milliseconds.
    pub wall_ms: f64,
}

/// A run ready to simulate: its script and job, and its database opened once.
pub struct Prepared {
    source: String,
    script_name: String,
    record: JobRecord,
    db: Arc<DbProxy>,
}

impl ScenarioRequest {
    /// The scenario's parameters over `base`, checked: shocks finite and in a range that
    /// means something.
    fn params(&self, base: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
        let mut params = base.clone();
        params.extend(self.params.clone());
        for (key, x) in self.shocks() {
            if !x.is_finite() || !(-1.0..=10.0).contains(&x) {
                return Err(ApiError::bad_request(format!(
                    "{key} must be a fraction between -1 and 10 (-0.1 is 10% lower), got {x}"
                )));
            }
            params.insert(key.to_owned(), Value::from(x));
        }
        Ok(params)
    }

    /// The shocks this scenario sets, by key.
    fn shocks(&self) -> impl Iterator<Item = (&'static str, f64)> {
        let values = [self.noi_change, self.revenue_change, self.expense_change, self.vacancy_change, self.rate_change];
        SHOCKS.into_iter().zip(values).filter_map(|(key, value)| Some((key, value?)))
    }

    /// The keys this scenario sets.
    fn given(&self) -> Vec<String> {
        self.shocks().map(|(key, _)| key.to_owned()).chain(self.params.keys().cloned()).collect()
    }
}

/// Loads (once per run, then from the state's cache) what simulating a run needs.
pub async fn prepare(state: &AppState, id: &str) -> Result<Arc<Prepared>, ApiError> {
    if let Some(prepared) = state.prepared.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
        return Ok(prepared.clone());
    }
    let dir = RunDir::open(&state.runs, id)?;
    let record: JobRecord = dir
        .read_json("job.json")?
        .ok_or_else(|| ApiError::conflict(format!("the run `{id}` has no job.json: it cannot be simulated")))?;
    let source = std::fs::read_to_string(dir.path.join("script.py"))
        .map_err(|_| ApiError::conflict(format!("the run `{id}` has no script to simulate")))?;
    let choice = crate::validate::choose_backend(&source, &record.script_name, record.backend);
    if choice.backend == crate::validate::Backend::Docker {
        return Err(ApiError::conflict(format!(
            "what-ifs run in the WASI sandbox, and this run's script needs Docker ({})",
            choice.reason
        )));
    }
    let url = record
        .database_url(None, state.database_url.as_deref())
        .map_err(|e| ApiError::conflict(format!("the run `{id}` cannot be simulated: {e}")))?;
    let budget = crate::budget::HostBudget::new(record.host_memory_bytes);
    let db = Arc::new(DbProxy::new(url, record.capability.clone()).with_budget(budget));
    let prepared = Arc::new(Prepared { source, script_name: record.script_name.clone(), record, db });
    state.prepared.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_owned(), prepared.clone());
    Ok(prepared)
}

/// The handler.
pub async fn simulate(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<SimulateRequest>,
) -> Result<Json<SimulateResponse>, ApiError> {
    let started = Instant::now();
    if request.scenarios.is_empty() {
        return Err(ApiError::bad_request("`scenarios` is empty: give at least one, e.g. {\"noi_change\": -0.1}"));
    }
    if request.scenarios.len() > MAX_SCENARIOS {
        return Err(ApiError::bad_request(format!(
            "{} scenarios asked; at most {MAX_SCENARIOS} per request (use `metaexec sweep` for more)",
            request.scenarios.len()
        )));
    }
    let prepared = prepare(&state, &request.run_id).await?;
    let mut planned = Vec::new();
    for (i, scenario) in request.scenarios.iter().enumerate() {
        let params = scenario.params(&prepared.record.params)?;
        let name = scenario.name.clone().unwrap_or_else(|| format!("scenario {}", i + 1));
        planned.push((name, params, scenario.given()));
    }
    let runs = planned.into_iter().map(|(name, params, given)| run_one(&state, &prepared, name, params, given));
    let scenarios = futures_util::future::join_all(runs).await.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(Json(SimulateResponse { run_id: request.run_id, elapsed_ms: started.elapsed().as_secs_f64() * 1e3, scenarios }))
}

/// Runs one scenario once a sandbox slot is free, in a scratch results folder that is
/// removed afterwards: a what-if never writes into the run's folder.
async fn run_one(
    state: &AppState,
    prepared: &Prepared,
    name: String,
    params: Map<String, Value>,
    given: Vec<String>,
) -> Result<ScenarioResult, ApiError> {
    let _permit = state.sandbox_slots.acquire().await.map_err(|e| ApiError::internal("the server is stopping", e))?;
    let scratch = tempfile::Builder::new()
        .prefix("metaexec-whatif-")
        .tempdir()
        .map_err(|e| ApiError::internal("no scratch folder for the scenario", e))?;
    let mut job = Job::new(prepared.script_name.clone(), prepared.source.clone(), scratch.path().join("results"));
    job.params = params.clone();
    job.limits = prepared.record.limits.clone();
    job.limits.timeout = job.limits.timeout.min(MAX_TIMEOUT);
    job.seed = prepared.record.seed.or(Some(0));
    job.budget = prepared.db.budget().clone();
    job.db = Some(DbHandle(prepared.db.clone()));
    let outcome = state.sandbox.run(&job).await;
    let unread =
        outcome.params_read.as_ref().map(|read| read.unread(given.iter().map(String::as_str))).unwrap_or_default();
    Ok(ScenarioResult {
        name,
        params,
        status: if outcome.is_ok() { "ok".into() } else { "error".into() },
        results: outcome.results,
        error: outcome.error,
        unread: unread.into_iter().map(str::to_owned).collect(),
        wall_ms: outcome.metrics.wall_ms,
    })
}
