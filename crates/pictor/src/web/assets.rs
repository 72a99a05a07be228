//! `/static/…`: the stylesheet, the ES modules and the icon, compiled into the binary with
//! `include_str!` (a handful of small files: no embedding crate needed), with
//! an ETag so browsers revalidate instead of downloading again.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::PageState;
use crate::api_error::{ApiError, ApiResult};
use crate::images::ImagesError;

/// Every static file: name, content type, contents.
const FILES: &[(&str, &str, &str)] = &[
    ("app.css", "text/css; charset=utf-8", include_str!("static/app.css")),
    ("pictor-client.js", "text/javascript; charset=utf-8", include_str!("static/pictor-client.js")),
    ("upload.js", "text/javascript; charset=utf-8", include_str!("static/upload.js")),
    ("gallery.js", "text/javascript; charset=utf-8", include_str!("static/gallery.js")),
    ("thumbhash.js", "text/javascript; charset=utf-8", include_str!("static/thumbhash.js")),
    ("image.js", "text/javascript; charset=utf-8", include_str!("static/image.js")),
    ("admin.js", "text/javascript; charset=utf-8", include_str!("static/admin.js")),
    ("favicon.svg", "image/svg+xml", include_str!("static/favicon.svg")),
];

/// The static route.
pub fn router() -> Router<PageState> {
    Router::new().route("/static/{name}", get(file))
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> ApiResult<Response> {
    let Some((_, content_type, body)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return Err(ApiError::Images(ImagesError::NotFound(format!("static file {name}"))));
    };
    let etag = format!("\"{}\"", hex::encode(&Sha256::digest(body.as_bytes())[..12]));
    let etag_value = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""));
    // Stable paths (the JS client's is documented): revalidate on every use.
    let cache = HeaderValue::from_static("no-cache");
    let matches = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v == etag);
    if matches {
        return Ok(
            (StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value), (header::CACHE_CONTROL, cache)]).into_response()
        );
    }
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::ETAG, etag_value),
        (header::CACHE_CONTROL, cache),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ];
    Ok((headers, *body).into_response())
}
