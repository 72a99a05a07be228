//! Request ids: every request gets an `X-Request-Id` (the client's when it
//! is short and safe, else a new UUID v7), carried by the request's tracing
//! span onto every line logged while it is handled, and echoed on the response.

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// The header that carries the id, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-sent id kept.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// Whether a client-sent id may be kept: at most [`MAX_REQUEST_ID_LEN`]
/// bytes of `[A-Za-z0-9._-]`. Anything else (spaces, newlines, quotes, long
/// values) could forge or bloat log lines, so it is replaced.
pub fn is_safe(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_REQUEST_ID_LEN
        && value.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Makes a UUID v7 id (time-ordered, so ids sort like the requests).
#[derive(Debug, Clone, Copy, Default)]
pub struct MakeRequestUuidV7;

impl MakeRequestId for MakeRequestUuidV7 {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&uuid::Uuid::now_v7().to_string()).ok().map(RequestId::new)
    }
}

/// Drops a client-sent id that is not [`is_safe`] (and all but the first of
/// several), so that [`SetRequestIdLayer`] makes a new one.
async fn drop_unsafe_id(mut request: Request, next: Next) -> Response {
    let headers = request.headers_mut();
    let keep = headers.get(&REQUEST_ID).filter(|v| is_safe(v.as_bytes())).cloned();
    headers.remove(&REQUEST_ID);
    if let Some(id) = keep {
        headers.insert(REQUEST_ID, id);
    }
    next.run(request).await
}

/// The request's span, at INFO so that the default filter keeps it and every
/// line logged inside carries its fields.
fn request_span(request: &axum::http::Request<Body>) -> tracing::Span {
    let id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
    tracing::info_span!("request", request_id = %id, method = %request.method(), uri = %request.uri().path())
}

/// A 5xx or a failed response body. The deliberate 503 of an upload turned
/// away under load is expected (its INFO response line and the metrics
/// count it): logged at DEBUG, so a flood of them does not bury real errors.
/// A 507 (storage full) needs an operator: WARN. Anything else: ERROR.
fn log_failure(failure: ServerErrorsFailureClass, latency: Duration, _span: &tracing::Span) {
    let latency_ms = latency.as_millis();
    match failure {
        ServerErrorsFailureClass::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {
            tracing::debug!(%failure, latency_ms, "request turned away");
        }
        ServerErrorsFailureClass::StatusCode(StatusCode::INSUFFICIENT_STORAGE) => {
            tracing::warn!(%failure, latency_ms, "the storage is full");
        }
        _ => tracing::error!(%failure, latency_ms, "request failed"),
    }
}

/// Wraps `router` in request ids and request tracing, outermost first: the
/// unsafe-id filter, the id maker, the echo onto the response, the span.
pub fn traced(router: Router) -> Router {
    router
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO))
                .on_failure(log_failure),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuidV7))
        .layer(axum::middleware::from_fn(drop_unsafe_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_of_safe_characters_are_kept_and_others_are_not() {
        assert!(is_safe(b"abc-123_X.y"));
        assert!(is_safe("a".repeat(MAX_REQUEST_ID_LEN).as_bytes()));
        assert!(!is_safe("a".repeat(MAX_REQUEST_ID_LEN + 1).as_bytes()));
        assert!(!is_safe(b""));
        assert!(!is_safe(b"a b"));
        assert!(!is_safe(b"a\"b"));
        assert!(!is_safe("é".as_bytes()));
    }
}
