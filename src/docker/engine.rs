//! Reaching the Docker engine: `DOCKER_HOST` (or the local socket), the API version
//! negotiated with the engine, and a ping; or a reason the backend cannot run here.

use std::time::Duration;

use bollard::Docker;

use crate::outcome::{ErrorKind, OutcomeError};

/// How long the engine has to answer the version handshake and the ping.
const HANDSHAKE: Duration = Duration::from_secs(5);

/// What to do when no engine answers.
pub const ENGINE_HINT: &str = "start a Docker engine (`dockerd &` as root, or `systemctl start docker`) or point \
     DOCKER_HOST at one; or keep the script to the standard library and `metaexec` and run it with --backend wasi";

/// Why the Docker backend cannot run a script here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Unavailable {
    /// What is missing.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl Unavailable {
    /// A reason with its remedy.
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self { message: message.into(), hint: hint.into() }
    }

    /// The reason as an outcome's error (`backend_unavailable`).
    pub fn to_outcome_error(&self) -> OutcomeError {
        OutcomeError::new(ErrorKind::BackendUnavailable, self.message.clone()).with_hint(self.hint.clone())
    }
}

/// Where the engine is looked for.
pub fn engine_address() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// Connects to the engine named by `DOCKER_HOST` (the local socket by default), settles
/// on the API version both sides speak, and checks that it answers.
pub async fn connect() -> Result<Docker, Unavailable> {
    let address = engine_address();
    let unreachable =
        |problem: String| Unavailable::new(format!("No Docker engine answers at {address}: {problem}"), ENGINE_HINT);
    let docker = Docker::connect_with_defaults().map_err(|e| unreachable(e.to_string()))?;
    let docker = match tokio::time::timeout(HANDSHAKE, docker.negotiate_version()).await {
        Ok(Ok(docker)) => docker,
        Ok(Err(e)) => return Err(unreachable(e.to_string())),
        Err(_) => return Err(unreachable(format!("no answer within {} s", HANDSHAKE.as_secs()))),
    };
    match tokio::time::timeout(HANDSHAKE, docker.ping()).await {
        Ok(Ok(_)) => Ok(docker),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!("no answer to a ping within {} s", HANDSHAKE.as_secs()))),
    }
}

/// Whether an engine error says the thing asked for does not exist.
pub fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(error, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}
