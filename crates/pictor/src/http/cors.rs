//! CORS for `PICTOR_CORS_ORIGINS`: pages on those origins may call the API
//! and load `/static/pictor-client.js`; other origins get no CORS headers,
//! so browsers keep their answers from them. Off (no layer) when unset.
//! The preflight is answered here, before the admin token is asked for
//! (browsers never send credentials with a preflight).

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may reuse a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The CORS layer of `origins`, or `None` when there are none.
pub fn layer(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> =
        origins.iter().filter_map(|o| HeaderValue::from_str(o.trim().trim_end_matches('/')).ok()).collect();
    if origins.is_empty() {
        return None;
    }
    let request_id = HeaderName::from_static("x-request-id");
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::IF_NONE_MATCH, request_id.clone()])
            .expose_headers([header::LOCATION, header::RETRY_AFTER, header::ETAG, request_id])
            .max_age(PREFLIGHT_MAX_AGE),
    )
}

/// Removes the CORS headers tower-http adds to a preflight whatever its
/// origin (the methods, headers and max age) from an answer to an origin
/// that is not listed, so that such an origin gets no CORS header at all.
/// Goes outside [`layer`].
pub async fn only_for_listed(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        for name in [
            header::ACCESS_CONTROL_ALLOW_METHODS,
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            header::ACCESS_CONTROL_MAX_AGE,
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        ] {
            headers.remove(name);
        }
    }
    response
}
