//! The admin token: once `PICTOR_ADMIN_TOKEN` is set, admin endpoints and
//! every mutation need `Authorization: Bearer TOKEN`; reads of images and
//! assets stay open.

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::api_error::ApiError;
use crate::config::Secret;

/// Lets a request through when no token is configured, when it only reads
/// public data, or when it carries the token.
///
/// # Errors
/// [`ApiError::Unauthorized`] otherwise.
pub async fn require_token(
    State(token): State<Option<Secret>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(token) = &token else {
        return Ok(next.run(request).await);
    };
    let read_only = matches!(*request.method(), Method::GET | Method::HEAD);
    let admin = request.uri().path().starts_with("/api/admin");
    if read_only && !admin {
        return Ok(next.run(request).await);
    }
    let sent = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match sent {
        Some(sent) if constant_time_eq(sent.as_bytes(), token.expose().as_bytes()) => Ok(next.run(request).await),
        _ => Err(ApiError::Unauthorized),
    }
}

/// Compares without an early exit, so timing does not reveal the prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(constant_time_eq(b"secret-token", b"secret-token"));
        assert!(!constant_time_eq(b"secret-token", b"secret-tokeN"));
        assert!(!constant_time_eq(b"secret", b"secret-token"));
    }
}
