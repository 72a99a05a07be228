//! Cross-origin guards: a mutation (any method but GET, HEAD, OPTIONS) from a
//! foreign origin is refused, so another site cannot drive a browser that can
//! reach Pictor; and every page gets a Content-Security-Policy.

use axum::Json;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pictor_client::models::{ErrorBody, ErrorDetail};

/// The pages' policy: scripts, styles and connections only from Pictor
/// itself, no inline script, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Refuses a mutation whose `Sec-Fetch-Site` or `Origin` shows another site,
/// unless that origin is one of `trusted` (`PICTOR_CORS_ORIGINS`); requests
/// with neither header (curl, the CLI) and same-origin ones pass.
pub async fn same_origin(State(trusted): State<TrustedOrigins>, request: Request, next: Next) -> Response {
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if safe || is_same_origin(request.headers()) || trusted.sent_by(request.headers()) {
        return next.run(request).await;
    }
    let detail = ErrorDetail {
        code: "foreign_origin".to_owned(),
        message: "changes are accepted only from Pictor's own pages".to_owned(),
    };
    (StatusCode::FORBIDDEN, Json(ErrorBody { error: detail })).into_response()
}

/// Origins whose pages may change things (the CORS origins), exactly as
/// browsers send them in `Origin` (`scheme://host[:port]`).
#[derive(Debug, Clone, Default)]
pub struct TrustedOrigins(Arc<[String]>);

impl TrustedOrigins {
    /// The origins of `PICTOR_CORS_ORIGINS`.
    pub fn new(origins: &[String]) -> Self {
        Self(origins.iter().map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase()).collect())
    }

    /// Whether the request's `Origin` is one of them.
    fn sent_by(&self, headers: &HeaderMap) -> bool {
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        origin.is_some_and(|origin| self.0.iter().any(|o| o.eq_ignore_ascii_case(origin)))
    }
}

/// True unless the headers show the request comes from another origin.
fn is_same_origin(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    // Browsers send Sec-Fetch-Site on every request: it is the surest sign.
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        return matches!(site, "same-origin" | "none");
    }
    let Some(origin) = text(header::ORIGIN) else {
        return true;
    };
    let host = text(header::HOST).unwrap_or("");
    let origin_host = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    !host.is_empty() && origin_host.is_some_and(|o| o.eq_ignore_ascii_case(host))
}

/// Adds the Content-Security-Policy and related headers to a page.
pub async fn page_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (header::HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn requests_without_origin_headers_pass() {
        assert!(is_same_origin(&headers(&[("host", "127.0.0.1:3000")])));
    }

    #[test]
    fn same_origin_passes_and_foreign_origin_is_refused() {
        assert!(is_same_origin(&headers(&[("host", "127.0.0.1:3000"), ("origin", "http://127.0.0.1:3000")])));
        assert!(!is_same_origin(&headers(&[("host", "127.0.0.1:3000"), ("origin", "https://evil.example")])));
        assert!(!is_same_origin(&headers(&[("host", "127.0.0.1:3000"), ("origin", "null")])));
    }

    #[test]
    fn a_trusted_origin_is_known_by_its_origin_header() {
        let trusted = TrustedOrigins::new(&["https://app.example/".to_owned()]);
        assert!(trusted.sent_by(&headers(&[("sec-fetch-site", "cross-site"), ("origin", "https://APP.example")])));
        assert!(
            !trusted.sent_by(&headers(&[("sec-fetch-site", "cross-site"), ("origin", "https://app.example:8443")]))
        );
        assert!(!trusted.sent_by(&headers(&[("sec-fetch-site", "cross-site")])));
    }

    #[test]
    fn sec_fetch_site_decides_when_present() {
        assert!(is_same_origin(&headers(&[("sec-fetch-site", "same-origin"), ("origin", "http://x")])));
        assert!(!is_same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!is_same_origin(&headers(&[("sec-fetch-site", "same-site")])));
    }
}
