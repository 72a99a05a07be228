//! `GET /api/openapi.json`: the OpenAPI 3.1 document of the API, generated
//! from the handlers' `#[utoipa::path]` attributes and the wire types'
//! schemas (`pictor_client::models`), plus the error answers every route
//! may give (host allow-list, admin token, cross-origin guard, deadline).

use std::sync::LazyLock;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};
use utoipa::OpenApi as _;

use super::{admin, assets, events, health, images, metrics, upload};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Pictor", description = "Self-hostable image ingestion and processing service. \
        Every error answers `{\"error\": {\"code\", \"message\"}}`."),
    paths(
        upload::upload, images::list, images::one, images::update, images::remove, events::stream,
        admin::list, admin::detail, admin::retry, admin::cancel, admin::retry_all_failed, admin::reprocess,
        assets::asset, health::healthz, health::readyz, metrics::scrape, document,
    ),
    components(schemas(pictor_client::models::ErrorBody)),
    tags((name = "images"), (name = "admin", description = "needs the admin token once PICTOR_ADMIN_TOKEN is set"),
        (name = "assets"), (name = "operations")),
)]
struct ApiDoc;

/// The document, built once.
static DOCUMENT: LazyLock<Value> = LazyLock::new(build);

/// The OpenAPI document as JSON.
pub fn openapi() -> &'static Value {
    &DOCUMENT
}

/// The document route.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/api/openapi.json", get(document))
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", operation_id = "openapi", tag = "operations",
    responses((status = 200, description = "the OpenAPI 3.1 document", body = Object)))]
async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], axum::Json(openapi()).into_response())
}

/// The generated document with the answers the middleware may give
/// added to each operation.
fn build() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|_| json!({}));
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else { continue };
            for (method, operation) in item.iter_mut() {
                let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else { continue };
                for (status, why) in common_errors(path, method) {
                    responses.entry(status.to_string()).or_insert_with(|| error_response(why));
                }
            }
        }
    }
    doc
}

/// The errors the layers around the handlers give on `method path`:
/// status and when.
fn common_errors(path: &str, method: &str) -> Vec<(u16, &'static str)> {
    let mutation = !matches!(method, "get" | "head");
    let mut errors = vec![(421, "the Host is not one Pictor answers (PICTOR_ALLOWED_HOSTS)")];
    if mutation || path.starts_with("/api/admin") || path == "/metrics" {
        errors.push((401, "the admin token is set and was not sent"));
    }
    if mutation {
        errors.push((403, "a change sent from another site's page"));
    }
    if path != "/api/upload" && path != "/api/events" {
        errors.push((408, "the request outlived PICTOR_REQUEST_TIMEOUT_SECS"));
    }
    if path != "/healthz" && path != "/api/openapi.json" {
        errors.push((500, "an internal error; the server log has the details"));
    }
    errors
}

/// A response of the error shape.
fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    })
}
