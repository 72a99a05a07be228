//! `GET /assets/...`: thumbnails and previews (JPEG, WebP, AVIF), answered
//! with a redirect to the bucket when `PICTOR_ASSET_REDIRECT` says so, else streamed
//! from the storage, with the storage's strong ETag, one byte range
//! (`Range: bytes=…`, 206) and immutable caching (an asset's URL never
//! changes content).

use std::ops::Range;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::ApiState;
use super::extract::Path;
use crate::api_error::ApiResult;
use crate::storage::{ASSET_CACHE_CONTROL, AssetRedirect};

/// The asset route.
pub fn router() -> Router<ApiState> {
    Router::new().route("/assets/{*key}", get(asset))
}

/// A thumbnail or preview (`thumb-64.jpg` … `thumb-512.jpg`, `preview.jpg`, `preview.webp`, `preview.avif`):
/// the image's `thumbnails` and `previews` URLs. (The route matches any path under `/assets/`.)
#[utoipa::path(get, path = "/assets/{imageId}/{file}", operation_id = "getAsset", tag = "assets",
    params(("imageId" = String, Path), ("file" = String, Path),
        ("If-None-Match" = Option<String>, Header, description = "an ETag seen before")),
    responses(
        (status = 200, description = "the asset", content((Vec<u8> = "image/jpeg"), (Vec<u8> = "image/webp"), (Vec<u8> = "image/avif")),
            headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "unchanged (If-None-Match)", headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 404, description = "no such asset", body = pictor_client::models::ErrorBody)))]
async fn asset(State(state): State<ApiState>, Path(key): Path<String>, headers: HeaderMap) -> ApiResult<Response> {
    let key = format!("assets/{key}");
    if let Some(how) = state.asset_redirect
        && let Some(url) = state.images.asset_url(&key, how).await?
        && let Ok(location) = HeaderValue::from_str(&url)
    {
        // A presigned URL expires: the redirect is cached for a fraction of its life.
        let cache = match how {
            AssetRedirect::Presigned => HeaderValue::from_static("private, max-age=600"),
            AssetRedirect::Public => HeaderValue::from_static("public, max-age=3600"),
        };
        return Ok((StatusCode::FOUND, [(header::LOCATION, location), (header::CACHE_CONTROL, cache)]).into_response());
    }
    let (key, info) = state.images.asset(&key).await?;
    let cache = HeaderValue::from_static(ASSET_CACHE_CONTROL);
    let etag = HeaderValue::from_str(&info.etag).unwrap_or(HeaderValue::from_static("\"0\""));
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == info.etag || t.trim() == "*"));
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag), (header::CACHE_CONTROL, cache)]).into_response());
    }
    let common = [
        (header::CONTENT_TYPE, HeaderValue::from_static(key.content_type())),
        (header::ETAG, etag),
        (header::CACHE_CONTROL, cache),
        (header::ACCEPT_RANGES, HeaderValue::from_static("bytes")),
    ];
    // A Range under an If-Range naming another version is ignored.
    let if_range_ok = headers.get(header::IF_RANGE).is_none_or(|v| v.to_str().is_ok_and(|v| v == info.etag));
    let wanted = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).filter(|_| if_range_ok);
    let (status, range) = match wanted.map(|v| byte_range(v, info.size)) {
        None | Some(Wanted::Whole) => (StatusCode::OK, 0..info.size),
        Some(Wanted::Part(range)) => (StatusCode::PARTIAL_CONTENT, range),
        Some(Wanted::Unsatisfiable) => {
            let unsatisfiable = HeaderValue::from_str(&format!("bytes */{}", info.size));
            let content_range = unsatisfiable.unwrap_or(HeaderValue::from_static("bytes */0"));
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, [(header::CONTENT_RANGE, content_range)]).into_response());
        }
    };
    let body = Body::from_stream(state.images.asset_bytes(&key, range.clone()).await?);
    let length = HeaderValue::from(range.end - range.start);
    let mut response = (status, common, [(header::CONTENT_LENGTH, length)], body).into_response();
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(value) = HeaderValue::from_str(&format!("bytes {}-{}/{}", range.start, range.end - 1, info.size))
    {
        response.headers_mut().insert(header::CONTENT_RANGE, value);
    }
    Ok(response)
}

/// What a `Range` header asks of an object of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    /// The whole object: no usable range (another unit, several ranges,
    /// a malformed header are ignored, as RFC 9110 allows).
    Whole,
    /// These bytes.
    Part(Range<u64>),
    /// A range that starts past the end: 416.
    Unsatisfiable,
}

/// Parses one `bytes=a-b`, `bytes=a-` or `bytes=-n` range.
fn byte_range(header: &str, size: u64) -> Wanted {
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return Wanted::Whole };
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return Wanted::Whole };
    let (first, last) = (first.trim(), last.trim());
    let parse = |v: &str| v.parse::<u64>().ok();
    let range = match (first.is_empty(), last.is_empty()) {
        // bytes=-n: the last n bytes.
        (true, false) => match parse(last) {
            Some(0) => return Wanted::Unsatisfiable,
            Some(n) => size.saturating_sub(n)..size,
            None => return Wanted::Whole,
        },
        (false, true) => match parse(first) {
            Some(start) => start..size,
            None => return Wanted::Whole,
        },
        (false, false) => match (parse(first), parse(last)) {
            (Some(start), Some(end)) if start <= end => start..size.min(end.saturating_add(1)),
            _ => return Wanted::Whole,
        },
        (true, true) => return Wanted::Whole,
    };
    if range.start >= size { Wanted::Unsatisfiable } else { Wanted::Part(range) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_are_read_as_rfc_9110_says() {
        assert_eq!(byte_range("bytes=0-9", 100), Wanted::Part(0..10));
        assert_eq!(byte_range("bytes=90-", 100), Wanted::Part(90..100));
        assert_eq!(byte_range("bytes=-10", 100), Wanted::Part(90..100));
        assert_eq!(byte_range("bytes=-500", 100), Wanted::Part(0..100));
        assert_eq!(byte_range("bytes=50-500", 100), Wanted::Part(50..100));
        assert_eq!(byte_range("bytes=100-", 100), Wanted::Unsatisfiable);
        assert_eq!(byte_range("bytes=-0", 100), Wanted::Unsatisfiable);
        for ignored in ["items=0-1", "bytes=0-1,5-6", "bytes=5-1", "bytes=x-", "bytes=-"] {
            assert_eq!(byte_range(ignored, 100), Wanted::Whole, "{ignored}");
        }
    }
}
