//! `metaexec serve`: one dashboard for every run. Pages list the runs, show one (its
//! results, charts, script and audit) with a what-if form that runs its script again in
//! the sandbox, and start new requests with their progress streamed; a JSON API does the
//! same for programs (docs/openapi.yaml).
//!
//! Bound to loopback by default; elsewhere a bearer token is required ([`auth`]).
//! Request bodies are size-limited, and sandbox runs are bounded by a semaphore, so a
//! burst of what-ifs queues instead of exhausting the host.

pub mod api;
pub mod auth;
pub mod error;
pub mod json;
pub mod pages;
pub mod progress;
pub mod simulate;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::sync::Semaphore;

use crate::db::DbUrl;
use crate::llm::config::LlmConfig;
use crate::sandbox::WasiSandbox;
use crate::store::Entry;
use crate::store::index::Index;

/// The largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What the server needs.
#[derive(Clone)]
pub struct ServeOptions {
    /// The runs folder.
    pub runs: PathBuf,
    /// The cache root (the runtime, the demo database, model answers).
    pub cache_root: PathBuf,
    /// The bearer token, when one is required.
    pub token: Option<String>,
    /// The database new requests read unless they name one.
    pub default_db: DbUrl,
    /// `DATABASE_URL`, for runs whose stored database had its password masked.
    pub database_url: Option<String>,
    /// The model for new requests; `None` for the offline planner.
    pub llm: Option<LlmConfig>,
    /// Sandbox runs at once (what-ifs).
    pub sandbox_slots: usize,
    /// Requests answered at once (each may use every core in a sweep).
    pub pipeline_slots: usize,
    /// The sandbox.
    pub sandbox: WasiSandbox,
}

/// The state every handler shares.
#[derive(Clone)]
pub struct AppState {
    runs: PathBuf,
    cache_root: PathBuf,
    token: Option<String>,
    default_db: DbUrl,
    database_url: Option<String>,
    llm: Option<LlmConfig>,
    sandbox: WasiSandbox,
    sandbox_slots: Arc<Semaphore>,
    pipeline_slots: Arc<Semaphore>,
    prepared: Arc<Mutex<HashMap<String, Arc<simulate::Prepared>>>>,
    started: progress::Registry,
    index: Arc<tokio::sync::Mutex<Option<Index>>>,
}

impl AppState {
    /// The state for `options`.
    pub fn new(options: ServeOptions) -> Self {
        Self {
            runs: options.runs,
            cache_root: options.cache_root,
            token: options.token,
            default_db: options.default_db,
            database_url: options.database_url,
            llm: options.llm,
            sandbox: options.sandbox,
            sandbox_slots: Arc::new(Semaphore::new(options.sandbox_slots.max(1))),
            pipeline_slots: Arc::new(Semaphore::new(options.pipeline_slots.max(1))),
            prepared: Arc::default(),
            started: progress::Registry::default(),
            index: Arc::default(),
        }
    }

    /// Loads the runtime with a script that does nothing, so the first what-if does not
    /// wait for it.
    pub async fn warm_up(&self) {
        let Ok(scratch) = tempfile::Builder::new().prefix("metaexec-warm-").tempdir() else { return };
        let job = crate::job::Job::new("warm_up.py", "pass\n", scratch.path().join("results"));
        let outcome = self.sandbox.run(&job).await;
        if let Some(error) = outcome.error {
            tracing::warn!("the sandbox did not start: {}", error.message);
        }
    }

    /// Sandbox runs that may start now (the rest wait): for tests and `/health`.
    pub fn free_sandbox_slots(&self) -> usize {
        self.sandbox_slots.available_permits()
    }

    /// The runs, newest first, the index caught up with the folders first.
    async fn entries(&self) -> Result<Vec<Entry>, error::ApiError> {
        if !self.runs.is_dir() {
            return Ok(Vec::new());
        }
        let mut index = self.index.lock().await;
        let open = match index.take() {
            Some(open) => {
                open.sync().await?;
                open
            }
            None => Index::open(&self.runs).await?,
        };
        let entries = open.list(None).await;
        *index = Some(open);
        Ok(entries?)
    }
}

/// The router: pages, API, token check and body limit.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::runs))
        .route("/new", get(pages::new_run))
        .route("/runs/{id}", get(pages::run))
        .route("/health", get(api::health))
        .route("/api/openapi.yaml", get(api::openapi))
        .route("/api/runs", get(api::list).post(api::create))
        .route("/api/runs/{id}", get(api::show))
        .route("/api/runs/{id}/results", get(api::results))
        .route("/api/runs/{id}/download", get(api::download))
        .route("/api/runs/{id}/events", get(api::events))
        .route("/api/simulate", post(simulate::simulate))
        .fallback(|| async { error::ApiError::not_found("no such page or endpoint; see /api/openapi.yaml") })
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
