//! `GET /assets/...`: thumbnails and previews (JPEG, WebP, AVIF), with a
//! strong ETag and immutable caching (an asset's URL never changes content).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pictor_imaging::AssetFormat;
use sha2::{Digest, Sha256};

use super::ApiState;
use super::extract::Path;
use crate::api_error::ApiResult;

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
    let bytes = state.images.asset(&key).await?;
    let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&bytes)[..16]));
    let cache = HeaderValue::from_static("public, max-age=31536000, immutable");
    let etag_value = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""));
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return Ok(
            (StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value), (header::CACHE_CONTROL, cache)]).into_response()
        );
    }
    let content_type = HeaderValue::from_static(content_type(&key));
    Ok(([(header::CONTENT_TYPE, content_type), (header::ETAG, etag_value), (header::CACHE_CONTROL, cache)], bytes)
        .into_response())
}

/// The media type of an asset, from the extension Pictor gave its key.
fn content_type(key: &str) -> &'static str {
    let extension = key.rsplit_once('.').map_or("", |(_, extension)| extension);
    [AssetFormat::Webp, AssetFormat::Avif]
        .into_iter()
        .find(|format| format.extension() == extension)
        .unwrap_or(AssetFormat::Jpeg)
        .mime()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_asset_extension_has_its_media_type() {
        assert_eq!(content_type("assets/x/thumb-64.jpg"), "image/jpeg");
        assert_eq!(content_type("assets/x/preview.webp"), "image/webp");
        assert_eq!(content_type("assets/x/preview.avif"), "image/avif");
    }
}
