//! axum's `Query`, `Path`, `Json` and `Multipart` extractors with their
//! rejections turned into [`ApiError`]s, so that a malformed query, path,
//! body or multipart header answers the one error shape
//! `{"error": {"code", "message"}}` (axum's own rejections are plain text).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::api_error::ApiError;

/// A 400 with `code` and the text of axum's rejection.
fn rejected(code: &'static str, rejection: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(code, rejection.to_string())
}

/// The query string, or 400 `invalid_query`.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|e| rejected("invalid_query", e))
    }
}

/// The path's parameters, or 400 `invalid_path` (say, a job id that is not a number).
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|e| rejected("invalid_path", e))
    }
}

/// A JSON body, or 400 `invalid_body` (not JSON, the wrong shape, or not sent as `application/json`).
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        axum::Json::from_request(request, state)
            .await
            .map(|axum::Json(value)| Self(value))
            .map_err(|e| rejected("invalid_body", e))
    }
}

/// A multipart body, or 400 `malformed_upload` (not `multipart/form-data`, or no boundary).
#[derive(Debug)]
pub struct Multipart(pub axum::extract::Multipart);

impl<S: Send + Sync> FromRequest<S> for Multipart {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        axum::extract::Multipart::from_request(request, state)
            .await
            .map(Self)
            .map_err(|e| rejected("malformed_upload", e))
    }
}
