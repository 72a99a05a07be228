//! The client's one error type: what the server refused (with its error code
//! and message), what could not be reached, and what a wait ended with.

use std::path::PathBuf;
use std::time::Duration;

use crate::models::ImageStatus;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered 4xx or 5xx with `{"error": {"code", "message"}}`.
    #[error("{message} (HTTP {status}, {code})")]
    Api {
        /// HTTP status.
        status: u16,
        /// The server's stable error code (`not_found`, `unsupported_format`, ...).
        code: String,
        /// The server's message, for a person.
        message: String,
    },
    /// No answer: connection refused, name not resolved, or timed out.
    #[error("cannot reach the Pictor server at {server}")]
    Connect {
        /// The server's base URL.
        server: String,
        /// What the HTTP stack said.
        #[source]
        source: reqwest::Error,
    },
    /// The exchange broke after it started (body cut off, upload stream failed).
    #[error("request to {url} failed")]
    Request {
        /// The URL asked for.
        url: String,
        /// What the HTTP stack said.
        #[source]
        source: reqwest::Error,
    },
    /// The answer was not the JSON shape expected.
    #[error("unexpected answer from {url}")]
    Decode {
        /// The URL asked for.
        url: String,
        /// What did not parse.
        #[source]
        source: reqwest::Error,
    },
    /// The server address cannot be used.
    #[error("invalid server address {address:?}: {why}")]
    InvalidServer {
        /// What was given.
        address: String,
        /// What is wrong with it.
        why: String,
    },
    /// A local file to upload could not be read.
    #[error("cannot read {}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The image ended FAILED while being waited for.
    #[error("image {id} failed: {message}")]
    ImageFailed {
        /// Image id.
        id: String,
        /// The image's error, as the server recorded it.
        message: String,
    },
    /// The image was neither STORED nor FAILED when the wait ran out.
    #[error("image {id} is still {status} after {waited:?}")]
    Timeout {
        /// Image id.
        id: String,
        /// Its last known state.
        status: ImageStatus,
        /// How long was waited.
        waited: Duration,
    },
}

impl Error {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's error code of a refusal.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// True when the server could not be reached or addressed at all.
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect { .. } | Self::InvalidServer { .. })
    }

    /// Builds the error of a 4xx/5xx answer from its body, which is the
    /// API's JSON error when the server sent one.
    pub(crate) async fn from_response(response: reqwest::Response) -> Self {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        match serde_json::from_str::<crate::models::ErrorBody>(&text) {
            Ok(body) => Self::Api { status: status.as_u16(), code: body.error.code, message: body.error.message },
            Err(_) => {
                let text = text.trim();
                let message = if text.is_empty() {
                    status.canonical_reason().unwrap_or("error").to_owned()
                } else {
                    text.chars().take(200).collect()
                };
                Self::Api { status: status.as_u16(), code: format!("http_{}", status.as_u16()), message }
            }
        }
    }
}
