//! The JSON API: runs listed, shown, started, their results and a zip of their folder.

use std::convert::Infallible;
use std::io::Write as _;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseFrame, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::AppState;
use super::error::ApiError;
use super::json::ApiJson;
use super::progress::SseEvent;
use crate::pipeline::{self, PipelineOptions};
use crate::store::{Entry, JobRecord, RunDir, manifest};

/// `GET /health`.
pub async fn health() -> Json<Value> {
    Json(serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

/// `GET /api/runs`: every run, newest first.
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Entry>>, ApiError> {
    Ok(Json(state.entries().await?))
}

/// A run in full: its entry, job, files, and where its parts are.
#[derive(Debug, Serialize)]
pub struct RunDetail {
    /// The entry.
    #[serde(flatten)]
    pub entry: Entry,
    /// The job.
    pub job: Option<JobRecord>,
    /// Its files (paths inside the folder).
    pub files: Vec<String>,
    /// Links.
    pub links: Links,
}

/// Where a run's parts are served.
#[derive(Debug, Serialize)]
pub struct Links {
    /// Its page.
    pub page: String,
    /// Its results.
    pub results: String,
    /// A zip of its folder.
    pub download: String,
}

/// `GET /api/runs/{id}`.
pub async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<RunDetail>, ApiError> {
    let dir = RunDir::open(&state.runs, &id)?;
    let entry = crate::store::index::read_entry(&dir.path, &id)
        .ok_or_else(|| ApiError::not_found(format!("the run `{id}` has no record yet")))?;
    let job = dir.read_json("job.json")?;
    let files = manifest::files(&dir.path)
        .map_err(|e| ApiError::internal("the run folder could not be read", e))?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let links = Links {
        page: format!("/runs/{id}"),
        results: format!("/api/runs/{id}/results"),
        download: format!("/api/runs/{id}/download"),
    };
    Ok(Json(RunDetail { entry, job, files, links }))
}

/// `GET /api/runs/{id}/results`: the script's results (`results.json`), or a sweep's
/// record (`sweep.json`: a line per scenario and the summary).
pub async fn results(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let dir = RunDir::open(&state.runs, &id)?;
    for name in ["results.json", "sweep.json"] {
        match std::fs::read(dir.path.join(name)) {
            Ok(bytes) => return Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ApiError::internal("the results could not be read", e)),
        }
    }
    Err(ApiError::not_found(format!("the run `{id}` has no results (yet)")))
}

/// `GET /api/runs/{id}/download`: the run folder as a zip of its regular files (links
/// are neither followed nor included).
pub async fn download(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let dir = RunDir::open(&state.runs, &id)?;
    let bytes = tokio::task::spawn_blocking(move || zip_folder(&dir))
        .await
        .map_err(|e| ApiError::internal("the zip could not be made", e))?
        .map_err(|e| ApiError::internal("the zip could not be made", e))?;
    let disposition = format!("attachment; filename=\"{id}.zip\"");
    Ok(([(header::CONTENT_TYPE, "application/zip".to_owned()), (header::CONTENT_DISPOSITION, disposition)], bytes)
        .into_response())
}

fn zip_folder(dir: &RunDir) -> std::io::Result<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, path) in manifest::files(&dir.path)? {
        // Opened without following a link: one planted after the listing is refused.
        let mut file = crate::guest_dir::open_no_follow(&path)?;
        zip.start_file(format!("{}/{name}", dir.id), options).map_err(std::io::Error::other)?;
        std::io::copy(&mut file, &mut zip)?;
    }
    let cursor = zip.finish().map_err(std::io::Error::other)?;
    let mut bytes = cursor.into_inner();
    bytes.flush()?;
    Ok(bytes)
}

/// The most repair rounds a request started through the API may ask for.
pub const MAX_REPAIRS: u32 = 5;

/// `POST /api/runs` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRun {
    /// The request, in plain English.
    pub request: String,
    /// The database [default: the server's].
    #[serde(default)]
    pub db: Option<String>,
    /// Options.
    #[serde(default)]
    pub options: RunOptions,
}

/// Options of a run started through the API.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunOptions {
    /// The script's wall-clock limit, in seconds.
    pub timeout: Option<f64>,
    /// Its memory cap, in MiB.
    pub memory_mib: Option<u64>,
    /// Repair rounds after the first script.
    pub max_repairs: Option<u32>,
    /// Use the offline planner even when the server has a model.
    #[serde(default)]
    pub offline: bool,
}

