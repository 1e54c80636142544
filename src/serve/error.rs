//! The API's errors: a status, a kind and a message, as JSON. What went wrong inside
//! (paths, driver messages) is logged, not returned.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    /// The HTTP status.
    #[serde(skip)]
    pub status: StatusCode,
    /// A stable name for the kind of error (`bad_request`, `not_found`, ...).
    pub kind: &'static str,
    /// What was wrong and what to do, for a person.
    pub message: String,
}

impl ApiError {
    /// 400: the request is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, kind: "bad_request", message: message.into() }
    }

    /// 404: no such run (or page).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, kind: "not_found", message: message.into() }
    }

    /// 401: no token, or the wrong one.
    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            kind: "unauthorized",
            message: "a bearer token is required: send `Authorization: Bearer TOKEN`, or open a page once with \
                      ?token=TOKEN"
                .into(),
        }
    }

    /// 403: a request to a loopback server under another name (DNS rebinding).
    pub fn forbidden_host() -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            kind: "forbidden",
            message: "this server answers requests to localhost only; to serve other names, bind another \
                      address with --host and a --token"
                .into(),
        }
    }

    /// 409: the run cannot do what was asked (no script, needs Docker ...).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self { status: StatusCode::CONFLICT, kind: "unsupported", message: message.into() }
    }

    /// 500: logged in full, answered in general.
    pub fn internal(what: &str, detail: impl std::fmt::Display) -> Self {
        tracing::error!("{what}: {detail}");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "internal",
            message: format!("{what}; the server's log has the details"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::BadId(_) => Self::bad_request(error.to_string()),
            StoreError::NotFound { id, .. } => Self::not_found(format!("no run `{id}`")),
            other => Self::internal("the run store could not be read", other),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        // axum answers a body of the wrong shape with 422; to a client it is one more
        // bad request, said with the same status as any other.
        let status = match rejection.status() {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            status => status,
        };
        let kind = if status == StatusCode::PAYLOAD_TOO_LARGE { "too_large" } else { "bad_request" };
        // The rejection's text says what was wrong with the body (a field, a type).
        Self { status, kind, message: rejection.body_text() }
    }
}
