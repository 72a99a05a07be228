//! `POST /api/upload`: multipart `file` (+ optional `title`, `collection`)
//! → ingest → one transaction: image (INGESTED) + OFFLOAD_ORIGINAL job → 201.

use axum::extract::multipart::Field;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::routing::post;
use axum::{Json, Router};
use pictor_client::models::{ImageStatus, JobKind, UploadResponse};
use pictor_imaging::Limits;

use super::error::{ApiError, ApiResult};
use super::present::rfc3339;
use super::{AppState, UploadLimits};
use crate::db::{self, Durability};
use crate::ingest::{self, Ingested, IntoIngestError};
use crate::queue::job::{NewJob, OffloadPayload};

/// Longest accepted title or collection, in characters.
const MAX_TEXT_FIELD_CHARS: usize = 500;
/// Room for the multipart framing and text fields beyond the file itself.
const MULTIPART_OVERHEAD_BYTES: u64 = 64 * 1024;

/// The upload route, with a body limit just above the upload limit.
pub fn router(state: &AppState) -> Router<AppState> {
    let body_limit = state.limits.max_upload_bytes.saturating_add(MULTIPART_OVERHEAD_BYTES);
    Router::new()
        .route("/api/upload", post(upload))
        .layer(DefaultBodyLimit::max(usize::try_from(body_limit).unwrap_or(usize::MAX)))
}

/// The text fields of an upload.
#[derive(Debug, Default)]
struct UploadFields {
    title: Option<String>,
    collection: Option<String>,
    file_name: Option<String>,
}

async fn upload(
    State(state): State<AppState>,
    mut multipart: Multipart,
) -> ApiResult<(StatusCode, HeaderMap, Json<UploadResponse>)> {
    let mut fields = UploadFields::default();
    let mut file: Option<Ingested> = None;
    let read = read_fields(&state, &mut multipart, &mut fields, &mut file).await;
    let result = match (read, &file) {
        (Err(e), _) => Err(e),
        (Ok(()), None) => Err(ApiError::bad_request("missing_file", "the upload has no `file` field")),
        (Ok(()), Some(ingested)) => record(&state, ingested, fields).await,
    };
    if let (Err(_), Some(ingested)) = (&result, &file) {
        ingested.discard().await;
    }
    result
}

async fn read_fields(
    state: &AppState,
    multipart: &mut Multipart,
    fields: &mut UploadFields,
    file: &mut Option<Ingested>,
) -> ApiResult<()> {
    let limit = state.limits.max_upload_bytes;
    loop {
        let field = multipart.next_field().await.map_err(|e| ApiError::Ingest(e.into_ingest_error(limit)))?;
        let Some(field) = field else { return Ok(()) };
        match field.name() {
            Some("file") => {
                if file.is_some() {
                    return Err(ApiError::bad_request("too_many_files", "send one `file` per upload"));
                }
                fields.file_name = field.file_name().map(str::to_owned);
                *file = Some(ingest_field(state.limits, state, field).await?);
            }
            Some("title") => fields.title = text(field, "title").await?,
            Some("collection") => fields.collection = text(field, "collection").await?,
            _ => {} // unknown fields are ignored, as browsers add their own
        }
    }
}

async fn ingest_field(limits: UploadLimits, state: &AppState, field: Field<'_>) -> ApiResult<Ingested> {
    let image_limits = Limits { max_pixels: limits.max_pixels, ..Limits::default() };
    Ok(ingest::ingest(&state.tmp_dir, field, limits.max_upload_bytes, image_limits).await?)
}

/// A trimmed text field; empty means absent.
async fn text(field: Field<'_>, name: &'static str) -> ApiResult<Option<String>> {
    let value = field
        .text()
        .await
        .map_err(|e| ApiError::bad_request("malformed_upload", format!("field `{name}`: {}", e.body_text())))?;
    let value = value.trim();
    if value.chars().count() > MAX_TEXT_FIELD_CHARS {
        return Err(ApiError::bad_request(
            "field_too_long",
            format!("`{name}` is longer than {MAX_TEXT_FIELD_CHARS} characters"),
        ));
    }
    Ok((!value.is_empty()).then(|| value.to_owned()))
}

/// The default title: the client's file name without folders or extension.
fn title_from_file_name(file_name: Option<&str>) -> String {
    let base = file_name.unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("");
    let stem = match base.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => base,
    };
    let stem = stem.trim();
    if stem.is_empty() { "Untitled".to_owned() } else { stem.chars().take(MAX_TEXT_FIELD_CHARS).collect() }
}

async fn record(
    state: &AppState,
    ingested: &Ingested,
    fields: UploadFields,
) -> ApiResult<(StatusCode, HeaderMap, Json<UploadResponse>)> {
    let id = uuid::Uuid::now_v7().to_string();
    let (width, height) = ingested.info.display_size();
    let image = db::images::NewImage {
        id: id.clone(),
        title: fields.title.unwrap_or_else(|| title_from_file_name(fields.file_name.as_deref())),
        collection: fields.collection,
        checksum: ingested.checksum.clone(),
        size_bytes: i64::try_from(ingested.size_bytes).unwrap_or(i64::MAX),
        format: ingested.info.format.as_str().to_owned(),
        width: width.into(),
        height: height.into(),
        orientation: ingested.info.orientation.into(),
        temp_path: ingested.temp_key.clone(),
    };
    let payload = OffloadPayload {
        image_id: id.clone(),
        temp_path: ingested.temp_key.clone(),
        checksum: ingested.checksum.clone(),
    };
    let job = NewJob::for_image(JobKind::OffloadOriginal, &id, &payload)
        .map_err(|e| ApiError::bad_request("invalid_payload", e.to_string()))?;
    let now = state.queue.clock.now_ms();
    // DESIGN invariant 1: the row and its first job commit together.
    let mut tx = state.db.begin_write(Durability::Acknowledged).await?;
    db::images::insert_ingested(&mut *tx, &image, now).await?;
    state.queue.enqueue_in(&mut tx, &job).await?;
    tx.commit().await?;
    state.queue.wake();

    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("{}/api/images/{id}", state.api_base.trim_end_matches('/'))) {
        headers.insert(header::LOCATION, location);
    }
    let body = UploadResponse {
        image_id: id,
        status: ImageStatus::Ingested,
        checksum: ingested.checksum.clone(),
        size_bytes: ingested.size_bytes,
        uploaded_at: rfc3339(now),
    };
    Ok((StatusCode::CREATED, headers, Json(body)))
}

#[cfg(test)]
mod tests {
    use super::title_from_file_name;

    #[test]
    fn default_title_is_the_file_name_without_folders_or_extension() {
        assert_eq!(title_from_file_name(Some("holiday.beach.jpg")), "holiday.beach");
        assert_eq!(title_from_file_name(Some("C:\\photos\\cat.png")), "cat");
        assert_eq!(title_from_file_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(title_from_file_name(Some(".hidden")), ".hidden");
        assert_eq!(title_from_file_name(None), "Untitled");
    }
}
