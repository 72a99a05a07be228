//! The one error type of the surfaces served over HTTP (the API and the
//! pages): every layer's error converts into [`ApiError`], which is mapped
//! once, here, to a status and `{"error": {"code", "message"}}`. Causes of
//! 5xx answers are logged, never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pictor_client::models::{ErrorBody, ErrorDetail};

use crate::images::ImagesError;
use crate::ingest::IngestError;
use crate::queue::QueueError;
use crate::storage::StorageError;

/// An error answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// What the images layer refused or failed: 400, 404, 409, 413, 415,
    /// 422 by the kind of refusal, 507 when the storage is full, else 500.
    #[error(transparent)]
    Images(#[from] ImagesError),
    /// 400: a request the API cannot parse, with a code and message.
    #[error("{message}")]
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// For a person.
        message: String,
    },
    /// 421: the request names a host Pictor does not answer (DNS-rebinding
    /// defence, [`crate::http::hosts`]).
    #[error("Pictor does not answer to the host {0:?}: add it to PICTOR_ALLOWED_HOSTS")]
    UnknownHost(String),
    /// 408: a request other than an upload outlived its deadline (seconds).
    #[error("the request took longer than {0} s")]
    Timeout(u64),
    /// 401: the admin token is missing or wrong.
    #[error("this needs the admin token: send `Authorization: Bearer <PICTOR_ADMIN_TOKEN>`, or log in at /admin/login")]
    Unauthorized,
}

impl ApiError {
    /// A 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest { code, message: message.into() }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        let Self::Images(e) = self else {
            return match self {
                Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
                Self::UnknownHost(_) => (StatusCode::MISDIRECTED_REQUEST, "unknown_host"),
                Self::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
                _ => (StatusCode::UNAUTHORIZED, "unauthorized"),
            };
        };
        match e {
            ImagesError::Ingest(e) => match e {
                IngestError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "file_too_large"),
                IngestError::Empty => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "empty_file"),
                IngestError::NotAnImage | IngestError::UnsupportedFormat(_) => {
                    (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_format")
                }
                IngestError::Corrupt(_) => (StatusCode::UNPROCESSABLE_ENTITY, "corrupt_image"),
                IngestError::TooManyPixels { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "too_many_pixels"),
                IngestError::Stream(_) => (StatusCode::BAD_REQUEST, "malformed_upload"),
                IngestError::Storage(StorageError::Full { .. }) => {
                    (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage")
                }
                IngestError::Storage(StorageError::Unavailable { .. }) => {
                    (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
                }
                IngestError::Io(_) | IngestError::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
            },
            ImagesError::Storage(StorageError::Unavailable { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
            }
            ImagesError::Storage(StorageError::Full { .. }) => {
                (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage")
            }
            ImagesError::Invalid { code, .. } => (StatusCode::BAD_REQUEST, code),
            ImagesError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "too_busy"),
            ImagesError::Queue(QueueError::NotFound(_))
            | ImagesError::Storage(StorageError::NotFound(_) | StorageError::InvalidKey(_))
            | ImagesError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ImagesError::Queue(QueueError::WrongState { .. }) => (StatusCode::CONFLICT, "wrong_state"),
            ImagesError::Queue(QueueError::Db(_))
            | ImagesError::Storage(
                StorageError::Io { .. } | StorageError::ChecksumMismatch { .. } | StorageError::Lock { .. },
            )
            | ImagesError::Db(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }

    /// Whether this is a 404 (the pages show their own page for it).
    pub fn is_not_found(&self) -> bool {
        self.status_and_code().0 == StatusCode::NOT_FOUND
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Images(ImagesError::Busy(why)) = &self {
            let body = Json(ErrorBody { error: ErrorDetail { code: code.to_owned(), message: why.clone() } });
            let retry_after = [(axum::http::header::RETRY_AFTER, crate::images::RETRY_AFTER_SECS.to_string())];
            return (status, retry_after, body).into_response();
        }
        if code == "storage_unavailable" {
            tracing::warn!(error = ?self, "the object store is unavailable");
            let message = "the storage cannot be reached; try again shortly".to_owned();
            let body = Json(ErrorBody { error: ErrorDetail { code: code.to_owned(), message } });
            let retry_after = [(axum::http::header::RETRY_AFTER, crate::images::RETRY_AFTER_SECS.to_string())];
            return (status, retry_after, body).into_response();
        }
        let message = if status == StatusCode::INSUFFICIENT_STORAGE {
            tracing::warn!(error = ?self, "storage full");
            "the storage is full; try again once space is freed".to_owned()
        } else if status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
            "internal error; the server log has the details".to_owned()
        } else {
            match &self {
                Self::Images(ImagesError::Storage(StorageError::InvalidKey(_))) => "asset not found".to_owned(),
                other => other.to_string(),
            }
        };
        (status, Json(ErrorBody { error: ErrorDetail { code: code.to_owned(), message } })).into_response()
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        Self::Images(e.into())
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
