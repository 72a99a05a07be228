//! `/api/admin/jobs`: list, detail, retry, cancel, retry all failed.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use pictor_client::models::{JobDetail, JobKind, JobList, JobStatus, Retried};
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::images::{find, page, parse_param};
use super::present;
use crate::db::{self, jobs::JobFilter};

/// The admin routes.
pub fn router() -> Router<AppState> {
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
}

async fn list(State(state): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult<Json<JobList>> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let status = parse_param::<JobStatus>(q.status, "invalid_status")?;
    let kind = parse_param::<JobKind>(q.kind, "invalid_type")?;
    let filter = JobFilter { status, kind, image_id: q.image_id.filter(|s| !s.is_empty()) };
    let (jobs, total) = db::jobs::list(&state.db.pool, &filter, limit, offset).await?;
    Ok(Json(JobList {
        jobs: jobs.iter().map(present::job_summary).collect(),
        pagination: present::pagination(total, limit, offset),
    }))
}

/// One job with its image.
async fn detail_of(state: &AppState, id: i64) -> ApiResult<JobDetail> {
    let job = db::jobs::get(&state.db.pool, id).await?.ok_or_else(|| ApiError::NotFound(format!("job {id}")))?;
    let image = match &job.image_id {
        Some(image_id) => match find(state, image_id).await {
            Ok(image) => Some(image),
            Err(ApiError::NotFound(_)) => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    Ok(present::job_detail(&job, image, state.queue.clock.now_ms()))
}

async fn detail(State(state): State<AppState>, Path(id): Path<i64>) -> ApiResult<Json<JobDetail>> {
    Ok(Json(detail_of(&state, id).await?))
}

async fn retry(State(state): State<AppState>, Path(id): Path<i64>) -> ApiResult<Json<JobDetail>> {
    state.queue.retry(id).await?;
    Ok(Json(detail_of(&state, id).await?))
}

async fn cancel(State(state): State<AppState>, Path(id): Path<i64>) -> ApiResult<Json<JobDetail>> {
    state.queue.cancel(id).await?;
    Ok(Json(detail_of(&state, id).await?))
}

async fn retry_all_failed(State(state): State<AppState>) -> ApiResult<Json<Retried>> {
    Ok(Json(Retried { retried: state.queue.retry_all_failed().await? }))
}
