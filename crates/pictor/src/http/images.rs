//! `/api/images`: list (filters, pagination), one image, edit, delete.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use pictor_client::models::{ErrorBody, Image, ImageList, ImageStatus, ImageUpdate};
use serde::Deserialize;

use super::ApiState;
use super::extract::{self, Path, Query};
use crate::api_error::ApiResult;
use crate::images::{ImageFilter, Page, parse_name};

/// The image routes.
pub fn router() -> Router<ApiState> {
    Router::new().route("/api/images", get(list)).route("/api/images/{id}", get(one).patch(update).delete(remove))
}

/// Filters and page of the image list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only images of this collection (empty: any).
    collection: Option<String>,
    /// Only images in this state (case-insensitive; empty: any).
    #[param(value_type = Option<ImageStatus>)]
    status: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 50)]
    limit: Option<i64>,
    /// Images skipped.
    #[param(minimum = 0, default = 0)]
    offset: Option<i64>,
    cursor: Option<String>,
}

/// The images, newest first, filtered and paged, with every collection's count.
#[utoipa::path(get, path = "/api/images", operation_id = "listImages", tag = "images", params(ListQuery),
    responses((status = 200, body = ImageList), (status = 400, description = "a bad filter or page", body = ErrorBody)))]
async fn list(State(state): State<ApiState>, Query(q): Query<ListQuery>) -> ApiResult<Json<ImageList>> {
    let page = Page::new(q.limit, q.offset)?.after(q.cursor);
    let status = parse_name::<ImageStatus>(q.status, "invalid_status")?;
    let filter = ImageFilter { collection: q.collection.filter(|c| !c.is_empty()), status };
    Ok(Json(state.images.list(&filter, page).await?))
}

/// One image.
#[utoipa::path(get, path = "/api/images/{id}", operation_id = "getImage", tag = "images", params(("id" = String, Path)),
    responses((status = 200, body = Image), (status = 404, description = "no such image", body = ErrorBody)))]
async fn one(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<Json<Image>> {
    Ok(Json(state.images.find(&id).await?))
}

/// Changes an image's title or collection (fields left out are kept; a `null` collection clears it).
#[utoipa::path(patch, path = "/api/images/{id}", operation_id = "updateImage", tag = "images",
    params(("id" = String, Path)), request_body = ImageUpdate,
    responses((status = 200, body = Image), (status = 400, description = "a bad body or field", body = ErrorBody),
        (status = 404, description = "no such image", body = ErrorBody)))]
async fn update(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    extract::Json(body): extract::Json<ImageUpdate>,
) -> ApiResult<Json<Image>> {
    Ok(Json(state.images.update(&id, &body).await?))
}

/// Deletes an image: its row, jobs and assets, and its original once no other image has the same bytes.
#[utoipa::path(delete, path = "/api/images/{id}", operation_id = "deleteImage", tag = "images",
    params(("id" = String, Path)),
    responses((status = 204, description = "deleted"), (status = 404, description = "no such image", body = ErrorBody)))]
async fn remove(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.images.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
