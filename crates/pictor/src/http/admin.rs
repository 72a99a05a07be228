//! `/api/admin/jobs`: list, detail, retry, cancel, retry all failed;
//! `/api/admin/reprocess`: regenerate outdated assets.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use pictor_client::models::{
    ErrorBody, JobDetail, JobKind, JobList, JobStatus, ReprocessRequest, Reprocessed, Retried,
};
use serde::Deserialize;

use super::ApiState;
use super::extract::{self, Path, Query};
use crate::api_error::ApiResult;
use crate::images::{ImageId, JobFilter, Page, ReprocessSelection, parse_name};
use crate::queue::JobId;

/// The admin routes.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/admin/jobs", get(list))
        .route("/api/admin/jobs/retry-failed", post(retry_all_failed))
        .route("/api/admin/jobs/{id}", get(detail))
        .route("/api/admin/jobs/{id}/retry", post(retry))
        .route("/api/admin/jobs/{id}/cancel", post(cancel))
        .route("/api/admin/reprocess", post(reprocess))
}

/// Filters and page of the job list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only jobs in this state (case-insensitive; empty: any).
    #[param(value_type = Option<JobStatus>)]
    status: Option<String>,
    /// Only jobs of this type (case-insensitive; empty: any).
    #[serde(rename = "type")]
    #[param(rename = "type", value_type = Option<JobKind>)]
    kind: Option<String>,
    /// Only the jobs of this image.
    #[serde(rename = "imageId")]
    #[param(rename = "imageId")]
    image_id: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 50)]
    limit: Option<i64>,
    /// Jobs skipped.
    #[param(minimum = 0, default = 0)]
    offset: Option<i64>,
    cursor: Option<String>,
}

/// The jobs, newest first, filtered and paged.
#[utoipa::path(get, path = "/api/admin/jobs", operation_id = "listJobs", tag = "admin", params(ListQuery),
    responses((status = 200, body = JobList), (status = 400, description = "a bad filter or page", body = ErrorBody)))]
async fn list(State(state): State<ApiState>, Query(q): Query<ListQuery>) -> ApiResult<Json<JobList>> {
    let page = Page::new(q.limit, q.offset)?.after(q.cursor);
    let status = parse_name::<JobStatus>(q.status, "invalid_status")?;
    let kind = parse_name::<JobKind>(q.kind, "invalid_type")?;
    let filter = JobFilter { status, kind, image_id: q.image_id.filter(|s| !s.is_empty()).map(ImageId::from) };
    Ok(Json(state.images.jobs(&filter, page).await?))
}

/// One job: payload, lease, retry state and its image.
#[utoipa::path(get, path = "/api/admin/jobs/{id}", operation_id = "getJob", tag = "admin", params(("id" = i64, Path)),
    responses((status = 200, body = JobDetail), (status = 400, description = "the id is not a number", body = ErrorBody),
        (status = 404, description = "no such job", body = ErrorBody)))]
async fn detail(State(state): State<ApiState>, Path(id): Path<i64>) -> ApiResult<Json<JobDetail>> {
    Ok(Json(state.images.job(JobId(id)).await?))
}

/// Re-queues a FAILED or CANCELLED job; its image goes back to PROCESSING.
#[utoipa::path(post, path = "/api/admin/jobs/{id}/retry", operation_id = "retryJob", tag = "admin", params(("id" = i64, Path)),
    responses((status = 200, body = JobDetail), (status = 400, description = "the id is not a number", body = ErrorBody),
        (status = 404, description = "no such job", body = ErrorBody),
        (status = 409, description = "the job is not FAILED or CANCELLED", body = ErrorBody)))]
async fn retry(State(state): State<ApiState>, Path(id): Path<i64>) -> ApiResult<Json<JobDetail>> {
    Ok(Json(state.images.retry_job(JobId(id)).await?))
}

/// Cancels a PENDING or FAILED job.
#[utoipa::path(post, path = "/api/admin/jobs/{id}/cancel", operation_id = "cancelJob", tag = "admin", params(("id" = i64, Path)),
    responses((status = 200, body = JobDetail), (status = 400, description = "the id is not a number", body = ErrorBody),
        (status = 404, description = "no such job", body = ErrorBody),
        (status = 409, description = "the job is running or finished", body = ErrorBody)))]
async fn cancel(State(state): State<ApiState>, Path(id): Path<i64>) -> ApiResult<Json<JobDetail>> {
    Ok(Json(state.images.cancel_job(JobId(id)).await?))
}

/// Re-queues every FAILED job.
#[utoipa::path(post, path = "/api/admin/jobs/retry-failed", operation_id = "retryFailedJobs", tag = "admin",
    responses((status = 200, body = Retried)))]
async fn retry_all_failed(State(state): State<ApiState>) -> ApiResult<Json<Retried>> {
    Ok(Json(Retried { retried: state.images.retry_failed().await? }))
}

/// Queues the regeneration of the selected images whose assets were made
/// under other settings than the server's (thumbnail sizes, preview, quality,
/// engine version), below new uploads' jobs; with `dryRun`, only counts them.
/// Images keep serving their old assets until the new ones are written.
#[utoipa::path(post, path = "/api/admin/reprocess", operation_id = "reprocessImages", tag = "admin",
    request_body = ReprocessRequest,
    responses((status = 200, body = Reprocessed),
        (status = 400, description = "a bad body, or a state other than STORED or FAILED", body = ErrorBody)))]
async fn reprocess(
    State(state): State<ApiState>,
    extract::Json(body): extract::Json<ReprocessRequest>,
) -> ApiResult<Json<Reprocessed>> {
    let selection = ReprocessSelection { collection: body.collection.filter(|c| !c.is_empty()), status: body.status };
    Ok(Json(state.images.reprocess(&selection, body.dry_run, |_| {}).await?))
}
