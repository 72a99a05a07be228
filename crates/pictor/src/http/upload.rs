//! `POST /api/upload`: multipart `file` (+ optional `title`, `collection`)
//! streamed to the images layer, which ingests it and records the image
//! and its first job before the 201.

use axum::extract::multipart::{Field, MultipartError};
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::routing::post;
use axum::{Json, Router};
use futures_util::TryStreamExt as _;
use pictor_client::models::{ErrorBody, UploadResponse};

use super::ApiState;
use super::extract;
use crate::api_error::{ApiError, ApiResult};
use crate::images::{MAX_TEXT_FIELD_BYTES, UploadDetails, text_field_too_long, upload_text_field, view};
use crate::ingest::{IngestError, Ingested};

/// Room for the multipart framing and text fields beyond the file itself.
const MULTIPART_OVERHEAD_BYTES: u64 = 64 * 1024;
/// Most parts an upload may have: `file`, `title`, `collection` and room
/// for what browsers add.
const MAX_PARTS: usize = 16;

/// The upload route, with a body limit just above the upload limit.
pub fn router(state: &ApiState) -> Router<ApiState> {
    let body_limit = state.images.limits().max_upload_bytes.saturating_add(MULTIPART_OVERHEAD_BYTES);
    Router::new()
        .route("/api/upload", post(upload))
        .layer(DefaultBodyLimit::max(usize::try_from(body_limit).unwrap_or(usize::MAX)))
}

/// The upload form, for the OpenAPI document (the handler reads the body as a stream).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Only its schema is used.
pub(super) struct UploadForm {
    /// The image; its format is recognised by content, never by name.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Title (default: the file name without its extension); at most 500 characters.
    title: Option<String>,
    /// Collection; at most 500 characters.
    collection: Option<String>,
}

/// Uploads one image; it is durable, with its first job queued, before the 201.
#[utoipa::path(post, path = "/api/upload", operation_id = "uploadImage", tag = "images",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, body = UploadResponse,
            headers(("Location" = String, description = "the new image's URL"))),
        (status = 400, description = "no `file`, a broken multipart body, too many parts or files, a field too long",
            body = ErrorBody),
        (status = 413, description = "over PICTOR_MAX_UPLOAD_BYTES", body = ErrorBody),
        (status = 415, description = "not an image Pictor reads, or empty", body = ErrorBody),
        (status = 422, description = "over PICTOR_MAX_PIXELS, or a damaged header", body = ErrorBody),
        (status = 503, description = "too many uploads in flight",  body = ErrorBody,
            headers(("Retry-After" = u32, description = "seconds to wait"))),
        (status = 507, description = "the storage is full", body = ErrorBody)))]
async fn upload(
    State(state): State<ApiState>,
    headers: HeaderMap,
    extract::Multipart(mut multipart): extract::Multipart,
) -> ApiResult<(StatusCode, HeaderMap, Json<UploadResponse>)> {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    // Held until the answer: the upload's slot and reserved bytes.
    let _ticket = state.images.admit_upload(declared)?;
    let mut details = UploadDetails::default();
    let mut file: Option<Ingested> = None;
    let read = read_fields(&state, &mut multipart, &mut details, &mut file).await;
    let accepted = match (read, &file) {
        (Err(e), _) => Err(e),
        (Ok(()), None) => Err(ApiError::bad_request("missing_file", "the upload has no `file` field")),
        // The images layer discards the file itself if it cannot record it.
        (Ok(()), Some(ingested)) => return answer(&state, state.images.accept(ingested, details).await?),
    };
    if let Some(ingested) = &file {
        state.images.discard(ingested).await;
    }
    accepted
}

async fn read_fields(
    state: &ApiState,
    multipart: &mut Multipart,
    details: &mut UploadDetails,
    file: &mut Option<Ingested>,
) -> ApiResult<()> {
    let limit = state.images.limits().max_upload_bytes;
    for _ in 0..MAX_PARTS {
        let field = multipart.next_field().await.map_err(|e| stream_error(e, limit))?;
        let Some(field) = field else { return Ok(()) };
        match field.name() {
            Some("file") => {
                if file.is_some() {
                    return Err(ApiError::bad_request("too_many_files", "send one `file` per upload"));
                }
                details.file_name = field.file_name().map(str::to_owned);
                let body = field.map_err(move |e| stream_error(e, limit));
                *file = Some(state.images.ingest(body).await?);
            }
            Some("title") => details.title = text(field, "title").await?,
            Some("collection") => details.collection = text(field, "collection").await?,
            _ => {} // unknown fields are ignored, as browsers add their own
        }
    }
    match multipart.next_field().await.map_err(|e| stream_error(e, limit))? {
        None => Ok(()),
        Some(_) => Err(ApiError::bad_request("too_many_parts", format!("an upload has at most {MAX_PARTS} parts"))),
    }
}

/// A broken or oversized multipart body, as ingest reports it.
fn stream_error(e: MultipartError, limit: u64) -> IngestError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        IngestError::TooLarge { limit }
    } else {
        IngestError::Stream(e.body_text())
    }
}

/// A text field, trimmed; empty means absent. Read chunk by chunk and
/// refused as soon as it outgrows [`MAX_TEXT_FIELD_BYTES`], so a huge field
/// is never held in memory.
async fn text(mut field: Field<'_>, name: &'static str) -> ApiResult<Option<String>> {
    let malformed = |why: String| ApiError::bad_request("malformed_upload", format!("field `{name}`: {why}"));
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| malformed(e.body_text()))? {
        if bytes.len() + chunk.len() > MAX_TEXT_FIELD_BYTES {
            return Err(text_field_too_long(name).into());
        }
        bytes.extend_from_slice(&chunk);
    }
    let value = String::from_utf8(bytes).map_err(|_| malformed("not UTF-8 text".to_owned()))?;
    Ok(upload_text_field(name, &value)?)
}

fn answer(
    state: &ApiState,
    accepted: crate::images::Accepted,
) -> ApiResult<(StatusCode, HeaderMap, Json<UploadResponse>)> {
    let mut headers = HeaderMap::new();
    let location = format!("{}/api/images/{}", state.api_base.trim_end_matches('/'), accepted.image_id);
    if let Ok(location) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, location);
    }
    let body = UploadResponse {
        image_id: accepted.image_id,
        status: accepted.status,
        checksum: accepted.checksum,
        size_bytes: accepted.size_bytes,
        uploaded_at: view::rfc3339(accepted.uploaded_at),
    };
    Ok((StatusCode::CREATED, headers, Json(body)))
}
