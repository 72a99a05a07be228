//! The admin token: once `PICTOR_ADMIN_TOKEN` is set, admin endpoints,
//! `/metrics` and every mutation need `Authorization: Bearer TOKEN`; reads of images and
//! assets stay open, and the event stream sends a caller without the token
//! image events only (job events carry internals such as `lastError`).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq as _;

use crate::api_error::ApiError;
use crate::config::Secret;

/// What a request may see, set on every request by [`require_token`] as an
/// extension: everything when no token is configured or it sent the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Job internals included.
    Full,
    /// Public data only: images and assets.
    Public,
}

/// Lets a request through when no token is configured, when it only reads
/// public data, or when it carries the token; records its [`Access`].
///
/// # Errors
/// [`ApiError::Unauthorized`] otherwise.
pub async fn require_token(
    State(token): State<Option<Secret>>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let access = match &token {
        None => Access::Full,
        Some(token) if sent_token_matches(request.headers(), token) => Access::Full,
        Some(_) => Access::Public,
    };
    let read_only = matches!(*request.method(), Method::GET | Method::HEAD);
    // The metrics show job counts and routes' traffic: operators' data.
    let admin = request.uri().path().starts_with("/api/admin") || request.uri().path() == "/metrics";
    if access == Access::Public && (!read_only || admin) {
        return Err(ApiError::Unauthorized);
    }
    request.extensions_mut().insert(access);
    Ok(next.run(request).await)
}

/// Whether `Authorization: Bearer` holds the token, compared in constant
/// time so that timing does not reveal how much of a guess was right.
fn sent_token_matches(headers: &HeaderMap, token: &Secret) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|sent| bool::from(sent.as_bytes().ct_eq(token.expose().as_bytes())))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn bearer(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn tokens_match_only_when_equal() {
        let token = Secret::new("secret-token");
        assert!(sent_token_matches(&bearer("Bearer secret-token"), &token));
        assert!(!sent_token_matches(&bearer("Bearer secret-tokeN"), &token));
        assert!(!sent_token_matches(&bearer("Bearer secret"), &token));
        assert!(!sent_token_matches(&bearer("secret-token"), &token));
        assert!(!sent_token_matches(&HeaderMap::new(), &token));
    }
}
