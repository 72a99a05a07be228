//! `/api/images`: list (filters, pagination), one image, edit, delete.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use pictor_client::models::{CollectionCount, Image, ImageList, ImageStatus, ImageUpdate};
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::present;
use crate::db::{self, Durability, images::ImageFilter};
use crate::storage::assets_prefix;

/// Default page size.
pub const DEFAULT_PAGE_SIZE: i64 = 50;
/// Largest page size.
pub const MAX_PAGE_SIZE: i64 = 1_000;

/// The image routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/images", get(list)).route("/api/images/{id}", get(one).patch(update).delete(remove))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    collection: Option<String>,
    status: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// Checks paging parameters.
///
/// # Errors
/// A 400 for a limit outside `1..=MAX_PAGE_SIZE` or a negative offset.
pub fn page(limit: Option<i64>, offset: Option<i64>) -> ApiResult<(i64, i64)> {
    let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
    let offset = offset.unwrap_or(0);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(ApiError::bad_request("invalid_limit", format!("limit must be between 1 and {MAX_PAGE_SIZE}")));
    }
    if offset < 0 {
        return Err(ApiError::bad_request("invalid_offset", "offset must not be negative"));
    }
    Ok((limit, offset))
}

/// Parses an optional card-named query parameter; empty means absent.
///
/// # Errors
/// A 400 with `code` when the value is not one of the type's names.
pub fn parse_param<T>(value: Option<String>, code: &'static str) -> ApiResult<Option<T>>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    value
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<T>())
        .transpose()
        .map_err(|e| ApiError::bad_request(code, e.to_string()))
}

async fn list(State(state): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult<Json<ImageList>> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let status = parse_param::<ImageStatus>(q.status, "invalid_status")?;
    let filter = ImageFilter { collection: q.collection.filter(|c| !c.is_empty()), status };
    let (records, total) = db::images::list(&state.db.pool, &filter, limit, offset).await?;
    let data = with_jobs(&state, &records).await?;
    let collections = db::images::collections(&state.db.pool)
        .await?
        .into_iter()
        .map(|(name, count)| CollectionCount { name, count: count.max(0) as u64 })
        .collect();
    Ok(Json(ImageList {
        data,
        collections,
        count: total.max(0) as u64,
        pagination: present::pagination(total, limit, offset),
    }))
}

/// Presents images with their jobs (one query for all the jobs).
///
/// # Errors
/// The database failed.
pub async fn with_jobs(state: &AppState, records: &[db::images::ImageRecord]) -> ApiResult<Vec<Image>> {
    let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    let jobs = db::jobs::for_images(&state.db.pool, &ids).await?;
    Ok(records
        .iter()
        .map(|r| {
            let mine: Vec<_> = jobs.iter().filter(|j| j.image_id.as_deref() == Some(r.id.as_str())).collect();
            present::image(r, &mine)
        })
        .collect())
}

/// One image with its jobs.
///
/// # Errors
/// 404 when there is no such image; the database failed.
pub async fn find(state: &AppState, id: &str) -> ApiResult<Image> {
    let record = db::images::get(&state.db.pool, id).await?.ok_or_else(|| ApiError::NotFound(format!("image {id}")))?;
    let mut images = with_jobs(state, std::slice::from_ref(&record)).await?;
    images.pop().ok_or_else(|| ApiError::NotFound(format!("image {id}")))
}

async fn one(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Image>> {
    Ok(Json(find(&state, &id).await?))
}

async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<ImageUpdate>,
) -> ApiResult<Json<Image>> {
    let title = body.title.as_deref().map(str::trim);
    if title.is_some_and(str::is_empty) {
        return Err(ApiError::bad_request("invalid_title", "the title must not be empty"));
    }
    let collection = body.collection.as_ref().map(|c| c.as_deref().map(str::trim).filter(|c| !c.is_empty()));
    if title.is_none() && collection.is_none() {
        return Err(ApiError::bad_request("nothing_to_update", "send `title` and/or `collection`"));
    }
    let now = state.queue.clock.now_ms();
    let mut conn = state.db.write_connection(Durability::Acknowledged).await?;
    if !db::images::update_details(&mut *conn, &id, title, collection, now).await? {
        return Err(ApiError::NotFound(format!("image {id}")));
    }
    Ok(Json(find(&state, &id).await?))
}

async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin_write(Durability::Acknowledged).await?;
    let Some(record) = db::images::delete(&mut *tx, &id).await? else {
        return Err(ApiError::NotFound(format!("image {id}")));
    };
    db::jobs::delete_idle_for_image(&mut *tx, &id).await?;
    tx.commit().await?;
    // Files go after the rows: a crash in between leaves unreferenced files,
    // never rows that point at nothing.
    state.storage.delete_prefix(&assets_prefix(&record.id)).await?;
    for key in [record.original_path.as_deref(), record.temp_path.as_deref()].into_iter().flatten() {
        if db::images::count_using(&state.db.pool, key).await? == 0 {
            state.storage.delete(key).await?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}
