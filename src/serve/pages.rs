//! The HTML pages: the list of runs, a run's page (with the what-if panel when its
//! script can run again here), and the page that starts a new request.

use axum::extract::{Path, State};
use axum::response::Html;

use super::AppState;
use super::error::ApiError;
use crate::report::run_page::{self, Mode, RunLine, RunPage};
use crate::store::RunDir;
use crate::store::finish::PAGE_FILE;

fn rendered(result: Result<String, run_page::RenderError>) -> Result<Html<String>, ApiError> {
    result.map(Html).map_err(|e| ApiError::internal("the page could not be rendered", e))
}

/// `GET /`: the runs, newest first.
pub async fn runs(State(state): State<AppState>) -> Result<Html<String>, ApiError> {
    let lines: Vec<RunLine> = state
        .entries()
        .await?
        .into_iter()
        .map(|e| RunLine {
            created: e.when() + " UTC",
            kind: e.kind.as_str().to_owned(),
            status: e.status.as_str().to_owned(),
            headline: e.headline,
            title: e.title,
            id: e.id,
        })
        .collect();
    rendered(run_page::render_runs(&lines))
}

/// `GET /new`.
pub async fn new_run() -> Result<Html<String>, ApiError> {
    rendered(run_page::render_new_run())
}

/// `GET /runs/{id}`: the run's page; the what-if panel when the run has numeric results
/// and its script can be simulated here.
pub async fn run(State(state): State<AppState>, Path(id): Path<String>) -> Result<Html<String>, ApiError> {
    let dir = RunDir::open(&state.runs, &id)?;
    let page: RunPage = match dir.read_json(PAGE_FILE)? {
        Some(page) => page,
        None => {
            return Err(ApiError::not_found(format!(
                "the run `{id}` has no page yet: it is still running, or it was recorded before pages existed"
            )));
        }
    };
    let whatif = page.what_if_unavailable().is_none() && super::simulate::prepare(&state, &id).await.is_ok();
    rendered(run_page::render(&page, &Mode::Served { whatif }))
}
