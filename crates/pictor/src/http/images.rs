//! `/api/images`: list (filters, pagination), one image, edit, delete.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use pictor_client::models::{Image, ImageList, ImageStatus, ImageUpdate};
use serde::Deserialize;

use super::ApiState;
use crate::api_error::ApiResult;
use crate::images::{ImageFilter, Page, parse_name};

/// The image routes.
pub fn router() -> Router<ApiState> {
    Router::new().route("/api/images", get(list)).route("/api/images/{id}", get(one).patch(update).delete(remove))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    collection: Option<String>,
    status: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
    cursor: Option<String>,
}

async fn list(State(state): State<ApiState>, Query(q): Query<ListQuery>) -> ApiResult<Json<ImageList>> {
    let page = Page::new(q.limit, q.offset)?.after(q.cursor);
    let status = parse_name::<ImageStatus>(q.status, "invalid_status")?;
    let filter = ImageFilter { collection: q.collection.filter(|c| !c.is_empty()), status };
    Ok(Json(state.images.list(&filter, page).await?))
}

async fn one(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<Json<Image>> {
    Ok(Json(state.images.find(&id).await?))
}

async fn update(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<ImageUpdate>,
) -> ApiResult<Json<Image>> {
    Ok(Json(state.images.update(&id, &body).await?))
}

async fn remove(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.images.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
