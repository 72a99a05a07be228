//! Probes: `/healthz` (liveness: the process answers; no I/O) and
//! `/readyz` (readiness: database, storage and schema, 503 naming the
//! failed check). Generic over the router's state so that a worker's
//! metrics listener serves them too.

use axum::Json;
use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::get;

use crate::images::{Images, Readiness};

/// `/healthz` and `/readyz`.
pub fn router<S>() -> Router<S>
where
    Images: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// 200 while the process serves requests at all.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "operations",
    responses((status = 200, description = "alive", content_type = "text/plain", body = String)))]
async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 with every check when ready, else 503 with the same body.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "operations",
    responses((status = 200, description = "ready", body = Readiness), (status = 503, description = "a check failed", body = Readiness)))]
async fn readyz(State(images): State<Images>) -> (StatusCode, Json<Readiness>) {
    let readiness = images.readiness().await;
    let status = if readiness.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(readiness))
}