/// The answer to `POST /api/runs`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Started {
    /// The new run's id.
    pub id: String,
    /// Its progress as server-sent events.
    pub events: String,
    /// Its page.
    pub page: String,
}

/// `POST /api/runs`: starts a request; answers 202 at once with the run's id.
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewRun>,
) -> Result<(StatusCode, Json<Started>), ApiError> {
    let request = body.request.trim().to_owned();
    if request.is_empty() {
        return Err(ApiError::bad_request(
            "`request` is empty: say what to compute, e.g. \"calculate DSCR for every property\"",
        ));
    }
    if request.len() > 4000 {
        return Err(ApiError::bad_request("`request` is longer than 4000 characters"));
    }
    let db = match &body.db {
        Some(url) if !url.trim().is_empty() => {
            crate::db::DbUrl::parse(url).map_err(|e| ApiError::bad_request(e.to_string()))?
        }
        _ => state.default_db.clone(),
    };
    let mut options = PipelineOptions::new(state.cache_root.clone(), db, state.runs.clone());
    options.llm = if body.options.offline { None } else { state.llm.clone() };
    if let Some(secs) = body.options.timeout {
        if !(secs.is_finite() && secs > 0.0 && secs <= 3600.0) {
            return Err(ApiError::bad_request(format!(
                "options.timeout must be between 0 and 3600 seconds, got {secs}"
            )));
        }
        options.limits.timeout = std::time::Duration::from_secs_f64(secs);
    }
    if let Some(mib) = body.options.memory_mib {
        if !(1..=8192).contains(&mib) {
            return Err(ApiError::bad_request(format!("options.memory_mib must be between 1 and 8192, got {mib}")));
        }
        options.limits.memory_bytes = mib * 1024 * 1024;
    }
    if let Some(n) = body.options.max_repairs {
        if n > MAX_REPAIRS {
            return Err(ApiError::bad_request(format!("options.max_repairs is at most {MAX_REPAIRS}, got {n}")));
        }
        options.max_repairs = n;
    }
    let dir =
        RunDir::create(&state.runs, &request).map_err(|e| ApiError::internal("no run folder could be made", e))?;
    let id = dir.id.clone();
    let progress = state.started.add(&id);
    let sink = progress.clone();
    options.progress = std::sync::Arc::new(move |event| sink.push(SseEvent::from_pipeline(event)));
    let slots = state.pipeline_slots.clone();
    let handle = tokio::runtime::Handle::current();
    let page = format!("/runs/{id}");
    let done_page = page.clone();
    // The pipeline drives its own blocking work; a blocking thread of its own keeps the
    // server's workers free for requests.
    tokio::task::spawn_blocking(move || {
        handle.block_on(async move {
            let _permit = slots.acquire_owned().await;
            let record = pipeline::run_in(dir, &request, &options).await;
            let status = if record.interrupted {
                "interrupted"
            } else if record.is_ok() {
                "ok"
            } else {
                "failed"
            };
            progress.finish(SseEvent {
                name: "done",
                data: serde_json::json!({"id": record.id, "status": status, "page": done_page,
                    "error": record.failure().map(|e| e.message.clone())}),
            });
        });
    });
    let events = format!("/api/runs/{id}/events");
    Ok((StatusCode::ACCEPTED, Json(Started { id, events, page })))
}

/// `GET /api/runs/{id}/events`: the progress of a run this server started, as
/// server-sent events from the first; the stream ends after `done`.
pub async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<SseFrame, Infallible>>>, ApiError> {
    let progress = state.started.get(&id).ok_or_else(|| {
        ApiError::not_found(format!("no run `{id}` was started by this server (its record is at /api/runs/{id})"))
    })?;
    let stream = futures_util::stream::unfold((progress, 0usize, false), |(progress, from, ended)| async move {
        if ended {
            return None;
        }
        let (events, done) = progress.since(from).await;
        let next = from + events.len();
        let frames: Vec<Result<SseFrame, Infallible>> =
            events.into_iter().map(|e| Ok(SseFrame::default().event(e.name).data(e.data.to_string()))).collect();
        Some((futures_util::stream::iter(frames), (progress, next, done)))
    });
    Ok(Sse::new(futures_util::StreamExt::flatten(stream)).keep_alive(KeepAlive::default()))
}

/// `GET /api/openapi.yaml`.
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], include_str!("../../docs/openapi.yaml"))
}
