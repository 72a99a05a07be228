//! The one error type of the HTTP layer: every layer's error converts into
//! [`ApiError`], which is mapped once to a status and
//! `{"error": {"code", "message"}}`. Causes of 5xx answers are logged, never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pictor_client::models::{ErrorBody, ErrorDetail};

use crate::ingest::IngestError;
use crate::queue::QueueError;
use crate::storage::StorageError;

/// An error answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400, 413, 415, 422 or 500, by the kind of refusal.
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// 404 for an unknown job, 409 for a job in the wrong state, else 500.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// 404 for a missing object, else 500.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// 500.
    #[error("database error")]
    Db(#[from] sqlx::Error),
    /// 400: a request the API cannot take, with a code and message.
    #[error("{message}")]
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// For a person.
        message: String,
    },
    /// 404.
    #[error("{0} not found")]
    NotFound(String),
    /// 401: the admin token is missing or wrong.
    #[error("this needs the admin token: send `Authorization: Bearer <PICTOR_ADMIN_TOKEN>`")]
    Unauthorized,
}

impl ApiError {
    /// A 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest { code, message: message.into() }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Ingest(e) => match e {
                IngestError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "file_too_large"),
                IngestError::Empty => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "empty_file"),
                IngestError::NotAnImage | IngestError::UnsupportedFormat(_) => {
                    (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_format")
                }
                IngestError::Corrupt(_) => (StatusCode::UNPROCESSABLE_ENTITY, "corrupt_image"),
                IngestError::TooManyPixels { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "too_many_pixels"),
                IngestError::Stream(_) => (StatusCode::BAD_REQUEST, "malformed_upload"),
                IngestError::Io(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
            },
            Self::Queue(QueueError::NotFound(_)) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Queue(QueueError::WrongState { .. }) => (StatusCode::CONFLICT, "wrong_state"),
            Self::Storage(StorageError::NotFound(_) | StorageError::InvalidKey(_)) | Self::NotFound(_) => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Queue(QueueError::Db(_)) | Self::Storage(StorageError::Io { .. }) | Self::Db(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = if status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
            "internal error; the server log has the details".to_owned()
        } else {
            match &self {
                Self::Storage(StorageError::InvalidKey(_)) => "asset not found".to_owned(),
                other => other.to_string(),
            }
        };
        (status, Json(ErrorBody { error: ErrorDetail { code: code.to_owned(), message } })).into_response()
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
