//! The Ray dashboard's REST API, the part a job needs: version, package upload, job
//! submission, status, logs and stop. The only module of the Ray backend that sees reqwest.
//!
//! The endpoints and bodies are those of Ray's own client (`ray.dashboard.modules.job.sdk`,
//! `dashboard_sdk.py`): `GET /api/version`; `GET`/`PUT /api/packages/gcs/<name>` (200 when
//! the package exists, 404 when not; the body of a `PUT` is the zip); `POST /api/jobs/`
//! with a JSON `JobSubmitRequest`; `GET /api/jobs/<id>` (a `JobDetails`);
//! `GET /api/jobs/<id>/logs` (`{"logs": "..."}`, the whole log, no size limit);
//! `POST /api/jobs/<id>/stop`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::RayError;
use super::package::Package;

/// Time to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for a request other than the upload (the logs of a big sweep included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The slowest upload rate we wait for, in bytes per second, on top of a minute.
const SLOWEST_UPLOAD: u64 = 1 << 20;
/// Error bodies are cut to this many characters in messages.
const BODY_CHARS: usize = 2000;

/// A job's status (`ray.dashboard.modules.job.common.JobStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(super) enum JobStatus {
    /// Waiting for its runtime environment or resources.
    Pending,
    /// The driver runs.
    Running,
    /// Stopped on request.
    Stopped,
    /// The driver exited 0.
    Succeeded,
    /// The driver exited non-zero, or the job could not start.
    Failed,
}

impl JobStatus {
    /// Whether the job has ended.
    pub(super) fn is_terminal(self) -> bool {
        matches!(self, Self::Stopped | Self::Succeeded | Self::Failed)
    }

    /// Ray's name for it.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Running => "RUNNING",
            Self::Stopped => "STOPPED",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
        }
    }
}

/// What `GET /api/jobs/<id>` tells us.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct JobInfo {
    /// Where the job is.
    pub(super) status: JobStatus,
    /// Ray's sentence about it (why it failed).
    #[serde(default)]
    pub(super) message: String,
}

/// A dashboard at one address.
pub(super) struct Dashboard {
    http: reqwest::Client,
    /// Without a trailing slash.
    address: String,
}

