//! `/api/admin/jobs`: list, detail, retry, cancel, retry all failed.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use pictor_client::models::{JobDetail, JobKind, JobList, JobStatus, Retried};
use serde::Deserialize;

use super::ApiState;
use crate::api_error::ApiResult;
use crate::images::{ImageId, JobFilter, Page, parse_name};
use crate::queue::JobId;

/// The admin routes.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/admin/jobs", get(list))
        .route("/api/admin/jobs/retry-failed", post(retry_all_failed))
        .route("/api/admin/jobs/{id}", get(detail))
        .route("/api/admin/jobs/{id}/retry", post(retry))
        .route("/api/admin/jobs/{id}/cancel", post(cancel))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(rename = "imageId")]
    image_id: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
    cursor: Option<String>,
}

async fn list(State(state): State<ApiState>, Query(q): Query<ListQuery>) -> ApiResult<Json<JobList>> {
    let page = Page::new(q.limit, q.offset)?.after(q.cursor);
    let status = parse_name::<JobStatus>(q.status, "invalid_status")?;
    let kind = parse_name::<JobKind>(q.kind, "invalid_type")?;
    let filter = JobFilter { status, kind, image_id: q.image_id.filter(|s| !s.is_empty()).map(ImageId::from) };
    Ok(Json(state.images.jobs(&filter, page).await?))
}

async fn detail(State(state): State<ApiState>, Path(id): Path<i64>) -> ApiResult<Json<JobDetail>> {
    Ok(Json(state.images.job(JobId(id)).await?))
}

async fn retry(State(state): State<ApiState>, Path(id): Path<i64>) -> ApiResult<Json<JobDetail>> {
    Ok(Json(state.images.retry_job(JobId(id)).await?))
}

async fn cancel(State(state): State<ApiState>, Path(id): Path<i64>) -> ApiResult<Json<JobDetail>> {
    Ok(Json(state.images.cancel_job(JobId(id)).await?))
}

async fn retry_all_failed(State(state): State<ApiState>) -> ApiResult<Json<Retried>> {
    Ok(Json(Retried { retried: state.images.retry_failed().await? }))
}
