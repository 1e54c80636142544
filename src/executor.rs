//! The one interface every backend implements: take a `Job`, return an `Outcome`.
//!
//! A backend never fails with an `Err`: anything that goes wrong, in the script or in
//! the backend, is classified into the outcome, so callers (the CLI, sweeps, the web
//! server) handle a single type.

use async_trait::async_trait;

use crate::job::Job;
use crate::outcome::Outcome;

/// Runs jobs. Implemented by the WASI sandbox and, later, the Docker backend.
#[async_trait]
pub trait Executor: Send + Sync {
    /// The backend's name as it appears in outcomes (`wasi`, `docker`).
    fn backend(&self) -> &'static str;

    /// Runs one job to completion or to its first limit.
    async fn execute(&self, job: &Job) -> Outcome;
}