impl Dashboard {
    /// A client for the dashboard at `address` (`http://` assumed without a scheme).
    pub(super) fn new(address: &str) -> Result<Self, RayError> {
        let address = address.trim().trim_end_matches('/');
        let address = if address.contains("://") { address.to_owned() } else { format!("http://{address}") };
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| RayError::InvalidJob { reason: format!("cannot build an HTTP client: {e}") })?;
        Ok(Self { http, address })
    }

    /// The address, as requests use it.
    pub(super) fn address(&self) -> &str {
        &self.address
    }

    /// The cluster's Ray version; the first request, so the one that finds a dashboard
    /// missing.
    pub(super) async fn version(&self) -> Result<String, RayError> {
        #[derive(Deserialize)]
        struct Version {
            ray_version: String,
        }
        let body = self.send("reach the Ray dashboard", self.http.get(self.url("/api/version"))).await?;
        let version: Version = parse("read the Ray version", &body)?;
        Ok(version.ray_version)
    }

    /// Whether the cluster holds the package. Asking also pins it for a while (Ray deletes
    /// a package no job uses), so it does not vanish between this and the submission.
    pub(super) async fn package_exists(&self, name: &str) -> Result<bool, RayError> {
        let what = "look the job's package up";
        let response = self.http.get(self.url(&format!("/api/packages/gcs/{name}"))).send().await;
        let response = response.map_err(|e| self.transport(what, e))?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            status => Err(api_error(what, status, response.text().await.unwrap_or_default())),
        }
    }

    /// Uploads the package, streamed from its file. reqwest's async client streams a body
    /// only with its `stream` feature, so this uses the blocking client on a blocking
    /// thread.
    pub(super) async fn upload(&self, package: &Package) -> Result<(), RayError> {
        let what = "upload the job's package";
        let url = self.url(&format!("/api/packages/gcs/{}", package.name()));
        let path = package.path().to_owned();
        let bytes = package.bytes();
        let address = self.address.clone();
        let sent = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&path).map_err(|source| RayError::Package { path: path.clone(), source })?;
            let transport = |e: reqwest::Error| transport_error(what, &address, e);
            let http = reqwest::blocking::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(Duration::from_secs(60 + bytes / SLOWEST_UPLOAD))
                .build()
                .map_err(transport)?;
            let response = http.put(url).body(reqwest::blocking::Body::sized(file, bytes)).send().map_err(transport)?;
            let status = response.status().as_u16();
            if status == 200 { Ok(()) } else { Err(api_error(what, status, response.text().unwrap_or_default())) }
        });
        sent.await.expect("the package upload panicked")
    }

    /// Submits the job; returns its submission id.
    pub(super) async fn submit(&self, entrypoint: &str, working_dir: &str, shards: usize) -> Result<String, RayError> {
        #[derive(Deserialize)]
        struct Submitted {
            submission_id: String,
        }
        // No `entrypoint_num_cpus`: the driver only waits on its tasks, and a CPU reserved
        // for it would be one shard fewer at a time.
        let body = json!({
            "entrypoint": entrypoint,
            "runtime_env": { "working_dir": working_dir },
            "metadata": { "job_name": format!("metaexec sweep ({shards} shards)") },
        });
        let request = self
            .http
            .post(self.url("/api/jobs/"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let answer = self.send("submit the Ray job", request).await?;
        let submitted: Submitted = parse("read the submitted job's id", &answer)?;
        Ok(submitted.submission_id)
    }

    /// The job's status.
    pub(super) async fn info(&self, job_id: &str) -> Result<JobInfo, RayError> {
        let body =
            self.send("read the Ray job's status", self.http.get(self.url(&format!("/api/jobs/{job_id}")))).await?;
        parse("read the Ray job's status", &body)
    }

    /// The job's whole log.
    pub(super) async fn logs(&self, job_id: &str) -> Result<String, RayError> {
        #[derive(Deserialize)]
        struct Logs {
            logs: String,
        }
        let request = self.http.get(self.url(&format!("/api/jobs/{job_id}/logs")));
        let body = self.send("read the Ray job's log", request).await?;
        let logs: Logs = parse("read the Ray job's log", &body)?;
        Ok(logs.logs)
    }

    /// Asks the cluster to stop the job.
    pub(super) async fn stop(&self, job_id: &str) -> Result<(), RayError> {
        self.send("stop the Ray job", self.http.post(self.url(&format!("/api/jobs/{job_id}/stop")))).await.map(drop)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Sends `request`; the body of a 2xx answer, or the error.
    async fn send(&self, what: &'static str, request: reqwest::RequestBuilder) -> Result<String, RayError> {
        let response = request.send().await.map_err(|e| self.transport(what, e))?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| self.transport(what, e))?;
        if (200..300).contains(&status) { Ok(body) } else { Err(api_error(what, status, body)) }
    }

    fn transport(&self, what: &'static str, error: reqwest::Error) -> RayError {
        transport_error(what, &self.address, error)
    }
}

/// A connection that could not be made is [`RayError::Unreachable`]; anything later is
/// [`RayError::Http`].
fn transport_error(what: &'static str, address: &str, source: reqwest::Error) -> RayError {
    if source.is_connect() || source.is_builder() {
        RayError::Unreachable { address: address.to_owned(), source }
    } else {
        RayError::Http { what, address: address.to_owned(), source }
    }
}

fn api_error(what: &'static str, status: u16, body: String) -> RayError {
    let hint = match status {
        413 => "the package is larger than the dashboard accepts (100 MiB): ship less",
        404 => "the job or endpoint is gone: is this a Ray dashboard, and is the cluster the one the job ran on?",
        400 => "the request was refused as invalid; the body above says which field",
        500..=599 => {
            "the dashboard failed; its log (`/tmp/ray/session_latest/logs/dashboard.log` on the head) says why"
        }
        _ => "check the dashboard address and the cluster's health, then run again",
    };
    let mut body = body.trim().to_owned();
    if let Some((at, _)) = body.char_indices().nth(BODY_CHARS) {
        body.truncate(at);
        body.push_str("...");
    }
    RayError::Api { what, status, body, hint }
}

fn parse<T: serde::de::DeserializeOwned>(what: &'static str, body: &str) -> Result<T, RayError> {
    serde_json::from_str(body).map_err(|e| RayError::Api {
        what,
        status: 200,
        body: format!("an answer that is not what Ray sends ({e})"),
        hint: "is the address a Ray dashboard (port 8265 by default)?",
    })
}
