//! A JSON body extractor whose rejections are the API's JSON errors (axum's own answer
//! in plain text), keeping axum's status: 400 for a bad body, 413 for one too large,
//! 415 without `content-type: application/json`.

use axum::extract::{FromRequest, Request};

use super::error::ApiError;

/// A JSON request body.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
        Ok(Self(value))
    }
}
